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
