"""One way for every command to stop on bad input: a red `error:` line on stderr, exit code 2."""
from __future__ import annotations

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

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
