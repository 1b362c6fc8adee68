"""Option defaults and help texts the commands share."""
from __future__ import annotations

from pathlib import Path

import infersweep.sweeps

__all__ = ["DEFAULT_STORAGE", "SPECS_DIR", "STORAGE_HELP", "TRACKING_HELP"]

#: the bundled sweep files, wherever the sweeps package is (a checkout or an installed wheel)
SPECS_DIR = Path(infersweep.sweeps.__file__).resolve().parent / "specs"
DEFAULT_STORAGE = ".infersweep/sweeps"
TRACKING_HELP = "MLflow tracking URI (default: the local store .infersweep/mlflow.db)"
STORAGE_HELP = "where sweeps keep their state (default .infersweep/sweeps)"
