"""The estate a deployment watches: typed configuration of every live source.

Secrets are `SecretStr` fields here. They are never written in the settings file: the settings
layer (server/settings.py) resolves ``{env: NAME}`` or ``{file: PATH, key: K}`` references into
these fields, so nothing below server/ reads the environment. Secret values never appear in
reprs, logs or error messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from tools.world import Engine


class _Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SqlActionsLogin(_Cfg):
    """The privileged login kill_session uses on one instance; never used by the read-only tools.

    Grants it needs (docs/actions-logins.md): PostgreSQL membership in pg_signal_backend and
    pg_read_all_stats (to see whose session it is before ending it); MySQL / MariaDB PROCESS and
    CONNECTION ADMIN (or SUPER before MariaDB 10.5.2 / MySQL 8.0); SQL Server
    ALTER ANY CONNECTION."""

    username: str
    password: SecretStr | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="login and statement limit")


class SqlInstanceConfig(_Cfg):
    """One database instance, reached over ODBC with a read-only login."""

    name: str = Field(description="the name operators use (matched in questions and alerts)")
    engine: Engine
    connection_string: str | None = Field(
        default=None, description="ODBC connection string WITHOUT the password (PWD comes from `password`)"
    )
    driver: str | None = Field(default=None, description="ODBC driver name or path to the driver .so")
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    database: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    odbc_options: dict[str, str] = Field(
        default_factory=dict,
        description="extra ODBC keywords, e.g. Encrypt: 'yes', TrustServerCertificate: 'no'",
    )
    query_timeout_s: float = Field(default=3.0, gt=0, le=60, description="per-query limit")
    max_connections: int = Field(default=2, ge=1, le=2, description="pool size per instance (at most 2)")
    breaker_failures: int = Field(
        default=3, ge=1, le=20, description="consecutive failures that open the circuit"
    )
    breaker_reset_s: float = Field(
        default=30.0, gt=0, le=3600, description="open -> half-open after this long"
    )
    use_query_store: bool = Field(default=True, description="mssql: read Query Store where it is enabled")
    read_only_intent: bool = Field(
        default=False,
        description="mssql: connect with ApplicationIntent=ReadOnly (set it for a readable secondary)",
    )
    actions_login: SqlActionsLogin | None = Field(
        default=None, description="the separate privileged login for kill_session (never the read-only one)"
    )

    @model_validator(mode="after")
    def _reachable(self) -> SqlInstanceConfig:
        if not self.connection_string and not (self.driver and self.host):
            raise ValueError("give either connection_string, or driver and host")
        return self


class ElasticConfig(_Cfg):
    """An Elasticsearch or OpenSearch endpoint holding logs."""

    name: str = "logs"
    url: str
    flavor: Literal["elasticsearch", "opensearch"] = Field(
        default="elasticsearch",
        description="opensearch sends plain JSON (it rejects the ES compatibility media type)",
    )
    index_patterns: list[str] = Field(default_factory=lambda: ["*-logs-*"])
    timestamp_field: str = "@timestamp"
    message_field: str = "message"
    severity_field: str = "severity"
    entity_fields: list[str] = Field(
        default_factory=lambda: ["instance_name", "host", "host.name", "service"]
    )
    username: str | None = None
    password: SecretStr | None = None
    api_key: SecretStr | None = None
    verify_tls: bool = True
    timeout_s: float = Field(default=5.0, gt=0, le=120)


class InfluxConfig(_Cfg):
    """InfluxDB 2 (Flux: token, org, bucket) or InfluxDB 1.x (InfluxQL: database)."""

    name: str = "influx"
    url: str
    version: Literal[1, 2] = 2
    token: SecretStr | None = None
    org: str | None = None
    bucket: str | None = None
    database: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(default=5.0, gt=0, le=120)

    @model_validator(mode="after")
    def _complete(self) -> InfluxConfig:
        if self.version == 2 and not (self.org and self.bucket):
            raise ValueError("InfluxDB 2 needs org and bucket (and a token)")
        if self.version == 1 and not self.database:
            raise ValueError("InfluxDB 1.x needs database")
        return self


class PrometheusConfig(_Cfg):
    name: str = "prometheus"
    url: str
    bearer_token: SecretStr | None = None
    step_s: int = Field(default=60, ge=1, le=3600)
    timeout_s: float = Field(default=5.0, gt=0, le=120)


class SnmpDeviceConfig(_Cfg):
    """A switch, router or firewall polled over SNMP (v2c community or v3 user)."""

    name: str
    address: str
    port: int = Field(default=161, ge=1, le=65535)
    version: Literal["2c", "3"] = "2c"
    community: SecretStr | None = None
    user: str | None = None
    auth_protocol: Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"] | None = None
    auth_key: SecretStr | None = None
    priv_protocol: Literal["DES", "AES", "AES192", "AES256"] | None = None
    priv_key: SecretStr | None = None
    timeout_s: float = Field(default=2.0, gt=0, le=30)
    retries: int = Field(default=1, ge=0, le=5)
    sample_interval_s: float = Field(default=10.0, ge=0.5, le=600, description="gap between the two samples")

    @model_validator(mode="after")
    def _credentials(self) -> SnmpDeviceConfig:
        if self.version == "2c" and self.community is None:
            raise ValueError("SNMP v2c needs community")
        if self.version == "3" and not self.user:
            raise ValueError("SNMP v3 needs user")
        return self


class ServiceNowConfig(_Cfg):
    url: str
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    page_size: int = Field(default=100, ge=1, le=10000)


class JiraConfig(_Cfg):
    url: str
    email: str | None = None
    api_token: SecretStr | None = None
    projects: list[str] = Field(default_factory=list)
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class PagerDutyConfig(_Cfg):
    url: str = "https://api.pagerduty.com"
    token: SecretStr | None = None
    service_ids: list[str] = Field(default_factory=list)
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class EstateConfig(_Cfg):
    """Every live source of a deployment. Empty by default: then only replay scenarios work."""

    sql: list[SqlInstanceConfig] = Field(default_factory=list)
    elastic: list[ElasticConfig] = Field(default_factory=list)
    influx: list[InfluxConfig] = Field(default_factory=list)
    prometheus: list[PrometheusConfig] = Field(default_factory=list)
    snmp: list[SnmpDeviceConfig] = Field(default_factory=list)
    servicenow: ServiceNowConfig | None = None
    jira: JiraConfig | None = None
    pagerduty: PagerDutyConfig | None = None
    knowledge_seed: Path | None = Field(default=None, description="YAML list of past incidents to index")
    aliases: dict[str, list[str]] = Field(
        default_factory=dict,
        description="a service -> the instances, hosts or CIs it runs on, e.g. {checkout: [sql-prod-01]}",
    )

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for alias, targets in v.items():
            if not alias.strip() or any(ch.isspace() for ch in alias.strip()):
                raise ValueError(f"alias {alias!r}: a service name is one word, e.g. checkout, payments-api")
            cleaned = [t.strip() for t in targets]
            if not cleaned or any(not t for t in cleaned):
                raise ValueError(f"alias {alias!r}: give the names it runs on as a YAML list")
            if alias.strip() in cleaned:
                raise ValueError(f"alias {alias!r} names itself among what it runs on")
        return {a.strip(): list(dict.fromkeys(t.strip() for t in ts)) for a, ts in v.items()}

    @model_validator(mode="after")
    def _unique_names(self) -> EstateConfig:
        for kind, items in (("sql", self.sql), ("snmp", self.snmp)):
            names = [i.name for i in items]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{kind}: duplicate names {dupes}")
        return self

    @property
    def empty(self) -> bool:
        return not (
            self.sql
            or self.elastic
            or self.influx
            or self.prometheus
            or self.snmp
            or self.servicenow
            or self.jira
            or self.pagerduty
        )
