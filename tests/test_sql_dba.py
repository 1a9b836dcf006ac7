"""The DBA's first questions and what issue 9 fixed, through the replay backend (the real view tools on
recorded worlds): waits as deltas, every blocker of a waiter, non-session heads never killed, per-plan
regressions and absolute thresholds, capacity that can fire, and the eight health tools."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents.base import ToolCall
from agents.database import plan_calls
from tools.base import Severity
from tools.inventory import Inventory
from tools.replay import ReplaySql
from tools.sources import SourceError, Sources, ToolContext
from tools.sql import analysis as an
from tools.sql import health as hl
from tools.sql import views
from tools.sql.thresholds import SqlThresholds
from tools.world import (
    Blocker,
    DeadlockParty,
    DeadlockRow,
    FileRow,
    LogReuseRow,
    QueryStatRow,
    ReplicaRow,
    ServerRow,
    SessionRow,
    SqlInstanceWorld,
    WaitRow,
    WaitSample,
)

NOW = datetime(2026, 3, 4, 10, 15, tzinfo=UTC)


def ctx_for(worlds: dict[str, SqlInstanceWorld], **options: Any) -> ToolContext:
    return ToolContext(
        sources=Sources(sql=ReplaySql(worlds)),
        now=NOW,
        start=NOW,
        end=NOW,
        history_start=NOW,
        options=options,
    )


def run(tool: Any, w: SqlInstanceWorld, **options: Any) -> list[Any]:
    return list(tool(ctx_for({"db": w}, **options), "db").findings)


def s(sid: int, **kw: Any) -> SessionRow:
    return SessionRow(session_id=sid, **kw)


# --- waits describe now ---------------------------------------------------------------------------------


def test_mssql_waits_are_the_difference_of_two_samples_not_weeks_of_history() -> None:
    earlier = [
        WaitRow(wait_type="PAGEIOLATCH_SH", wait_time_ms=90_000_000),
        WaitRow(wait_type="LCK_M_U", wait_time_ms=1_000),
        WaitRow(wait_type="SLEEP_TASK", wait_time_ms=5),
    ]
    now = [
        WaitRow(wait_type="PAGEIOLATCH_SH", wait_time_ms=90_000_400),
        WaitRow(wait_type="LCK_M_U", wait_time_ms=9_001_000),
        WaitRow(wait_type="SLEEP_TASK", wait_time_ms=9),
    ]
    totals = an.wait_profile(now, "mssql")
    assert totals.dominant_cause == "io" and totals.basis == "cumulative"  # 90 million ms of history
    p = an.wait_profile(now, "mssql", earlier=earlier, interval_s=5.0)
    assert p.basis == "delta" and p.interval_s == 5.0
    assert p.dominant_cause == "locks" and p.total_wait_ms == 9_000_400
    assert p.per_second("locks") == pytest.approx(1800.0)
    (f,) = run(
        views.wait_profile,
        SqlInstanceWorld(engine="mssql", waits=now, waits_earlier=WaitSample(age_s=5.0, waits=earlier)),
    )
    assert f.severity is Severity.WARNING and "dominated by locks" in f.title
    assert "over the last 5 s (difference of two samples)" in f.detail and "s of waits per second" in f.detail


def test_without_an_earlier_sample_the_totals_say_so() -> None:
    (f,) = run(
        views.wait_profile,
        SqlInstanceWorld(engine="mssql", waits=[WaitRow(wait_type="LCK_M_U", wait_time_ms=90_000)]),
    )
    assert "since the server started (no earlier sample: these totals may be mostly history" in f.detail


def test_a_counter_that_went_down_is_a_restart_not_a_negative_delta() -> None:
    p = an.wait_profile(
        [WaitRow(wait_type="LCK_M_U", wait_time_ms=10)],
        "mssql",
        earlier=[WaitRow(wait_type="LCK_M_U", wait_time_ms=5_000)],
        interval_s=2,
    )
    assert p.basis == "cumulative" and p.reset and p.total_wait_ms == 10


def test_lock_waits_per_second_warn_even_when_not_dominant() -> None:
    earlier = [
        WaitRow(wait_type="PAGEIOLATCH_SH", wait_time_ms=0),
        WaitRow(wait_type="LCK_M_S", wait_time_ms=0),
    ]
    now = [
        WaitRow(wait_type="PAGEIOLATCH_SH", wait_time_ms=40_000),
        WaitRow(wait_type="LCK_M_S", wait_time_ms=6_000),
    ]
    w = SqlInstanceWorld(engine="mssql", waits=now, waits_earlier=WaitSample(age_s=10, waits=earlier))
    (f,) = run(views.wait_profile, w)
    assert f.severity is Severity.WARNING and "Lock waits took 0.6 s per second" in f.detail
    (quiet,) = run(views.wait_profile, w, sql_thresholds={"lock_wait_per_s": 1.0})  # configurable
    assert "Lock waits took" not in quiet.detail


def test_mysql_row_lock_time_comes_from_innodb_and_table_handler_time_is_not_io() -> None:
    # a 60 s row-lock wait: handler time contains it; InnoDB's counter names it
    now = [
        WaitRow(wait_type="wait/io/table/sql/handler", wait_time_ms=60_500),
        WaitRow(wait_type="wait/io/file/innodb/innodb_data_file", wait_time_ms=400),
        WaitRow(wait_type="wait/lock/innodb/row_lock", wait_time_ms=60_000),
    ]
    p = an.wait_profile(now, "mysql")
    assert p.dominant_cause == "locks" and p.waits[0].label == "InnoDB row lock waits"
    assert "wait/io/table/sql/handler" in p.benign_types


def test_page_latches_are_located_tempdb_or_a_hot_page() -> None:
    sessions = [
        s(1, wait_type="PAGELATCH_UP", wait_resource="2:1:1"),
        s(2, wait_type="PAGELATCH_UP", wait_resource="2:1:1"),
        s(3, wait_type="PAGELATCH_EX", wait_resource="7:1:880211"),
        s(4, wait_type="PAGELATCH_EX", wait_resource="7:1:880211"),
        s(5, wait_type="PAGELATCH_EX", wait_resource="7:1:880211"),
    ]
    waits = [WaitRow(wait_type="PAGELATCH_EX", wait_time_ms=120_000)]
    profile, latch = run(views.wait_profile, SqlInstanceWorld(engine="mssql", sessions=sessions, waits=waits))
    assert latch.kind == "page_latch_contention" and "7:1:880211, a hot page of database 7" in latch.title
    assert "2:1:1 (tempdb allocation page (PFS)): 2 sessions" in latch.detail
    assert "page latch contention" in profile.title
    (_, tempdb) = run(
        views.wait_profile, SqlInstanceWorld(engine="mssql", sessions=sessions[:2], waits=waits)
    )
    assert tempdb.title.startswith(
        "tempdb allocation contention on db: 2 of 2 latch-waiting sessions on 2:1:1 (PFS)"
    )


# --- complete blocking ----------------------------------------------------------------------------------


def test_two_blockers_of_one_waiter_are_both_named() -> None:
    rows = [
        s(10, status="idle in transaction"),
        s(11, status="sleeping", open_transaction_count=1),
        s(
            20,
            status="active",
            wait_time_ms=40_000,
            wait_type="Lock:tuple",
            blocked_by=[Blocker(session_id=10, lock_mode="ExclusiveLock"), Blocker(session_id=11)],
        ),
    ]
    chains = an.blocking_chains(rows)
    assert {c.head_session_id for c in chains} == {10, 11}
    for c in chains:
        assert c.blocked_session_ids == [20] and c.blocked[0].blockers == ["10", "11"]
        assert list(c.co_blocked) == ["20"]
    findings = run(views.blocking_chains, SqlInstanceWorld(engine="postgresql", sessions=rows))
    chain = next(f for f in findings if f.kind == "blocking_chain")
    assert "also waiting on 11" in chain.detail or "also waiting on 10" in chain.detail
    assert "they stay blocked until every holder ends" in chain.detail
    assert (
        chain.remediation is not None and "may stay blocked until those end too" in chain.remediation.reason
    )


def test_a_prepared_transaction_heads_its_chain_by_name_and_is_never_killed() -> None:
    rows = [
        s(
            20,
            status="active",
            wait_time_ms=70_000,
            wait_type="Lock:transactionid",
            blocked_by=[
                Blocker(session_id=0, kind="prepared_transaction", name="gx1", since="2026-03-04T09:00:00Z")
            ],
        ),
        s(21, status="active", wait_time_ms=30_000, blocked_by=[Blocker(session_id=20)]),
    ]
    (chain,) = an.blocking_chains(rows)
    assert chain.head_session_id is None and chain.head_holder is not None
    assert chain.head_words == "prepared transaction 'gx1'" and chain.blocked_session_ids == [20, 21]
    (f,) = run(views.blocking_chains, SqlInstanceWorld(engine="postgresql", sessions=rows))
    assert (
        f.title == "Blocking chain on db: the head blocker is prepared transaction 'gx1', blocking 2 sessions"
    )
    assert "COMMIT PREPARED / ROLLBACK PREPARED" in f.detail and f.remediation is None


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (-2, "orphaned distributed transaction"),
        (-3, "deferred recovery transaction"),
        (-4, "latch owner the engine does not track"),
    ],
)
def test_negative_blocking_session_ids_are_named_and_never_a_kill_target(raw: int, words: str) -> None:
    rows = [s(70, status="suspended", wait_type="LCK_M_S", wait_time_ms=600_000, blocking_session_id=raw)]
    (f,) = run(views.blocking_chains, SqlInstanceWorld(engine="mssql", sessions=rows))
    assert f"the head blocker is {words}" in f.title and f.remediation is None
    assert "session -" not in f.title


def test_an_idle_session_holding_locks_heads_the_chain_and_a_kill_carries_its_identity() -> None:
    rows = [
        s(
            140,
            status="sleeping",
            open_transaction_count=0,
            login_name="svc_jobs",
            host_name="jobs-01",
            program_name="Job Scheduler",
            login_time="2026-03-04T06:00:00Z",
        ),
        s(
            130,
            status="suspended",
            wait_type="LCK_M_X",
            wait_time_ms=45_000,
            blocked_by=[Blocker(session_id=140, lock_mode="X", resource="APPLICATION: 7:0:[InvoiceExport]")],
        ),
    ]
    (f,) = [
        x
        for x in run(views.blocking_chains, SqlInstanceWorld(engine="mssql", sessions=rows))
        if x.kind == "blocking_chain"
    ]
    assert f.data["head_session_id"] == 140 and "(X lock)" in f.detail
    assert f.remediation is not None and f.remediation.target_ref is not None
    assert f.remediation.target_ref.attrs == {
        "login_name": "svc_jobs",
        "host_name": "jobs-01",
        "program_name": "Job Scheduler",
        "login_time": "2026-03-04T06:00:00Z",
    }


# --- regressions that mean something ---------------------------------------------------------------------


def test_a_plan_change_is_its_own_finding() -> None:
    q = QueryStatRow(
        query_hash="0x8A3F",
        execution_count=4200,
        total_elapsed_ms=1_764_000,
        baseline_avg_elapsed_ms=35,
        plan_id="1002",
        baseline_plan_id="1001",
        plan_changed_at=datetime(2026, 3, 4, 9, 2, 11, tzinfo=UTC),
        sql_text="SELECT 1",
    )
    (f, _) = run(views.top_queries, SqlInstanceWorld(engine="mssql", top_queries=[q]))
    assert (
        f.title
        == "Plan change on db: plan 1002 replaced plan 1001 at 2026-03-04 09:02 UTC; 12x slower than baseline"
    )
    faster = q.model_copy(update={"total_elapsed_ms": 42_000})
    info = next(
        x
        for x in run(views.top_queries, SqlInstanceWorld(engine="mssql", top_queries=[faster]))
        if x.kind == "plan_change"
    )
    assert info.severity is Severity.INFO and "0.3x the baseline's average" in info.title


def _no_history(query_hash: str, runs: int, total_ms: float, sql: str) -> QueryStatRow:
    """A statement as pg_stat_statements reports it: cumulative figures, no baseline."""
    return QueryStatRow(
        query_hash=query_hash,
        execution_count=runs,
        total_elapsed_ms=total_ms,
        sql_text=sql,
        baseline_source="pg_stat_statements keeps no history",
    )


def test_a_slow_statement_without_a_baseline_is_not_healthy() -> None:
    q = _no_history("77", 12, 76_800, "SELECT x FROM big")
    (f, _) = run(views.top_queries, SqlInstanceWorld(engine="postgresql", top_queries=[q]))
    assert f.kind == "slow_query" and f.severity is Severity.WARNING
    assert "averages 6.4 s with no baseline" in f.title and "pg_stat_statements keeps no history" in f.detail
    assert (
        run(
            views.top_queries,
            SqlInstanceWorld(engine="postgresql", top_queries=[q]),
            sql_thresholds={"slow_statement_ms": 10_000},
        )[0].kind
        == "top_statements"
    )


def test_the_summary_says_which_baselines_are_missing_and_why() -> None:
    qs = [
        QueryStatRow(query_hash="a", execution_count=5, total_elapsed_ms=50, baseline_avg_elapsed_ms=9),
        QueryStatRow(
            query_hash="b",
            execution_count=5,
            total_elapsed_ms=50,
            baseline_source=(
                "its database SalesDW's Query Store is not read (only the connected database's, Sales)"
            ),
        ),
    ]
    result = views.top_queries(ctx_for({"db": SqlInstanceWorld(engine="mssql", top_queries=qs)}), "db")
    assert (
        "1 statement without a baseline: its database SalesDW's Query Store is not read"
        in result.evidence[0].summary
    )


# --- capacity that can fire ----------------------------------------------------------------------------


def test_mariadb_redo_is_full_at_the_checkpoint_max_age() -> None:
    redo = FileRow(
        database_name="all databases",
        file_name="ib_logfile0 (checkpoint age)",
        type="log",
        size_mb=77.0,
        used_mb=72.0,
        max_size_mb=77.0,
    )
    (f,) = run(views.files_and_space, SqlInstanceWorld(engine="mysql", files=[redo]))
    assert f.kind == "log_nearly_full" and f.severity is Severity.CRITICAL and "94% used" in f.title


def test_files_without_a_known_limit_are_never_called_healthy_or_full() -> None:
    db = FileRow(database_name="orders", file_name="orders", type="data", size_mb=51_200, used_mb=51_200)
    (f,) = run(views.files_and_space, SqlInstanceWorld(engine="postgresql", files=[db]))
    assert f.kind == "file_capacity_unknown" and "cannot be read over SQL" in f.title
    assert "near full" not in f.title


# --- the first questions ----------------------------------------------------------------------------------


def server(**kw: Any) -> ServerRow:
    return ServerRow(sampled_at=NOW, **kw)


def test_long_running_statements_name_who_and_what() -> None:
    rows = [
        s(
            5,
            status="active",
            elapsed_ms=61_000,
            cpu_time_ms=58_000,
            login_name="app",
            host_name="10.0.0.5",
            sql_text="SELECT pg_sleep(65)",
        ),
        s(6, status="idle", elapsed_ms=9_000_000),
    ]
    (f,) = run(views.long_running_statements, SqlInstanceWorld(engine="postgresql", sessions=rows))
    assert f.severity is Severity.WARNING and "session 5 running for 61 s" in f.title
    assert "CPU 58 s" in f.detail and "app@10.0.0.5" in f.detail


def test_connections_near_the_maximum_use_the_usable_slots() -> None:
    w = SqlInstanceWorld(
        engine="postgresql", server=server(connections=16, max_connections=20, reserved_connections=3)
    )
    (f,) = run(views.connection_saturation, w)
    assert f.severity is Severity.WARNING and "16 of 17 (94%)" in f.title  # 3 slots are for superusers
    w = SqlInstanceWorld(
        engine="postgresql", server=server(connections=17, max_connections=20, reserved_connections=3)
    )
    assert run(views.connection_saturation, w)[0].severity is Severity.CRITICAL
    w = SqlInstanceWorld(
        engine="mssql",
        server=server(connections=40, max_connections=32767, workers=560, max_workers=576, queued_tasks=12),
    )
    (f,) = run(views.connection_saturation, w)
    assert f.severity is Severity.CRITICAL and "Worker threads" in f.title and "12 tasks waiting" in f.detail


def test_deadlocks_since_the_last_sample_and_the_latest_graph() -> None:
    latest = DeadlockRow(
        occurred_at=NOW - timedelta(minutes=3),
        source="system_health xml_deadlock_report",
        parties=[
            DeadlockParty(session_id=91, victim=True, sql_text="UPDATE p", holds="X keylock on Orders"),
            DeadlockParty(session_id=88, waits_for="U keylock on Orders"),
        ],
    )
    w = SqlInstanceWorld(
        engine="mssql",
        server=server(deadlocks=19),
        server_earlier=ServerRow(sampled_at=NOW - timedelta(minutes=10), deadlocks=17),
        deadlocks=[latest],
    )
    (f,) = run(views.deadlocks, w)
    assert f.severity is Severity.WARNING and f.title == "Deadlocks on db: 2 since the last sample"
    assert "session 91, chosen as the victim, held X keylock on Orders: UPDATE p" in f.detail
    pg = SqlInstanceWorld(engine="postgresql", server=server(deadlocks=3))
    (f,) = run(views.deadlocks, pg)
    assert f.severity is Severity.INFO and "server log" in f.detail


def test_log_reuse_names_the_oldest_transaction_and_inactive_slots() -> None:
    sessions = [
        s(
            57,
            status="sleeping",
            open_transaction_count=1,
            database_name="Sales",
            transaction_ms=1_423_000,
            login_name="svc_batch",
        )
    ]
    log = LogReuseRow(
        log="transaction log",
        database_name="Sales",
        reason="ACTIVE_TRANSACTION",
        size_mb=20_480,
        used_mb=19_700,
    )
    (f,) = run(views.log_reuse, SqlInstanceWorld(engine="mssql", sessions=sessions, log_reuse=[log]))
    assert f.severity is Severity.CRITICAL and "ACTIVE_TRANSACTION" in f.title
    assert "oldest open transaction is session 57 (svc_batch)" in f.detail
    slot = LogReuseRow(log="wal", holder="standby_a", reason="inactive slot", used_mb=2_048, active=False)
    (f,) = run(views.log_reuse, SqlInstanceWorld(engine="postgresql", log_reuse=[slot]))
    assert f.severity is Severity.WARNING and "by standby_a" in f.title and "consumer is gone" in f.detail
    fine = LogReuseRow(log="transaction log", database_name="Sales", reason="NOTHING")
    (f,) = run(views.log_reuse, SqlInstanceWorld(engine="mssql", log_reuse=[fine]))
    assert f.kind == "log_reuse_ok"


def test_replica_lag_and_queues() -> None:
    rows = [
        ReplicaRow(
            name="sql-prod-02",
            kind="availability_group",
            group_name="ag-sales",
            database_name="Sales",
            state="SYNCHRONIZING",
            synchronous=True,
            lag_s=340,
            send_queue_mb=2400,
        ),
        ReplicaRow(name="sql-dr-01", kind="availability_group", state="SYNCHRONIZING", lag_s=4),
    ]
    (f,) = run(views.replication_lag, SqlInstanceWorld(engine="mssql", replicas=rows))
    assert f.severity is Severity.CRITICAL and "sql-prod-02" in f.title and "2400 MB queued" in f.title
    assert run(views.replication_lag, SqlInstanceWorld(engine="mssql", replicas=[]))[0].kind == "no_replicas"


def test_memory_grants_waiting() -> None:
    rows = [s(120, memory_requested_mb=2048, memory_grant_wait_ms=12_000, login_name="svc_reporting")]
    (f,) = run(
        views.memory_grants,
        SqlInstanceWorld(engine="mssql", sessions=rows, server=server(memory_grants_pending=1)),
    )
    assert f.severity is Severity.WARNING and "asked for 2048 MB, waiting 12 s" in f.detail


def test_version_store_and_xmin_holders() -> None:
    rows = [s(9, status="idle in transaction", xmin_age=120_000, transaction_ms=5_000_000, login_name="etl")]
    (f,) = run(views.version_store_holders, SqlInstanceWorld(engine="postgresql", sessions=rows))
    assert f.severity is Severity.WARNING and "held by session 9" in f.title and "xmin horizon" in f.detail


def test_wraparound_and_purge() -> None:
    w = SqlInstanceWorld(
        engine="postgresql",
        server=server(xid_age=1_700_000_000, xid_age_database="orders", freeze_max_age=200_000_000),
    )
    (f,) = run(views.wraparound_and_purge, w)
    assert f.severity is Severity.CRITICAL and "orders at 79% of the limit" in f.title
    (f,) = run(
        views.wraparound_and_purge,
        SqlInstanceWorld(engine="mysql", server=server(history_list_length=2_500_000)),
    )
    assert f.severity is Severity.WARNING and "history list length 2,500,000" in f.title
    (f,) = run(views.wraparound_and_purge, SqlInstanceWorld(engine="mssql", server=server()))
    assert f.kind == "wraparound_not_applicable"


# --- the playbook, replay, thresholds ---------------------------------------------------------------


def test_the_playbook_runs_every_tool_the_source_can_answer() -> None:
    inventory = (
        Inventory.model_validate({"entities": [{"name": "db", "kind": "sql_instance"}]})
        if hasattr(Inventory, "model_validate")
        else None
    )
    old = SqlInstanceWorld(engine="mssql")
    full = SqlInstanceWorld(engine="mssql", server=server(), log_reuse=[], replicas=[], deadlocks=[])
    names = lambda w: {c.tool for c in plan_calls([], _inventory(), "is db ok?", ctx_for({"db": w}))}  # noqa: E731
    assert names(old) == {
        "blocking_chains",
        "wait_profile",
        "top_queries",
        "files_and_space",
        "long_running_statements",
        "version_store_holders",
    }
    assert names(full) == set(views.NEEDS)
    assert inventory is None or isinstance(inventory, Inventory)


def _inventory() -> Inventory:
    from tools.inventory import build_inventory

    return build_inventory(Sources(sql=ReplaySql({"db": SqlInstanceWorld(engine="mssql")})))


def test_a_dataset_that_was_not_recorded_is_an_error_never_an_empty_healthy_answer() -> None:
    with pytest.raises(SourceError, match="server of db was not recorded"):
        ReplaySql({"db": SqlInstanceWorld(engine="mssql")}).server("db")
    result = views.connection_saturation(ctx_for({"db": SqlInstanceWorld(engine="mssql")}), "db")
    assert result.evidence[0].error and not result.findings


def test_tools_sharing_a_dataset_read_it_once_per_run() -> None:
    calls: list[str] = []

    class Counting(ReplaySql):
        def sessions(self, instance: str) -> list[SessionRow]:
            calls.append("sessions")
            return super().sessions(instance)

    ctx = ToolContext(
        sources=Sources(sql=Counting({"db": SqlInstanceWorld(engine="mssql", sessions=[s(1)])})),
        now=NOW,
        start=NOW,
        end=NOW,
        history_start=NOW,
    )
    for tool in (
        views.blocking_chains,
        views.long_running_statements,
        views.version_store_holders,
        views.wait_profile,
    ):
        tool(ctx, "db")
    assert calls == ["sessions"]


def test_thresholds_are_validated_and_documented() -> None:
    assert SqlThresholds().slow_statement_ms == 2_000 and SqlThresholds().long_running_ms == 60_000
    with pytest.raises(ValueError):
        SqlThresholds.from_options({"sql_thresholds": {"no_such_threshold": 1}})
    assert hl.long_running([s(1, status="active", elapsed_ms=5_000)], SqlThresholds(long_running_ms=1_000))


def test_every_database_tool_declares_what_it_detects() -> None:
    from tools.coverage import CONCERNS

    for tool in views.DATABASE_TOOLS:
        assert tool.spec.detects and set(tool.spec.detects) <= set(CONCERNS), tool.spec.name
    covered = {c for t in views.DATABASE_TOOLS for c in t.spec.detects}
    assert {
        "long_running",
        "deadlocks",
        "log_reuse",
        "replication",
        "connections",
        "waits",
        "blocking",
        "regressions",
        "space",
        "memory_grants",
        "version_store",
        "wraparound",
    } <= covered


def test_call_keys_are_unique() -> None:
    calls = plan_calls([], _inventory(), "x", ctx_for({"db": SqlInstanceWorld(engine="mssql")}))
    assert len({c.key for c in calls}) == len(calls) and all(isinstance(c, ToolCall) for c in calls)


def test_a_recording_keeps_the_new_datasets_and_replays_them() -> None:
    from evals.record import Recorder, recording_sources
    from tools.world import World

    earlier = [WaitRow(wait_type="LCK_M_U", wait_time_ms=1_000)]
    party = DeadlockParty(session_id=91, victim=True, sql_text="UPDATE t SET v = 42 WHERE id = 7")
    w = SqlInstanceWorld(
        engine="mssql",
        sessions=[
            s(57, status="sleeping", blocked_by=[Blocker(session_id=-2)], login_time="2026-03-04T09:50:02Z")
        ],
        waits=[WaitRow(wait_type="LCK_M_U", wait_time_ms=9_000)],
        waits_earlier=WaitSample(age_s=5.0, waits=earlier),
        server=server(deadlocks=19),
        server_earlier=ServerRow(sampled_at=NOW - timedelta(minutes=5), deadlocks=17),
        log_reuse=[LogReuseRow(log="transaction log", database_name="Sales", reason="LOG_BACKUP")],
        replicas=[ReplicaRow(name="sql-prod-02", kind="availability_group", lag_s=3)],
        deadlocks=[DeadlockRow(occurred_at=NOW, parties=[party])],
    )
    rec = Recorder()
    ctx = ToolContext(
        sources=recording_sources(Sources(sql=ReplaySql({"db": w})), rec),
        now=NOW, start=NOW, end=NOW, history_start=NOW,
    )  # fmt: skip
    live = [f for t in views.DATABASE_TOOLS for f in t(ctx, "db").findings]
    recorded = rec.world().sql["db"]
    assert recorded.waits_earlier == w.waits_earlier and recorded.server_earlier == w.server_earlier
    assert recorded.replicas == w.replicas and recorded.log_reuse == w.log_reuse
    assert (
        recorded.deadlocks and recorded.deadlocks[0].parties[0].sql_text == "UPDATE t SET v = ? WHERE id = ?"
    )
    assert recorded.sessions[0].blocked_by == [Blocker(session_id=-2)]
    doc = World.model_validate({"sql": {"db": recorded.model_dump(mode="json", exclude_defaults=True)}})
    replayed = [f for t in views.DATABASE_TOOLS for f in t(ctx_for(doc.sql), "db").findings]
    assert [f.title for f in replayed] == [f.title for f in live]


def test_a_slow_statement_on_cumulative_figures_is_never_critical() -> None:
    """pg_stat_statements keeps no history: an average of 88 s may be last week's, so it must not lead
    the answer over a live problem (a blocking chain now); with a history it may be critical."""
    q = _no_history("88", 3, 264_000, "UPDATE orders SET status = $1 WHERE id = $2")
    (f, _) = run(views.top_queries, SqlInstanceWorld(engine="postgresql", top_queries=[q]))
    assert f.kind == "slow_query" and f.severity is Severity.WARNING and "may be past" in f.detail
    stored = q.model_copy(update={"baseline_source": "Query Store off in database Sales"})
    (g, _) = run(views.top_queries, SqlInstanceWorld(engine="mssql", top_queries=[stored]))
    assert g.kind == "slow_query" and g.severity is Severity.CRITICAL
