# SPDX-License-Identifier: GPL-3.0-or-later
"""Makes the shared test helpers in tests/ importable from every test folder."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
