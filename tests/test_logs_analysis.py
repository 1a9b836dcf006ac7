"""Log analyzers and the logs view tools, against hand-worked expectations and the example worlds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tools.logs import analysis as an
from tools.logs.views import LOGS_TOOLS, error_signatures, log_bursts
from tools.replay import ReplayMetrics
from tools.sources import LogSummary, SourceError, Sources, ToolContext
from tools.world import LogRecord, Series, World

EXAMPLES = Path(__file__).resolve().parents[2].joinpath("shared/scenarios/examples")
T0 = datetime(2026, 4, 21, 15, 0, tzinfo=UTC)


def world(name: str) -> World:
    return World.model_validate(yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())["world"])


def rec(message: str, minute: float = 0, severity: str = "error", **extra: str) -> LogRecord:
    fields = {"instance_name": "db-1", **extra}
    return LogRecord.model_validate(
        {"timestamp": T0 + timedelta(minutes=minute), "severity": severity, "message": message, **fields}
    )


# --- known codes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "extra", "engine", "code"),
    [
        ("Transaction (Process ID 57) was deadlocked on lock resources. Error 1205.", {}, "mssql", "1205"),
        ("Retrying after SqlException 1205 (attempt 2/3)", {}, "mssql", "1205"),
        ("ERROR 1205 (HY000): Lock wait timeout exceeded; try restarting transaction", {}, "mysql", "1205"),
        ("Error 1205 in statement", {"index": "mysql-slow-2026.04.21"}, "mysql", "1205"),
        ("Lock wait timeout exceeded; try restarting transaction", {}, "mysql", "1205"),
        ("Deadlock found when trying to get lock; try restarting transaction", {}, "mysql", "1213"),
        ("ERROR 1040 (08004): Too many connections", {}, "mysql", "1040"),
        ("The transaction log for database 'Sales' is full due to 'LOG_BACKUP'.", {}, "mssql", "9002"),
        ("Login failed for user 'sa'. Reason: Password did not match.", {}, "mssql", "18456"),
        ("Error: 18456, Severity: 14, State: 8.", {}, "mssql", "18456"),
        ("Error: 823, Severity: 24, State: 2. The operating system returned error 21", {}, "mssql", "823"),
        ("SQL Server detected a logical consistency-based I/O error", {}, "mssql", "824"),
        (
            "Msg 825: A read of the file 'D:\\data\\x.mdf' at offset 0x1 succeeded after failing",
            {},
            "mssql",
            "825",
        ),
        (
            "There is insufficient system memory in resource pool 'default' to run this query.",
            {},
            "mssql",
            "701",
        ),
        (
            "Process 0:0:0 (0x1a2c) Worker 0x00000 appears to be non-yielding on Scheduler 3.",
            {},
            "mssql",
            "17883",
        ),
        ("ERROR:  deadlock detected", {}, "postgresql", "40P01"),
        (
            "FATAL: remaining connection slots are reserved for non-replication superuser",
            {},
            "postgresql",
            "53300",
        ),
        ("ERROR:  canceling statement due to statement timeout", {}, "postgresql", "57014"),
        (
            'ERROR: could not extend file "base/16384/2619": No space left on device',
            {},
            "postgresql",
            "53100",
        ),
        ("too many connections for role app", {"index": "postgres-logs"}, "postgresql", "53300"),
    ],
)
def test_known_codes_are_recognised(message: str, extra: dict[str, str], engine: str, code: str) -> None:
    codes = an.known_codes(rec(message, index=extra.get("index", "logs")))
    assert [(c.engine, c.code) for c in codes][:1] == [(engine, code)]


@pytest.mark.parametrize("message", ["Listening on port 1205", "Error 9999 happened", "checkpoint complete"])
def test_numbers_without_a_known_code_are_not_codes(message: str) -> None:
    assert an.known_codes(rec(message)) == []


def test_label_names_engine_and_code() -> None:
    (code,) = an.known_codes(rec("ERROR: deadlock detected"))
    assert code.label == "PostgreSQL SQLSTATE 40P01"
    assert code.category == "deadlock"


# --- templates and signatures -------------------------------------------------------------------


def test_template_masks_variable_parts_but_keeps_codes() -> None:
    message = (
        "User 'bob' from 10.1.2.3:5432 at 0xDEADBEEF id 3f2504e0-4f89-11d3-9a0c-0305e82c3301 after 42 tries"
    )
    assert an.message_template(message) == "User <str> from <ip> at <hex> id <guid> after <n> tries"
    assert an.message_template("Error 1205 for process 57", keep=["1205"]) == "Error 1205 for process <n>"


def test_signatures_group_count_and_order() -> None:
    records = [
        rec("Timeout after 30 s on order 1", minute=5, severity="warning"),
        rec("Timeout after 31 s on order 2", minute=1, severity="error"),
        rec("Timeout after 32 s on order 3", minute=9, severity="warning"),
        rec("Backup done", minute=3, severity="info"),
        rec("Disk failure on volume E", minute=7, severity="critical"),
    ]
    sigs = an.error_signatures(records)
    # critical first, then the 3-message error group, then info
    assert [s.template for s in sigs] == [
        "Disk failure on volume E",
        "Timeout after <n> s on order <n>",
        "Backup done",
    ]
    timeout = sigs[1]
    assert timeout.count == 3
    assert timeout.severity == "error"  # worst of warning, error, warning
    assert timeout.first_seen == T0 + timedelta(minutes=1)
    assert timeout.last_seen == T0 + timedelta(minutes=9)
    assert timeout.example == "Timeout after 32 s on order 3"  # the latest message


def test_signatures_of_an_empty_list() -> None:
    assert an.error_signatures([]) == []
    assert an.deadlock_details([]).deadlocks == 0
    assert an.bursts([]) == []


def test_deadlock_world_signatures() -> None:
    sigs = an.error_signatures(world("logs-deadlock-01").logs)
    victim = next(s for s in sigs if s.template.startswith("Transaction (Process ID <n>)"))
    assert victim.count == 2  # process 233 at 15:58:11 and 241 at 15:59:40
    assert [c.code for c in victim.codes] == ["1205"] and victim.category == "deadlock"
    graph = next(s for s in sigs if s.template.startswith("deadlock-list"))
    assert graph.category == "deadlock" and graph.codes == []


def test_deadlock_details_of_the_example_world() -> None:
    d = an.deadlock_details(world("logs-deadlock-01").logs)
    assert d.deadlocks == 2  # two victim reports; the graph describes one of them, the retry echoes one
    assert d.graphs == 1 and d.retries == 1
    assert d.victims == ["233", "241"]
    assert d.victim_procedures == ["dbo.UpdateInventory"]
    assert d.owners == ["198"]
    assert d.owner_procedures == ["dbo.ReserveStock"]
    assert d.objects == ["Inventory.dbo.StockLevels"]
    assert d.indexes == ["IX_StockLevels_Sku"]
    assert d.resources == ["keylock"] and d.modes == ["X"]
    assert d.codes == ["SQL Server error 1205"]


def test_deadlock_details_from_an_xml_report() -> None:
    xml = (
        '<deadlock><victim-list><victimProcess id="process2c8f"/></victim-list><process-list>'
        '<process id="process2c8f" spid="54"><executionStack><frame procname="Shop.dbo.PlaceOrder"/>'
        '</executionStack></process></process-list><resource-list><keylock objectname="Shop.dbo.Orders" '
        'indexname="PK_Orders" mode="X"><owner-list><owner id="process3d1" mode="X"/></owner-list>'
        "</keylock></resource-list></deadlock>"
    )
    d = an.deadlock_details([rec(xml, log_category="xml_deadlock_report")])
    assert d.deadlocks == 1 and d.graphs == 1
    assert d.victims == ["process2c8f"] and d.owners == ["process3d1"]
    assert d.victim_procedures == ["Shop.dbo.PlaceOrder"]
    assert d.objects == ["Shop.dbo.Orders"] and d.indexes == ["PK_Orders"]


# --- bursts -------------------------------------------------------------------------------------


def test_burst_against_the_median_minute() -> None:
    # per minute: 1, 1, 0, 12, 1 -> median 1 -> minute 3 holds 12 >= 3 x 1 and >= 5: a burst
    minutes = [0, 1, *([3] * 12), 4]
    records = [rec("x", minute=m + 0.5, severity="error" if i % 2 else "info") for i, m in enumerate(minutes)]
    (burst,) = an.bursts(records)
    assert burst.start == T0 + timedelta(minutes=3)
    assert burst.count == 12 and burst.median == 1 and burst.ratio == 12
    assert burst.errors == 6


def test_no_burst_below_the_minimum_or_in_a_single_bucket() -> None:
    # 0, 0, 0, 4 per minute: 4 >= 3 x max(median 0, 1) but below the minimum of 5
    assert an.bursts([rec("x", minute=3.5) for _ in range(4)] + [rec("x", minute=0.1)]) == []
    # one bucket: its count is the median, never 3x itself
    assert an.bursts([rec("x", minute=0.2) for _ in range(50)]) == []


# --- view tools ---------------------------------------------------------------------------------


class FakeLogs:
    def __init__(self, records: list[LogRecord], fail: bool = False) -> None:
        self.records, self.fail = records, fail
        self.calls: list[dict[str, object]] = []

    def entities(self) -> set[str]:
        return {r.entity for r in self.records}

    def search(self, **kwargs: object) -> list[LogRecord]:
        self.calls.append(kwargs)
        if self.fail:
            raise SourceError("elastic timed out")
        wanted = kwargs["entities"]
        assert isinstance(wanted, list)
        return [r for r in self.records if r.entity in wanted]

    def summarize(self, **kwargs: object) -> LogSummary:
        raise AssertionError("the analyses under test search the logs; they never summarize them")


def ctx_for(source: FakeLogs | None, now: datetime) -> ToolContext:
    return ToolContext(
        sources=Sources(logs=source),
        now=now,
        start=now - timedelta(hours=6),
        end=now,
        history_start=now - timedelta(days=7),
    )


def test_error_signatures_tool_on_the_deadlock_world() -> None:
    source = FakeLogs(world("logs-deadlock-01").logs)
    now = datetime(2026, 4, 21, 16, 5, tzinfo=UTC)
    result = error_signatures(ctx_for(source, now), "sql-prod-02")
    (ev,) = result.evidence
    assert ev.id == "error_signatures@sql-prod-02" and ev.specialist == "logs" and ev.error is None
    assert ev.row_count == 3  # victim template, deadlock-list, log backup (the app retry is another host)
    assert source.calls[0]["start"] == now - timedelta(hours=6) and source.calls[0]["end"] == now
    deadlock = result.findings[0]
    assert deadlock.kind == "deadlock" and deadlock.evidence == [ev.id]
    text = deadlock.text
    for phrase in ("2 deadlocks on sql-prod-02", "error 1205", "dbo.UpdateInventory", "dbo.ReserveStock"):
        assert phrase in text
    assert "Inventory.dbo.StockLevels" in text and "IX_StockLevels_Sku" in text
    # the deadlock signatures are folded into the deadlock finding, not repeated
    assert [f.kind for f in result.findings] == ["deadlock", "log_events"]


def test_error_signatures_without_errors_says_so() -> None:
    now = T0 + timedelta(hours=1)
    result = error_signatures(ctx_for(FakeLogs([rec("Backup done", severity="info")]), now), "db-1")
    (finding,) = result.findings
    assert finding.kind == "no_log_errors" and finding.severity == "info"
    assert "No errors in logs for db-1" in finding.title and "Backup done" in finding.detail


def test_coded_signature_becomes_its_own_finding() -> None:
    now = T0 + timedelta(hours=1)
    records = [rec(f"The transaction log for database 'Sales{i}' is full.", minute=i) for i in range(3)]
    (finding,) = error_signatures(ctx_for(FakeLogs(records), now), "db-1").findings
    assert finding.kind == "error_signature" and finding.severity == "critical"  # 9002 is critical
    assert finding.title.startswith("SQL Server error 9002 (transaction log full) on db-1: 3 times")


def test_rows_are_capped_at_fifty() -> None:
    letters = "abcdefghij"
    records = [rec(f"event {a}{b}", severity="info") for a in letters for b in letters[:6]]  # 60 templates
    ev = error_signatures(ctx_for(FakeLogs(records), T0 + timedelta(hours=1)), "db-1").evidence[0]
    assert (len(ev.rows), ev.row_count, ev.truncated) == (50, 60, True)


@pytest.mark.parametrize("source", [FakeLogs([], fail=True), None])
def test_failing_or_missing_source_becomes_evidence(source: FakeLogs | None) -> None:
    for tool in LOGS_TOOLS:
        result = tool(ctx_for(source, T0), "db-1")
        (ev,) = result.evidence
        assert ev.error and ev.id == f"{tool.spec.name}@db-1"
        assert result.findings == []


def test_log_bursts_tool() -> None:
    records = [rec("x", minute=0.5), rec("x", minute=1.5), *[rec("boom", minute=3.5) for _ in range(12)]]
    result = log_bursts(ctx_for(FakeLogs(records), T0 + timedelta(minutes=10)), "db-1")
    (finding,) = result.findings
    assert finding.kind == "log_burst" and "Burst of 12 log messages on db-1 at 15:03 UTC" in finding.title
    quiet = log_bursts(ctx_for(FakeLogs(records[:2]), T0 + timedelta(minutes=10)), "db-1").findings
    assert [f.kind for f in quiet] == ["no_log_bursts"]


def test_tools_are_declared_in_playbook_order() -> None:
    assert [t.spec.name for t in LOGS_TOOLS] == ["error_signatures", "log_bursts"]
    assert all(
        t.spec.specialist == "logs" and "deadlock" in LOGS_TOOLS[0].spec.description for t in LOGS_TOOLS
    )


# --- PostgreSQL and MySQL deadlock reports --------------------------------------------------------

PG_DEADLOCK = (
    "ERROR:  deadlock detected\n"
    "DETAIL:  Process 28411 waits for ShareLock on transaction 99816886; blocked by process 28399.\n"
    "\tProcess 28399 waits for ShareLock on transaction 99816895; blocked by process 28411.\n"
    "\tProcess 28411: UPDATE stock_reservations SET qty = qty - $1 WHERE order_id = $2 AND sku = $3\n"
    "\tProcess 28399: UPDATE stock_reservations SET qty = qty - $1 WHERE order_id = $2 AND sku = $3\n"
    "HINT:  See server log for query details.\n"
    'CONTEXT:  while updating tuple (1822,25) in relation "stock_reservations"\n'
    "STATEMENT:  UPDATE stock_reservations SET qty = qty - $1 WHERE order_id = $2 AND sku = $3"
)
PG_UPDATE = "UPDATE stock_reservations SET qty = qty - $1 WHERE order_id = $2 AND sku = $3"


def test_postgres_deadlock_names_relation_processes_and_statement() -> None:
    second = PG_DEADLOCK.replace("28411", "28502").replace("28399", "28488")
    records = [
        rec(PG_DEADLOCK, minute=0, index="postgresql-2026.04.21"),
        rec(second, minute=5, index="postgresql-2026.04.21"),
        rec("hit a deadlock, retrying (attempt 1/3): PSQLException: ERROR: deadlock detected", minute=5.1),
    ]
    d = an.deadlock_details(records)
    assert (d.deadlocks, d.graphs, d.retries) == (2, 0, 1)
    assert d.codes == ["PostgreSQL SQLSTATE 40P01"]
    assert d.victims == ["28411", "28502"]  # the reporting process, first in DETAIL's cycle
    assert d.owners == ["28399", "28488"]
    assert d.objects == ["stock_reservations"] and d.modes == ["ShareLock"]
    assert d.resources == ["transaction lock"]
    assert d.statements == [PG_UPDATE]  # "Process N:" lines and STATEMENT: are the same text
    assert d.latest_message == second


def test_postgres_deadlock_shipped_line_by_line_is_one_deadlock() -> None:
    lines = [
        "2026-04-21 15:00:00.101 UTC [311] ERROR:  deadlock detected",
        "2026-04-21 15:00:00.101 UTC [311] DETAIL:  Process 311 waits for ShareLock on transaction 9; "
        "blocked by process 312.",
        '2026-04-21 15:00:00.101 UTC [311] CONTEXT:  while locking tuple (0,12) in relation "orders"',
        "2026-04-21 15:00:00.101 UTC [311] STATEMENT:  UPDATE orders SET paid = true WHERE id = 12",
    ]
    records = [rec(line, minute=i / 120) for i, line in enumerate(lines)]  # 0.5 s apart
    d = an.deadlock_details(records)
    assert (d.deadlocks, d.victims, d.owners, d.objects) == (1, ["311"], ["312"], ["orders"])
    assert d.statements == ["UPDATE orders SET paid = true WHERE id = 12"]
    # the DETAIL / CONTEXT / STATEMENT documents belong to the deadlock, not to separate error findings
    assert {s.category for s in an.error_signatures(records)} == {"deadlock"}
    result = error_signatures(ctx_for(FakeLogs(records), T0 + timedelta(hours=1)), "db-1")
    (finding,) = result.findings
    assert finding.kind == "deadlock" and finding.severity == "warning"  # one deadlock
    assert finding.title == "1 deadlock on db-1 (PostgreSQL SQLSTATE 40P01) involving orders at 15:00 UTC"
    assert "statement involved: UPDATE orders SET paid = true WHERE id = ?" in finding.detail  # redacted


def _innodb_lock(page: int, trx: int, waiting: bool = False) -> str:
    return (
        f"RECORD LOCKS space id 58 page no {page} n bits 72 index PRIMARY of table `shop`.`inventory` "
        f"trx id {trx} lock_mode X locks rec but not gap" + (" waiting" if waiting else "")
    )


MYSQL_DEADLOCK = "\n".join(
    [
        "------------------------",
        "LATEST DETECTED DEADLOCK",
        "------------------------",
        "2026-04-21 15:00:01 0x7f3a",
        "*** (1) TRANSACTION:",
        "TRANSACTION 421937, ACTIVE 0 sec starting index read",
        "mysql tables in use 1, locked 1",
        "LOCK WAIT 3 lock struct(s), heap size 1136, 2 row lock(s)",
        "MySQL thread id 88, OS thread handle 139, query id 5678 10.0.0.5 shop updating",
        "UPDATE inventory SET qty = qty - 1 WHERE sku = 'A-1'",
        "*** (1) HOLDS THE LOCK(S):",
        _innodb_lock(4, 421937),
        "*** (1) WAITING FOR THIS LOCK TO BE GRANTED:",
        _innodb_lock(5, 421937, waiting=True),
        "*** (2) TRANSACTION:",
        "TRANSACTION 421938, ACTIVE 0 sec starting index read",
        "MySQL thread id 89, OS thread handle 140, query id 5679 10.0.0.6 shop updating",
        "UPDATE inventory SET qty = qty - 2 WHERE sku = 'B-2'",
        "*** (2) HOLDS THE LOCK(S):",
        _innodb_lock(5, 421938),
        "*** (2) WAITING FOR THIS LOCK TO BE GRANTED:",
        _innodb_lock(4, 421938, waiting=True),
        "*** WE ROLL BACK TRANSACTION (2)",
    ]
)


def test_mysql_latest_detected_deadlock_report() -> None:
    records = [
        rec(MYSQL_DEADLOCK, minute=0, index="mysql-2026.04.21", severity="warning"),
        rec("ERROR 1213 (40001): Deadlock found when trying to get lock; try restarting transaction", 0.01),
    ]
    d = an.deadlock_details(records)
    assert (d.deadlocks, d.graphs) == (1, 1)  # one victim report; the report describes the same deadlock
    assert d.codes == ["MySQL error 1213"]
    assert d.victims == ["89"] and d.owners == ["88"]  # transaction (2) ran on thread 89
    assert d.objects == ["shop.inventory"] and d.indexes == ["PRIMARY"] and d.modes == ["X"]
    assert d.resources == ["record lock"]
    assert d.statements == [
        "UPDATE inventory SET qty = qty - 1 WHERE sku = 'A-1'",
        "UPDATE inventory SET qty = qty - 2 WHERE sku = 'B-2'",
    ]


def test_mysql_print_all_deadlocks_line_by_line() -> None:
    prefix = "2026-04-21T15:00:01.000000Z 0 [Note] [MY-012469] [InnoDB] "
    lines = [
        "2026-04-21T15:00:01.000000Z 0 [Note] [MY-012468] [InnoDB] Transactions deadlock detected, dumping"
    ]
    lines += [prefix + line for line in MYSQL_DEADLOCK.splitlines()[4:]]
    records = [rec(line, minute=0, index="mysql-error-2026.04.21", severity="info") for line in lines]
    assert an.known_codes(records[0]) == []  # InnoDB's "deadlock detected" is not PostgreSQL's 40P01
    d = an.deadlock_details(records)
    assert (d.deadlocks, d.graphs, d.victims, d.owners) == (1, 1, ["89"], ["88"])
    assert d.objects == ["shop.inventory"] and len(d.statements) == 2


def test_unparsed_deadlock_shows_the_latest_message() -> None:
    records = [rec("ERROR:  deadlock detected", minute=1), rec("ERROR:  deadlock detected", minute=3)]
    result = error_signatures(ctx_for(FakeLogs(records), T0 + timedelta(hours=1)), "db-1")
    finding = result.findings[0]
    assert finding.kind == "deadlock" and "No deadlock graph" not in finding.detail
    assert (
        finding.detail
        == 'The deadlock messages name no sessions or objects; latest: "ERROR: deadlock detected".'
    )


# --- SQL Server "Error: N, Severity: S, State: T." headers ---------------------------------------


def test_error_header_is_merged_with_its_message() -> None:
    full = "The transaction log for database 'Ledger' is full due to 'LOG_BACKUP'."
    records = []
    for minute in (0, 4, 9):
        records += [rec("Error: 9002, Severity: 17, State: 2.", minute), rec(full, minute)]
    records.append(rec("Error: 9002, Severity: 17, State: 2.", minute=30))  # no message next to it
    sigs = an.error_signatures(records)
    merged = next(s for s in sigs if s.error_header)
    assert merged.count == 3 and merged.example == full and merged.error_number == "9002"
    assert [c.code for c in merged.codes] == ["9002"]
    lone = next(s for s in sigs if not s.error_header)
    assert lone.count == 1 and lone.template == "Error: 9002, Severity: <n>, State: <n>."
    result = error_signatures(ctx_for(FakeLogs(records), T0 + timedelta(hours=1)), "db-1")
    first = result.findings[0]
    assert first.title == (
        "Transaction log full on db-1 (SQL Server error 9002): "
        "The transaction log for database 'Ledger' is full due to 'LOG_BACKUP'."
    )
    assert first.severity == "critical"
    assert first.detail.startswith(
        '3 times between 15:00 and 15:09 UTC, each logged with "Error: 9002, Severity: 17, State: 2.".'
    )
    titles = [f.title for f in result.findings]
    assert len(titles) == len(set(titles))  # nothing for the synthesizer to dedupe away


def test_read_retry_825_keeps_the_file_and_offset() -> None:
    message = (
        "A read of the file 'E:\\SQLData\\Claims.mdf' at offset 0x0012a4f7d000 succeeded after failing "
        "1 time(s) with error: incorrect checksum."
    )
    records = [rec("Error: 825, Severity: 10, State: 2.", 0, "warning"), rec(message, 0, "warning")]
    (finding,) = error_signatures(ctx_for(FakeLogs(records), T0 + timedelta(hours=1)), "db-1").findings
    assert finding.title == f"Read succeeded only after retries on db-1 (SQL Server error 825): {message}"
    assert finding.severity == "critical" and "Error: 825, Severity: 10, State: 2." in finding.detail


def test_unknown_error_header_still_names_its_number() -> None:
    failed = "BACKUP failed to complete the command BACKUP LOG Ledger."
    records = [rec("Error: 3041, Severity: 16, State: 1.", 0), rec(failed, 0)]
    records += [rec("Error: 3041, Severity: 16, State: 1.", 15), rec(failed, 15)]
    (finding,) = error_signatures(ctx_for(FakeLogs(records), T0 + timedelta(hours=1)), "db-1").findings
    assert finding.title == (
        'error on db-1 (SQL Server error 3041), 2 times between 15:00 and 15:15 UTC: "' + failed + '"'
    )


def test_header_pairs_only_within_the_same_entity_and_seconds() -> None:
    header = rec("Error: 1205, Severity: 13, State: 51.", 0)
    victim = rec("Transaction (Process ID 57) was deadlocked on lock resources. Rerun the transaction.", 0)
    other_host = rec("Transaction (Process ID 58) was deadlocked on lock resources.", 0, instance_name="db-2")
    later = rec("Transaction (Process ID 59) was deadlocked on lock resources.", 1)  # 60 s later
    assert an.pair_error_headers([header, victim, other_host, later]) == {id(victim): header}
    d = an.deadlock_details([header, victim])
    assert d.deadlocks == 1 and d.victims == ["57"]  # the header is not a second deadlock


def test_xml_deadlock_report_names_the_input_buffers() -> None:
    xml = (
        '<deadlock><victim-list><victimProcess id="process1"/></victim-list><process-list>'
        '<process id="process1"><inputbuf>\n  UPDATE dbo.Stock SET Qty = 1 WHERE Sku = 7  '
        "</inputbuf></process>"
        '<process id="process2"><inputbuf>EXEC dbo.ReserveStock @sku = 7</inputbuf></process>'
        "</process-list></deadlock>"
    )
    d = an.deadlock_details([rec(xml, log_category="xml_deadlock_report")])
    assert d.statements == ["UPDATE dbo.Stock SET Qty = 1 WHERE Sku = 7", "EXEC dbo.ReserveStock @sku = 7"]


def test_jdbc_psqlexception_is_postgres_not_sql_server() -> None:
    r = rec("Reservation failed, retrying: PSQLException: ERROR: deadlock detected")
    assert an.engine_hint(r) == "postgresql"
    assert [(c.engine, c.code) for c in an.known_codes(r)] == [("postgresql", "40P01")]


def test_same_code_count_and_span_keep_distinct_titles() -> None:
    records = [
        rec("Login failed for user 'sa'. Reason: Password did not match.", 0),
        rec("Login failed for user 'app'. Reason: Failed to open the explicitly specified database 'X'.", 0),
    ]
    findings = error_signatures(ctx_for(FakeLogs(records), T0 + timedelta(hours=1)), "db-1").findings
    titles = [f.title for f in findings]
    assert len(titles) == 2 and len(set(titles)) == 2
    assert all(
        t.startswith("SQL Server error 18456 (login failed) on db-1: once at 15:00 UTC: ") for t in titles
    )


# --- failover timelines -------------------------------------------------------------------------

OPENSRE = Path(__file__).resolve().parents[2].joinpath("shared/external/opensre-rds-postgres")


def opensre_world(prefix: str) -> tuple[World, datetime]:
    doc = yaml.safe_load(next(OPENSRE.glob(f"opensre-rds-{prefix}-*.yaml")).read_text())
    return World.model_validate(doc["world"]), datetime.fromisoformat(doc["now"].replace("Z", "+00:00"))


def test_failover_timeline_of_the_rds_events() -> None:
    w, _ = opensre_world("005")
    (t,) = an.failover_timelines(w.logs)
    assert t.entity == "payments-prod" and t.multi_az and t.events == 4
    assert t.reason == "health check failure on primary host"
    assert t.stages == [
        "failover initiated",
        "failover in progress",
        "failover completed",
        "instance available",
    ]
    assert [s.at.strftime("%H:%M:%S") for s in t.steps] == ["08:04:18", "08:04:21", "08:04:58", "08:05:04"]
    assert t.completed and t.available


def test_failover_timelines_split_and_ignore_plain_availability() -> None:
    records = [
        rec("DB instance is available.", 0, severity="info"),  # no failover before it: not a timeline
        rec("Multi-AZ instance failover started.", 10),
        rec("A Multi-AZ failover has completed.", 11),
        rec("DB instance is available.", 12, severity="info"),
        rec("DB instance is available.", 14, severity="info"),  # after the close: another story
        rec("The user requested a failover of the DB instance.", 120),  # 108 min later: a second failover
    ]
    first, second = an.failover_timelines(records)
    assert first.stages == ["failover initiated", "failover completed", "instance available"]
    assert first.events == 3 and first.reason is None and first.multi_az
    assert second.stages == ["failover initiated"] and not second.completed and not second.multi_az
    # one message can be two stages: finished the failover and available at once
    (t,) = an.failover_timelines([rec("DB instance x has finished a Multi-AZ failover and is available.")])
    assert t.stages == ["failover completed", "instance available"]


def test_error_signatures_tells_the_failover_and_checks_recovery_in_metrics() -> None:
    w, now = opensre_world("005")
    ctx = ctx_for(FakeLogs(w.logs), now)
    ctx.sources.metrics = ReplayMetrics(w.metrics)
    result = error_signatures(ctx, "payments-prod")
    assert [e.id for e in result.evidence] == [
        "error_signatures@payments-prod",
        "failover_recovery@payments-prod",
    ]
    timeline = next(f for f in result.findings if f.kind == "failover_timeline")
    assert timeline.severity == "warning"  # ended 10 minutes before now
    assert timeline.title == (
        "Multi-AZ failover on payments-prod 08:04:18–08:05:04 UTC (46 s): health check failure on primary "
        "host → failover initiated → failover in progress → failover completed → instance available"
    )
    assert "Primary evidence source: these 4 event messages" in timeline.detail
    recovered = next(f for f in result.findings if f.kind == "failover_recovered")
    # connections 312 before (median of 08:00-08:04), 0 at 08:05-08:06, back from 08:07 (287 is within 20%)
    assert recovered.title == (
        "Workload on payments-prod resumed normally after the failover: all 20 metric series are back at "
        "their pre-failover level (the 4 it hit were back by 08:07 UTC)"
    )
    assert "DatabaseConnections 312 → 0 → 310" in recovered.detail


def test_failover_that_did_not_recover_is_a_warning() -> None:
    records = [
        rec("Multi-AZ instance failover started.", 10, instance_name="db-x"),
        rec("Multi-AZ instance failover completed.", 11, instance_name="db-x"),
    ]
    conns = Series.model_validate(
        {
            "measurement": "cloudwatch_rds",
            "field": "DatabaseConnections",
            "tags": {"db_instance": "db-x"},
            "points": [
                [T0 + timedelta(minutes=m), v]
                for m, v in enumerate([300, 310, 305, 300, 302, 308, 300, 305, 300, 303, 0, 0, 0, 0])
            ],
        }
    )
    ctx = ctx_for(FakeLogs(records), T0 + timedelta(minutes=14))
    ctx.sources.metrics = ReplayMetrics([conns])
    findings = error_signatures(ctx, "db-x").findings
    timeline = next(f for f in findings if f.kind == "failover_timeline")
    assert (
        timeline.title
        == "Multi-AZ failover on db-x 15:10:00–15:11:00 UTC (60 s): failover initiated → failover completed"
    )
    assert "No message says the instance is available again" in timeline.detail
    (stuck,) = [f for f in findings if f.kind == "failover_not_recovered"]
    assert stuck.severity == "warning"
    assert stuck.title == (
        "After the failover on db-x, 1 of 1 metric series are not back at their pre-failover level: "
        "DatabaseConnections"
    )


def test_an_old_failover_is_history() -> None:
    w, now = opensre_world("012")
    (timeline,) = [f for f in error_signatures(ctx_for(FakeLogs(w.logs), now), "reporting-prod").findings
                   if f.kind == "failover_timeline"]  # fmt: skip
    # ended 08:11:58, now 13:20: 5.1 h before now -> info, and said so
    assert timeline.severity == "info" and "It ended 5.1 h before now." in timeline.detail
