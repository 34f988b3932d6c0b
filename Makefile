# Choreo: `make demo` and `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LTS_VENV := .venv-lts
LTS_STAMP := $(LTS_VENV)/.installed
BPY_LTS := bpy==4.5.15

.PHONY: venv test test-core test-lts demo bench extension extension-offline onnx clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test,blender,demo]'
	touch $(STAMP)

venv: $(STAMP)

# Core tests (no bpy) and add-on tests in the real bpy 5.0.1 module, then the add-on tests again on
# Blender 4.5 LTS (a second environment; both together take a few minutes).
test: $(STAMP) $(LTS_STAMP)
	$(PY) -m pytest -q tests
	$(LTS_VENV)/bin/python -m pytest -q tests/addon

test-core: $(STAMP)
	$(PY) -m pytest -q tests/core

# The add-on tests again on Blender 4.5 LTS (bpy 4.5 wheel in its own environment).
$(LTS_STAMP): pyproject.toml
	test -x $(LTS_VENV)/bin/python || $(PYTHON) -m venv $(LTS_VENV)
	$(LTS_VENV)/bin/python -m pip install --quiet -e '.[test]' '$(BPY_LTS)'
	touch $(LTS_STAMP)

test-lts: $(LTS_STAMP)
	$(LTS_VENV)/bin/python -m pytest -q tests/addon

# Installable zip built with Blender's own extension builder (no tests, benchmarks or data inside).
extension: $(STAMP)
	mkdir -p dist
	$(PY) -c "import bpy; from bl_pkg import bl_extension_cli as c; import sys; \
sys.exit(c.cli_extension_handler(['build', '--source-dir', '.', '--output-dir', 'dist']) or 0)"

# ONNX exports of the shipped weight sets (into the sets, sha256 in their manifests); re-run after new weights.
onnx: $(STAMP)
	$(PY) -m core_models export-onnx --weights core_models/assets/compact
	$(PY) -m core_models export-onnx --weights core_models/assets/frdm

# The zip a user can install alone and generate / fix feet offline without torch: onnxruntime, librosa,
# scipy, soundfile, safetensors and their dependencies as wheels for Linux x64 (Blender's manifest `wheels`;
# fetched here with pip, never committed), plus the shipped weights with their ONNX exports (make onnx).
OFFLINE_WHEELS := onnxruntime==1.32.0 safetensors==0.8.0 soundfile==0.14.0 librosa==0.11.0 scipy==1.17.1 numpy==1.26.4
extension-offline: $(STAMP)
	mkdir -p build/wheels dist
	$(PY) -m pip download --quiet --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
		--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d build/wheels $(OFFLINE_WHEELS)
	$(PY) -m core_models.packaging --wheels build/wheels --out dist --platform linux-x64

# The demo: music synthesised in code (or MUSIC=path), a dance generated with the shipped compact weights in
# the installed extension, feet cleaned, demo_output/demo.blend, a preview video and demo_report.json.
demo: $(STAMP)
	$(PY) addon/demo.py demo_output $(if $(MUSIC),--music $(MUSIC),) $(if $(GENRE),--genre $(GENRE),)

bench: $(STAMP)
	$(PY) benchmarks/motion_core.py
	$(PY) benchmarks/keyframes.py
	$(PY) benchmarks/generate.py
	$(PY) benchmarks/onnx_backend.py

clean:
	rm -rf $(VENV) $(LTS_VENV) build dist *.egg-info .pytest_cache
