"""A warm process that forks a fresh process per trial: the heavy imports are paid once.

A trial must run in a fresh process (its memory, thread pools and caches its own). Starting a
Python process and importing torch, transformers and onnxruntime costs seconds per trial; a
*zygote* pays it once. It is started by the sweep's worker (`python -m infersweep.sweeps.zygote`,
a new interpreter: single-threaded, nothing but imports), imports `PRELOAD`, then for each request
forks a child that runs one call and exits. The child starts from the state a fresh interpreter
has after the same imports: no model loaded, no torch op run, no thread pool started (the zygote
never runs one), so its measurements are those of a fresh process; its pid, memory and thread
pools are its own. A worker killed by Ray takes its zygote (stdin closes) and the trial running in
it (killed by the zygote, and PR_SET_PDEATHSIG on Linux) along.

Protocol: one JSON line per request on the zygote's stdin ({"call": "module:function", "args":
[...], "out": path}); the child writes the call's JSON result (or {"error": traceback}) to `out`;
the zygote answers {"pid", "exit"} on the reply pipe once the child ended.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

__all__ = ["PRELOAD", "Zygote", "ZygoteError", "shared"]

#: imported once by the zygote; a module that is not installed is skipped
PRELOAD = ("numpy", "torch", "transformers", "onnxruntime", "rouge_score.rouge_scorer", "psutil",
           "infersweep.trials.runner", "infersweep.trials.models.extractive", "infersweep.trials.runtimes",
           "infersweep.trials.stats", "infersweep.sweeps.sequential", "infersweep.sweeps.trainable")


class ZygoteError(RuntimeError):
    """The forked process died without a result (killed, crashed) or raised."""


class Zygote:
    """The parent's handle: `call("module:function", *args)` runs it in a fresh forked child."""

    def __init__(self, preload: tuple[str, ...] = PRELOAD):
        self.preload = preload
        self._proc: subprocess.Popen | None = None
        self._replies = None

    def _start(self) -> None:
        read, write = os.pipe()
        command = [sys.executable, "-m", "infersweep.sweeps.zygote", str(write), ",".join(self.preload)]
        # the parent's import path (a Ray worker's includes its working_dir)
        path = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        env = {**os.environ, "PYTHONPATH": path}
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, pass_fds=(write,), text=True, env=env)
        os.close(write)
        self._replies = os.fdopen(read, "r")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def call(self, function: str, *args):
        """function(*args) (JSON in, JSON out) in a new process forked from the zygote."""
        if not self.alive():
            self._start()
        with tempfile.TemporaryDirectory(prefix="infersweep-zygote-") as tmp:
            out = Path(tmp) / "result.json"
            self._proc.stdin.write(json.dumps({"call": function, "args": list(args), "out": str(out)}) + "\n")
            self._proc.stdin.flush()
            line = self._replies.readline()
            if not line:
                raise ZygoteError(f"the zygote process ended (exit {self._proc.wait()}) while running {function}")
            reply = json.loads(line)
            if not out.exists():
                raise ZygoteError(f"the process running {function} (pid {reply['pid']}) died with exit status "
                                  f"{reply['exit']} and no result")
            result = json.loads(out.read_text())
        if isinstance(result, dict) and set(result) == {"error"}:
            raise ZygoteError(f"{function} raised in its process:\n{result['error']}")
        return result["value"]

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdin.close()
            self._proc.wait()
            self._replies.close()
            self._proc = None


_shared: Zygote | None = None


def shared() -> Zygote:
    """This process's zygote (started on first use; a Ray worker reused across trials keeps it)."""
    global _shared
    if _shared is None:
        _shared = Zygote()
    return _shared


def _die_with_parent() -> None:
    """SIGKILL when the parent process ends (Linux); elsewhere a no-op."""
    import signal

    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return


def _preload(modules: list[str]) -> None:
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _child(request: dict, reply_fd: int) -> None:
    """In the forked child: run the call, write its result, never return."""
    code = 0
    try:
        _die_with_parent()
        os.close(reply_fd)
        sys.stdin.close()
        module, name = request["call"].split(":")
        value = getattr(importlib.import_module(module), name)(*request["args"])
        result = {"value": value}
    except BaseException:  # everything goes back to the parent as text
        result, code = {"error": traceback.format_exc()}, 1
    try:
        tmp = Path(request["out"] + ".tmp")
        tmp.write_text(json.dumps(result))
        os.replace(tmp, request["out"])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(reply_fd: int, modules: list[str]) -> None:
    """Serve requests from stdin until it closes (the parent ended), a child at a time; a
    parent that ends while a child runs takes the child along."""
    _preload(modules)
    replies = os.fdopen(reply_fd, "w")
    pending = b""
    while True:
        while b"\n" not in pending:
            chunk = os.read(0, 1 << 16)
            if not chunk:
                return
            pending += chunk
        line, pending = pending.split(b"\n", 1)
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(request, reply_fd)
        status, pending = _wait(pid, pending)
        if status is None:
            return
        replies.write(json.dumps({"pid": pid, "exit": os.waitstatus_to_exitcode(status)}) + "\n")
        replies.flush()


def _wait(pid: int, pending: bytes) -> tuple[int | None, bytes]:
    """The child's wait status, watching stdin meanwhile: its end (the parent died) kills the
    child and returns None."""
    import select
    import signal

    if not hasattr(os, "pidfd_open"):
        return os.waitpid(pid, 0)[1], pending
    child = os.pidfd_open(pid)
    try:
        while True:
            ready, _, _ = select.select([0, child], [], [])
            if child in ready:
                return os.waitpid(pid, 0)[1], pending
            chunk = os.read(0, 1 << 16)
            if not chunk:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None, pending
            pending += chunk
    finally:
        os.close(child)


if __name__ == "__main__":
    main(int(sys.argv[1]), [m for m in sys.argv[2].split(",") if m])
