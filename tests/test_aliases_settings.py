"""`estate.aliases` in the settings: a service mapped to what it runs on, validated, and handed to the
live sources so that the inventory relates the service to its instances."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.runtime import live_sources
from server.settings import SettingsError, load_settings
from tools.inventory import Inventory, collect_service_map


@pytest.fixture(autouse=True)
def _no_settings_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("OPSCOPILOT_"):
            monkeypatch.delenv(name)


ESTATE = """
estate:
  sql:
    - name: sql-prod-01
      engine: mssql
      connection_string: "DRIVER={{ODBC Driver 18 for SQL Server}};SERVER=127.0.0.1,1"
  aliases:
{aliases}
"""


def _load(tmp_path: Path, aliases: str):  # type: ignore[no-untyped-def]
    cfg = tmp_path / "settings.yaml"
    cfg.write_text(ESTATE.format(aliases=aliases))
    return load_settings(cfg)


def test_aliases_reach_the_live_sources_and_the_inventory(tmp_path: Path) -> None:
    settings = _load(tmp_path, "    checkout: [sql-prod-01, ' sql-prod-01', payments-db]")
    assert settings.estate.aliases == {"checkout": ["sql-prod-01", "payments-db"]}
    sources = live_sources(settings)
    assert sources.aliases == {"checkout": ["sql-prod-01", "payments-db"]}
    inv = Inventory()
    inv.add("sql-prod-01", "sql_instance")
    collect_service_map(inv, sources)  # no connection is needed for this
    assert inv.names["checkout"] == {"service"}
    assert inv.related("checkout") == {"sql-prod-01": "configured alias"}  # payments-db: known to no source


@pytest.mark.parametrize(
    ("aliases", "message"),
    [
        ("    checkout: []", "alias 'checkout': give the names it runs on as a YAML list"),
        ("    checkout: [checkout]", "alias 'checkout' names itself"),
        ("    'check out': [sql-prod-01]", "a service name is one word"),
        ("    checkout: sql-prod-01", "estate.aliases.checkout"),
    ],
)
def test_a_bad_alias_names_the_key_and_what_to_write(tmp_path: Path, aliases: str, message: str) -> None:
    with pytest.raises(SettingsError) as err:
        _load(tmp_path, aliases)
    assert message in str(err.value) and "settings.yaml line" in str(err.value)
