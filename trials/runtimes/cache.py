"""Artifact cache: ONNX exports, quantized graphs and engines, reused across trials and sweeps.

An entry is a directory `<root>/<namespace>/<key>/` whose key hashes everything that decides its
bytes: the model's weights and structure (`model_fingerprint`), the knobs of the step that built
it, the versions of the libraries that built it (and, for TensorRT engines, the GPU).

Writes are atomic: an entry is built in a private temporary directory next to its final place and
renamed into place with `os.replace`, so a reader sees either no entry or a complete one. A lock
file (`<key>.lock`, `fcntl.flock`) makes concurrent trials that need the same entry wait for the
one building it instead of building it twice; where locking is not available (some network file
systems) the rename still keeps readers safe, at worst an entry is built twice.

The location is `$INFERSWEEP_CACHE` (a shared path on a cluster), default `.infersweep/cache`.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

CACHE_ENV = "INFERSWEEP_CACHE"
DEFAULT_CACHE = Path(".infersweep") / "cache"
MANIFEST = "manifest.json"
#: bump when the layout or the way entries are built changes incompatibly
CACHE_FORMAT = 1


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def library_versions(*names: str) -> dict[str, str]:
    """Installed versions of `names` (distribution names); absent ones are left out."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


#: config keys that say where a model came from, not what it computes
CONFIG_PROVENANCE = ("_name_or_path", "transformers_version")


def model_fingerprint(module) -> str:
    """A hash of a torch module's structure and weights (pruned or quantized weights differ).

    Hashes parameter and buffer names, dtypes, shapes and bytes, the module tree's class names
    and, where the module carries Hugging Face configs, their contents (not where they were loaded
    from: the same weights saved elsewhere, as a promoted or served variant, are the same model).
    """
    import torch

    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr([(name, type(m).__qualname__) for name, m in module.named_modules()]).encode())
    for name, m in module.named_modules():
        config = getattr(m, "config", None)
        if config is not None and hasattr(config, "to_json_string"):
            digest.update(name.encode())
            settings = {k: v for k, v in json.loads(config.to_json_string(use_diff=False)).items()
                        if k not in CONFIG_PROVENANCE}
            digest.update(json.dumps(settings, sort_keys=True).encode())
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        if not isinstance(tensor, torch.Tensor):  # packed params of quantized modules
            digest.update(repr(tensor).encode())
            continue
        digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
        t = tensor.detach().cpu().contiguous()
        if t.is_quantized:
            t = t.int_repr()
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    canon = json.dumps({"format": CACHE_FORMAT, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(canon.encode()).hexdigest()[:24]


@dataclass
class CacheEntry:
    path: Path  # the entry's directory
    key: str
    hit: bool
    seconds: float  # time to find (hit) or build (miss) it, waiting for a lock included

    def file(self, name: str) -> Path:
        return self.path / name


@dataclass
class CacheLog:
    """The cache steps of one prepare(), summarized into an engine's `cache_info`."""

    entries: list[tuple[str, CacheEntry]] = field(default_factory=list)

    def add(self, step: str, entry: CacheEntry) -> CacheEntry:
        self.entries.append((step, entry))
        return entry

    def info(self) -> dict[str, Any]:
        if not self.entries:
            return {}
        step, last = self.entries[-1]
        return {
            "cache": "hit" if last.hit else "miss",
            "cache_key": last.key,
            "cache_dir": str(last.path),
            "cache_s": round(sum(e.seconds for _, e in self.entries), 4),
            "cache_steps": ",".join(f"{s}:{'hit' if e.hit else 'miss'}" for s, e in self.entries),
        }


class ArtifactCache:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root is not None else cache_root()

    def entry_dir(self, namespace: str, key: str) -> Path:
        return self.root / namespace / key

    def get_or_build(self, namespace: str, parts: dict[str, Any],
                     build: Callable[[Path], dict | None]) -> CacheEntry:
        """The entry for `parts`, built by `build(tmp_dir)` if it is not cached yet.

        `build` writes its files into the directory it is given and may return a dict of facts
        to keep in the entry's manifest. An exception in `build` leaves no entry behind.
        """
        key = cache_key({"namespace": namespace, **parts})
        start = time.perf_counter()
        final = self.entry_dir(namespace, key)
        if (final / MANIFEST).is_file():
            return CacheEntry(final, key, True, time.perf_counter() - start)
        final.parent.mkdir(parents=True, exist_ok=True)
        with _locked(final.parent / f"{key}.lock"):
            if (final / MANIFEST).is_file():  # built by someone else while we waited
                return CacheEntry(final, key, True, time.perf_counter() - start)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=final.parent))
            try:
                facts = build(tmp) or {}
                manifest = {"namespace": namespace, "key": key, "parts": parts, "facts": facts,
                            "build_s": round(time.perf_counter() - start, 3),
                            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
                _write_atomic(tmp / MANIFEST, json.dumps(manifest, indent=2, default=str))
                _fsync_dir(tmp)
                try:
                    os.replace(tmp, final)
                except OSError:  # a stale, incomplete directory (no manifest) is in the way
                    if (final / MANIFEST).is_file():
                        return CacheEntry(final, key, True, time.perf_counter() - start)
                    shutil.rmtree(final, ignore_errors=True)
                    os.replace(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return CacheEntry(final, key, False, time.perf_counter() - start)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _fsync_dir(path: Path) -> None:
    for f in path.rglob("*"):
        if f.is_file():
            with contextlib.suppress(OSError), open(f, "rb") as fh:
                os.fsync(fh.fileno())


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: the atomic rename alone keeps readers safe
        yield
        return
    with open(lock_path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        except OSError:  # file system without flock support
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
