"""docs/readonly-logins.md against what the query packs read and what scripts/services.d grants: every
system view, function or SHOW a pack's dataset uses is named in that dataset's row of the doc, every
object the doc names is read, and the test logins get exactly the documented privileges."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools.sql.packs import mssql, mysql, postgresql
from tools.sql.packs.base import QueryPack

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs/readonly-logins.md").read_text(encoding="utf-8")
SECTIONS = {"postgresql": "## PostgreSQL", "mysql": "## MySQL 8 and MariaDB", "mssql": "## SQL Server"}
OBJECTS = {
    "postgresql": re.compile(r"\b(pg_[a-z_]+)\b"),
    "mysql": re.compile(
        r"\b((?:information_schema|performance_schema)\.[A-Za-z_]+)\b|\b(SHOW [A-Z ]*[A-Z])\b"
    ),
    "mssql": re.compile(r"\b((?:tempdb\.)?sys\.[a-z_]+)\b"),
}
GRANTS = re.compile(
    r"(VIEW [A-Z ]+STATE|VIEW ANY DEFINITION|BINLOG MONITOR|SLAVE MONITOR|REPLICATION CLIENT|PROCESS|"
    r"pg_read_all_stats|pg_monitor)"
)
PACKS: dict[str, QueryPack] = {"postgresql": postgresql.PACK, "mysql": mysql.PACK, "mssql": mssql.PACK}


def _objects(engine: str, text: str) -> set[str]:
    return {next(g for g in m.groups() if g).strip() for m in OBJECTS[engine].finditer(text)}


def read_by_pack(engine: str) -> dict[str, set[str]]:
    """dataset -> the objects its statements read (string literals and comments left out)."""
    out: dict[str, set[str]] = {}
    for q in PACKS[engine].queries:
        sql = re.sub(r"'(?:[^']|'')*'", "''", q.sql)
        sql = re.sub(r"--[^\n]*", "", sql)
        out.setdefault(q.dataset, set()).update(_objects(engine, sql))
    return out


def named_in_doc(engine: str) -> dict[str, set[str]]:
    """dataset -> the objects in the 'Reads' column of the engine's table (backticked names only)."""
    start = DOC.index(SECTIONS[engine])
    following = [DOC.index(s, start + 1) for s in SECTIONS.values() if s in DOC[start + 1 :]]
    end = min([*following, DOC.index("## What the copilot never needs")])
    out: dict[str, set[str]] = {}
    for line in DOC[start:end].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("Dataset", "---"):
            continue
        quoted = ", ".join(re.findall(r"`([^`]+)`", cells[1]))
        out[cells[0]] = _objects(engine, quoted.replace("()", ""))
    return out


@pytest.mark.parametrize("engine", list(SECTIONS))
def test_every_dataset_of_the_pack_has_a_row_naming_exactly_what_it_reads(engine: str) -> None:
    read, doc = read_by_pack(engine), named_in_doc(engine)
    assert set(read) == set(doc), f"{engine}: datasets in the pack {sorted(read)} vs the doc {sorted(doc)}"
    for dataset in read:
        missing, stale = read[dataset] - doc[dataset], doc[dataset] - read[dataset]
        assert not missing, f"{engine} {dataset}: the pack reads {sorted(missing)}, the doc does not say so"
        assert not stale, f"{engine} {dataset}: the doc names {sorted(stale)}, the pack does not read them"


def _privileges(text: str, on: str) -> set[str]:
    found: set[str] = set()
    for m in re.finditer(r"GRANT\s+([A-Z ,_]+?)\s+ON\s+" + re.escape(on), text):
        found |= {p.strip() for p in m.group(1).split(",")}
    return found


def test_the_mariadb_test_login_gets_the_documented_privileges() -> None:
    script = (ROOT / "scripts/services.d/mariadb.sh").read_text(encoding="utf-8")
    section = DOC[DOC.index(SECTIONS["mysql"]) : DOC.index(SECTIONS["mssql"])]
    mariadb_block = section[section.index("-- MariaDB 10.5.9") : section.index("-- MySQL 8:")]
    assert _privileges(script, "*.*") == _privileges(mariadb_block, "*.*") == {
        "PROCESS", "BINLOG MONITOR", "SLAVE MONITOR",
    }  # fmt: skip
    grant = "GRANT SELECT ON performance_schema.*"
    assert grant in script and grant in section


def test_the_postgresql_test_login_gets_the_documented_role() -> None:
    script = (ROOT / "scripts/services.d/postgres.sh").read_text(encoding="utf-8")
    assert re.search(r"GRANT pg_monitor TO", script) and "GRANT pg_monitor TO opscopilot_ro;" in DOC
    assert "default_transaction_read_only = on" in script


def test_the_packs_requirements_name_only_documented_grants() -> None:
    """What doctor tells an operator to grant (PackQuery.requires) is in the doc."""
    for engine, pack in PACKS.items():
        section = DOC[DOC.index(SECTIONS[engine]) :]
        for q in pack.queries:
            for grant in GRANTS.findall(q.requires):
                assert grant.strip() in section, f"{engine}: {grant} ({q.dataset} needs it) is not documented"
