"""One way for every command to stop on bad input: a red `error:` line on stderr, exit code 2.

Every command is wrapped in `user_errors` (infersweep/cli.py does it where it registers them), so
an InfersweepError raised anywhere below a command ends it here, once, as one line."""
from __future__ import annotations

import functools

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

__all__ = ["exit_code", "fail", "user_errors", "validation_message"]

err = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    """One line, never wrapped (it is often a command to copy), whatever the message holds."""
    line = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    err.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def validation_message(exc: ValidationError) -> str:
    """Each problem as `key.path: what is wrong`, on one line."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg'].removeprefix('Value error, ')}"
                     for e in exc.errors())


def exit_code(error: Exception) -> int:
    """The error's own `exit_code` (1: could not finish, 130: interrupted), else 2 (input to fix);
    a server that does not answer (a ConnectionError) is not bad input: 1."""
    code = getattr(error, "exit_code", None)
    if code is None:
        return 1 if isinstance(error, ConnectionError) else 2
    return code


def user_errors(command):
    """`command`, ending with `fail(message, exit_code)` on any InfersweepError it raises."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except Exception as error:
            from infersweep.trials.errors import InfersweepError  # here: importing trials slows every --help

            if not isinstance(error, InfersweepError):
                raise
            fail(str(error), exit_code(error))

    return run
