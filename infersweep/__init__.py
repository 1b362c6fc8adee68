"""infersweep: sweep precision x pruning x runtime x batch size of a summarization model.

The project's folders `trials/`, `sweeps/`, `tracking/`, `cluster/` and `dashboards/` are this
package's subpackages (`infersweep.trials`, ...): the wheel installs them there (pyproject's
package-dir mapping), so the top-level names stay free in a user's environment.
"""
from pathlib import Path as _Path

__version__ = "0.1.0"

_SOURCE_ROOT = _Path(__file__).resolve().parent.parent
if (_SOURCE_ROOT / "trials" / "runner.py").is_file():
    # a source tree (a checkout, a worktree, Ray's working_dir on a worker, a promoted model's
    # code): the folders beside this one are the subpackages the wheel installs inside it
    __path__.append(str(_SOURCE_ROOT))
