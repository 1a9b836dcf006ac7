"""Secret references in the settings file: {env: VAR} or {file: PATH[, key: NAME]}, resolved here
(in server/, the only layer that reads the environment); literal secrets and inline passwords are
refused, and secrets files are read only when that is safe."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

# Fields of tools.estate models that hold secrets. In the settings file they are references,
# never values: {env: VARIABLE} or {file: PATH} or {file: PATH, key: NAME} (a YAML/JSON mapping).
SECRET_FIELDS = frozenset(
    {
        "password",
        "token",
        "api_key",
        "api_token",
        "bearer_token",
        "community",
        "auth_key",
        "priv_key",
        "hmac_secret",
        "routing_key",
    }
)


def resolve_secret_refs(node: Any, where: str) -> Any:
    """Replace secret references under a settings section (estate, service, actions) by their values
    (read here, in server/)."""
    if isinstance(node, list):
        return [resolve_secret_refs(item, f"{where}[{i}]") for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        path = f"{where}.{key}"
        if key in SECRET_FIELDS and value is not None:
            out[key] = secret_value(value, path)
        elif key in URL_FIELDS and isinstance(value, dict):
            out[key] = secret_value(value, path)  # a whole URL (with its password) from env or file
        else:
            refuse_inline_password(key, value, path)
            out[key] = resolve_secret_refs(value, path)
    return out


# Fields holding a URL or connection string: a literal password there is refused; the whole value
# may instead be a reference ({env: VAR}) when the password must be part of it.
URL_FIELDS = frozenset({"url", "store_url", "redis_url", "checkpoint_url", "chroma_url", "connection_string"})
_PASSWORD_KEYS = ("pwd", "password", "passwd")


def refuse_inline_password(key: str, value: Any, path: str) -> None:
    """A password written in a connection string, an ODBC option or a URL's userinfo is a literal
    secret in the settings file: refuse it as a literal `password:` is refused."""
    from tools.scrub import has_inline_password

    fix = "write it as password: {env: VARIABLE} (or the whole value as {env: VARIABLE})"
    if key in URL_FIELDS and isinstance(value, str) and has_inline_password(value):
        raise ValueError(f"{path}: holds a password; a secret is never written in the settings file; {fix}")
    if key == "odbc_options" and isinstance(value, dict):
        for option in value:
            if str(option).lower() in _PASSWORD_KEYS:
                raise ValueError(f"{path}.{option}: a password is never an ODBC option here; {fix}")


_SYSTEM_TREES = ("/proc", "/sys", "/dev")


def read_secret_file(file: Path, path: str) -> str:
    """A secrets file, read only when it is safe: an absolute or relative path without `..`, no
    symbolic link anywhere on it, a regular file under none of /proc, /sys, /dev, and not readable
    or writable by others (chmod 600 or 640)."""
    where = f"{path}: secrets file {file}"
    if ".." in file.parts:
        raise ValueError(f"{where}: `..` is not allowed in a secrets file path; give the real path")
    absolute = Path(os.path.abspath(file))
    if any(str(absolute) == t or str(absolute).startswith(t + "/") for t in _SYSTEM_TREES):
        raise ValueError(f"{where}: files under /proc, /sys or /dev are never read as secrets")
    if os.path.realpath(absolute) != str(absolute):
        raise ValueError(f"{where}: the path goes through a symbolic link; give the real path")
    try:
        fd = os.open(absolute, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ValueError(f"{where}: cannot read it ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{where}: not a regular file")
        if st.st_mode & 0o006:
            raise ValueError(
                f"{where}: readable or writable by others (mode {st.st_mode & 0o777:o}); chmod 600 it"
            )
        data = fh.read(1024 * 1024)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{where}: not UTF-8 text") from None


def secret_value(ref: Any, path: str) -> str:
    if (
        not isinstance(ref, dict)
        or not (set(ref) <= {"env", "file", "key"})
        or not (ref.get("env") or ref.get("file"))
    ):
        raise ValueError(
            f"{path}: a secret is never written in the settings file; "
            f"write {{env: VARIABLE}} or {{file: /path/to/secret}} (optionally with key: NAME)"
        )
    if ref.get("env"):
        name = str(ref["env"])
        if name not in os.environ:
            raise ValueError(
                f"{path}: environment variable {name} is not set (export it, or use a secrets file)"
            )
        return os.environ[name]
    file = Path(str(ref["file"]))
    text = read_secret_file(file, path)
    if not ref.get("key"):
        return text.strip()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict) or str(ref["key"]) not in data:
        raise ValueError(
            f"{path}: secrets file {file} has no key {ref['key']!r} (it must be a YAML/JSON mapping)"
        )
    return str(data[str(ref["key"])])
