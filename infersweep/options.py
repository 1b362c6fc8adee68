"""Option defaults and help texts the commands share."""
from __future__ import annotations

from pathlib import Path

__all__ = ["DEFAULT_STORAGE", "SPECS_DIR", "STORAGE_HELP", "TRACKING_HELP"]

SPECS_DIR = Path(__file__).resolve().parents[1] / "sweeps" / "specs"
DEFAULT_STORAGE = ".infersweep/sweeps"
TRACKING_HELP = "MLflow tracking URI (default: the local store .infersweep/mlflow.db)"
STORAGE_HELP = "where sweeps keep their state (default .infersweep/sweeps)"
