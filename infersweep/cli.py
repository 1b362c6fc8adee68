"""The `infersweep` command line: the app, its commands (one module per group), `main`."""
from __future__ import annotations

import typer

from infersweep.errors import user_errors
from infersweep.options import SPECS_DIR
from infersweep.profile_cli import profile
from infersweep.registry_cli import promote, summarize, ui
from infersweep.report_cli import report
from infersweep.sensitivity_cli import sensitivity
from infersweep.serve_cli import serve
from infersweep.sweep_cli import launch, quickstart, resume, status, validate
from infersweep.trial_cli import trial

__all__ = ["SPECS_DIR", "app", "main"]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Find the fastest, smallest variant of a summarization model that keeps its ROUGE.")

# every command ends on an InfersweepError the same way, here: one red line and its exit code
for command in (trial, validate, launch, resume, quickstart, status, ui, promote, summarize, report, sensitivity,
                profile, serve):
    app.command()(user_errors(command))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
