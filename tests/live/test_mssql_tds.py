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
  Store baseline window and plan ids, every row validating into tools.world models; and every
  database view tool reading through OdbcSql: head blocker 57 and the sessions it blocks, every blocker
  of a parallel request's tasks (an idle session's application lock among them), blocking_session_id
  -2 named and never killed, the waits in progress, the wait delta of two samples, the regressed query
  as a Query Store plan change, the full log waiting on ACTIVE_TRANSACTION, the AG secondary's queue,
  worker threads, a pending memory grant and system_health's latest deadlock graph.

What it does NOT cover:
- real DMV semantics: the rows are a fixture (tests/live/tds/dmv) shaped like SQL Server's, so a
  wrong assumption about what a DMV reports (units, NULLs, when a row exists) would pass here;
- CROSS/OUTER APPLY over sys.dm_exec_sql_text and sys.dm_os_volume_stats as SQL Server evaluates it
  (the bridge answers a rewritten join), FILEPROPERTY/DB_ID/DB_NAME as SQL Server answers them
  (the harness answers them from the fixture), three-part names (tempdb.sys.*);
- Query Store itself (its views are fixture tables; capture mode, per-database scope, datetimeoffset);
- how DMVs move between two samples (the later wait sample is a second fixture; waiting tasks do not
  age between samples), Azure SQL Database's own views (the bridge answers them as missing, as a box
  SQL Server does), and the XML of a real system_health ring buffer under load;
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
from typing import TYPE_CHECKING, Any

import pyodbc  # a project dependency; it needs unixODBC's libodbc.so.2
import pytest
from pydantic import BaseModel

from tests.live import unavailable
from tests.live.tds.driver import find_odbc_driver_18
from tools.base import Severity
from tools.estate import SqlInstanceConfig
from tools.sources import SourceError, Sources, ToolContext
from tools.sql import views
from tools.sql.analysis import file_space, regressed_queries, wait_profile
from tools.sql.live import OdbcSql
from tools.sql.packs import mssql
from tools.sql.packs.base import PackQuery
from tools.world import (
    DeadlockRow,
    FileRow,
    LogReuseRow,
    QueryStatRow,
    ReplicaRow,
    ServerRow,
    SessionRow,
    WaitRow,
)

if TYPE_CHECKING:
    from tests.live.tds.bridge import DmvBridge


INSTANCE = "sql-tds-01"
DMV_DIR = Path(__file__).with_name("tds") / "dmv"
DMV_LATER = DMV_DIR / "later"  # a second sample, 5 s later
MODELS: dict[str, type[BaseModel]] = {
    "sessions": SessionRow,
    "waits": WaitRow,
    "top_queries": QueryStatRow,
    "files": FileRow,
    "server": ServerRow,
    "log_reuse": LogReuseRow,
    "replicas": ReplicaRow,
    "deadlocks": DeadlockRow,
}
AZURE_SQL_DATABASE_ONLY = {
    mssql.AZURE_DB_WAITS_SQL,
    mssql.AZURE_DB_SERVER_SQL,
}  # the bridge has database_files
QUERY_TIMEOUT_S = 3
REGRESSED = "0x8A3F1C2D4E5B6A70"


# --- the server, the driver, the source -------------------------------------------------------------


@pytest.fixture(scope="session")
def driver() -> Path:
    path, why = find_odbc_driver_18()
    if path is None:
        unavailable(why)
    assert path is not None
    return path


@pytest.fixture(scope="session")
def _server() -> Iterator[DmvBridge]:
    try:
        from tests.live.tds.bridge import start_dmv_bridge
    except ImportError as exc:
        unavailable(f"the TDS test server needs pysqlbridge (pip install pysqlbridge): {exc}")
        raise
    try:
        server = start_dmv_bridge()
    except OSError as exc:  # no loopback port to listen on; a bug in the harness fails instead
        unavailable(f"the pysqlbridge TDS server could not listen: {exc}")
        raise
    yield server
    server.stop()


@pytest.fixture
def bridge(_server: DmvBridge) -> Iterator[DmvBridge]:
    """The session's server, its delays and hidden views undone after each test."""
    yield _server
    _server.catalog.delays.clear()
    _server.catalog.hidden.clear()


def config(bridge: DmvBridge, driver: Path, **overrides: Any) -> SqlInstanceConfig:
    """The instance as an operator configures it: Driver 18 by path, a read-only SQL login, TLS."""
    fields: dict[str, Any] = {
        "name": INSTANCE,
        "engine": "mssql",
        "driver": str(driver),
        "host": bridge.host,
        "port": bridge.port,
        "database": "Sales",
        "username": bridge.user,
        "password": bridge.password,
        "odbc_options": {"Encrypt": "yes", "TrustServerCertificate": "yes"},
        "query_timeout_s": QUERY_TIMEOUT_S,
    }
    return SqlInstanceConfig.model_validate({**fields, **overrides})


@pytest.fixture
def sql(bridge: DmvBridge, driver: Path) -> Iterator[OdbcSql]:
    source = OdbcSql([config(bridge, driver)], packs={"mssql": mssql.PACK}, wait_sample_s=0.2)
    yield source
    source.close()


def connection_string(
    bridge: DmvBridge, driver: Path, *, encrypt: bool = True, password: str | None = None
) -> str:
    return (
        f"Driver={{{driver}}};Server=tcp:{bridge.host},{bridge.port};Database=Sales;"
        f"UID={bridge.user};PWD={password or bridge.password};"
        f"Encrypt={'yes' if encrypt else 'no'};TrustServerCertificate=yes;APP=OpsCopilot live tests"
    )


@pytest.fixture
def conn(bridge: DmvBridge, driver: Path) -> Iterator[Any]:
    """A plain pyodbc connection, for what OdbcSql hides: RPCs, ATTENTION, one statement at a time."""
    c = pyodbc.connect(connection_string(bridge, driver), autocommit=True, timeout=5)
    c.timeout = QUERY_TIMEOUT_S  # applies to cursors made from now on
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


# --- driver and protocol -----------------------------------------------------------------------------


@pytest.mark.live
@pytest.mark.parametrize("encrypt", [True, False], ids=["tls", "tls-for-login-only"])
def test_driver_18_logs_in_over_tds(bridge: DmvBridge, driver: Path, encrypt: bool) -> None:
    started = time.perf_counter()
    c = pyodbc.connect(connection_string(bridge, driver, encrypt=encrypt), autocommit=True, timeout=5)
    try:
        assert c.getinfo(pyodbc.SQL_DRIVER_NAME).startswith("libmsodbcsql-18")
        assert c.cursor().execute(mssql.PACK.probe).fetchone()[0] == 1
    finally:
        c.close()
    assert time.perf_counter() - started < 5


@pytest.mark.live
def test_a_wrong_password_is_a_refused_login(bridge: DmvBridge, driver: Path) -> None:
    wrong = config(bridge, driver, password="not-the-password")
    with (
        OdbcSql([wrong], packs={"mssql": mssql.PACK}) as src,
        pytest.raises(SourceError, match="refused the login") as refused,
    ):
        src.sessions(INSTANCE)
    assert f"Login failed for user '{bridge.user}'" in str(refused.value)
    assert "not-the-password" not in str(refused.value)


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
def test_the_driver_cancels_a_slow_answer_and_the_connection_goes_on(bridge: DmvBridge, conn: Any) -> None:
    bridge.catalog.delay("dm_os_wait_stats", 20)
    started = time.perf_counter()
    with pytest.raises(pyodbc.OperationalError, match="HYT00"):
        fetch(conn, mssql.WAITS_SQL)
    assert QUERY_TIMEOUT_S - 0.2 <= time.perf_counter() - started < QUERY_TIMEOUT_S + 1.5
    bridge.catalog.delay("dm_os_wait_stats", 0)
    assert fetch(conn, mssql.WAITS_SQL)  # the ATTENTION was acknowledged: the same session answers


@pytest.mark.live
def test_odbcsql_times_out_at_3_s_then_opens_its_circuit(bridge: DmvBridge, driver: Path) -> None:
    cfg = config(bridge, driver, breaker_failures=1, breaker_reset_s=1.0)
    with OdbcSql([cfg], packs={"mssql": mssql.PACK}) as src:
        bridge.catalog.delay("dm_os_wait_stats", 20)
        started = time.perf_counter()
        with pytest.raises(SourceError, match="timed out after 3 s"):
            src.waits(INSTANCE)
        assert time.perf_counter() - started < QUERY_TIMEOUT_S + 1.5
        started = time.perf_counter()
        with pytest.raises(SourceError, match="circuit"):
            src.waits(INSTANCE)  # one failure opens it (breaker_failures=1): no wait, no query sent
        assert time.perf_counter() - started < 0.5
        bridge.catalog.delay("dm_os_wait_stats", 0)
        time.sleep(1.1)  # breaker_reset_s: half-open, one trial call
        assert src.waits(INSTANCE)


# --- the pack: every statement parses, every row maps ----------------------------------------------


@pytest.mark.live
@pytest.mark.parametrize(
    "query", mssql.PACK.queries, ids=lambda q: f"{q.dataset}-{mssql.PACK.queries.index(q)}"
)
def test_every_pack_statement_is_answered_and_its_rows_validate(
    bridge: DmvBridge, conn: Any, query: PackQuery
) -> None:
    before = len(bridge.catalog.received)
    if query.sql in AZURE_SQL_DATABASE_ONLY:  # as on a box SQL Server: the next alternative answers
        with pytest.raises(pyodbc.ProgrammingError, match=r"\(208\)|invalid object name"):
            fetch(conn, query.sql)
        return
    rows = query.to_rows(fetch(conn, query.sql))
    assert rows, f"{query.dataset}: no rows"
    for row in rows:
        MODELS[query.dataset].model_validate(row)
    sent = [r for r in bridge.catalog.received[before:] if r.kind == "batch"]
    assert [r.sql for r in sent] == [query.sql]  # the statement as shipped, one SQL batch


@pytest.mark.live
def test_sessions_hold_every_blocker_of_every_task(bridge: DmvBridge, sql: OdbcSql) -> None:
    by_id = {s.session_id: s for s in sql.sessions(INSTANCE)}
    # every user session: 61 and 140 are idle without a transaction, and 140 holds an application lock
    assert set(by_id) == {57, 61, 88, 91, 102, 120, 130, 140, 150}  # not 5 (system)
    head = by_id[57]
    assert (head.status, head.open_transaction_count, head.blocking_session_id) == ("sleeping", 1, None)
    open_since = datetime(2026, 3, 4, 9, 51, 17)  # its transaction's begin time in the fixture
    age_ms = (bridge.fixture_now - open_since).total_seconds() * 1000  # 23 min 43 s, and the test's time
    assert head.elapsed_ms == pytest.approx(age_ms, abs=2_000) and head.transaction_ms == head.elapsed_ms
    assert head.sql_text and head.sql_text.endswith("WHERE OrderDate < @cutoff")  # its last batch, whole
    assert head.tempdb_mb == 510.0 and head.snapshot_ms == 1_423_000  # (1280 + 64000) pages; snapshot 1423 s
    assert head.login_time and head.login_time.endswith("Z")  # sys.dm_exec_sessions.login_time in UTC
    assert {s: by_id[s].blocking_session_id for s in (88, 91, 102)} == {88: 57, 91: 88, 102: 57}
    blocked = by_id[88]
    assert (blocked.wait_type, blocked.wait_time_ms, blocked.elapsed_ms) == ("LCK_M_U", 61234.0, 61240.0)
    assert blocked.blocked_by and blocked.blocked_by[0].lock_mode == "U"
    paid = "UPDATE dbo.Orders SET Status = 'PAID' WHERE OrderId = @id"
    assert blocked.sql_text == paid  # the statement after the parameter declaration "(@id int)"
    assert by_id[102].sql_text == paid + ";"  # the second of three statements
    # a parallel request: one task waits on 140's application lock, another on 57's key lock
    export = by_id[130]
    assert [(b.session_id, b.lock_mode) for b in export.blocked_by or []] == [(140, "X"), (57, "S")]
    assert (export.blocked_by or [])[0].resource == "APPLICATION: 7:0:[InvoiceExport]:(4a5b6c7d)"
    assert by_id[140].sql_text and "sp_getapplock" in by_id[140].sql_text  # it blocks: its text is read
    assert by_id[61].sql_text is None  # idle, holds nothing: no text fetched
    orphan = by_id[150]
    assert orphan.blocking_session_id == 0  # -2 is not a session ...
    assert [(b.session_id, b.kind) for b in orphan.blocked_by or []] == [
        (-2, "orphaned_distributed_transaction")
    ]
    report = by_id[120]  # waiting for a 2 GB memory grant
    assert (report.memory_requested_mb, report.memory_granted_mb, report.memory_grant_wait_ms) == (
        2048.0,
        None,
        12000.0,
    )


@pytest.mark.live
def test_waits_include_the_waits_in_progress(sql: OdbcSql) -> None:
    waits = {w.wait_type: w for w in sql.waits(INSTANCE)}
    assert all(w.wait_time_ms > 0 for w in waits.values())  # RESOURCE_SEMAPHORE has 12 s in progress
    # LCK_M_U: 9,120,033 completed + 61,234 (88) + 38,002 (102) waiting now
    assert waits["LCK_M_U"].wait_time_ms == 9_120_033 + 61_234 + 38_002
    assert waits["RESOURCE_SEMAPHORE"].wait_time_ms == 12_000 and "LCK_M_X" in waits
    profile = wait_profile(list(waits.values()), "mssql")
    assert profile.waits[0].wait_type == "LCK_M_U"
    assert profile.causes[0].cause == "locks" and profile.causes[0].share_pct > 90


@pytest.mark.live
def test_two_samples_give_the_waits_of_now(bridge: DmvBridge, driver: Path) -> None:
    """Fixture semantics not proven: the later sample is a second fixture (dmv/later) in which the
    cumulative counters grew as SQL Server's would in 5 s; the bridge's waiting tasks stay the same in both
    samples, so their in-progress time cancels out instead of growing."""
    with OdbcSql([config(bridge, driver)], packs={"mssql": mssql.PACK}, wait_sample_s=0.2) as src:
        first = views.wait_profile(tool_context(src), INSTANCE).findings[0]
        assert first.data["basis"] == "delta" and first.data["total_wait_ms"] == 0  # the same fixture twice
        bridge.catalog.serve(DMV_LATER / "sys.dm_os_wait_stats.json")
        try:
            (f,) = views.wait_profile(tool_context(src), INSTANCE).findings
        finally:
            bridge.catalog.serve(DMV_DIR / "sys.dm_os_wait_stats.json")
    assert (
        f.data["basis"] == "delta" and f.data["total_wait_ms"] == 10000 + 14950 + 5000 + 5000 + 40 + 12 + 30
    )
    assert [c["cause"] for c in f.data["causes"]][:2] == ["locks", "memory"]
    assert "dominated by locks" in f.title and "difference of two samples" in f.detail
    assert "SLEEP_TASK" in f.data["benign_types"]  # sp_BlitzFirst's ignorable waits left out


@pytest.mark.live
def test_top_queries_per_plan_with_the_query_store_baseline(sql: OdbcSql) -> None:
    rows = {q.query_hash: q for q in sql.top_queries(INSTANCE)}
    assert next(iter(rows)) == REGRESSED  # most total elapsed time first
    lookup = rows[REGRESSED]  # the plan it runs now (4200 runs), not the sum with the other plans
    assert (lookup.execution_count, lookup.plans) == (4200, 2)
    assert lookup.total_elapsed_ms == pytest.approx(1_764_000.0)  # 1,764,000,000 us
    assert lookup.total_cpu_ms == pytest.approx(1_680_000.0)
    assert lookup.avg_elapsed_ms == pytest.approx(420.0)
    # weighted over the week before the last day: not 12 days ago, not aborted runs, not this morning
    assert lookup.baseline_avg_elapsed_ms == pytest.approx((6000 * 34 + 5000 * 36 + 4000 * 35) / 15000)
    assert (lookup.plan_id, lookup.baseline_plan_id) == ("1002", "1001")  # Query Store plan ids
    assert lookup.plan_changed_at is not None  # the current plan's compile time in the plan cache
    assert lookup.baseline_source == "Query Store of Sales"
    assert lookup.sql_text and lookup.sql_text.startswith("SELECT o.OrderId")
    assert lookup.last_execution_time is not None
    assert abs(lookup.last_execution_time - datetime.now(UTC)) < timedelta(minutes=2)
    dw = rows["0x77AA0011BB22CC33"]
    assert dw.baseline_avg_elapsed_ms is None and dw.database_name == "SalesDW"
    assert (
        dw.baseline_source
        == "its database SalesDW's Query Store is not read (only the connected database's, Sales)"
    )
    procedure_statement = "UPDATE dbo.Orders SET Status = 'RECONCILED' WHERE OrderDate < @cutoff;"
    assert rows["0x4C0DE5A1D00DFEED"].sql_text == procedure_statement  # one statement of a procedure
    (regressed,) = regressed_queries(list(rows.values()))
    assert regressed.query_hash == REGRESSED and regressed.ratio == pytest.approx(12.02, abs=0.01)


@pytest.mark.live
def test_a_plan_change_in_query_store_is_a_finding(sql: OdbcSql) -> None:
    """Fixture semantics not proven: Query Store's plan ids are matched to the plan cache by
    query_plan_hash as SQL Server fills both; the fixture sets them consistently, a real server could
    hold a plan in the cache that Query Store did not capture (capture mode AUTO)."""
    findings = views.top_queries(tool_context(sql), INSTANCE).findings
    f = next(f for f in findings if f.kind == "regressed_query")
    assert f.title.startswith(f"Plan change on {INSTANCE}: plan 1002 replaced plan 1001 at ")
    assert f.title.endswith("; 12x slower than baseline") and f.severity is Severity.CRITICAL


@pytest.mark.live
def test_without_query_store_top_queries_fall_back_to_no_baseline(bridge: DmvBridge, sql: OdbcSql) -> None:
    bridge.catalog.hidden.add("query_store_runtime_stats")  # as on SQL Server 2014, or without permission
    before = len(bridge.catalog.received)
    rows = sql.top_queries(INSTANCE)
    assert rows and all(q.baseline_avg_elapsed_ms is None for q in rows)
    assert {q.query_hash for q in rows} >= {REGRESSED, "0x1B2C3D4E5F607182"}
    assert rows[0].baseline_source and rows[0].baseline_source.startswith("Query Store not read")
    tried = [r.sql for r in bridge.catalog.received[before:] if r.kind == "batch" and "top_plans" in r.sql]
    assert tried == [mssql.TOP_QUERIES_WITH_BASELINE_SQL, mssql.TOP_QUERIES_SQL]
    assert any("fell back from a variant" in n for n in sql.notes(INSTANCE))


@pytest.mark.live
def test_a_slow_query_store_falls_back_without_opening_the_circuit(bridge: DmvBridge, driver: Path) -> None:
    cfg = config(bridge, driver, breaker_failures=1)
    with OdbcSql([cfg], packs={"mssql": mssql.PACK}) as src:
        bridge.catalog.delay("query_store_runtime_stats", 20)
        rows = src.top_queries(INSTANCE)  # the variant times out (3 s), the plain plan cache answers
        assert rows and rows[0].baseline_avg_elapsed_ms is None
        assert src.circuit(INSTANCE).state == "closed"  # breaker_failures=1 and still closed
        bridge.catalog.delay("query_store_runtime_stats", 0)
        assert src.top_queries(INSTANCE)[0].baseline_avg_elapsed_ms is not None  # tried again next time


@pytest.mark.live
def test_files_in_mb_with_the_nearly_full_log(sql: OdbcSql) -> None:
    files = {(f.database_name, f.file_name): f for f in sql.files(INSTANCE)}
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


def tool_context(src: OdbcSql) -> ToolContext:
    """A fresh investigation (the run's memo is per ToolContext)."""
    now = datetime.now(UTC)
    return ToolContext(
        sources=Sources(sql=src, label="live"),
        now=now,
        start=now - timedelta(hours=1),
        end=now,
        history_start=now - timedelta(days=7),
    )  # fmt: skip


@pytest.mark.live
def test_the_view_tools_find_head_blocker_57_through_odbc(sql: OdbcSql) -> None:
    ctx = tool_context(sql)
    results = {tool.spec.name: tool(ctx, INSTANCE) for tool in views.DATABASE_TOOLS}
    assert all(not e.error for r in results.values() for e in r.evidence)
    chains = {
        f.data["head_session_id"]: f
        for f in results["blocking_chains"].findings
        if f.kind == "blocking_chain"
    }
    chain = chains[57]
    assert chain.data["blocked_session_ids"] == [88, 102, 130, 91]  # breadth first, longest wait first
    assert "head blocker session 57" in chain.title and "sleeping with 1 open transaction" in chain.detail
    assert "session 130 also waits on 140" in chain.detail  # the same waiter under another head
    assert chain.remediation is not None and chain.remediation.action == "kill_session"
    assert chain.remediation.target == f"{INSTANCE} session 57"
    ref = chain.remediation.target_ref
    assert (
        ref is not None
        and ref.id == "57"
        and ref.attrs["login_name"] == "svc_batch"
        and ref.attrs["login_time"]
    )
    app_lock = chains[140]  # an idle session with no transaction, holding a session-owned application lock
    assert app_lock.data["head"]["state"] == "sleeping" and "(X lock)" in app_lock.detail
    orphan = chains[None]
    assert (
        orphan.title
        == f"Blocking chain on {INSTANCE}: the head blocker is orphaned distributed transaction, "
        "blocking 1 session"
    )
    assert orphan.remediation is None and "KILL 'unit-of-work-id'" in orphan.detail
    (waits,) = results["wait_profile"].findings  # a static fixture sampled twice: nothing waited between
    assert waits.title.startswith(f"No waits worth counting on {INSTANCE} over the last")
    kinds = {f.kind: f for f in results["top_queries"].findings}
    assert REGRESSED in kinds["regressed_query"].detail
    kinds = {f.kind: f for f in results["files_and_space"].findings}
    assert "Sales_log" in kinds["log_nearly_full"].title
    (grants,) = results["memory_grants"].findings
    assert grants.severity is Severity.WARNING and "asked for 2048 MB, waiting 12 s" in grants.detail
    (conn,) = results["connection_saturation"].findings
    assert conn.severity is Severity.WARNING and "Worker threads" in conn.title and "496 of 576" in conn.title
    (store,) = results["version_store_holders"].findings
    assert store.severity is Severity.INFO  # 5 GB and 23 minutes: under 10 GB and an hour
    assert "version store 5120 MB; oldest holders: session 57 (svc_batch@batch-03" in store.detail
    (wrap,) = results["wraparound_and_purge"].findings
    assert wrap.kind == "wraparound_not_applicable"


@pytest.mark.live
def test_log_reuse_waits_on_the_active_transaction_of_session_57(sql: OdbcSql) -> None:
    """Fixture semantics not proven: log_reuse_wait_desc is a fixture value; SQL Server sets it from its
    last attempt to truncate the log (a checkpoint or log backup), so a real server can show
    ACTIVE_TRANSACTION a while after the transaction ended."""
    (f,) = views.log_reuse(tool_context(sql), INSTANCE).findings
    assert f.kind == "log_reuse_blocked" and f.severity is Severity.CRITICAL  # 19,700 of 20,480 MB
    assert f.title.startswith(f"Transaction log of Sales on {INSTANCE} cannot be reused: ACTIVE_TRANSACTION")
    assert "The oldest open transaction is session 57 (svc_batch@batch-03, Nightly Reconciler)" in f.detail


@pytest.mark.live
def test_an_availability_group_queue_is_replica_lag(sql: OdbcSql) -> None:
    """Fixture semantics not proven: the queue sizes and secondary_lag_seconds are fixture values (KB and
    seconds as sys.dm_hadr_database_replica_states reports them on the primary); how quickly they move,
    and their NULLs while a replica reconnects, are not exercised."""
    findings = views.replication_lag(tool_context(sql), INSTANCE).findings
    (f,) = findings
    assert f.kind == "replica_lag" and f.severity is Severity.CRITICAL
    assert f.title == (f"Replica sql-prod-02 of {INSTANCE} is behind or broken: 340 s behind; 2400 MB queued")
    assert "synchronous (commits wait for it)" in f.detail and "ag-sales Sales" in f.detail


@pytest.mark.live
def test_the_latest_deadlock_graph_from_system_health(sql: OdbcSql) -> None:
    """Fixture semantics not proven: the ring buffer XML is a fixture in system_health's shape; SQL Server
    drops old events from the ring buffer (4 MB) and newer builds also write them to the event file."""
    (f,) = views.deadlocks(tool_context(sql), INSTANCE).findings
    latest = f.data["latest"]
    assert latest["occurred_at"].startswith("2026-03-04T10:02:11")
    victim = next(p for p in latest["parties"] if p["victim"])
    assert victim["session_id"] == 91 and victim["holds"] == "X keylock on Sales.dbo.Orders index PK_Orders"
    assert "session 91 (svc_checkout@web-12), chosen as the victim" in f.detail
    assert f.data["total"] == 17


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
    assert by_id[70].blocking_session_id == 0  # an orphaned DTC transaction (-2) is not a session ...
    assert [(b.session_id, b.kind) for b in by_id[70].blocked_by or []] == [
        (-2, "orphaned_distributed_transaction")
    ]
    assert by_id[71].elapsed_ms == 90_000.0
    assert by_id[72].blocking_session_id == 70 and len(rows) == 3  # MARS: the second request's blocker


def test_file_mapper_edge_cases() -> None:
    log = {"database_name": "A", "type_desc": "LOG", "max_size": -1, "log_used_kb": 15360}
    rows = mssql.file_rows(
        [
            {**log, "file_name": "A_log1", "size": 1280, "growth": 0},
            {**log, "file_name": "A_log2", "size": 3840, "growth": 10},
        ]
    )
    one, two = (FileRow.model_validate(r) for r in rows)
    assert one.max_size_mb == 10.0  # autogrowth off: it is as big as it gets
    assert two.max_size_mb is None
    assert (one.used_mb, two.used_mb) == (3.75, 11.25)  # the database's 15 MB of log shared by size


def test_query_hash_as_sql_server_prints_it() -> None:
    assert mssql.query_hash_text(bytes.fromhex("8a3f1c2d4e5b6a70")) == REGRESSED
    assert mssql.query_hash_text("8a3f1c2d4e5b6a70") == REGRESSED  # OdbcSql hands binary over as hex
    assert mssql.query_hash_text("0x8a3f1c2d4e5b6a70") == REGRESSED
