"""Settings: flags beat the environment, which beats settings.toml, which beats the defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import GOOGLE_API_ROOT, SettingsError, load_settings


def _write(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "settings.toml").write_text(text)


def test_defaults_put_everything_in_home(tmp_path: Path) -> None:
    settings = load_settings({"home": str(tmp_path)}, environ={})
    assert settings.home == tmp_path
    assert settings.horizon_days == 90
    assert settings.google_api_url == GOOGLE_API_ROOT
    assert settings.public_url is None
    assert settings.database_url_resolved == f"sqlite:///{tmp_path / 'calsync.db'}"


def test_home_defaults_to_the_platform_data_dir() -> None:
    import platformdirs

    assert load_settings({}, environ={}).home == Path(platformdirs.user_data_dir("calsync"))


def test_flags_beat_environment_beat_file_beat_defaults(tmp_path: Path) -> None:
    _write(tmp_path, "horizon_days = 30\nworkers = 3\npoll_interval_seconds = 15\n")
    environ = {"CALSYNC_HOME": str(tmp_path), "CALSYNC_HORIZON_DAYS": "60", "CALSYNC_WORKERS": "5"}
    settings = load_settings({"horizon_days": 7}, environ=environ)
    assert settings.horizon_days == 7  # flag
    assert settings.workers == 5  # environment
    assert settings.poll_interval_seconds == 15  # file
    assert settings.full_reconcile_interval_hours == 24  # default


def test_home_from_the_environment_chooses_the_file(tmp_path: Path) -> None:
    _write(tmp_path / "a", 'public_url = "https://a.example"\n')
    settings = load_settings({}, environ={"CALSYNC_HOME": str(tmp_path / "a")})
    assert settings.public_url == "https://a.example"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CALSYNC_HORIZON_DAYS": "ninety"}, "CALSYNC_HORIZON_DAYS: Expected `int`"),
        ({"CALSYNC_HORIZON_DAYS": "0"}, "CALSYNC_HORIZON_DAYS: Expected `int` >= 1"),
        ({"CALSYNC_WORKERS": "-1"}, "CALSYNC_WORKERS"),
        ({"CALSYNC_DATABASE_URL": "mysql://x"}, "CALSYNC_DATABASE_URL: 'mysql://x' is not a URL"),
        ({"CALSYNC_GOOGLE_API_URL": "ftp://x"}, "CALSYNC_GOOGLE_API_URL"),
        ({"CALSYNC_POLL_INTERVAL_SECONDS": "0"}, "CALSYNC_POLL_INTERVAL_SECONDS"),
    ],
)
def test_malformed_environment_names_the_setting(
    tmp_path: Path, environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"home": str(tmp_path)}, environ=environ)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("horizon_days = [", "not valid TOML"),
        ('horizon_days = "soon"', "horizon_days ("),
        ("colour = 1", "unknown setting 'colour'"),
        ('home = "/elsewhere"', "'home' cannot be set"),
    ],
)
def test_malformed_file_names_the_file_and_setting(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path, text)
    with pytest.raises(SettingsError) as caught:
        load_settings({"home": str(tmp_path)}, environ={})
    assert message in str(caught.value)
    assert str(tmp_path / "settings.toml") in str(caught.value)


def test_cli_reports_a_bad_setting_in_one_line_and_exits_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "calsync_server.cli", "--home", str(tmp_path), "db", "upgrade"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "CALSYNC_HORIZON_DAYS": "lots"},
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "CALSYNC_HORIZON_DAYS" in lines[0]
    assert not (tmp_path / "calsync.db").exists()  # nothing was touched


def test_cli_help_lists_only_commands_that_exist() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "calsync_server.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "db" in result.stdout
