"""Hub settings: a YAML configuration file, overridden by ``HUB_*`` environment variables."""

from __future__ import annotations

import re
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.errors import ConfigurationError


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override``'s keys, merged into nested mappings rather than replacing them."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class ServerSettings(BaseModel):
    """How the hub presents itself to clients."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(
        "http://localhost:8000",
        description="Public URL of the hub, without trailing slash; used in every link",
    )
    title: str = "Urban twin data hub"
    description: str = "Federated OGC API over the sources of a Dutch municipality"
    default_limit: int = Field(10, ge=1)
    max_limit: int = Field(1000, ge=1)
    native_geojson: bool = Field(
        True,
        description="Write GeoJSON items and item documents in the hub; false: through pygeoapi",
    )
    max_scan_features: int = Field(
        50_000,
        ge=1,
        description="Most features the hub reads from a source to filter or sort locally",
    )


# Absolute IRIs only: a relative or blank value would make the catalogue's RDF unparsable.
_IRI = re.compile(r"^[a-z][a-z0-9+.-]*:[^\s<>\"{}|\\^`]+$", re.I)
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")


class CatalogueSettings(BaseModel):
    """The organisation that runs the hub, as the DCAT catalogue names it, and the defaults the
    catalogue uses where a registration says nothing."""

    model_config = ConfigDict(extra="forbid")

    publisher: str | None = Field(
        None, description="Name of the organisation that runs the hub; the server title when absent"
    )
    publisher_uri: str | None = Field(
        None, description="URI of that organisation (its TOOI identifier, say); minted when absent"
    )
    contact_name: str | None = Field(None, description="Contact point of the hub; the publisher when absent")
    contact_email: str | None = None
    contact_url: str | None = None
    licence: str = Field(
        "http://publications.europa.eu/resource/authority/licence/CC0",
        description="Licence of the hub's APIs, and of sources whose registration names none",
    )
    theme: list[str] = Field(
        default_factory=lambda: ["http://publications.europa.eu/resource/authority/data-theme/REGI"],
        min_length=1,
        description="Theme URIs or labels of the services, and of sources whose registration names none",
    )
    language: str = Field(
        "nl", pattern=r"^[a-z]{2}$", description="ISO 639-1 language of titles and descriptions"
    )

    @field_validator("publisher_uri", "contact_url", "licence")
    @classmethod
    def _absolute_iri(cls, value: str | None) -> str | None:
        if value is not None and not _IRI.match(value):
            raise ValueError(f"{value!r} is not an absolute URI")
        return value

    @field_validator("contact_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value


class AuthSettings(BaseModel):
    """The OpenID Connect provider whose bearer tokens the hub accepts."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(description="The provider's issuer identifier; tokens must carry it as `iss`")
    audience: str = Field(description="The hub's audience; tokens must list it in `aud`")
    discovery_url: str | None = Field(
        None, description="OpenID discovery document; `<issuer>/.well-known/openid-configuration` when absent"
    )
    jwks_url: str | None = Field(None, description="JWKS location; from the discovery document when absent")
    roles_claim: str = Field(
        "roles", description="Dotted path of the claim holding the caller's roles, e.g. `realm_access.roles`"
    )
    scope_claim: str = Field(
        "scope", description="Claim holding the granted scopes (space-separated or a list)"
    )
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "PS256", "ES256"],
        min_length=1,
        description="Accepted signature algorithms; asymmetric only",
    )
    leeway_seconds: int = Field(30, ge=0, le=300, description="Clock skew tolerated on `exp` and `nbf`")
    jwks_cache_seconds: float = Field(300.0, ge=0, description="How long fetched signing keys are reused")
    jwks_refresh_floor_seconds: float = Field(
        10.0, ge=0, description="Least time between two fetches for a token naming an unknown key"
    )
    steward_role: str = Field("steward", description="Role that may use the management API")

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        refused = [alg for alg in value if not re.match(r"^(RS|PS|ES)(256|384|512)$|^EdDSA$", alg)]
        if refused:
            raise ValueError(f"only asymmetric signature algorithms are accepted, not {refused}")
        return value


class ProcessingActivity(BaseModel):
    """A registered processing activity (purpose) under which protected fields may be read."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", description="What requests name as `purpose`")
    uri: str = Field(description="URI of the activity in the register of processing activities")
    name: str = Field(min_length=1)
    legal_basis: str | None = Field(None, description="The legal ground, as the register states it")
    roles: list[str] = Field(default_factory=list, description="Roles that may process under this activity")
    retention_category: str | None = Field(
        None, description="Selectielijst gemeenten 2020 category of the audit records, e.g. `12.1.8`"
    )
    retention_days: int | None = Field(
        None, ge=1, description="Retention of the audit records; the category's period when absent"
    )

    @field_validator("uri")
    @classmethod
    def _absolute_uri(cls, value: str) -> str:
        if not _IRI.match(value):
            raise ValueError(f"{value!r} is not an absolute URI")
        return value


class AuditSettings(BaseModel):
    """The audit trail (Logboek Dataverwerkingen): where it is kept and how subjects are hidden."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True,
        description="Log every processing; off only for measurements, never where data is not open",
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the audit database; the catalogue's when absent"
    )
    pseudonym_key_env: str = Field(
        "HUB_AUDIT_PSEUDONYM_KEY",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Environment variable holding the key that pseudonymises data subject ids",
    )
    default_activity: str | None = Field(
        None,
        description="Processing activity of requests that name no purpose; a built-in one when absent",
    )
    default_retention_category: str = Field(
        "12.1.8",
        description="Selectielijst category of the built-in activity's records (access control: 6 months)",
    )
    write_timeout: float = Field(
        5.0, gt=0, le=120, description="Seconds a request waits for its record to be stored before 503"
    )
    fsync: bool = Field(
        True,
        description=(
            "A response waits until its record is on disk; false: until the database has it (a killed "
            "hub loses nothing, a failing machine may lose the last records)"
        ),
    )
    otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP traces URL (e.g. http://collector:4318/v1/traces) records are copied to"
    )
    otlp_headers_env: dict[str, str] = Field(
        default_factory=dict, description="HTTP header name to the environment variable holding its value"
    )


class CorsSettings(BaseModel):
    """Which browser origins (web viewers) may call the hub."""

    model_config = ConfigDict(extra="forbid")

    allow_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the hub from a browser; `*` for any"
    )
    max_age: int = Field(600, ge=0, description="Seconds a browser may cache a preflight answer")


class Settings(BaseSettings):
    """Everything the hub needs to start; sources come from the ``sources`` list of the file."""

    model_config = SettingsConfigDict(env_prefix="HUB_", env_nested_delimiter="__", extra="forbid")

    database_url: str = Field("sqlite:///hub.db", description="SQLAlchemy URL of the catalogue database")
    config_file: Path | None = Field(None, description="YAML configuration file that was read")
    server: ServerSettings = Field(default_factory=ServerSettings)
    catalogue: CatalogueSettings = Field(default_factory=CatalogueSettings)
    sources: list[dict[str, Any]] = Field(
        default_factory=list, description="Source registrations seeded at start-up"
    )
    probe_interval: float = Field(
        300.0, ge=0, description="Seconds between background health probes (0: never)"
    )
    catalogue_poll_interval: float = Field(
        2.0, gt=0, description="Seconds between checks of the catalogue for changes by others"
    )
    probe_on_start: bool = Field(True, description="Probe seeded sources in the background")
    allowed_networks: list[IPv4Network | IPv6Network] = Field(
        default_factory=list,
        description=(
            "CIDR ranges of loopback, private, link-local or other non-public addresses that "
            "registered sources may reach; none by default (see docs/configuration.md)"
        ),
    )
    auth: AuthSettings | None = Field(
        None,
        description="Token validation; without it every caller is anonymous and sees open collections only",
    )
    processing_activities: list[ProcessingActivity] = Field(
        default_factory=list, description="Registered processing activities (purposes)"
    )
    cors: CorsSettings = Field(default_factory=CorsSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)

    @classmethod
    def load(cls, config_file: Path | str | None = None, **overrides: Any) -> Settings:
        """Read the YAML file (if any); ``HUB_*`` variables and ``overrides`` take precedence."""
        from_file: dict[str, Any] = {}
        if config_file is not None:
            path = Path(config_file)
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except OSError as exc:
                raise ConfigurationError(f"cannot read configuration file {path}: {exc}") from exc
            except yaml.YAMLError as exc:
                raise ConfigurationError(f"{path} is not valid YAML: {exc}") from exc
            if not isinstance(loaded, dict):
                raise ConfigurationError(f"{path} must hold a mapping at the top level")
            from_file = loaded
            from_file["config_file"] = path.resolve()
        try:
            from_env = cls()
            # only what the environment really set, so HUB_AUDIT__FSYNC keeps the file's other
            # audit keys
            merged = _deep_merge(from_file, from_env.model_dump(exclude_unset=True))
            settings = cls(**_deep_merge(merged, overrides))
        except ValidationError as exc:
            raise ConfigurationError(f"invalid configuration: {exc}") from exc
        return settings

    def resolve_path(self, value: str | Path) -> Path:
        """A path from the configuration, relative to the configuration file's folder."""
        path = Path(value)
        if path.is_absolute() or self.config_file is None:
            return path
        return (self.config_file.parent / path).resolve()
