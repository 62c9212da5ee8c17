"""Dependencies point one way: shared loads no Textual or Litestar, the server loads no Textual."""

from __future__ import annotations

import json
import subprocess
import sys


def _modules_after_import(package: str) -> set[str]:
    """Top-level modules loaded after importing `package` and every module inside it."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        f"root = importlib.import_module({package!r})\n"
        "for info in pkgutil.walk_packages(root.__path__, root.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in json.loads(out.stdout)}


def test_shared_loads_neither_textual_nor_litestar() -> None:
    loaded = _modules_after_import("shared")
    assert "msgspec" in loaded  # the check sees what was imported
    assert "textual" not in loaded
    assert "litestar" not in loaded


def test_the_server_loads_no_textual() -> None:
    loaded = _modules_after_import("calsync_server")
    assert "sqlmodel" in loaded
    assert "textual" not in loaded


# The launcher starts the server embedded; it is the only part of the dashboard allowed to.
TUI_LAUNCHER = ("calsync_tui.cli", "calsync_tui.launch")


def _tui_modules() -> list[str]:
    code = (
        "import json, pkgutil, calsync_tui\n"
        "print(json.dumps([m.name for m in pkgutil.walk_packages("
        "calsync_tui.__path__, 'calsync_tui.')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names: list[str] = json.loads(out.stdout)
    return [n for n in names if not n.startswith(TUI_LAUNCHER)]


def test_the_dashboard_reaches_the_server_only_over_http() -> None:
    """Every dashboard module but the launcher, imported together in a clean interpreter,
    loads no calsync_server (and so no database, engine or Litestar)."""
    modules = _tui_modules()
    assert "calsync_tui.app" in modules
    assert "calsync_tui.screens.busy_blocks" in modules
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert "textual" in loaded  # the check sees what was imported
    assert "calsync_server" not in loaded
    assert "litestar" not in loaded
    assert "sqlmodel" not in loaded


def test_the_command_line_loads_textual_only_for_the_dashboard() -> None:
    """`calsync --help` (and every server command) starts without importing Textual."""
    code = "import json, sys\nimport calsync_tui.cli\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in json.loads(out.stdout)}
    assert "click" in loaded
    assert "textual" not in loaded


# A provider turns its wire format into calsync's types and nothing more: it never reaches the
# database, the engine, the API, push or the accounts code (architecture.md, "Providers").
PROVIDER_FORBIDDEN = tuple(
    f"calsync_server.{name}" for name in ("db", "sync", "api", "push", "accounts")
)


def _calsync_modules_after_import(package: str) -> set[str]:
    code = (
        "import importlib, json, pkgutil, sys\n"
        f"root = importlib.import_module({package!r})\n"
        "for info in pkgutil.walk_packages(root.__path__, root.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('calsync_server'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_the_caldav_provider_reaches_nothing_past_the_boundary() -> None:
    loaded = _calsync_modules_after_import("calsync_server.providers.caldav")
    assert "calsync_server.providers.caldav.mapping" in loaded  # the check sees the package
    reached = sorted(m for m in loaded if m.startswith(PROVIDER_FORBIDDEN))
    assert reached == []


def test_the_microsoft_provider_reaches_nothing_past_the_boundary() -> None:
    loaded = _calsync_modules_after_import("calsync_server.providers.microsoft")
    assert "calsync_server.providers.microsoft.delta" in loaded  # the check sees the package
    # Nor the Graph emulator it is tested against (nor the Google one).
    forbidden = (*PROVIDER_FORBIDDEN, "calsync_server.emulators")
    reached = sorted(m for m in loaded if m.startswith(forbidden))
    assert reached == []


# Only the registry and the composition root name a concrete provider: the engine, the
# accounts code and push reach providers through calsync's protocol (issue 14).
CONCRETE_PROVIDERS = tuple(
    f"calsync_server.providers.{name}" for name in ("google", "microsoft", "caldav")
)


def _reaches_a_concrete_provider(package: str) -> list[str]:
    loaded = _calsync_modules_after_import(package)
    return sorted(m for m in loaded if m.startswith(CONCRETE_PROVIDERS))


def test_the_engine_reaches_no_concrete_provider() -> None:
    assert _reaches_a_concrete_provider("calsync_server.sync") == []


def test_push_channels_and_webhooks_reach_no_concrete_provider() -> None:
    for module in (
        "calsync_server.push.channels",
        "calsync_server.push.webhooks",
        "calsync_server.push.webhook_batch",
    ):
        code = (
            "import importlib, json, sys\n"
            f"importlib.import_module({module!r})\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('calsync_server'))))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        loaded = json.loads(out.stdout)
        assert [m for m in loaded if m.startswith(CONCRETE_PROVIDERS)] == [], module


def test_the_accounts_code_reaches_no_concrete_provider() -> None:
    assert _reaches_a_concrete_provider("calsync_server.accounts") == []


def test_the_google_provider_reaches_nothing_past_the_boundary() -> None:
    loaded = _calsync_modules_after_import("calsync_server.providers.google")
    assert "calsync_server.providers.google.mapping" in loaded  # the check sees the package
    reached = sorted(m for m in loaded if m.startswith(PROVIDER_FORBIDDEN))
    assert reached == []


def test_the_emulators_reach_nothing_else_of_the_server() -> None:
    """An emulator plays the provider's side of the wire: it shares no code with the client it
    is tested against (a shared mistake would pass both ways)."""
    loaded = _calsync_modules_after_import("calsync_server.emulators")
    assert "calsync_server.emulators.google.store" in loaded  # the check sees both emulators
    assert "calsync_server.emulators.microsoft.store" in loaded
    # `serving` runs an app on a port in a thread: transport, no calsync domain in it.
    allowed = ("calsync_server.emulators", "calsync_server.serving")
    reached = sorted(m for m in loaded if not m.startswith(allowed))
    assert reached in ([], ["calsync_server"])


def test_the_graph_emulator_borrows_nothing_from_the_google_one() -> None:
    """What both emulators share lives in emulators/common; one provider's emulator is not
    built from the other's."""
    loaded = _calsync_modules_after_import("calsync_server.emulators.microsoft")
    assert "calsync_server.emulators.common.transport" in loaded  # the check sees the package
    assert sorted(m for m in loaded if m.startswith("calsync_server.emulators.google")) == []
