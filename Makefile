# Choreo: `make demo` and `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test test-core demo bench info clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q tests

test-core: $(STAMP)
	$(PY) -m pytest -q tests/core

# Until the generator lands, the demo runs the motion core end to end on a clip it synthesises
# (or on CLIP=path/to/file.bvh): summary, features round trip and clean-mocap metrics.
demo: $(STAMP)
	$(PY) -m core_models demo $(if $(CLIP),--clip $(CLIP),)

bench: $(STAMP)
	$(PY) benchmarks/motion_core.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
