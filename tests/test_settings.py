"""Settings: YAML file, OPSCOPILOT_* overrides, and error messages a user can act on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.settings import KnowledgeConfig, Settings, SettingsError, load_settings

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config" / "settings.yaml"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No stray OPSCOPILOT_* variable, and a working directory without config/settings.yaml."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("OPSCOPILOT_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _write(tmp_path: Path, text: str, name: str = "settings.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    s = load_settings()
    assert s.model_spec is None
    assert s.resolved_model_spec in ("none", "local")
    assert s.lookback_minutes == 360 and s.history_days == 7 and s.step_budget == 2
    assert s.model.n_ctx == 4096
    assert s.knowledge == KnowledgeConfig()
    assert s.knowledge.min_score == 0.35 and s.knowledge.top_k == 3
    assert s.sqlite_checkpoint_path == Path("var") / "checkpoints.sqlite"
    assert s.log_level == "WARNING"


def test_yaml_then_environment_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(
        tmp_path,
        "model_spec: ollama:qwen2.5:7b\n"
        "model:\n  n_ctx: 8192\n  max_tokens: 500\n"
        "lookback_minutes: 60\n"
        "knowledge:\n  min_score: 0.5\n  top_k: 5\n"
        "checkpoint_url: postgresql://ops@db/ops\n"
        "log_level: debug\n",
    )
    s = load_settings(path)
    assert (s.model_spec, s.model.n_ctx, s.model.max_tokens) == ("ollama:qwen2.5:7b", 8192, 500)
    assert (s.lookback_minutes, s.knowledge.min_score, s.knowledge.top_k) == (60, 0.5, 5)
    assert s.sqlite_checkpoint_path is None and s.log_level == "DEBUG"

    monkeypatch.setenv("OPSCOPILOT_MODEL__N_CTX", "2048")
    monkeypatch.setenv("OPSCOPILOT_KNOWLEDGE__MIN_SCORE", "0.4")
    monkeypatch.setenv("OPSCOPILOT_MODEL_SPEC", "openai:gpt-4o-mini")
    s = load_settings(path)
    assert s.model.n_ctx == 2048  # env wins
    assert s.model.max_tokens == 500  # the rest of the section still comes from the file
    assert s.knowledge.min_score == 0.4 and s.knowledge.top_k == 5
    assert s.model_spec == s.resolved_model_spec == "openai:gpt-4o-mini"


def test_config_file_from_environment_and_default_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "step_budget: 4\n", "elsewhere.yaml")
    monkeypatch.setenv("OPSCOPILOT_CONFIG", str(path))
    assert load_settings().step_budget == 4
    monkeypatch.delenv("OPSCOPILOT_CONFIG")
    (tmp_path / "config").mkdir()
    _write(tmp_path / "config", "step_budget: 5\n")
    assert load_settings().step_budget == 5
    assert load_settings(path).step_budget == 4  # the argument wins over the default location
    monkeypatch.setenv("OPSCOPILOT_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(SettingsError, match=r"missing\.yaml \(from OPSCOPILOT_CONFIG\) does not exist"):
        load_settings()


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "lookback_minutes: 30\nlookback_hours: 5\nmodel:\n  n_ctxx: 100\n")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    message = str(info.value)
    assert f"unknown setting lookback_hours ({path} line 2)" in message
    assert f"unknown setting model.n_ctxx ({path} line 4)" in message
    assert "lookback_minutes" in message  # the keys that are allowed there


def test_unknown_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCOPILOT_LOOKBACK", "30")
    with pytest.raises(SettingsError, match=r"OPSCOPILOT_LOOKBACK\..*OPSCOPILOT_LOOKBACK_MINUTES"):
        load_settings()
    monkeypatch.delenv("OPSCOPILOT_LOOKBACK")
    monkeypatch.setenv("OPSCOPILOT_KNOWLEDGE__TOPK", "4")
    with pytest.raises(
        SettingsError, match=r"knowledge\.topk \(environment variable OPSCOPILOT_KNOWLEDGE__TOPK\)"
    ):
        load_settings()


def test_bad_value_names_key_value_allowed_and_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "model:\n  temperature: 0.2\n  n_ctx: 100\nknowledge:\n  min_score: 1.5\n")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    message = str(info.value)
    assert f"model.n_ctx = 100 ({path} line 3)" in message
    assert ">= 512 and <= 32768" in message
    assert f"knowledge.min_score = 1.5 ({path} line 5)" in message
    assert ">= 0.0 and <= 1.0" in message
    assert "Traceback" not in message

    monkeypatch.setenv("OPSCOPILOT_MODEL__N_CTX", "lots")
    with pytest.raises(
        SettingsError, match=r"model\.n_ctx = 'lots' \(environment variable OPSCOPILOT_MODEL__N_CTX\)"
    ):
        load_settings(path)


@pytest.mark.parametrize(
    ("name", "value", "phrase"),
    [
        ("OPSCOPILOT_MODEL_SPEC", "gpt-4", "none, local, ollama:NAME or openai:NAME"),
        ("OPSCOPILOT_LOG_LEVEL", "chatty", "DEBUG, INFO, WARNING, ERROR or CRITICAL"),
        ("OPSCOPILOT_CHECKPOINT_URL", "mysql://x", "postgresql://"),
        ("OPSCOPILOT_STEP_BUDGET", "11", ">= 0 and <= 10"),
    ],
)
def test_bad_environment_values(monkeypatch: pytest.MonkeyPatch, name: str, value: str, phrase: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert f"= {value!r} (environment variable {name})" in message
    assert phrase in message


def test_section_in_one_variable_must_be_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSCOPILOT_MODEL", "{n_ctx: 1")
    with pytest.raises(SettingsError, match="OPSCOPILOT_MODEL must hold a JSON object"):
        load_settings()


def test_secret_values_are_not_echoed(tmp_path: Path) -> None:
    path = _write(tmp_path, "model:\n  openai_api_key: [sk-123]\n")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert "model.openai_api_key = '***'" in str(info.value)
    assert "sk-123" not in str(info.value)


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "lookback_minutes: 60\nmodel:\n  n_ctx: [1\nstep_budget: 2\n")
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    assert re.search(rf"{re.escape(str(path))} line \d+, column \d+: invalid YAML", str(info.value))
    tab = _write(tmp_path, "model:\n\tn_ctx: 1\n", "tab.yaml")
    with pytest.raises(SettingsError, match=rf"{re.escape(str(tab))} line 2"):
        load_settings(tab)
    listing = _write(tmp_path, "- a\n- b\n", "list.yaml")
    with pytest.raises(SettingsError, match="top level must be a mapping"):
        load_settings(listing)


def test_knowledge_store_is_one_of_path_or_url(tmp_path: Path) -> None:
    path = _write(tmp_path, "knowledge:\n  chroma_path: /tmp/x\n  chroma_url: http://chroma:8000\n")
    with pytest.raises(SettingsError, match="set chroma_path or chroma_url, not both"):
        load_settings(path)


def test_example_file_documents_every_key_with_its_default() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert load_settings(EXAMPLE) == Settings()  # everything is commented out
    uncommented = re.sub(r"(?m)^# ( *[a-z0-9_]+:.*)$", r"\1", text)
    data_keys = set(re.findall(r"(?m)^ *([a-z0-9_]+):", uncommented))
    expected = set(Settings.model_fields)
    expected |= set(Settings.model_fields["model"].annotation.model_fields)  # type: ignore[union-attr]
    expected |= set(KnowledgeConfig.model_fields)
    assert expected <= data_keys, f"not documented: {sorted(expected - data_keys)}"
    copy = Path("uncommented.yaml")  # in tmp_path (the fixture changed directory)
    copy.write_text(uncommented, encoding="utf-8")
    assert load_settings(copy) == Settings()  # the documented values are the defaults
