"""Finding Microsoft's ODBC Driver 18 for SQL Server in the `mssql-python-odbc` wheel, loadable by path."""

from __future__ import annotations

import ctypes
import importlib.util
import platform
from pathlib import Path

# the wheel's folder per distribution family, tried in this order after the one that matches
_FAMILIES = ("debian_ubuntu", "rhel", "suse")


def _family() -> str:
    try:
        text = Path("/etc/os-release").read_text(encoding="utf-8").lower()
    except OSError:
        return _FAMILIES[0]
    if "rhel" in text or "fedora" in text or "centos" in text:
        return "rhel"
    if "suse" in text:
        return "suse"
    return "debian_ubuntu"


def find_odbc_driver_18() -> tuple[Path | None, str]:
    """The path of libmsodbcsql-18.*.so that loads here, or None and why not.

    Loading it (ctypes) proves its own dependencies resolve: unixODBC's libodbcinst (shipped beside
    it), Kerberos (libkrb5, libgssapi_krb5) and the C++ runtime. OpenSSL is opened later, at the
    first TLS handshake."""
    spec = importlib.util.find_spec("mssql_python_odbc")
    if spec is None or spec.origin is None:
        return None, "the Python package mssql-python-odbc (Microsoft ODBC Driver 18) is not installed"
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())
    libs = Path(spec.origin).parent / "libs" / "linux"
    family = _family()
    order = [family, *(f for f in _FAMILIES if f != family)]
    candidates = [p for f in order for p in sorted((libs / f / arch / "lib").glob("libmsodbcsql-18.*.so*"))]
    if not candidates:
        return None, f"no libmsodbcsql-18.*.so for linux/{arch} under {libs}"
    errors = []
    for path in candidates:
        try:
            ctypes.CDLL(str(path))
        except OSError as exc:
            errors.append(f"{path.parent.parent.parent.name}: {exc}")
            continue
        return path, ""
    return None, "ODBC Driver 18 does not load: " + "; ".join(errors)
