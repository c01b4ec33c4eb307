"""The table writer of scripts/interop/compat_table.py, on made-up records (no broker)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from .support import SCRIPTS


def _load() -> ModuleType:
    # scripts/ is not a package: load the script as a module to test its functions (in
    # sys.modules, where its dataclasses look themselves up).
    name = "stompws_interop_compat_table"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / "compat_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _record(version: str, outcome: str, **extra: Any) -> dict[str, Any]:
    return {
        "section": "ActiveMQ",
        "column": "ActiveMQ TCP",
        "version": version,
        "feature": "selectors",
        "test": f"t[{version}]",
        "outcome": outcome,
        "quirks": [],
        "message": "",
        **extra,
    }


def test_one_symbol_per_version_and_numbered_notes() -> None:
    table = _load().render(
        [
            _record("1.0", "passed"),
            _record("1.1", "quirk", quirks=["odd"]),
            _record("1.2", "failed", message="AssertionError: boom"),
        ]
    )

    assert "| selectors | ✓ ⚠<sup>1</sup> ✗<sup>2</sup> |" in table
    assert "1. odd" in table
    assert "2. failed: `t[1.2]`: AssertionError: boom" in table


def test_a_cell_shows_its_worst_test_and_missing_versions_as_dashes() -> None:
    table = _load().render(
        [_record("1.1", "passed"), _record("1.1", "skipped", message="no broker")]
    )

    assert "| selectors | ○<sup>1</sup> |" in table  # only 1.1 was recorded at all
    assert "1. skipped: no broker" in table


def test_main_writes_the_file_and_check_fails_on_failures(tmp_path: Path) -> None:
    results = tmp_path / "results.json"
    results.write_text(json.dumps([_record("1.2", "failed")]))
    output = tmp_path / "docs" / "compatibility.md"

    module = _load()
    assert module.main([str(results), "-o", str(output)]) == 0
    assert module.main([str(results), "-o", str(output), "--check"]) == 1
    assert output.read_text().startswith("# Compatibility")
