"""The executors' layer is reachable only from the node that runs approved actions: agents, view tools
and every other graph module never import tools.actions (the server's wiring builds the executors)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

ALLOWED = {
    "graphs/execute.py",
    "server/actions_wiring.py",
    "server/settings.py",
}  # settings: config models only


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_only_the_execute_node_and_the_wiring_import_the_executors() -> None:
    offenders = []
    for folder in ("agents", "graphs", "tools", "server", "evals"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("tools/actions/") or rel in ALLOWED:
                continue
            if any(m == "tools.actions" or m.startswith("tools.actions.") for m in imports_of(path)):
                offenders.append(rel)
    assert offenders == []
    settings_imports = {
        m for m in imports_of(ROOT / "server" / "settings.py") if m.startswith("tools.actions")
    }
    assert settings_imports == {"tools.actions.config"}
