"""Benchmarks of issue 14 (`make bench`; README "Performance"): scripts, run as `python bench/<name>.py`.

Importing the package puts this checkout's ``src/`` first on ``sys.path`` and sets the project's offline environment
defaults (``clarifylab.config.OFFLINE_DEFAULTS``) before any model library loads.
"""

import sys
from pathlib import Path

_SRC = str(Path(__file__).resolve().parents[1] / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)

from clarifylab.config import apply_offline_defaults  # noqa: E402

apply_offline_defaults()
