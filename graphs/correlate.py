"""Cross-source reasoning, in one place: link findings from every specialist into causal chains.

A link joins a cause to an effect when they concern the same entity or a dependency edge (a logged
host:port, a blocked session's client host, a named instance), come in a plausible order in time,
and match a known cause -> effect relation: an open transaction -> the blocking chain -> the blocked
statements, lock waits and the clients' timeouts; a change -> what moved right after it; a full log
or disk -> the errors it causes; an exhausted pool -> the request errors; a query -> the CPU it holds;
writes -> the storage they fill; a failover -> refused connections; a sick dependency -> its callers'
failures. The root of the best-supported chain leads the answer; symptoms are shown as symptoms;
a chain with nothing in common with it is reported as an independent second fault.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from graphs.causal_relations import Facts, Resolve, co_moving, is_problem, key, relation
from tools.base import Finding


class Link(BaseModel):
    cause: str  # finding keys
    effect: str
    why: str  # the relation in words
    same: bool = False  # the same fact seen twice (e.g. the head blocker's open transaction), not an effect


class Chain(BaseModel):
    root: str
    members: list[str]  # root first, then breadth first along the links
    links: list[Link]
    support: tuple[
        int, int, int
    ]  # (explains any symptom, worst severity, symptoms): higher is better supported


class Correlation(BaseModel):
    chains: list[Chain] = Field(default_factory=list)  # best supported first (problems only)
    causes: dict[str, list[Link]] = Field(default_factory=dict)  # effect key -> the links into it

    @property
    def root(self) -> str | None:
        return self.chains[0].root if self.chains and self.chains[0].links else None

    def role(self, k: str) -> str:
        """root | same | symptom | independent | '' (for the findings list)."""
        if not self.chains:
            return ""
        if k == self.chains[0].root and self.chains[0].links:
            return "root"
        links = self.causes.get(k, [])
        if any(not link.same for link in links):
            return "symptom"
        if links:
            return "same"
        if any(c.root == k for c in self.chains[1:]) and self.chains[0].links:
            return "independent"
        return ""


# --- chains -------------------------------------------------------------------------------------


def correlate(
    findings: list[Finding], resolve: Resolve, now: datetime, replicas: list[tuple[str, str]] | None = None
) -> Correlation:
    """Link the findings (deduplicated, any order) into chains; the best-supported first. `replicas`:
    (replica, primary) pairs the request stated."""
    facts = Facts(findings, resolve, replicas)
    keys = [key(f) for f in findings]
    links: list[Link] = []
    for c, kc in zip(findings, keys, strict=True):
        for e, ke in zip(findings, keys, strict=True):
            if kc == ke:
                continue
            if (found := relation(c, e, facts, now)) is not None:
                links.append(Link(cause=kc, effect=ke, why=found[0], same=found[1]))
    causes: dict[str, list[Link]] = {}
    for link in links:
        if not _reaches(links, link.effect, link.cause):  # no cycles
            causes.setdefault(link.effect, []).append(link)
    kept = [link for ls in causes.values() for link in ls]
    by_key = dict(zip(keys, findings, strict=True))
    # metric series on an entity that already has a root move with it: likely effects, linked weakly
    for root in [k for k in keys if k not in causes and any(link.cause == k for link in kept)]:
        if root in causes:  # became an effect of an earlier root in this loop
            continue
        for ke in keys:
            if (
                ke != root
                and ke not in causes
                and co_moving(by_key[root], by_key[ke], now)
                and is_problem(by_key[ke])
            ):
                link = Link(
                    cause=root,
                    effect=ke,
                    why="moved on the same instance at the same time (likely an effect)",
                )
                causes.setdefault(ke, []).append(link)
                kept.append(link)
    chains = []
    for k, f in zip(keys, findings, strict=True):
        if k in causes or not (is_problem(f) or any(link.cause == k for link in kept)):
            continue
        members, chain_links = _walk(k, kept)
        worst = max(by_key[m].severity.rank for m in members)
        effects = sum(not link.same for link in chain_links)
        chains.append(
            Chain(root=k, members=members, links=chain_links, support=(int(effects > 0), worst, effects))
        )
    chains.sort(key=lambda c: (c.support, by_key[c.root].severity.rank), reverse=True)
    return Correlation(chains=chains, causes=causes)


def _reaches(links: list[Link], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        k = todo.pop()
        for link in links:
            if link.cause == k and link.effect not in seen:
                if link.effect == goal:
                    return True
                seen.add(link.effect)
                todo.append(link.effect)
    return False


def _walk(root: str, links: list[Link]) -> tuple[list[str], list[Link]]:
    members, out, todo = [root], [], [root]
    while todo:
        k = todo.pop(0)
        for link in links:
            if link.cause == k and link.effect not in members:
                members.append(link.effect)
                out.append(link)
                todo.append(link.effect)
    return members, out


# --- rendering ----------------------------------------------------------------------------------


def chain_lines(
    corr: Correlation, findings: list[Finding], number: dict[str, int], refs: dict[str, list[str]]
) -> list[str]:
    """The best chain link by link (root first, each with its evidence refs), then independent faults."""
    if corr.root is None:
        return []
    by_key = {key(f): f for f in findings}

    def cite(k: str) -> str:
        r = refs.get(k) or []
        return f" [{', '.join(r)}]" if r else ""

    best = corr.chains[0]
    root = by_key[best.root]
    lines = [
        "Causal chain (root cause first; each link cites its evidence):",
        f"  Root cause (finding {number[best.root]}): {root.title}{cite(best.root)}",
    ]
    depth = {best.root: 0}
    for link in best.links:
        level = depth.get(link.cause, 0) + 1
        depth[link.effect] = level
        f = by_key[link.effect]
        arrow = "=" if link.same else "→"
        label = "same fact" if link.same else "symptom"
        lines.append(
            f"  {'  ' * level}{arrow} {label} (finding {number[link.effect]}): "
            f"{f.title}{cite(link.effect)} — {link.why}"
        )
    shown = set(best.members)
    for other in corr.chains[1:]:
        if other.root in shown or not is_problem(by_key[other.root]):
            continue
        f = by_key[other.root]
        n = len([m for m in other.members if m not in shown]) - 1
        extra = f", with {n} symptom{'s' if n != 1 else ''}" if n > 0 else ""
        lines.append(
            f"  Independent second fault, unrelated to this chain (finding {number[other.root]}): "
            f"{f.title}{cite(other.root)}{extra}"
        )
        shown |= set(other.members)
    return lines


def role_words(corr: Correlation, k: str, number: dict[str, int]) -> str:
    """How the findings list labels a finding: "root cause", "symptom of 1", "independent fault"."""
    role = corr.role(k)
    if role in ("symptom", "same"):
        causes = [number[link.cause] for link in corr.causes.get(k, []) if link.cause in number]
        word = "symptom of" if role == "symptom" else "same as"
        return f"{word} {', '.join(str(n) for n in sorted(set(causes)))}" if causes else role
    return {"root": "root cause", "independent": "independent fault"}.get(role, "")


__all__ = ["Chain", "Correlation", "Link", "chain_lines", "correlate", "key", "role_words"]
