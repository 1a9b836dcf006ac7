"""ODBC connection strings for one SQL instance: keywords, the driver's time limits, a printable target."""

from __future__ import annotations

import logging
import math
import re

import pyodbc

from tools.estate import SqlInstanceConfig

log = logging.getLogger("tools.sql.live")

WATCHDOG_GRACE_S = 1.0  # the client cancels this long after the server-side limit should have fired


def odbc_value(value: str) -> str:
    """An ODBC connection-string value, braced when it holds special characters."""
    if re.search(r"[;{}=\s]", value) or not value:
        return "{" + value.replace("}", "}}") + "}"
    return value


def _keys(conn_str: str) -> set[str]:
    return {m.group(1).strip().upper() for m in re.finditer(r"(?:^|;)\s*([^=;]+?)\s*=", conn_str)}


def app_name(name: str) -> str:
    """The copilot's name as the server shows it: safe characters only, at most 60."""
    return re.sub(r"[^A-Za-z0-9 _.:-]", "", name)[:60] or "opscopilot"


def login_timeout(cfg: SqlInstanceConfig, login_timeout_s: float | None) -> int:
    """Whole seconds to wait for a login: the given timeout, else the query timeout (at least 3 s)."""
    return math.ceil(login_timeout_s or max(3.0, cfg.query_timeout_s))


def connection_string(cfg: SqlInstanceConfig, application_name: str, login_timeout_s: float | None) -> str:
    """The instance's connection string, PWD last (never log it)."""
    if cfg.connection_string:
        parts = [cfg.connection_string.strip().rstrip(";")]
    else:
        assert cfg.driver and cfg.host  # SqlInstanceConfig guarantees one or the other
        server = cfg.host
        parts = [f"DRIVER={{{cfg.driver}}}"]
        if cfg.engine == "mssql":
            parts.append(f"SERVER={odbc_value(server + (f',{cfg.port}' if cfg.port else ''))}")
        else:
            parts.append(f"SERVER={odbc_value(server)}")
            if cfg.port:
                parts.append(f"PORT={cfg.port}")
        if cfg.database:
            parts.append(f"DATABASE={odbc_value(cfg.database)}")
        if cfg.username:
            parts.append(f"UID={odbc_value(cfg.username)}")
    present = _keys(";".join(parts)) | {k.upper() for k in cfg.odbc_options}
    for key, value in engine_keywords(cfg, application_name, login_timeout_s).items():
        if key.upper() not in present:
            parts.append(f"{key}={odbc_value(value)}")
    parts += [f"{k}={odbc_value(v)}" for k, v in cfg.odbc_options.items()]
    if cfg.password is not None:
        parts.append("PWD=" + "{" + cfg.password.get_secret_value().replace("}", "}}") + "}")
    return ";".join(parts)


def engine_keywords(
    cfg: SqlInstanceConfig, application_name: str, login_timeout_s: float | None
) -> dict[str, str]:
    """Driver keywords that bound time or name the copilot, where the driver has them."""
    driver = f"{cfg.driver or ''} {cfg.connection_string or ''}".lower()
    login = str(login_timeout(cfg, login_timeout_s))
    read = str(math.ceil(cfg.query_timeout_s + 2 * WATCHDOG_GRACE_S))  # after the watchdog
    if cfg.engine == "mssql":
        # SQL Server has no read-only session: on a readable secondary, declare read-only intent
        return {"APP": application_name} | ({"ApplicationIntent": "ReadOnly"} if cfg.read_only_intent else {})
    if cfg.engine == "mysql" and ("maria" in driver or "maodbc" in driver):
        # MariaDB Connector/ODBC ignores the login timeout during the handshake: bound it here
        return {"CONN_TIMEOUT": login, "READ_TIMEOUT": read, "WRITE_TIMEOUT": read}
    if cfg.engine == "mysql":  # MySQL Connector/ODBC
        return {"READTIMEOUT": read, "WRITETIMEOUT": read}
    return {}


def target(cfg: SqlInstanceConfig) -> str:
    """host:port for messages, never with credentials."""
    host, port = cfg.host, cfg.port
    if cfg.connection_string:
        kv = dict(
            (m.group(1).strip().upper(), m.group(2).strip().strip("{}"))
            for m in re.finditer(r"(?:^|;)\s*([^=;]+?)\s*=\s*(\{[^}]*\}|[^;]*)", cfg.connection_string)
        )
        host = host or kv.get("SERVER") or kv.get("HOST") or kv.get("ADDRESS") or kv.get("DSN")
        port = port or (int(kv["PORT"]) if kv.get("PORT", "").isdigit() else None)
    return f"{host or '?'}" + (f":{port}" if port else "")


def close_connection(conn: pyodbc.Connection) -> None:
    """Close a connection; a driver that fails to is only logged."""
    try:
        conn.close()
    except pyodbc.Error as exc:
        log.debug("closing an ODBC connection failed: %s", exc)
