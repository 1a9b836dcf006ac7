"""The mssql query pack through Microsoft's real ODBC Driver 18, against a TDS test server.

What this covers:
- the driver: Microsoft ODBC Driver 18 for SQL Server (libmsodbcsql-18, from the mssql-python-odbc
  wheel), loaded by path under unixODBC through pyodbc and through tools.sql.live.OdbcSql;
- the TDS protocol between them: PRELOGIN, TLS (Encrypt=yes with TrustServerCertificate=yes, and
  Encrypt=no, where only the login is encrypted), LOGIN7 with a SQL login and a refused password,
  SQL batches, RPCs (sp_prepexec / sp_unprepare for a parameterised statement), query cancellation:
  the 3 s query timeout fires against a server that holds its answer, the driver sends ATTENTION,
  and the connection is usable afterwards;
- the pack's SQL: every statement, exactly as shipped, is parsed and answered by the bridge (after
  one documented rewrite: OUTER APPLY of a DMV *function* becomes a join on its arguments, see
  tests/live/tds/bridge.py), with the pack's session setup;
- the row mapping: microseconds -> ms, 8 KB pages -> MB, max_size -1 -> unlimited, server-local
  times -> UTC, binary(8) query_hash -> 0x text, statement text cut by its byte offsets, the Query
  Store baseline window, every row validating into tools.world models; and the database view tools
  (blocking_chains, wait_profile, top_queries, files_and_space) reading through OdbcSql and naming
  head blocker 57, the sessions it blocks, the lock waits, the regressed query and the full log.

What it does NOT cover:
- real DMV semantics: the rows are a fixture (tests/live/tds/dmv) shaped like SQL Server's, so a
  wrong assumption about what a DMV reports (units, NULLs, when a row exists) would pass here;
- CROSS/OUTER APPLY over sys.dm_exec_sql_text and sys.dm_os_volume_stats as SQL Server evaluates it
  (the bridge answers a rewritten join), FILEPROPERTY/DB_ID/DB_NAME as SQL Server answers them
  (the harness answers them from the fixture), three-part names (tempdb.sys.*);
- Query Store itself (its views are fixture tables; capture mode, per-database scope, datetimeoffset);
- permissions: the test login may read everything; VIEW SERVER STATE / VIEW ANY DEFINITION / VIEW
  DATABASE STATE and what SQL Server hides without them are not exercised;
- real SQL Server's behaviour under load: lock timeouts (SET LOCK_TIMEOUT is sent, never triggered),
  plan-cache size, the cost of the window functions over a large cache, blocking of the monitor
  itself, server-side cancellation of a statement that is really running.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.live import unavailable
from tests.live.tds.bridge import DmvBridge, start_dmv_bridge
from tests.live.tds.driver import find_odbc_driver_18
from tools.sql.packs import mssql
from tools.sql.packs.base import PackQuery
from tools.world import FileRow, QueryStatRow, SessionRow, WaitRow

pyodbc = pytest.importorskip("pyodbc", reason="pyodbc (and unixODBC) are needed for the ODBC tests")

INSTANCE = "sql-tds-01"
MODELS: dict[str, type[BaseModel]] = {
    "sessions": SessionRow,
    "waits": WaitRow,
    "top_queries": QueryStatRow,
    "files": FileRow,
}
QUERY_TIMEOUT_S = 3


# --- the server and the driver ------------------------------------------------------------------


@pytest.fixture(scope="session")
def driver() -> Path:
    path, why = find_odbc_driver_18()
    if path is None:
        unavailable(why)
    assert path is not None
    return path


@pytest.fixture(scope="session")
def bridge() -> Iterator[DmvBridge]:
    try:
        server = start_dmv_bridge()
    except Exception as exc:  # the bridge is a test dependency: say plainly why it did not start
        unavailable(f"the pysqlbridge TDS server did not start: {type(exc).__name__}: {exc}")
        raise
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_delays(bridge: DmvBridge) -> Iterator[None]:
    yield
    bridge.catalog.delays.clear()
    bridge.catalog.hidden.clear()


def connection_string(
    bridge: DmvBridge, driver: Path, *, encrypt: bool = True, password: str | None = None
) -> str:
    return (
        f"Driver={{{driver}}};Server=tcp:{bridge.host},{bridge.port};Database=Sales;"
        f"UID={bridge.user};PWD={password or bridge.password};"
        f"Encrypt={'yes' if encrypt else 'no'};TrustServerCertificate=yes;"
        f"APP=OpsCopilot live tests"
    )


@pytest.fixture
def conn(bridge: DmvBridge, driver: Path) -> Iterator[Any]:
    c = pyodbc.connect(connection_string(bridge, driver), autocommit=True, timeout=5)
    c.timeout = QUERY_TIMEOUT_S
    cur = c.cursor()
    for statement in mssql.PACK.session_setup:
        cur.execute(statement)
    yield c
    c.close()


def fetch(conn: Any, sql: str) -> list[dict[str, Any]]:
    """Rows as dicts with lower-case column names: what PackQuery.to_rows receives."""
    cur = conn.cursor()
    cur.execute(sql)
    names = [d[0].lower() for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def pack_rows(conn: Any, query: PackQuery) -> list[dict[str, Any]]:
    return query.to_rows(fetch(conn, query.sql))


def dataset(conn: Any, name: str) -> list[dict[str, Any]]:
    """One dataset as the pack defines it: the first query's rows (top_queries with its baseline)."""
    main, *extra = mssql.PACK.for_dataset(name)  # type: ignore[arg-type]
    rows = pack_rows(conn, main)
    for q in extra:  # only top_queries has one: the Query Store baseline, merged by query_hash
        rows = mssql.with_baselines(rows, pack_rows(conn, q))
    return rows


# --- driver and protocol -------------------------------------------------------------------------


@pytest.mark.live
@pytest.mark.parametrize("encrypt", [True, False], ids=["tls", "login-only-tls"])
def test_driver_18_logs_in_over_tds(bridge: DmvBridge, driver: Path, encrypt: bool) -> None:
    started = time.perf_counter()
    c = pyodbc.connect(connection_string(bridge, driver, encrypt=encrypt), autocommit=True, timeout=5)
    try:
        assert "ODBC Driver 18" in c.getinfo(pyodbc.SQL_DRIVER_NAME) or "msodbcsql" in c.getinfo(
            pyodbc.SQL_DRIVER_NAME
        )
        assert c.cursor().execute(mssql.PACK.probe).fetchone()[0] == 1
    finally:
        c.close()
    assert time.perf_counter() - started < 5


@pytest.mark.live
def test_a_wrong_password_is_refused_as_sql_server_refuses_it(bridge: DmvBridge, driver: Path) -> None:
    with pytest.raises(pyodbc.Error) as refused:
        pyodbc.connect(connection_string(bridge, driver, password="not-the-password"), timeout=5)
    assert "18456" in str(refused.value) and "Login failed" in str(refused.value)


@pytest.mark.live
def test_parameterised_statements_go_through_sp_prepexec(bridge: DmvBridge, conn: Any) -> None:
    cur = conn.cursor()
    sql = (
        "SELECT s.login_name FROM sys.dm_exec_sessions AS s WHERE s.session_id = ? AND s.is_user_process = ?"
    )
    assert cur.execute(sql, 57, 1).fetchall()[0][0] == "svc_batch"
    assert cur.execute(sql, 88, 1).fetchall()[0][0] == "svc_checkout"
    cur.close()
    mine = [r for r in bridge.catalog.received if "s.session_id = @P1" in r.sql or r.kind == "sp_unprepare"]
    kinds = [r.kind for r in mine]
    assert kinds.count("sp_prep_exec") == 2
    assert "sp_unprepare" in kinds  # the driver read the handle the bridge returned as an OUTPUT parameter


@pytest.mark.live
def test_the_query_timeout_cancels_a_slow_answer_and_the_connection_survives(
    bridge: DmvBridge, conn: Any
) -> None:
    bridge.catalog.delay("dm_os_wait_stats", 20)
    started = time.perf_counter()
    with pytest.raises(pyodbc.OperationalError) as timed_out:
        fetch(conn, mssql.WAITS_SQL)
    took = time.perf_counter() - started
    assert "HYT00" in str(timed_out.value)
    assert QUERY_TIMEOUT_S - 0.2 <= took < QUERY_TIMEOUT_S + 1.5
    bridge.catalog.delay("dm_os_wait_stats", 0)
    assert len(fetch(conn, mssql.WAITS_SQL)) > 0  # ATTENTION was acknowledged; the session goes on


# --- the pack: every statement parses, every row maps ----------------------------------------------


@pytest.mark.live
@pytest.mark.parametrize(
    "query", mssql.PACK.queries, ids=lambda q: f"{q.dataset}{'-baseline' if q.optional else ''}"
)
def test_every_pack_statement_is_answered_and_its_rows_validate(
    bridge: DmvBridge, conn: Any, query: PackQuery
) -> None:
    before = len(bridge.catalog.received)
    rows = pack_rows(conn, query)
    assert rows, f"{query.dataset}: no rows"
    for row in rows:
        MODELS[query.dataset].model_validate(row)
    sent = [r for r in bridge.catalog.received[before:] if r.kind == "batch"]
    assert [r.sql for r in sent] == [query.sql]  # the statement as shipped, one SQL batch


@pytest.mark.live
def test_sessions_hold_the_blocking_chain(conn: Any) -> None:
    by_id = {s.session_id: s for s in map(SessionRow.model_validate, dataset(conn, "sessions"))}
    assert set(by_id) == {57, 88, 91, 102, 120}  # not 61 (idle, no transaction), not 5 (system)
    head = by_id[57]
    assert (head.status, head.open_transaction_count, head.blocking_session_id) == ("sleeping", 1, None)
    assert head.elapsed_ms is not None and abs(head.elapsed_ms - 1_423_000) < 5_000  # its transaction's age
    assert head.sql_text and head.sql_text.endswith("WHERE OrderDate < @cutoff")  # the last batch, whole
    assert {s: by_id[s].blocking_session_id for s in (88, 91, 102)} == {88: 57, 91: 88, 102: 57}
    blocked = by_id[88]
    assert (blocked.wait_type, blocked.wait_time_ms, blocked.elapsed_ms) == ("LCK_M_U", 61234.0, 61240.0)
    paid = "UPDATE dbo.Orders SET Status = 'PAID' WHERE OrderId = @id"
    assert blocked.sql_text == paid  # the statement after the parameter declaration "(@id int)"
    assert by_id[102].sql_text == paid + ";"  # the second of three statements
    assert by_id[120].database_name == "SalesDW" and by_id[120].blocking_session_id == 0


@pytest.mark.live
def test_waits_are_dominated_by_lck_m_u(conn: Any) -> None:
    from tools.sql.analysis import wait_profile

    waits = [WaitRow.model_validate(w) for w in dataset(conn, "waits")]
    assert all(w.wait_time_ms > 0 for w in waits)  # LCK_M_X and RESOURCE_SEMAPHORE (0 ms) left out
    profile = wait_profile(waits, "mssql")
    assert profile.waits[0].wait_type == "LCK_M_U"
    assert profile.causes[0].cause == "locks" and profile.causes[0].share_pct > 90


@pytest.mark.live
def test_top_queries_in_ms_with_the_query_store_baseline(conn: Any) -> None:
    from tools.sql.analysis import regressed_queries

    rows = {q.query_hash: q for q in map(QueryStatRow.model_validate, dataset(conn, "top_queries"))}
    assert next(iter(rows)) == "0x8A3F1C2D4E5B6A70"  # most total elapsed time first
    lookup = rows["0x8A3F1C2D4E5B6A70"]  # two cached plans, one query_hash
    assert lookup.execution_count == 5000
    assert lookup.total_elapsed_ms == pytest.approx(2_100_000.0)  # 2,100,000,000 us
    assert lookup.total_cpu_ms == pytest.approx(1_970_000.0)
    assert lookup.avg_elapsed_ms == pytest.approx(420.0)
    # weighted over the week before the last day: not 12 days ago, not aborted runs, not this morning
    assert lookup.baseline_avg_elapsed_ms == pytest.approx((6000 * 34 + 5000 * 36 + 4000 * 35) / 15000)
    assert lookup.sql_text and lookup.sql_text.startswith("SELECT o.OrderId")
    assert lookup.last_execution_time is not None
    assert abs(lookup.last_execution_time - datetime.now(UTC)) < timedelta(minutes=2)
    assert rows["0x77AA0011BB22CC33"].baseline_avg_elapsed_ms is None  # SalesDW: no Query Store there
    assert rows["0x4C0DE5A1D00DFEED"].sql_text == (
        "UPDATE dbo.Orders SET Status = 'RECONCILED' WHERE OrderDate < @cutoff;"
    )  # one statement of a procedure
    (regressed,) = regressed_queries(list(rows.values()))
    assert regressed.query_hash == "0x8A3F1C2D4E5B6A70" and regressed.ratio == pytest.approx(12.02, abs=0.01)


@pytest.mark.live
def test_files_in_mb_with_the_nearly_full_log(conn: Any) -> None:
    from tools.sql.analysis import file_space

    files = {(f.database_name, f.file_name): f for f in map(FileRow.model_validate, dataset(conn, "files"))}
    assert ("Sales", "Sales_fs") not in files  # FILESTREAM is neither data nor log
    log = files["Sales", "Sales_log"]
    assert (log.type, log.size_mb, log.used_mb, log.max_size_mb) == ("log", 20480.0, 19700.0, 20480.0)
    assert log.volume_free_mb == 150 * 1024
    data = files["Sales", "Sales"]
    assert (data.size_mb, data.used_mb, data.max_size_mb) == (100_000.0, 71_000.0, None)  # FILEPROPERTY
    assert files["tempdb", "tempdev"].size_mb == 8192.0  # tempdb's current size, not its startup size
    assert files["tempdb", "tempdev"].used_mb == 3100.0
    assert files["SalesDW", "SalesDW"].used_mb is None  # not the connected database: unknown
    assert files["SalesDW", "SalesDW_log"].used_mb == 310.0  # the per-database log counter
    assert files["SalesDW", "SalesDW_log"].max_size_mb == 2 * 1024 * 1024  # 268435456 pages: 2 TB
    flagged = {(s.database_name, s.file_name): s.flags for s in file_space(list(files.values())) if s.flags}
    assert flagged == {("Sales", "Sales_log"): ["log_nearly_full"]}


# --- the mappers on rows the fixture does not have --------------------------------------------------


def test_session_mapper_edge_cases() -> None:
    now = datetime(2026, 3, 4, 10, 15)
    rows = mssql.session_rows(
        [
            {"session_id": 70, "blocking_session_id": -2, "total_elapsed_time": 10, "sampled_at": now},
            {
                "session_id": 71,
                "blocking_session_id": None,
                "total_elapsed_time": None,
                "transaction_begin_time": None,
                "last_request_start_time": now - timedelta(seconds=90),
                "sampled_at": now,
            },
            {"session_id": 72, "blocking_session_id": 0, "total_elapsed_time": 5, "sampled_at": now},
            {"session_id": 72, "blocking_session_id": 70, "total_elapsed_time": 5, "sampled_at": now},  # MARS
        ]
    )
    by_id = {r["session_id"]: SessionRow.model_validate(r) for r in rows}
    assert by_id[70].blocking_session_id == 0  # an orphaned DTC transaction (-2) is not a session
    assert by_id[71].elapsed_ms == 90_000.0
    assert by_id[72].blocking_session_id == 70 and len(rows) == 3


def test_file_mapper_edge_cases() -> None:
    rows = mssql.file_rows(
        [
            {
                "database_name": "A",
                "file_name": "A_log1",
                "type_desc": "LOG",
                "size": 1280,
                "max_size": -1,
                "growth": 0,
                "log_used_kb": 15360,
            },
            {
                "database_name": "A",
                "file_name": "A_log2",
                "type_desc": "LOG",
                "size": 3840,
                "max_size": -1,
                "growth": 10,
                "log_used_kb": 15360,
            },
        ]
    )
    one, two = (FileRow.model_validate(r) for r in rows)
    assert one.max_size_mb == 10.0  # autogrowth off: it is as big as it gets
    assert two.max_size_mb is None
    assert (one.used_mb, two.used_mb) == (3.75, 11.25)  # the database's 15 MB of log shared by size


def test_query_hash_as_sql_server_prints_it() -> None:
    assert mssql.query_hash_text(bytes.fromhex("8a3f1c2d4e5b6a70")) == "0x8A3F1C2D4E5B6A70"
    assert mssql.query_hash_text("0x01") == "0x01"
