"""Evidence as pictures: the chart-ready data the console draws and the CLI sketches.

Built once when an investigation finishes, from the graph state's findings (with their analyzer
data) and evidence (with their rows), and stored with the report:

- `series`: a metric series with its baseline band, the detected step, and the forecast line up
  to the threshold (metric findings carry the points they were judged on);
- `blocking_tree`: head blocker, the sessions it blocks (directly or through others) and their waits;
- `wait_profile`: wait time by cause, as bars;
- `interfaces`: each interface's utilisation and error/discard rates from two SNMP polls.

Each picture names the report finding (`finding`, its number) and evidence ref (`E1`) it shows.
"""

from __future__ import annotations

import json
import statistics
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from server.text import untrusted

MAD_SCALE = 1.4826
BAND_Z = 3.5  # the robust z the metrics analyzer calls anomalous: inside the band is normal
MAX_ROWS = 50  # evidence rows kept per evidence for the console's tables
MAX_CELL = 300  # characters per text cell
SERIES_KINDS = {"step_change", "metric_anomaly", "metric_high", "rising_trend", "brief_excursion"}
FORECAST_KINDS = {"days_until_full", "capacity_exhausted"}


class Band(BaseModel):
    """Where the baseline says the series normally lies (median ± 3.5 robust standard deviations)."""

    low: float
    high: float
    median: float
    until: str  # the band covers the points before this time (the step, or the latest point)


class Step(BaseModel):
    at: str
    before: float
    after: float


class ForecastLine(BaseModel):
    """From the latest point at the fitted slope to where it meets the threshold."""

    from_ts: str
    from_value: float
    to_ts: str
    to_value: float
    threshold: float
    eta: str | None


class SeriesPicture(BaseModel):
    kind: Literal["series"] = "series"
    finding: int
    evidence_ref: str | None
    entity: str
    title: str
    label: str
    unit: str | None = None
    points: list[tuple[str, float]]
    baseline: Band | None = None
    step: Step | None = None
    forecast: ForecastLine | None = None
    threshold: float | None = None


class TreeNode(BaseModel):
    session: int
    who: str = ""  # login@host
    program: str = ""
    database: str = ""
    state: str = ""
    wait_type: str | None = None
    wait_ms: float = 0.0
    wait_resource: str | None = None
    sql: str = ""
    cycle_to: int | None = None  # in a deadlock: the session this one waits for, already shown above
    children: list[TreeNode] = Field(default_factory=list)


class BlockingTree(BaseModel):
    kind: Literal["blocking_tree"] = "blocking_tree"
    finding: int
    evidence_ref: str | None
    entity: str
    head: TreeNode
    blocked: int
    depth: int
    max_wait_ms: float
    deadlock: bool = False


class WaitBar(BaseModel):
    cause: str
    ms: float
    share_pct: float
    types: list[str]


class WaitProfile(BaseModel):
    kind: Literal["wait_profile"] = "wait_profile"
    finding: int
    evidence_ref: str | None
    entity: str
    total_ms: float
    benign_ms: float = 0.0
    bars: list[WaitBar]


class InterfaceRate(BaseModel):
    name: str
    state: str = ""
    speed_bps: float | None = None
    in_util_pct: float | None = None
    out_util_pct: float | None = None
    in_error_rate: float | None = None
    out_error_rate: float | None = None
    discard_rate: float | None = None
    problems: list[str] = Field(default_factory=list)


class InterfaceRates(BaseModel):
    kind: Literal["interfaces"] = "interfaces"
    finding: int
    evidence_ref: str | None
    entity: str
    interfaces: list[InterfaceRate]


Picture = Annotated[SeriesPicture | BlockingTree | WaitProfile | InterfaceRates, Field(discriminator="kind")]


# --- building -----------------------------------------------------------------------------------


def _numbers(report: dict[str, Any]) -> dict[tuple[str, str, str], int]:
    return {(f["kind"], f["entity"], f["title"]): f["number"] for f in report.get("findings", [])}


def _iso(value: Any) -> str:
    return value if isinstance(value, str) else datetime.fromisoformat(str(value)).isoformat()


def _band(values: list[float], until: str) -> Band | None:
    if len(values) < 3:
        return None
    med = statistics.median(values)
    dev = [abs(v - med) for v in values]
    scale = MAD_SCALE * statistics.median(dev) or 1.2533 * statistics.fmean(dev)
    return Band(low=med - BAND_Z * scale, high=med + BAND_Z * scale, median=med, until=until)


def series_picture(f: dict[str, Any], number: int, ref: str | None) -> SeriesPicture | None:
    data = f.get("data") or {}
    raw = data.get("points") or []
    if len(raw) < 2:
        return None
    points = [(str(t), float(v)) for t, v in raw]
    pic = SeriesPicture(
        finding=number,
        evidence_ref=ref,
        entity=f["entity"],
        title=f["title"],
        label=str(data.get("series", "")),
        unit=data.get("unit"),
        points=points,
    )
    values = [v for _, v in points]
    if f["kind"] == "step_change" and data.get("at"):
        at = _iso(data["at"])
        pic.step = Step(at=at, before=float(data["before"]), after=float(data["after"]))
        before = [v for t, v in points if _ts(t) < _ts(at)]
        pic.baseline = _band(before, at)
    elif f["kind"] in SERIES_KINDS:
        pic.baseline = _band(values[:-1], points[-1][0])
    if f["kind"] in FORECAST_KINDS and data.get("threshold") is not None:
        pic.threshold = float(data["threshold"])
        if data.get("eta") and not data.get("reached"):
            pic.forecast = ForecastLine(
                from_ts=_iso(data.get("latest_ts") or points[-1][0]),
                from_value=float(data.get("latest", values[-1])),
                to_ts=_iso(data["eta"]),
                to_value=pic.threshold,
                threshold=pic.threshold,
                eta=_iso(data["eta"]),
            )
    return pic


def _ts(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _node(s: dict[str, Any]) -> TreeNode:
    who = "@".join(x for x in (s.get("login_name"), s.get("host_name")) if x)
    return TreeNode(
        session=int(s["session_id"]),
        who=who,
        program=str(s.get("program_name") or ""),
        database=str(s.get("database_name") or ""),
        state=str(s.get("state") or ""),
        wait_type=s.get("wait_type"),
        wait_ms=float(s.get("wait_time_ms") or 0.0),
        wait_resource=s.get("wait_resource"),
        sql=untrusted(str(s.get("sql_text") or ""), 160),
    )


def blocking_tree(f: dict[str, Any], number: int, ref: str | None) -> BlockingTree | None:
    data = f.get("data") or {}
    if "head_session_id" not in data:
        return None
    head_id = int(data["head_session_id"])
    head = _node(data["head"]) if data.get("head") else TreeNode(session=head_id, state="not in the snapshot")
    blocked = [b for b in data.get("blocked", []) if "session_id" in b]
    shown = {head_id}

    def grow(node: TreeNode) -> None:
        for b in sorted(blocked, key=lambda b: -float(b.get("wait_time_ms") or 0)):
            if int(b.get("blocked_by", -1)) != node.session:
                continue
            child = _node(b)
            if child.session in shown:  # a deadlock cycle back to a session already drawn
                node.children.append(child.model_copy(update={"cycle_to": child.session}))
                continue
            shown.add(child.session)
            node.children.append(child)
            grow(child)

    grow(head)
    return BlockingTree(
        finding=number,
        evidence_ref=ref,
        entity=f["entity"],
        head=head,
        blocked=len(blocked),
        depth=int(data.get("depth") or 0),
        max_wait_ms=float(data.get("max_wait_ms") or 0.0),
        deadlock=bool(data.get("deadlock")),
    )


def wait_profile(f: dict[str, Any], number: int, ref: str | None) -> WaitProfile | None:
    data = f.get("data") or {}
    waits = data.get("waits") or []
    if not waits:
        return None
    by_cause: dict[str, WaitBar] = {}
    for w in waits:
        cause = str(w.get("label") or w.get("cause") or "other")
        bar = by_cause.setdefault(cause, WaitBar(cause=cause, ms=0.0, share_pct=0.0, types=[]))
        bar.ms += float(w.get("wait_time_ms") or 0.0)
        bar.share_pct += float(w.get("share_pct") or 0.0)
        bar.types.append(str(w.get("wait_type", "")))
    bars = sorted(by_cause.values(), key=lambda b: -b.ms)
    for b in bars:
        b.share_pct = round(b.share_pct, 1)
    return WaitProfile(
        finding=number,
        evidence_ref=ref,
        entity=f["entity"],
        total_ms=float(data.get("total_wait_ms") or sum(b.ms for b in bars)),
        benign_ms=float(data.get("benign_wait_ms") or 0.0),
        bars=bars,
    )


FIELDS = tuple(InterfaceRate.model_fields)


def interface_rates(rows: list[dict[str, Any]], number: int, ref: str | None, entity: str) -> InterfaceRates:
    return InterfaceRates(
        finding=number,
        evidence_ref=ref,
        entity=entity,
        interfaces=[
            InterfaceRate.model_validate({k: r[k] for k in FIELDS if r.get(k) is not None})
            for r in rows
            if r.get("name")
        ],
    )


def pictures(values: dict[str, Any], report: dict[str, Any]) -> list[Picture]:
    """Every picture the report's findings and evidence allow, in finding order."""
    numbers = _numbers(report)
    refs = {e["id"]: e["ref"] for e in report.get("evidence", [])}
    rows = {e["id"]: e.get("rows") or [] for e in values.get("evidence", [])}
    out: list[Picture] = []
    drawn_devices: set[str] = set()
    for f in values.get("findings", []):
        number = numbers.get((f.get("kind"), f.get("entity"), f.get("title")))
        if number is None:
            continue
        ev_id = next(iter(f.get("evidence") or []), None)
        ref = refs.get(ev_id) if ev_id else None
        kind = f["kind"]
        pic: Picture | None = None
        if kind in SERIES_KINDS or kind in FORECAST_KINDS:
            pic = series_picture(f, number, ref)
        elif kind == "blocking_chain":
            pic = blocking_tree(f, number, ref)
        elif kind == "wait_profile":
            pic = wait_profile(f, number, ref)
        elif ev_id and ev_id.startswith("interface_health@") and ev_id not in drawn_devices:
            drawn_devices.add(ev_id)  # one picture per device, on its first finding
            pic = interface_rates(rows.get(ev_id, []), number, ref, f["entity"])
        if pic is not None:
            out.append(pic)
    return sorted(out, key=lambda p: p.finding)


def _cell(v: Any) -> Any:
    """Numbers stay numbers; text (log lines, SQL, tags: data, not our words) is flattened and cut."""
    if isinstance(v, str):
        return untrusted(v, MAX_CELL)
    if isinstance(v, dict | list):
        return untrusted(json.dumps(v, default=str, ensure_ascii=False), MAX_CELL)
    return v


def evidence_rows(values: dict[str, Any], report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The rows of each evidence by its ref (E1 ...), at most MAX_ROWS, long text cut."""
    refs = {e["id"]: e["ref"] for e in report.get("evidence", [])}
    out: dict[str, list[dict[str, Any]]] = {}
    for e in values.get("evidence", []):
        ref = refs.get(e.get("id"))
        if ref and ref not in out:
            out[ref] = [{k: _cell(v) for k, v in r.items()} for r in (e.get("rows") or [])[:MAX_ROWS]]
    return out


def for_report(values: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """What the store keeps next to the report for the console: pictures and evidence rows."""
    if not report:
        return {}
    return {
        "pictures": [p.model_dump(mode="json") for p in pictures(values, report)],
        "evidence_rows": evidence_rows(values, report),
    }
