"""calsync's settings: flags > CALSYNC_* environment > settings.toml in CALSYNC_HOME > defaults."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import platformdirs

GOOGLE_API_ROOT = "https://www.googleapis.com/"
MICROSOFT_GRAPH_ROOT = "https://graph.microsoft.com/v1.0"
MICROSOFT_LOGIN_ROOT = "https://login.microsoftonline.com/"
SETTINGS_FILE = "settings.toml"
ENV_PREFIX = "CALSYNC_"

Positive = Annotated[int, msgspec.Meta(ge=1)]
PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]


class SettingsError(ValueError):
    """A setting is malformed; the message is one line naming the setting and the problem."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    home: Path
    # Empty means the SQLite file calsync.db inside home (see database_url_resolved).
    database_url: str = ""
    google_api_url: str = GOOGLE_API_ROOT
    # Microsoft Graph's root and the login authority's root (the tenant is added to it).
    microsoft_graph_url: str = MICROSOFT_GRAPH_ROOT
    microsoft_login_url: str = MICROSOFT_LOGIN_ROOT
    # A CA bundle the login authority's TLS is checked against; only an emulator needs one.
    microsoft_ca_file: str | None = None
    # The Entra app (client) id that signs Microsoft accounts in; unset: no Microsoft sign-in.
    microsoft_client_id: str | None = None
    # Where Google can reach this server's webhooks; unset means polling only.
    public_url: str | None = None
    # The default user's API token; generated on first run when unset.
    api_token: str | None = None
    horizon_days: Positive = 90
    # How often calendars without a healthy push channel are polled.
    poll_interval_seconds: PositiveSeconds = 60.0
    # The safety net: a full reconcile of every synced calendar this often.
    full_reconcile_interval_hours: PositiveSeconds = 24.0
    workers: Positive = 2
    # Renew a push channel when it has less than this left.
    channel_renew_before_seconds: PositiveSeconds = 3600.0
    # A running job whose process stops renewing it for this long is taken by another worker.
    job_lease_seconds: PositiveSeconds = 300.0
    # How long a push channel is asked to live (Google's default and usual maximum: 7 days).
    channel_ttl_seconds: PositiveSeconds = 604800.0
    # Each provider's quota, which calsync keeps under by itself rather than meet its 403/429s
    # (providers.md): Google's calls per user per minute, Graph's per mailbox per 10 minutes.
    google_calls_per_minute: Positive = 600
    microsoft_calls_per_10_minutes: Positive = 10_000
    # How long those quotas' minute lasts: 60 s. Only tests and benchmarks shorten it, to meet
    # an emulator whose quota is scaled the same way within seconds.
    quota_minute_seconds: PositiveSeconds = 60.0
    # Where calls are paced: "auto" for the real providers only (an emulator has no quota
    # unless a test switches one on, and then says "on"), "on" everywhere, "off" nowhere.
    quota_pacing: Literal["auto", "on", "off"] = "auto"

    @property
    def database_url_resolved(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'calsync.db'}"

    @property
    def uses_real_google(self) -> bool:
        return self.google_api_url.rstrip("/") == GOOGLE_API_ROOT.rstrip("/")


_FIELDS: dict[str, Any] = {f.name: f for f in msgspec.structs.fields(Settings)}


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _describe(field: str, source: str) -> str:
    return env_name(field) if source == "environment" else f"{field} ({source})"


def _check_url(field: str, value: str, schemes: tuple[str, ...], source: str) -> None:
    if not value.startswith(schemes):
        raise SettingsError(
            f"{_describe(field, source)}: {value!r} is not a URL starting with "
            + " or ".join(schemes)
        )


def _convert(field: str, value: object, source: str) -> object:
    """Check one raw value against its field's type, naming the setting when it is wrong."""
    if field not in _FIELDS or field == "home":
        raise SettingsError(f"{source}: unknown setting {field!r}")
    one = msgspec.defstruct("One", [(field, _FIELDS[field].type)])
    try:
        converted = msgspec.convert({field: value}, one, strict=False)
    except msgspec.ValidationError as exc:
        problem = str(exc).split(" - at ")[0]
        raise SettingsError(f"{_describe(field, source)}: {problem} (got {value!r})") from None
    return getattr(converted, field)


def _read_file(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot be read: {exc.strerror}") from None
    if "home" in data:
        raise SettingsError(f"{path}: 'home' cannot be set inside the home's own settings file")
    return data


def load_settings(
    flags: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from flags, then environment, then the TOML file, then defaults.

    `flags` holds only what the user actually passed (None values are ignored).
    """
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    environ = os.environ if environ is None else environ

    layers: list[tuple[str, dict[str, object]]] = [
        ("flag", dict(flags)),
        (
            "environment",
            {name: environ[env_name(name)] for name in _FIELDS if env_name(name) in environ},
        ),
    ]
    raw_home = next((layer["home"] for _, layer in layers if "home" in layer), None)
    home_source = next((src for src, layer in layers if "home" in layer), "default")
    if raw_home is None:
        home = Path(platformdirs.user_data_dir("calsync"))
    elif isinstance(raw_home, str | Path) and str(raw_home).strip():
        home = Path(raw_home).expanduser()
    else:
        raise SettingsError(f"{_describe('home', home_source)}: must be a directory path")
    layers.append((str(home / SETTINGS_FILE), _read_file(home / SETTINGS_FILE)))

    values: dict[str, object] = {"home": home}
    for source, layer in reversed(layers):  # later layers lose: apply lowest priority first
        for name, raw in layer.items():
            if name == "home":
                continue
            values[name] = _convert(name, raw, source)
    sources = {name: src for src, layer in reversed(layers) for name in layer}

    settings = Settings(**values)  # type: ignore[arg-type]  # each value checked above
    if settings.database_url:
        _check_url(
            "database_url",
            settings.database_url,
            ("sqlite:", "postgresql+psycopg:", "postgresql:"),
            sources.get("database_url", "default"),
        )
    for field in ("google_api_url", "microsoft_graph_url"):
        _check_url(
            field, getattr(settings, field), ("http://", "https://"), sources.get(field, "default")
        )
    # MSAL takes only an HTTPS authority.
    _check_url(
        "microsoft_login_url",
        settings.microsoft_login_url,
        ("https://",),
        sources.get("microsoft_login_url", "default"),
    )
    if settings.public_url is not None:
        _check_url(
            "public_url",
            settings.public_url,
            ("http://", "https://"),
            sources.get("public_url", "default"),
        )
    return settings
