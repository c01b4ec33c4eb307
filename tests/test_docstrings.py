"""Every public name says what it does: a class, function, method or property exported by
``stompws``, ``stompws.testing`` or ``stompws.compat`` without a docstring fails here.

A method that overrides a documented one inherits its docstring (``inspect.getdoc``), as
the listeners' ``on_*`` methods do. Until the API reference is built from these docstrings,
this is what keeps them complete.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from collections.abc import Iterator

import pytest

PUBLIC_MODULES = ("stompws", "stompws.testing", "stompws.compat")


def _public_names(module_name: str) -> Iterator[tuple[str, object]]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for name in names:
        value = getattr(module, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if not value.__module__.startswith("stompws"):
            continue  # re-exported from elsewhere (typing, the standard library)
        yield f"{module_name}.{name}", value
        if inspect.isclass(value):
            for member, attribute in vars(value).items():
                if member.startswith("_"):
                    continue
                if isinstance(attribute, property):
                    yield f"{module_name}.{name}.{member}", attribute
                elif inspect.isfunction(attribute):
                    yield f"{module_name}.{name}.{member}", getattr(value, member)


def _undocumented(module_name: str) -> list[str]:
    missing = []
    for qualified, value in _public_names(module_name):
        own = value.__doc__ if inspect.isclass(value) else inspect.getdoc(value)
        if not (own and own.strip()):
            missing.append(qualified)
    return missing


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__, f"{module_name} has no module docstring"
    assert _undocumented(module_name) == []


def test_the_check_sees_a_missing_docstring() -> None:
    class Undocumented:
        def method(self) -> None:
            pass

    Undocumented.__module__ = "stompws.example"
    module = types.ModuleType("stompws_probe")
    module.__all__ = ["Undocumented"]  # type: ignore[attr-defined]
    module.Undocumented = Undocumented  # type: ignore[attr-defined]
    sys.modules["stompws_probe"] = module
    try:
        assert _undocumented("stompws_probe") == [
            "stompws_probe.Undocumented",
            "stompws_probe.Undocumented.method",
        ]
    finally:
        del sys.modules["stompws_probe"]
