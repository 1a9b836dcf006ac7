"""The database specialist's analyzers and view tools against hand-computed expectations."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from tools.base import Finding, Severity, ToolKind, ToolResult
from tools.replay import ReplaySql
from tools.sources import SourceError, Sources, ToolContext
from tools.sql import analysis as an
from tools.sql import views
from tools.sql import workload as wl
from tools.world import Engine, FileRow, QueryStatRow, SessionRow, SqlInstanceWorld, WaitRow, WaitSamples

EXAMPLES = Path(__file__).resolve().parents[2].joinpath("shared/scenarios/examples")
OPENSRE = Path(__file__).resolve().parents[2].joinpath("shared/external/opensre-rds-postgres")


def world(path: Path, instance: str) -> SqlInstanceWorld:
    doc = yaml.safe_load(path.read_text())
    return SqlInstanceWorld.model_validate(doc["world"]["sql"][instance])


def example(name: str, instance: str) -> SqlInstanceWorld:
    return world(EXAMPLES / f"{name}.yaml", instance)


def opensre(prefix: str, instance: str) -> SqlInstanceWorld:
    return world(next(OPENSRE.glob(f"opensre-rds-{prefix}-*.yaml")), instance)


def s(sid: int, blocker: int | None = 0, wait_ms: float = 0.0, **kw: Any) -> SessionRow:
    return SessionRow(session_id=sid, blocking_session_id=blocker, wait_time_ms=wait_ms, **kw)


class WorldSql(ReplaySql):
    """A SqlSource over in-memory worlds: the replay backend itself."""

    def __init__(self, worlds: dict[str, SqlInstanceWorld]) -> None:
        super().__init__(worlds)
        self.worlds = worlds


class DownSql(WorldSql):
    """Every read fails, like an unreachable server."""

    def __init__(self) -> None:
        super().__init__({})

    def instances(self) -> dict[str, Engine]:
        raise SourceError("connection refused")

    def wait_samples(self, instance: str) -> WaitSamples:
        raise TimeoutError("login timeout expired")

    def sessions(self, instance: str) -> list[SessionRow]:
        raise SourceError("connection refused")

    def waits(self, instance: str) -> list[WaitRow]:
        raise TimeoutError("login timeout expired")

    def top_queries(self, instance: str) -> list[QueryStatRow]:
        raise SourceError("circuit open")

    def files(self, instance: str) -> list[FileRow]:
        raise RuntimeError("boom")


def ctx_for(sql: Any) -> ToolContext:
    now = datetime(2026, 3, 4, 10, 15, tzinfo=UTC)
    return ToolContext(sources=Sources(sql=sql), now=now, start=now, end=now, history_start=now)


def run_all(instance: str, w: SqlInstanceWorld) -> tuple[list[ToolResult], list[Finding]]:
    """Every tool the playbook would run on the world (those whose datasets it recorded)."""
    src = WorldSql({instance: w})
    ctx = ctx_for(src)
    have = src.datasets(instance)
    tools = [t for t in views.DATABASE_TOOLS if set(views.NEEDS[t.spec.name]) <= have]
    results = [tool(ctx, instance) for tool in tools]
    findings = [f for r in results for f in r.findings]
    return results, findings + views.correlate(findings)


# --- blocking chains ------------------------------------------------------------------------------


def test_blocking_chain_of_the_mssql_example() -> None:
    chains = an.blocking_chains(example("mssql-blocking-01", "sql-prod-01").sessions)
    assert len(chains) == 1
    c = chains[0]
    assert c.head_session_id == 57 and c.head is not None and not c.deadlock
    # breadth first, longest wait first within a level: 88 (61234 ms), 102 (38002 ms), then 91 under 88
    assert c.blocked_session_ids == [88, 102, 91]
    assert [(b.blocked_by, b.level) for b in c.blocked] == [(57, 1), (57, 1), (88, 2)]
    assert c.depth == 2  # 57 <- 88 <- 91
    assert c.max_wait_ms == 61234
    assert c.total_wait_ms == 61234 + 45010 + 38002 == 144246
    assert c.head_idle_in_transaction and c.head.state == "sleeping with 1 open transaction"
    assert (c.head.login_name, c.head.host_name, c.head.program_name) == (
        "svc_batch",
        "batch-03",
        "Nightly Reconciler",
    )
    assert c.head.sql_text == "UPDATE dbo.Orders SET Status = ? WHERE OrderDate < @cutoff"  # literal redacted


def test_cycle_is_a_deadlock_and_terminates() -> None:
    # 1 waits on 2, 2 on 3, 3 on 1 (a cycle); 4 waits on 2 (hangs off the cycle); 5 is free
    rows = [s(1, 2, 100), s(2, 3, 200), s(3, 1, 300), s(4, 2, 50), s(5)]
    chains = an.blocking_chains(rows)
    assert len(chains) == 1
    c = chains[0]
    assert c.deadlock and c.cycle_session_ids == [1, 2, 3] and c.head_session_id == 1
    # from head 1: 3 (blocked by 1), then 2 (blocked by 3), then 4 (blocked by 2); 1 is not revisited
    assert c.blocked_session_ids == [3, 2, 4]
    assert c.depth == 3 and c.max_wait_ms == 300 and c.total_wait_ms == 300 + 200 + 50


def test_two_party_deadlock_next_to_an_ordinary_chain_and_self_block() -> None:
    rows = [s(10, 11, 5), s(11, 10, 7), s(20, 0), s(21, 20, 40_000), s(30, 30, 9)]  # 30 "blocks" itself
    chains = an.blocking_chains(rows)
    # one blocked session each, so the longer wait (40 s vs 7 ms) comes first; 30 is not blocked at all
    assert [(c.head_session_id, c.deadlock) for c in chains] == [(20, False), (10, True)]
    assert chains[0].blocked_session_ids == [21] and chains[1].blocked_session_ids == [11]
    assert chains[1].cycle_session_ids == [10, 11] and chains[1].max_wait_ms == 7


def test_blocker_absent_from_rows_is_the_head() -> None:
    rows = [s(88, 999, 1000), s(91, 88, 500), s(7, None)]
    (c,) = an.blocking_chains(rows)
    assert c.head_session_id == 999 and c.head is None and not c.head_idle_in_transaction
    assert c.blocked_session_ids == [88, 91] and c.depth == 2


def test_empty_and_unblocked_inputs() -> None:
    assert an.blocking_chains([]) == []
    assert an.blocking_chains([s(1), s(2, None)]) == []
    assert an.long_open_transactions([]) == []
    assert an.regressed_queries([]) == [] and an.top_by_elapsed([]) == [] and an.file_space([]) == []
    p = an.wait_profile([], "mssql")
    assert p.total_wait_ms == 0 and p.dominant_cause is None and p.waits == []


def test_postgres_idle_in_transaction_head() -> None:
    rows = [
        s(
            4242,
            None,
            status="idle in transaction",
            login_name="app",
            host_name="10.0.0.9",
            sql_text="UPDATE t SET a = 5",
        ),
        s(4300, 4242, 35_000, status="active", wait_type="Lock:transactionid"),
    ]
    (c,) = an.blocking_chains(rows)
    assert c.head is not None and c.head.state == "idle in transaction" and c.head_idle_in_transaction
    assert c.head.sql_text == "UPDATE t SET a = ?"


def test_mysql_sleeping_head_with_open_transaction() -> None:
    rows = [
        s(7, 0, command="Sleep", open_transaction_count=1, elapsed_ms=900_000),
        s(8, 7, 12_000, command="Query", wait_type="wait/lock/table/sql/handler"),
    ]
    (c,) = an.blocking_chains(rows)
    assert (
        c.head is not None and c.head.state == "sleep with 1 open transaction" and c.head_idle_in_transaction
    )
    assert [t.session_id for t in an.long_open_transactions(rows)] == [7]


def test_long_open_transactions_threshold() -> None:
    tempdb = example("knowledge-tempdb-01", "sql-prod-03").sessions
    (t,) = an.long_open_transactions(tempdb)
    assert t.session_id == 311 and t.elapsed_ms == 22_500_000  # 22,500,000 ms / 60,000 = 375 min
    blocking = example("mssql-blocking-01", "sql-prod-01").sessions
    assert [x.session_id for x in an.long_open_transactions(blocking)] == [57]  # 1,423,000 ms >= 600,000
    assert an.long_open_transactions(blocking, min_elapsed_ms=1_500_000) == []
    assert an.long_open_transactions(example("healthy-01", "sql-prod-01").sessions) == []  # 64: no open tx


# --- waits ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wait_type", "cause"),
    [
        ("LCK_M_U", "locks"), ("PAGEIOLATCH_SH", "io"), ("PAGELATCH_UP", "page_latch"),
        ("CXCONSUMER", "parallelism"), ("WRITELOG", "log"), ("SOS_SCHEDULER_YIELD", "cpu"),
        ("RESOURCE_SEMAPHORE", "memory"), ("LATCH_EX", "latch"), ("ASYNC_NETWORK_IO", "client"),
        ("SLEEP_TASK", None), ("BROKER_RECEIVE_WAITFOR", None), ("XE_TIMER_EVENT", None),
        ("HADR_FILESTREAM_IOMGR_IOCOMPLETION", None), ("SP_SERVER_DIAGNOSTICS_SLEEP", None),
        ("IO:WALWrite", "log"), ("WAL:Lock", "log"), ("LWLock:WALWrite", "log"), ("IO:DataFileRead", "io"),
        ("LWLock:BufferMapping", "latch"), ("Lock:relation", "locks"), ("Client:ClientRead", "client"),
        ("IPC:MessageQueueReceive", "parallelism"), ("IPC:HashBuildHashOuter", "parallelism"),
        ("IPC:CheckpointDone", "checkpoint"), ("IPC:BufferIO", "io"), ("IPC:ProcArrayGroupUpdate", "latch"),
        ("IPC:ReplicationSlotDrop", "other"), ("IPC:RecoveryConflictSnapshot", "other"),
        ("HADR_FABRIC_CALLBACK", None), ("PREEMPTIVE_HADR_LEASE_MECHANISM", None),
        ("PREEMPTIVE_SP_SERVER_DIAGNOSTICS", None), ("PREEMPTIVE_OS_FLUSHFILEBUFFERS", None),
        ("PWAIT_RESOURCE_SEMAPHORE_FT_PARALLEL_QUERY_SYNC", "other"), ("THREADPOOL", "worker"),
        ("CPU", "cpu"), ("CPU:user", "cpu"),
        ("Activity:WalWriterMain", None), ("Timeout:VacuumDelay", None),
        ("wait/io/file/innodb/innodb_data_file", "io"), ("wait/io/file/innodb/innodb_log_file", "log"),
        ("wait/lock/table/sql/handler", None), ("wait/io/table/sql/handler", None),
        ("wait/lock/innodb/row_lock", "locks"), ("wait/synch/mutex/innodb/buf_pool_mutex", "latch"),
        ("wait/io/socket/sql/client_connection", "client"), ("idle", None),
        ("HADR_SYNC_COMMIT", "sync_replica"), ("HADR_SYNCHRONIZING_THROTTLE", "sync_replica"),
        ("IPC:SyncRep", "sync_replica"), ("SyncRep", "sync_replica"),
        ("LOGMGR_RESERVE_APPEND", "log"), ("LOG_RATE_GOVERNOR", "log"),
    ],
)  # fmt: skip
def test_classify_wait(wait_type: str, cause: str | None) -> None:
    assert an.classify_wait(wait_type) == cause


def test_wait_labels() -> None:
    assert an.wait_label("LWLock:BufferMapping", "latch") == "buffer mapping latch"
    assert an.wait_label("IO:WALWrite", "log") == "WAL / log writes"
    assert an.wait_label("Client:ClientRead", "client") == "waiting for the client"
    assert an.wait_label("PAGELATCH_EX", "page_latch").startswith("page latch contention (tempdb allocation")
    assert an.wait_label("LCK_M_U", "locks") == "locks"


def test_wait_profile_of_the_mssql_example_drops_benign_waits() -> None:
    waits = [*example("mssql-blocking-01", "sql-prod-01").waits]
    waits += [
        WaitRow(wait_type=w, wait_time_ms=5e9) for w in ("SLEEP_TASK", "LAZYWRITER_SLEEP", "XE_TIMER_EVENT")
    ]
    p = an.wait_profile(waits, "mssql")
    assert p.total_wait_ms == 9120033 + 3301122 + 402112 + 120331 == 12943598
    assert p.benign_wait_ms == 15e9 and p.benign_types == ["SLEEP_TASK", "LAZYWRITER_SLEEP", "XE_TIMER_EVENT"]
    assert [w.wait_type for w in p.waits] == ["LCK_M_U", "LCK_M_S", "CXPACKET", "PAGEIOLATCH_SH"]
    # 9120033 / 12943598 = 70.4598%, 3301122 / 12943598 = 25.5039%
    assert [w.share_pct for w in p.waits] == [70.46, 25.5, 3.11, 0.93]
    # locks = 9120033 + 3301122 = 12421155 -> 95.9637%
    assert p.dominant_cause == "locks" and p.dominant_share_pct == 95.96
    assert [c.cause for c in p.causes] == ["locks", "parallelism", "io"]


def test_wait_profile_postgres_checkpoint_storm() -> None:
    p = an.wait_profile(opensre("014", "billing-prod").waits, "postgresql")
    assert p.total_wait_ms == 11_640_000 and p.benign_wait_ms == 0
    # latch = BufferMapping 4,680,000 + CheckpointerComm 360,000 = 5,040,000 -> 43.30%
    # log = WALWrite 2,880,000 -> 24.74%; io = 1,680,000 + 840,000 -> 21.65%; locks 8.25%; cpu 2.06%
    assert [(c.cause, c.share_pct) for c in p.causes] == [
        ("latch", 43.3), ("log", 24.74), ("io", 21.65), ("locks", 8.25), ("cpu", 2.06),
    ]  # fmt: skip
    assert p.waits[0].wait_type == "LWLock:BufferMapping" and p.waits[0].share_pct == 40.21


def test_wait_profile_mysql() -> None:
    waits = [
        WaitRow(wait_type="wait/io/file/innodb/innodb_data_file", wait_time_ms=600_000),
        WaitRow(wait_type="wait/lock/innodb/row_lock", wait_time_ms=300_000),
        WaitRow(wait_type="wait/io/table/sql/handler", wait_time_ms=5_000_000),  # contains the rest
        WaitRow(wait_type="wait/synch/mutex/innodb/buf_pool_mutex", wait_time_ms=50_000),
        WaitRow(wait_type="wait/io/file/innodb/innodb_log_file", wait_time_ms=50_000),
        WaitRow(wait_type="idle", wait_time_ms=9_000_000),
    ]
    p = an.wait_profile(waits, "mysql")
    assert p.total_wait_ms == 1_000_000 and p.benign_wait_ms == 14_000_000
    assert [(c.cause, c.share_pct) for c in p.causes] == [
        ("io", 60.0),
        ("locks", 30.0),
        ("latch", 5.0),
        ("log", 5.0),
    ]


# --- queries --------------------------------------------------------------------------------------


def test_regression_of_the_pg_example() -> None:
    (r,) = an.regressed_queries(example("pg-regression-01", "pg-orders-01").top_queries)
    assert r.query_hash == "-4811224390212331"
    assert r.ratio == pytest.approx(1900.5 / 14.2) and round(r.ratio) == 134  # 133.84
    assert r.extra_elapsed_ms == pytest.approx((1900.5 - 14.2) * 4210)  # 7,941,323 ms
    assert "lower(customer_email) = $1" in (r.sql_text or "")


def test_regression_thresholds() -> None:
    q = [
        QueryStatRow(query_hash="a", avg_elapsed_ms=16.41, baseline_avg_elapsed_ms=8.56, execution_count=10),
        QueryStatRow(query_hash="b", avg_elapsed_ms=3.0, baseline_avg_elapsed_ms=0.5, execution_count=10),
        QueryStatRow(
            query_hash="c", total_elapsed_ms=10_000, execution_count=100, baseline_avg_elapsed_ms=10
        ),
        QueryStatRow(query_hash="d", avg_elapsed_ms=500, baseline_avg_elapsed_ms=None),
    ]
    # a: 16.41 / 8.56 = 1.917x; b: 6x but only 3 ms; c: avg derived 10000/100 = 100 ms = 10x; d: no baseline
    assert [r.query_hash for r in an.regressed_queries(q)] == ["c"]
    assert an.regressed_queries(q)[0].avg_elapsed_ms == 100 and an.regressed_queries(q)[0].ratio == 10
    assert [r.query_hash for r in an.regressed_queries(q, min_ratio=1.5)] == ["c", "a"]  # by extra time
    assert [r.query_hash for r in an.regressed_queries(q, min_avg_ms=1.0)] == ["c", "b"]


def test_top_by_elapsed_checkpoint_storm() -> None:
    top = an.top_by_elapsed(opensre("014", "billing-prod").top_queries)
    # total = 9,360,000 + 1,440,000 + 480,000 + 600,000 = 11,880,000
    assert [h.share_pct for h in top] == [78.79, 12.12, 5.05]
    assert [h.lead for h in top] == [
        "autovacuum: VACUUM FREEZE public.billing_events",
        "INSERT INTO invoices",
        "postgres: checkpointer process: checkpoint",
    ]
    assert len(an.top_by_elapsed(opensre("014", "billing-prod").top_queries, n=1)) == 1


def test_top_by_elapsed_without_averages() -> None:
    top = an.top_by_elapsed(opensre("008", "billing-prod").top_queries)  # execution_count 0, avg null
    assert [(h.total_elapsed_ms, h.share_pct) for h in top] == [(8_010_000, 74.17), (2_790_000, 25.83)]


# --- files ----------------------------------------------------------------------------------------


def test_file_space_tempdb_example() -> None:
    tempdev, templog = an.file_space(example("knowledge-tempdb-01", "sql-prod-03").files)
    # tempdev: 61600 / 64000 = 96.25%; room = min(64000 - 64000, 1200) = 0
    assert (tempdev.pct_used, tempdev.growth_room_mb, tempdev.pct_of_capacity) == (96.25, 0, 96.25)
    assert (
        tempdev.at_max_size and tempdev.limited_by == "max_size" and tempdev.flags == ["tempdb_nearly_full"]
    )
    # templog: 900 / 8000 = 11.25%; room = min(16000 - 8000, 1200) = 1200; 900 / 9200 = 9.78%
    assert (templog.pct_used, templog.growth_room_mb, templog.pct_of_capacity) == (11.25, 1200, 9.78)
    assert templog.flags == [] and not templog.at_max_size


def test_file_space_cases() -> None:
    def f(name: str, kind: Literal["data", "log"], size: float, used: float | None, **kw: float) -> FileRow:
        return FileRow(database_name="Sales", file_name=name, type=kind, size_mb=size, used_mb=used, **kw)

    files = [
        f("L1", "log", 10_000, 9_500, max_size_mb=10_000),
        f("L2", "log", 10_000, 9_500, volume_free_mb=500),
        f("L3", "log", 10_000, 9_500, volume_free_mb=50_000),
        f("D1", "data", 9_500, 9_300, max_size_mb=10_000, volume_free_mb=100_000),
        f("D2", "data", 9_500, 9_300, volume_free_mb=500),
        f("D3", "data", 9_500, None, volume_free_mb=1),
    ]
    got = {f.file_name: (f.flags, f.pct_of_capacity) for f in an.file_space(files)}
    assert got["L1"] == (["log_nearly_full"], 95.0)  # at max: 9500 / 10000
    assert got["L2"] == (["log_nearly_full"], 90.48)  # 9500 / (10000 + 500)
    assert got["L3"] == ([], 15.83)  # 9500 / 60000
    assert got["D1"] == (["near_max_size"], 93.0)  # room min(500, 100000) = 500 -> 9300 / 10000
    assert got["D2"] == (["volume_low"], 93.0)  # room = volume 500 -> 9300 / 10000
    assert got["D3"] == ([], None)


def test_file_space_disk_forecast_example_is_not_flagged() -> None:
    data, log, sales = an.file_space(example("disk-forecast-01", "db-host-02").files)
    assert data.pct_used == 98.05 and data.pct_of_capacity == 82.21  # 402000 / (410000 + 79000)
    assert log.growth_room_mb == 30_000  # min(50000 - 20000, 290000)
    assert data.flags == log.flags == sales.flags == []


# --- view tools -----------------------------------------------------------------------------------


def test_tool_specs_in_playbook_order() -> None:
    assert [t.spec.name for t in views.DATABASE_TOOLS] == [
        "blocking_chains",
        "wait_profile",
        "top_queries",
        "files_and_space",
        "long_running_statements",
        "connection_saturation",
        "deadlocks",
        "log_reuse",
        "replication_lag",
        "memory_grants",
        "version_store_holders",
        "wraparound_and_purge",
    ]
    assert set(views.NEEDS) == {t.spec.name for t in views.DATABASE_TOOLS}
    for t in views.DATABASE_TOOLS:
        assert t.spec.detects, t.spec.name  # the report may call healthy only what a tool can see
        assert (
            t.spec.specialist == "database" and t.spec.kind is ToolKind.VIEW and len(t.spec.description) > 80
        )


def test_blocking_tool_on_the_mssql_example() -> None:
    ctx = ctx_for(WorldSql({"sql-prod-01": example("mssql-blocking-01", "sql-prod-01")}))
    result = views.blocking_chains(ctx, "sql-prod-01")
    (ev,) = result.evidence
    assert ev.id == "blocking_chains@sql-prod-01" and ev.specialist == "database" and ev.error is None
    assert ev.row_count == 5 and len(ev.rows) == 5 and not ev.truncated
    assert ev.rows[0]["sql_text"] == "UPDATE dbo.Orders SET Status = ? WHERE OrderDate < @cutoff"
    assert ev.summary == "5 sessions on sql-prod-01: 3 blocked, head blocker(s) 57"
    assert [f.kind for f in result.findings] == ["blocking_chain", "long_open_transaction"]
    chain, long_tx = result.findings
    assert chain.title == "Blocking chain on sql-prod-01: head blocker session 57 blocks 3 sessions"
    assert chain.severity is Severity.CRITICAL and chain.evidence == [ev.id]
    for phrase in (
        "svc_batch@batch-03", "Nightly Reconciler", "sleeping with 1 open transaction", "blocked by 57",
        "session 91 (svc_checkout@web-12, Checkout API) blocked by 88, waiting LCK_M_S for 45 s",
        "LCK_M_U for 61 s", "Chain depth 2", "total 144 s", "Status = ? WHERE",
    ):  # fmt: skip
        assert phrase in chain.detail
    assert chain.remediation is not None and chain.remediation.action == "kill_session"
    assert chain.remediation.target == "sql-prod-01 session 57" and chain.remediation.evidence == [ev.id]
    # 1,423,000 ms / 60,000 = 23.7 -> 24 min
    assert (
        long_tx.title
        == "Session 57 (svc_batch@batch-03, Nightly Reconciler) has had a transaction open for 24 min"
    )
    assert long_tx.severity is Severity.WARNING and long_tx.remediation is None


def test_short_blocking_by_a_running_head_is_a_warning_without_remediation() -> None:
    w = SqlInstanceWorld(
        engine="mssql", sessions=[s(5, status="running"), s(6, 5, 4_000, wait_type="LCK_M_S")]
    )
    (f,) = views.blocking_chains(ctx_for(WorldSql({"x": w})), "x").findings
    assert f.severity is Severity.WARNING and f.remediation is None and "LCK_M_S for 4 s" in f.detail
    assert f.title == "Blocking chain on x: head blocker session 5 blocks 1 session"


def test_postgres_idle_in_transaction_head_gets_a_kill_proposal() -> None:
    w = SqlInstanceWorld(
        engine="postgresql",
        sessions=[
            s(4242, None, status="idle in transaction"),
            s(4300, 4242, 35_000, wait_type="Lock:transactionid"),
        ],
    )
    (f,) = views.blocking_chains(ctx_for(WorldSql({"pg-x": w})), "pg-x").findings
    assert f.severity is Severity.CRITICAL and "is idle in transaction" in f.detail
    assert f.remediation is not None and f.remediation.target == "pg-x session 4242"


def test_deadlock_finding_proposes_nothing() -> None:
    w = SqlInstanceWorld(engine="mssql", sessions=[s(10, 11, 5), s(11, 10, 7)])
    (f,) = views.blocking_chains(ctx_for(WorldSql({"x": w})), "x").findings
    assert f.title == "Deadlock in progress on x: sessions 10, 11 block each other"
    assert f.severity is Severity.CRITICAL and f.remediation is None


def test_healthy_example_says_no_blocking_and_proposes_nothing() -> None:
    results, findings = run_all("sql-prod-01", example("healthy-01", "sql-prod-01"))
    assert all(ev.error is None for r in results for ev in r.evidence)
    assert [f.kind for f in findings] == [
        "no_blocking",
        "wait_profile",
        "no_regressed_queries",
        "top_statements",
        "file_space_ok",
        "no_long_running",
        "version_store",
    ]
    assert findings[0].title == "No blocking on sql-prod-01"
    assert (
        findings[1].title == "Little waiting on sql-prod-01: 21 s in total, mostly parallelism"
    )  # 21,315 ms
    assert all(f.severity is Severity.INFO and f.remediation is None for f in findings)


def test_tempdb_example_correlates_the_version_store_with_session_311() -> None:
    _, findings = run_all("sql-prod-03", example("knowledge-tempdb-01", "sql-prod-03"))
    kinds = [f.kind for f in findings]
    assert kinds == [
        "long_open_transaction",
        "no_blocking",
        "tempdb_nearly_full",
        "no_long_running",
        "version_store_held",
        "tempdb_version_store_held",
    ]
    tempdb, holders, held = findings[2], findings[4], findings[5]
    assert holders.title.startswith("Old row versions on sql-prod-03 are held by session 311")
    assert (
        tempdb.title == "tempdb nearly full on sql-prod-03: tempdev 96% used (61600 of 64000 MB, at max size)"
    )
    assert tempdb.severity is Severity.CRITICAL
    assert (
        held.title == "tempdb version store is likely held by session 311's open transaction (open 375 min)"
    )
    assert held.severity is Severity.CRITICAL and "svc_etl@etl-01" in held.detail
    assert held.evidence == ["files_and_space@sql-prod-03", "blocking_chains@sql-prod-03"]
    assert held.remediation is not None and held.remediation.action == "kill_session"
    assert held.remediation.target == "sql-prod-03 session 311"
    assert views.correlate(findings) == []  # already correlated: nothing new


def test_correlate_needs_both_facts_on_the_same_instance() -> None:
    _, tempdb = run_all("a", example("knowledge-tempdb-01", "sql-prod-03"))
    only_tempdb = [f for f in tempdb if f.kind == "tempdb_nearly_full"]
    _, other = run_all("b", example("mssql-blocking-01", "sql-prod-01"))
    long_b = [f for f in other if f.kind == "long_open_transaction"]
    assert views.correlate(only_tempdb + long_b) == [] and views.correlate([]) == []


def test_regression_tool_on_the_pg_example() -> None:
    ctx = ctx_for(WorldSql({"pg-orders-01": example("pg-regression-01", "pg-orders-01")}))
    result = views.top_queries(ctx, "pg-orders-01")
    assert [f.kind for f in result.findings] == ["regressed_query", "top_statements"]
    reg, top = result.findings
    assert reg.title == "Regressed query on pg-orders-01: 134x slower than baseline"
    assert reg.detail.startswith(
        "query_hash -4811224390212331: avg 1.9 s now vs 14.2 ms baseline over 4210 executions"
    )
    assert "lower(customer_email) = $1" in reg.detail and reg.severity is Severity.CRITICAL
    assert reg.evidence == ["top_queries@pg-orders-01"]
    assert top.title.startswith(
        "Top statements by total elapsed time on pg-orders-01: SELECT * FROM orders (99%)"
    )


@pytest.mark.parametrize(
    ("prefix", "instance", "severity", "phrase"),
    [
        (
            "001",
            "payments-prod",
            Severity.WARNING,
            "IO:WALWrite (WAL / log writes) 66%",
        ),  # 4,732,938 / 7,182,000
        (
            "002",
            "payments-prod",
            Severity.WARNING,
            "Client:ClientRead (waiting for the client) 81%",
        ),
        ("014", "billing-prod", Severity.INFO, "LWLock:BufferMapping (buffer mapping latch) 40%"),
        ("000", "payments-prod", Severity.INFO, "CPU (on CPU) 35%"),  # 350,784 / 1,008,000
    ],
)
def test_wait_tool_on_postgres_worlds(prefix: str, instance: str, severity: Severity, phrase: str) -> None:
    (f,) = views.wait_profile(ctx_for(WorldSql({instance: opensre(prefix, instance)})), instance).findings
    assert f.severity is severity and phrase in f.detail and instance in f.title


def test_wait_tool_on_the_mssql_example() -> None:
    result = views.wait_profile(
        ctx_for(WorldSql({"sql-prod-01": example("mssql-blocking-01", "sql-prod-01")})), "sql-prod-01"
    )
    (f,) = result.findings
    assert f.title == "Waits on sql-prod-01 are dominated by locks (96%, mostly LCK_M_U)"
    assert f.severity is Severity.WARNING and "LCK_M_U (locks) 70%" in f.detail
    assert "Total counted wait time 3.6 h" in f.detail  # 12,943,598 ms / 3,600,000


def test_failing_source_becomes_evidence() -> None:
    ctx = ctx_for(DownSql())
    for tool in views.DATABASE_TOOLS:
        result = tool(ctx, "sql-prod-01")
        (ev,) = result.evidence
        assert result.findings == [] and ev.error and ev.id == f"{tool.spec.name}@sql-prod-01"
        assert ev.summary.startswith("Could not read ") and "sql-prod-01" in ev.summary
    assert views.wait_profile(ctx, "sql-prod-01").evidence[0].error == "TimeoutError: login timeout expired"
    (ev,) = views.files_and_space(ctx_for(None), "x").evidence
    assert ev.error == "SourceError: no SQL source is configured"


def test_analyzer_bug_becomes_evidence(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(rows: object) -> list[an.BlockingChain]:
        raise ValueError("bad row")

    monkeypatch.setattr(an, "blocking_chains", broken)
    ctx = ctx_for(WorldSql({"x": example("healthy-01", "sql-prod-01")}))
    (ev,) = views.blocking_chains(ctx, "x").evidence
    assert ev.error == "analysis failed: ValueError: bad row"
    assert ev.summary == "blocking_chains read 2 rows from x but could not analyze them: bad row"


def test_evidence_rows_are_capped() -> None:
    w = SqlInstanceWorld(engine="mssql", sessions=[s(i) for i in range(1, 251)])
    result = views.blocking_chains(ctx_for(WorldSql({"x": w})), "x")
    (ev,) = result.evidence
    assert (ev.row_count, len(ev.rows), ev.truncated) == (250, views.MAX_EVIDENCE_ROWS, True)
    assert [f.title for f in result.findings] == ["No blocking on x"]


def test_wait_name_form_wins_over_the_engine() -> None:
    assert an.classify_wait("IO:WALWrite", "mssql") == "log"
    assert an.classify_wait("wait/lock/innodb/row_lock", "postgresql") == "locks"
    assert an.classify_wait("WRITELOG", "mssql") == "log" and an.classify_wait("WRITELOG") == "log"


def test_long_chains_list_ten_blocked_sessions_then_count_the_rest() -> None:
    # head 1 blocks 12 sessions directly: 10 are named, "and 2 more" covers the rest
    w = SqlInstanceWorld(engine="mssql", sessions=[s(1), *(s(i, 1, 1000 * i) for i in range(2, 14))])
    (f,) = views.blocking_chains(ctx_for(WorldSql({"x": w})), "x").findings
    assert f.title == "Blocking chain on x: head blocker session 1 blocks 12 sessions"
    assert "; and 2 more." in f.detail and f.detail.count("blocked by 1") == 10
    assert "session 13 blocked by 1, waiting on a lock for 13 s" in f.detail  # longest wait named first
    assert f.remediation is None  # head is not idle in a transaction and the longest wait is 13 s < 30 s


# --- synchronous replica commits ------------------------------------------------------------------


def test_sync_commit_waits_blame_the_synchronous_replica() -> None:
    waits = [
        WaitRow(wait_type="HADR_SYNC_COMMIT", wait_time_ms=61_220_331),
        WaitRow(wait_type="WRITELOG", wait_time_ms=4_012_330),
        WaitRow(wait_type="PAGEIOLATCH_SH", wait_time_ms=1_201_220),
        WaitRow(wait_type="LCK_M_X", wait_time_ms=90_110),
        WaitRow(wait_type="HADR_WORK_QUEUE", wait_time_ms=188_020_110),  # benign AG background wait
    ]
    p = an.wait_profile(waits, "mssql")
    # total 61,220,331 + 4,012,330 + 1,201,220 + 90,110 = 66,523,991; 61,220,331 / 66,523,991 = 92.027%
    assert p.total_wait_ms == 66_523_991 and p.benign_types == ["HADR_WORK_QUEUE"]
    assert p.dominant_cause == "sync_replica" and p.dominant_share_pct == 92.03
    assert [c.cause for c in p.causes] == ["sync_replica", "log", "io", "locks"]  # WRITELOG alone is log
    (f,) = views.wait_profile(
        ctx_for(WorldSql({"ag": SqlInstanceWorld(engine="mssql", waits=waits)})), "ag"
    ).findings
    assert f.title == "Waits on ag are dominated by synchronous replica commit (92%, mostly HADR_SYNC_COMMIT)"
    assert f.severity is Severity.WARNING and "synchronous replica or the link to it is slow" in f.detail


def test_postgres_syncrep_is_the_synchronous_standby() -> None:
    waits = [
        WaitRow(wait_type="IPC:SyncRep", wait_time_ms=300_000),
        WaitRow(wait_type="IO:WALSync", wait_time_ms=100_000),
    ]
    p = an.wait_profile(waits, "postgresql")
    assert [(c.cause, c.share_pct) for c in p.causes] == [("sync_replica", 75.0), ("log", 25.0)]  # 3/4, 1/4
    assert p.waits[0].label == "synchronous standby commit"


def test_log_space_waits_are_log_waits() -> None:
    waits = [WaitRow(wait_type="LOGMGR_RESERVE_APPEND", wait_time_ms=1_230_400)]
    waits += [WaitRow(wait_type="WRITELOG", wait_time_ms=401_220)]
    waits += [WaitRow(wait_type="PAGEIOLATCH_SH", wait_time_ms=301_110)]
    p = an.wait_profile(waits, "mssql")
    # log = 1,230,400 + 401,220 = 1,631,620 of 1,932,730 = 84.42%
    assert p.dominant_cause == "log" and p.dominant_share_pct == 84.42
    assert p.waits[0].label == "waiting for transaction log space"


# --- sessions by status and idle connection holders ----------------------------------------------


def pg(sid: int, status: str, program: str, host: str, login: str = "app", **kw: Any) -> SessionRow:
    return s(sid, None, status=status, program_name=program, host_name=host, login_name=login, **kw)


def test_session_status_across_engines() -> None:
    assert an.session_status(s(1, status="idle")) == "idle"
    assert an.session_status(s(2, status="sleeping", command="AWAITING COMMAND")) == "sleeping"
    assert an.session_status(s(3, status="", command="Sleep")) == "sleeping"  # mysql processlist
    assert an.session_status(s(4, status="sleeping", open_transaction_count=1)) == "idle in transaction"
    assert an.session_status(s(5, status="idle in transaction (aborted)")) == "idle in transaction"
    assert an.session_status(s(6, status="suspended", command="UPDATE")) == "active"
    assert an.session_status(s(7, status="updating", command="Query")) == "active"  # mysql thread state
    assert an.session_status(s(8, status="", command="Binlog Dump GTID")) == "background"
    assert an.session_status(s(9)) == "unknown"


def test_session_summary_names_who_holds_the_idle_connections() -> None:
    rows = [pg(100 + i, "idle", "sync-worker", f"10.0.0.{1 + i % 3}", "sync") for i in range(18)]
    rows += [pg(200, "idle", "psql", "10.0.9.2", "postgres"), pg(201, "idle", "psql", "10.0.9.2", "postgres")]
    rows += [pg(300, "idle in transaction", "dbeaver", "10.0.5.5", "ana")]
    rows += [pg(400 + i, "active", "web", "10.0.1.1") for i in range(4)]
    m = an.session_summary(rows)
    # 18 + 2 + 1 = 21 idle of 25 = 84% >= 80% of >= 20 sessions: pressure
    assert (m.total, m.idle, m.idle_share_pct, m.connection_pressure) == (25, 21, 84.0, True)
    assert m.by_status == {"idle": 20, "active": 4, "idle in transaction": 1}
    top = m.idle_holders[0]
    assert (top.name, top.sessions, top.logins, top.hosts) == (
        "sync-worker",
        18,
        ["sync"],
        ["10.0.0.1", "10.0.0.2", "10.0.0.3"],
    )
    assert [h.name for h in m.idle_holders] == ["sync-worker", "psql", "dbeaver"]
    ctx = ctx_for(WorldSql({"pg-x": SqlInstanceWorld(engine="postgresql", sessions=rows)}))
    summary, no_blocking = views.blocking_chains(ctx, "pg-x").findings
    assert (summary.kind, no_blocking.kind) == ("session_summary", "no_blocking")
    assert summary.severity is Severity.WARNING and summary.remediation is None
    assert summary.title == (
        "Idle connections on pg-x: 21 of 25 sessions are idle (84%); 18 held by sync-worker (sync@10.0.0.1-3)"
    )
    assert "By status: 20 idle, 4 active, 1 idle in transaction." in summary.detail
    assert (
        "sync-worker 18 (sync@10.0.0.1-3), psql 2 (postgres@10.0.9.2), dbeaver 1 (ana@10.0.5.5)"
        in summary.detail
    )
    assert "connection pool" in summary.detail and "connections are refused" in summary.detail


@pytest.mark.parametrize(
    ("idle", "active", "pressure"),
    [
        (60, 140, False),  # 60 idle but 30%: not the majority
        (50, 40, True),  # 50 idle and 55.6%: numerous and the majority
        (49, 41, False),  # 54.4% idle of 90, below 50 idle and below 80%
        (16, 4, True),  # 80% of 20 sessions
        (15, 3, False),  # 83% but only 18 sessions
    ],
)
def test_connection_pressure_thresholds(idle: int, active: int, pressure: bool) -> None:
    rows = [pg(i, "idle", "pool", "h1") for i in range(idle)]
    rows += [pg(1000 + i, "active", "pool", "h1") for i in range(active)]
    assert an.session_summary(rows).connection_pressure is pressure


def test_small_or_busy_instances_get_no_session_summary_finding() -> None:
    rows = [pg(i, "idle", "pool", "h1") for i in range(5)] + [pg(9, "active", "pool", "h1")]
    ctx = ctx_for(WorldSql({"x": SqlInstanceWorld(engine="postgresql", sessions=rows)}))
    assert [f.kind for f in views.blocking_chains(ctx, "x").findings] == ["no_blocking"]  # 6 sessions < 20
    busy = [pg(i, "active", "pool", "h1") for i in range(30)]
    ctx = ctx_for(WorldSql({"x": SqlInstanceWorld(engine="postgresql", sessions=busy)}))
    assert [f.kind for f in views.blocking_chains(ctx, "x").findings] == ["no_blocking"]  # nothing idle
    quiet = [pg(i, "idle", "pool", "h1") for i in range(10)] + [
        pg(50 + i, "active", "web", "h2") for i in range(15)
    ]
    ctx = ctx_for(WorldSql({"x": SqlInstanceWorld(engine="postgresql", sessions=quiet)}))
    summary, _ = views.blocking_chains(ctx, "x").findings
    # 10 of 25 idle = 40%: worth listing, not a warning
    assert summary.severity is Severity.INFO
    assert summary.title == "Sessions on x: 15 active, 10 idle; most idle ones held by pool"


# --- long open transactions propose ending the session ---------------------------------------------


def test_idle_in_transaction_for_an_hour_gets_a_kill_proposal_naming_the_xmin_horizon() -> None:
    rows = [
        pg(7721, "idle in transaction", "DBeaver", "10.21.7.44", "a.novak", elapsed_ms=22_330_000),
        pg(7800, "idle in transaction", "app", "10.0.0.1", elapsed_ms=3_540_000),  # 59 min: below the hour
        pg(8100, "active", "ingest", "10.0.0.2", elapsed_ms=4, open_transaction_count=1),
    ]
    ctx = ctx_for(WorldSql({"pg-events-01": SqlInstanceWorld(engine="postgresql", sessions=rows)}))
    long_tx, short_tx, _ = views.blocking_chains(ctx, "pg-events-01").findings
    # 22,330,000 ms / 60,000 = 372 min
    assert (
        long_tx.title == "Session 7721 (a.novak@10.21.7.44, DBeaver) has had a transaction open for 372 min"
    )
    assert "xmin horizon" in long_tx.detail and "VACUUM cannot remove" in long_tx.detail
    p = long_tx.remediation
    assert p is not None and p.action == "kill_session" and p.target == "pg-events-01 session 7721"
    assert "xmin horizon" in p.reason and p.evidence == ["blocking_chains@pg-events-01"]
    assert short_tx.title.endswith("open for 59 min") and short_tx.remediation is None


def test_sleeping_mssql_transaction_names_the_version_store_and_log() -> None:
    rows = [s(66, 0, status="sleeping", open_transaction_count=1, elapsed_ms=5_400_000)]  # 90 min
    ctx = ctx_for(WorldSql({"sql-x": SqlInstanceWorld(engine="mssql", sessions=rows)}))
    long_tx, _ = views.blocking_chains(ctx, "sql-x").findings
    assert long_tx.remediation is not None and long_tx.remediation.target == "sql-x session 66"
    assert "version store" in long_tx.remediation.reason and "transaction log" in long_tx.detail


def test_long_transaction_and_tempdb_proposals_dedupe_to_one() -> None:
    from graphs.synthesize import choose_proposals, order_findings

    _, findings = run_all("sql-prod-03", example("knowledge-tempdb-01", "sql-prod-03"))
    long_tx = next(f for f in findings if f.kind == "long_open_transaction")
    held = next(f for f in findings if f.kind == "tempdb_version_store_held")
    assert long_tx.remediation is not None and held.remediation is not None
    assert long_tx.remediation.target == held.remediation.target == "sql-prod-03 session 311"
    (only,) = choose_proposals(order_findings(findings))  # same (action, target): one proposal
    assert only is held.remediation  # the critical correlation's reason comes first


def test_blocking_head_and_its_long_transaction_dedupe_to_one() -> None:
    from graphs.synthesize import choose_proposals, order_findings

    rows = [
        pg(18422, "idle in transaction", "worker", "10.8.2.31", elapsed_ms=4_000_000),  # 67 min
        s(19044, 18422, 90_000, status="active", wait_type="Lock:transactionid"),
    ]
    ctx = ctx_for(WorldSql({"pg-b": SqlInstanceWorld(engine="postgresql", sessions=rows)}))
    chain, long_tx = views.blocking_chains(ctx, "pg-b").findings
    assert chain.remediation is not None and long_tx.remediation is not None
    (only,) = choose_proposals(order_findings([chain, long_tx]))
    assert only is chain.remediation and only.target == "pg-b session 18422"


# --- workload: what statements do, who holds the CPU, who writes ---------------------------------


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("UPDATE orders SET status = 'settled' WHERE id = $1", "write"),
        ("INSERT INTO reporting_events SELECT * FROM staging_events", "write"),
        ("COPY public.audit_log (event_type) FROM STDIN -- bulk load", "write"),
        ("COPY (SELECT * FROM t) TO STDOUT", "read"),
        ("WITH moved AS (DELETE FROM q RETURNING *) INSERT INTO done SELECT * FROM moved", "write"),
        ("WITH r AS (SELECT 1) SELECT * FROM r", "read"),
        ("SELECT * FROM orders WHERE status = $1", "read"),
        ("SELECT id FROM jobs WHERE state = $1 FOR UPDATE SKIP LOCKED", "write"),
        ("BEGIN; SELECT * FROM invoices WHERE account_id = $1", "read"),
        ("/* app */ DELETE FROM sessions WHERE expires_at < now()", "write"),
        ("autovacuum: VACUUM FREEZE public.billing_events", "maintenance"),
        ("postgres: checkpointer process: checkpoint storm", "maintenance"),
        ("EXEC dbo.UpdateInventory @sku, @delta", None),
        (None, None),
    ],
)
def test_statement_kind(sql: str | None, kind: str | None) -> None:
    assert wl.statement_kind(sql) == kind


def test_workload_shares_of_cpu_and_statement_time() -> None:
    w = opensre("006", "analytics-prod")
    work = wl.workload(w.top_queries, w.waits, "postgresql")
    # waits 4,560,000 + 2,760,000 + 1,680,000 + 240,000 = 9,240,000 ms; CPU:user 2,760,000 -> 29.87%
    assert work.cpu_wait_share_pct == pytest.approx(29.87)
    update, select = work.statements
    # statement time 7,080,000 + 2,160,000 = 9,240,000 ms: the UPDATE 76.62%, the SELECT 23.38%
    assert (update.kind, update.elapsed_share_pct) == ("write", pytest.approx(76.62))
    # CPU against the CPU wait time: 840,000 / 2,760,000 = 30.43%, 1,920,000 / 2,760,000 = 69.57%
    assert update.cpu_share_pct == pytest.approx(30.43) and select.cpu_share_pct == pytest.approx(69.57)
    assert work.cpu_top() == select and work.writers() == [update]


def test_cpu_top_needs_a_clear_holder_and_cpu_that_matters() -> None:
    tie = [
        QueryStatRow(query_hash="a", total_cpu_ms=500, total_elapsed_ms=900, sql_text="SELECT 1"),
        QueryStatRow(query_hash="b", total_cpu_ms=500, total_elapsed_ms=100, sql_text="SELECT 2"),
    ]
    assert wl.workload(tie, [], None).cpu_top() is None  # 50% each: nobody holds the CPU
    # 014: CPU is 240,000 of 11,640,000 ms of waits (2%): a CPU share among statements means little
    w = opensre("014", "billing-prod")
    assert wl.workload(w.top_queries, w.waits, "postgresql").cpu_top() is None


def test_correlate_names_a_write_heavy_wal_workload() -> None:
    # 001: IO:WALWrite 4,732,938 of 7,179,100 ms of non-benign waits (66%), top statement the UPDATE (86%)
    _, findings = run_all("payments-prod", opensre("001", "payments-prod"))
    (f,) = [f for f in findings if f.kind == "write_heavy_wal"]
    assert f.severity == "warning" and f.evidence == [
        "wait_profile@payments-prod",
        "top_queries@payments-prod",
    ]
    assert f.title == (
        "Write-heavy workload on payments-prod generating WAL: WAL / log writes are 66% of wait time "
        "(IO:WALWrite) and the top statement is a write, UPDATE orders SET status (86% of statement time)"
    )
    # 014: WAL is 25% of waits, below the latch cause; 004: no WAL waits at all
    for prefix, instance in (("014", "billing-prod"), ("004", "catalog-prod")):
        _, other = run_all(instance, opensre(prefix, instance))
        assert not [f for f in other if f.kind == "write_heavy_wal"]
