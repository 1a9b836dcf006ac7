"""Log analyzers and the logs view tools, against hand-worked expectations and the example worlds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from tools.logs import analysis as an
from tools.logs.views import LOGS_TOOLS, error_signatures, log_bursts
from tools.sources import SourceError, Sources, ToolContext
from tools.world import LogRecord, World

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
