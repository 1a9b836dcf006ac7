"""Grounding of the model's explanation: every sentence is checked against the report before it is shown.

A sentence is kept only when
- every number it states (with its unit) appears in the findings or evidence it cites (or, citing
  nothing, anywhere in the findings and evidence);
- every host, instance, session or query it names is known to the report's findings and evidence;
- every ``[E#]`` it cites exists and is evidence about what the sentence talks about (its entity,
  and the topic of the finding that cites it);
- it does not call a problem healthy or a healthy report a problem;
- an action it recommends is the analyzers' proposal: the same action on the same target;
- it says something the findings say (its content words are found in the report).
Unknown ``[E#]`` references are removed first; repeated sentences and a sentence cut off by the
token limit are dropped; the text ends at a sentence boundary.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from graphs.sentences import REF, split_sentences
from graphs.synthesize import Report
from tools.base import ProposedAction, Severity

MAX_SENTENCES = 3


@dataclass
class Grounded:
    """The kept text and what happened to each sentence."""

    text: str
    kept: list[str] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (sentence, why)
    surplus: list[str] = field(default_factory=list)  # supported sentences beyond the limit


# --- tokens ----------------------------------------------------------------------------------

UNITS = (
    r"%|ms|s|sec|secs|seconds?|min|mins|minutes?|h|hrs?|hours?|days?|weeks?|"
    r"[kmgtp]i?b|[kmgt]bit/s|gbit/s|mbit/s|points?/day|x|times|rows?|executions?"
)
# A number that is not part of a name (sql-prod-01, E1, INC-2031, 0x7A11) and its unit, if any.
NUMBER = re.compile(
    rf"(?<![\w.\-/:#@])(\d+(?:[.,]\d+)*)(?![\w\-]*[A-Za-z][\w\-]*\d)(?:\s?({UNITS})\b)?",
    re.I,
)
# Host and instance names: lower-case words joined by - or _ with a digit somewhere (sql-prod-01,
# db-host-02, cart-api-01, shop-api-1), or any word after "host", "instance", "server"...
HOSTLIKE = re.compile(r"(?<![\w.@-])([a-z][a-z0-9]*(?:[-_][a-z0-9]+)+)(?![\w-])", re.I)
CUED_NAME = re.compile(
    r"\b(?:host|instance|server|node|device|switch|router|database server|replica|primary)\s+"
    r"([A-Za-z][\w.-]*\d[\w.-]*|[a-z]+(?:[-_][a-z0-9]+)+)",
    re.I,
)
SESSION_IDS = re.compile(
    r"\b(?:sessions?|spids?|pids?|threads?|process(?:es)?|head blockers?(?:\(s\))?|blocked by)\s+"
    r"((?:\d+(?:\s*,\s*|\s+and\s+|\s*/\s*|\s+))*\d+)",
    re.I,
)
QUERY_IDS = re.compile(r"\b(0x[0-9A-F]{6,}|[0-9a-f]{16,})\b", re.I)
INCIDENT = re.compile(r"\b([A-Z]{2,10}-\d{2,})\b")

NEGATION = re.compile(
    r"\b(no|not|none|nothing|never|without|neither|nor|zero|0|isn't|aren't|wasn't|doesn't|don't|"
    r"didn't|cannot|can't|free of)\b",
    re.I,
)
PROBLEM = re.compile(
    r"\b(near(?:ly)? full|full|fill(?:ing)? up|running out|exhaust\w*|block(?:ed|ing|s|er)?|deadlock\w*|"
    r"slow\w*|regress\w*|high|spik\w+|saturat\w+|fail\w*|error\w*|timeouts?|timing out|time[sd]? out|"
    r"down|outage|degrad\w+|leak\w*|bottleneck\w*|contention|stuck|hung|crash\w*|problem\w*|issues?|"
    r"incident|attack\w*|brute|compromis\w+|vulnerab\w+|unpatched|patch\w*|cause[sd]?|root cause|"
    r"due to|because)\b",
    re.I,
)
HEALTHY = re.compile(
    r"\b(healthy|no (?:issues?|problems?|anomal\w+)|nothing (?:abnormal|wrong|unusual)|"
    r"looks? (?:fine|good|normal|ok)|all (?:good|clear)|operating normally|working (?:fine|normally))\b",
    re.I,
)
# A verb recommending a change, and the analyzer action it would be.
ACTION_VERBS: dict[str, str] = {
    r"kill\w*|terminat\w*|end the session|cancel the session": "kill_session",
    r"restart\w*|reboot\w*|bounce|recycle": "restart_service",
    r"fail\s?over|fail it over|switch over|promote": "failover",
    r"scale\w* (?:out|up)|add (?:more )?(?:nodes|replicas|instances)": "scale_out",
    r"run (?:the )?playbook": "run_playbook",
    r"page (?:the )?on-?call|escalate": "page_oncall",
    r"open (?:a )?ticket|create (?:a )?ticket|file (?:a )?ticket": "create_ticket",
    r"drop\w*|delet\w*|truncat\w*|shut\w* ?down|disabl\w*|revok\w*|roll ?back|purg\w*|"
    r"remov\w*|clear\w*|flush\w*|rebuild\w*|resiz\w*|extend\w*|grow\w*|increas\w*|add (?:an )?index": "",
}
ACTION = re.compile("|".join(f"(?P<a{i}>\\b(?:{p})\\b)" for i, p in enumerate(ACTION_VERBS)), re.I)
_ACTION_NAMES = list(ACTION_VERBS.values())

_STOP_WORDS = """
the a an and or of on in at to for from by with is are was were be been being this that these those
it its as into than then there their they them which who whom what when where while also only more most
very much many some any each other such can could should would may might must will shall do does did
has have had having not no nor but if so about after before over under again further once here both
all same own just now one two three first next likely most probably appears seems suggests indicates
shows show showing means mean check checking investigate investigating review look looking monitor
consider recommend recommended recommends approval approve approved human proposed propose proposes
waiting wait please note current currently recent recently reported report finding findings
evidence explanation answer cause caused causing because due reason reasons root problem issue
issues main primary following based data analyzer analyzers step steps action actions confirm
confirmed see seen past before similar incident incidents resolve resolved fix fixed
looks healthy normal normally fine good found checked abnormal everything within appear appears
operating working running currently right moment time
"""
STOP = frozenset(_STOP_WORDS.split())
WORD = re.compile(r"[a-z][a-z0-9_]{3,}", re.I)


def _stem(word: str) -> str:
    return word.lower()[:6]


def _numbers(text: str) -> list[tuple[str, str]]:
    """(value, unit) pairs; values normalised (1,234 -> 1234), units lower-cased and singular."""
    out = []
    for m in NUMBER.finditer(text):
        value = m.group(1)
        if re.fullmatch(r"\d{1,3}(?:,\d{3})+", value):
            value = value.replace(",", "")
        value = value.replace(",", ".")
        unit = (m.group(2) or "").lower()
        unit = {"secs": "s", "sec": "s", "second": "s", "seconds": "s", "mins": "min", "minute": "min"}.get(
            unit, unit
        )
        unit = {"minutes": "min", "hours": "h", "hour": "h", "hrs": "h", "hr": "h", "times": "x"}.get(
            unit, unit
        )
        unit = unit.rstrip("s") if len(unit) > 3 else unit
        out.append((value, unit))
    return out


def _same_value(said: str, known: str) -> bool:
    try:
        a, b = float(said), float(known)
    except ValueError:
        return said == known
    decimals = len(said.split(".")[1]) if "." in said else 0
    return a == b or round(b, decimals) == a


def _hosts(text: str) -> set[str]:
    text = INCIDENT.sub(" ", text)  # INC-2031 is an incident, checked as one
    names = {m.group(1).lower() for m in HOSTLIKE.finditer(text) if re.search(r"\d", m.group(1))}
    names |= {m.group(1).lower().rstrip(".") for m in CUED_NAME.finditer(text)}
    return names


def _session_ids(text: str) -> set[str]:
    return {n for m in SESSION_IDS.finditer(text) for n in re.findall(r"\d+", m.group(1))}


def _keywords(text: str) -> set[str]:
    return {_stem(w) for w in WORD.findall(text) if w.lower() not in STOP}


# --- the report's facts ----------------------------------------------------------------------


@dataclass
class Facts:
    """What the report knows, indexed for the checks."""

    refs: dict[str, str]  # E# -> text of the evidence and of the findings citing it
    ref_entity: dict[str, set[str]]  # E# -> entities it is about
    all_text: str
    hosts: set[str]
    entities: set[str]
    sessions: set[str]
    queries: set[str]
    incidents: set[str]
    healthy: bool
    critical: bool
    unchecked: bool  # something asked or expected was not seen (Report.coverage): no all-clear
    proposals: list[ProposedAction]
    request: str

    @classmethod
    def of(cls, report: Report) -> Facts:
        refs: dict[str, str] = {}
        ref_entity: dict[str, set[str]] = {}
        for e in report.evidence:
            ref = str(e.get("ref"))
            ident = str(e.get("id", ""))
            refs[ref] = f"{ident.split('@')[0].replace('_', ' ')} {e.get('summary', '')}"
            if "@" in ident:
                ref_entity.setdefault(ref, set()).add(ident.split("@", 1)[1].lower())
        entities = set()
        texts = []
        for f in report.findings:
            text = f"{f.entity}: {f.kind.replace('_', ' ')} {f.title}. {f.detail}"
            texts.append(text)
            entities.add(f.entity.lower())
            for ref in f.evidence_refs:
                refs[ref] = refs.get(ref, "") + " " + text
                ref_entity.setdefault(ref, set()).add(f.entity.lower())
        for p in report.proposals:
            texts.append(f"{p.action} {p.target} {p.reason}")
        cited = {c.incident_id.upper() for c in report.citations}
        all_text = " ".join([*texts, *refs.values()])
        problems = [
            f for f in report.findings if f.severity is not Severity.INFO and f.kind != "similar_incident"
        ]
        return cls(
            refs=refs,
            ref_entity=ref_entity,
            all_text=all_text,
            hosts=_hosts(all_text) | entities | {n for s in ref_entity.values() for n in s},
            entities=entities | {n for s in ref_entity.values() for n in s},
            sessions=_session_ids(all_text),
            queries={q.lower() for q in QUERY_IDS.findall(all_text)},
            incidents={i.upper() for i in INCIDENT.findall(all_text)} | cited,
            healthy=not problems,
            critical=any(f.severity is Severity.CRITICAL for f in report.findings),
            unchecked=any(
                "not checked" in line.lower() or line.startswith("Could not read") for line in report.coverage
            ),
            proposals=list(report.proposals),
            request=report.request,
        )

    def scope(self, refs: list[str]) -> str:
        """The text a sentence may draw its numbers from: what it cites (else the whole report),
        and the request itself (an alert's threshold, a time the user gave)."""
        cited = [self.refs[r] for r in refs if r in self.refs]
        return " ".join([*cited, self.request]) if cited else f"{self.all_text} {self.request}"


# --- the checks ------------------------------------------------------------------------------


def _check_numbers(sentence: str, refs: list[str], facts: Facts) -> str | None:
    bare = REF.sub(" ", sentence)
    bare = INCIDENT.sub(" ", bare)
    said = _numbers(bare)
    if not said:
        return None
    known = _numbers(facts.scope(refs))
    for value, unit in said:
        if any(_same_value(value, v) and (u == unit or not unit) for v, u in known):
            continue
        if not unit and any(_same_value(value, v) for v, _ in _numbers(facts.all_text)):
            continue  # an id-like bare number (a session) is checked by the name check
        return f"number {value}{(' ' + unit) if unit else ''} is not in the cited findings or evidence"
    return None


def _check_names(sentence: str, facts: Facts) -> str | None:
    for host in _hosts(REF.sub(" ", sentence)):
        if host not in facts.hosts:
            return f"{host} is not known to the report"
    for sid in _session_ids(sentence):
        if sid not in facts.sessions:
            return f"session {sid} is not in the findings"
    for qid in QUERY_IDS.findall(sentence):
        if qid.lower() not in facts.queries:
            return f"query {qid} is not in the findings"
    for inc in INCIDENT.findall(sentence):
        if inc.upper() not in facts.incidents:
            return f"incident {inc} is not in the findings"
    return None


def _check_refs(sentence: str, refs: list[str], facts: Facts) -> str | None:
    if not refs:
        return None
    named = {h for h in _hosts(sentence) if h in facts.entities}
    words = _keywords(REF.sub(" ", sentence)) - {_stem(n) for n in named}
    for ref in refs:
        about = facts.ref_entity.get(ref, set())
        if named and about and not named & about:
            return f"[{ref}] is evidence about {', '.join(sorted(about))}, not {', '.join(sorted(named))}"
        if not words:
            continue
        own = len(words & _keywords(facts.refs.get(ref, "")))
        best_other = max(
            (len(words & _keywords(t)) for r, t in facts.refs.items() if r not in refs), default=0
        )
        if own == 0 and best_other >= 2:
            return f"[{ref}] is not evidence for this claim"
    return None


def _check_polarity(sentence: str, facts: Facts) -> str | None:
    for m in HEALTHY.finditer(sentence) if facts.critical or facts.unchecked else ():
        if not re.search(
            r"\b(not|no longer|never|isn't|aren't|wasn't)\s+(?:\w+\s+)?$", sentence[: m.start()], re.I
        ):
            if facts.critical:
                return "calls the system healthy while a finding is critical"
            return "calls the system healthy while something asked about was not checked"
    if facts.healthy:
        for m in PROBLEM.finditer(sentence):
            before = sentence[max(0, m.start() - 40) : m.start()]
            if not NEGATION.search(before) and not HEALTHY.search(sentence):
                return f"describes a problem ({m.group(0)!r}) in a report where nothing abnormal was found"
    return None


def _target_named(sentence: str, proposal: ProposedAction) -> bool:
    """The sentence names the proposal's target: its id (session 57) and, if it names a host, its host."""
    ref = proposal.target_ref
    if ref is not None:
        entity, ident = ref.entity, ref.id
    else:  # a display label such as "sql-prod-01 session 57"
        words = proposal.target.split()
        entity = words[0] if words else ""
        ident = words[-1] if len(words) > 1 and re.fullmatch(r"[\w.-]*\d[\w.-]*", words[-1]) else None
    text = sentence.lower()
    if ident is not None and not re.search(rf"(?<![\w.]){re.escape(ident.lower())}(?![\w.])", text):
        return False
    named_hosts = _hosts(sentence)
    return not named_hosts or entity.lower() in named_hosts


RECOMMENDING = re.compile(
    r"\b(should|must|needs? to|recommend\w*|suggest\w*|advis\w*|consider|try|can|could|would|let's|"
    r"please|best to|is to|are to|next step|then|immediately|first|we|you)\b[^.]{0,30}$",
    re.I,
)


def _recommends(sentence: str, m: re.Match[str]) -> bool:
    """The verb is advice (imperative, or after "should", "consider"...), not a description
    ("the version store has been growing", "the session was killed")."""
    before = sentence[: m.start()]
    if re.search(r"\b(do not|don't|never|not|avoid|without)\b[^.]{0,30}$", before, re.I):
        return False  # advice against acting
    imperative = re.fullmatch(r"\W*(?:(?:then|first|next|now|please|immediately|so),?\s+)?", before, re.I)
    after_clause = re.search(r"(?:[,:;]|\band|\bor|\bthen)\s*$", before, re.I)  # "As the log says, kill ..."
    return bool(imperative or after_clause or RECOMMENDING.search(before))


def _check_action(sentence: str, facts: Facts) -> str | None:
    for m in ACTION.finditer(sentence):
        if m.lastgroup is None or not _recommends(sentence, m):
            continue
        action = _ACTION_NAMES[int(m.lastgroup[1:])]
        if not action:
            return f"recommends {m.group(0)!r}, which no analyzer proposed"
        matching = [p for p in facts.proposals if p.action == action]
        if not matching:
            return f"recommends {action}, which no analyzer proposed"
        if not any(_target_named(sentence, p) for p in matching):
            targets = "; ".join(p.target for p in matching)
            return f"recommends {action} on another target than the proposal ({targets})"
    return None


def _check_support(sentence: str, facts: Facts) -> str | None:
    words = _keywords(REF.sub(" ", sentence))
    if len(words) < 2:
        return None
    asked = _keywords(facts.request)
    if len(words & asked) / len(words) >= 0.7:
        return "repeats the request"
    known = _keywords(facts.all_text) | {_stem(h) for h in facts.hosts} | asked
    found = len(words & known)
    if found / len(words) < 0.5:
        missing = sorted(w for w in words if w not in known)[:4]
        return f"says what the findings do not ({', '.join(missing)})"
    return None


CHECKS = ("names", "refs", "numbers", "polarity", "action", "support")


def check_sentence(sentence: str, facts: Facts) -> str | None:
    """Why ``sentence`` may not be shown, or None when the report supports it."""
    refs = REF.findall(sentence)
    for check in (
        lambda: _check_names(sentence, facts),
        lambda: _check_refs(sentence, refs, facts),
        lambda: _check_numbers(sentence, refs, facts),
        lambda: _check_polarity(sentence, facts),
        lambda: _check_action(sentence, facts),
        lambda: _check_support(sentence, facts),
    ):
        why = check()
        if why is not None:
            return why
    return None


def ground(text: str, report: Report, max_sentences: int = MAX_SENTENCES) -> Grounded:
    """Keep the sentences of ``text`` that the report supports (at most ``max_sentences``)."""
    facts = Facts.of(report)
    known = set(facts.refs)
    cleaned = REF.sub(lambda m: m.group(0) if m.group(1) in known else "", text or "")
    cleaned = re.sub(r"[ \t]+([.,;])", r"\1", cleaned)
    out = Grounded(text="")
    seen: set[str] = set()
    sentences, fragment = split_sentences(cleaned)
    if fragment:
        out.dropped.append((fragment, "cut off mid-sentence"))
    for sentence in sentences:
        key = re.sub(r"\W+", " ", REF.sub("", sentence).lower()).strip()
        if not key:
            continue
        if key in seen:
            out.dropped.append((sentence, "repeats an earlier sentence"))
            continue
        seen.add(key)
        why = check_sentence(sentence, facts)
        if why is not None:
            out.dropped.append((sentence, why))
        elif len(out.kept) >= max_sentences:
            out.surplus.append(sentence)  # supported, but the answer stays short
        else:
            out.kept.append(sentence)
    out.text = " ".join(out.kept).strip()
    return out
