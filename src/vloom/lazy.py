"""Late imports: PEP 562 lazy exports (a package names what it exports and the module each
lives in; the module is imported on first access, so importing the package stays cheap) and
`module:attr` plug-ins named in configs."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """The module-level `__getattr__` for `package`, resolving `exports` (name -> module)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def registered_or_plugin(spec: str, registry: dict[str, Any], what: str) -> Any:
    """`registry[spec]`, or the object a `module:attr` spec names; a one-line ValueError
    starting with `what` (the config field) when it is neither."""
    if spec in registry:
        return registry[spec]
    mod, sep, attr = spec.partition(":")
    if not sep or not mod or not attr:
        known = ", ".join(sorted(registry)) or "none"
        raise ValueError(f"{what} {spec!r}: expected a registered name ({known}) or 'module:attr'")
    try:
        return getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{what} {spec!r} cannot be loaded: {e}") from None
