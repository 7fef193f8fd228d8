"""Fixtures shared by the ingest tests."""

from __future__ import annotations

import time

import pytest

from vloom.ingest import base


@pytest.fixture
def hostile():
    """Register unit hooks (ingest.base.UNIT_HOOKS) that raise, or stall past any budget, in
    the units whose label holds `needle` (and whose kind is `unit`, when given): every such
    unit, or only the `nth`."""
    added = []

    def register(
        needle: str, action: str = "raise", unit: str | None = None, nth: int | None = None
    ) -> None:
        seen = {"n": 0}

        def hook(kind: str, label: str) -> None:
            if needle in label and unit in (None, kind):
                seen["n"] += 1
                if nth is None or seen["n"] == nth:
                    if action == "stall":
                        time.sleep(30)
                    raise KeyError(f"hostile {kind}")

        base.UNIT_HOOKS.append(hook)
        added.append(hook)

    yield register
    for h in added:
        base.UNIT_HOOKS.remove(h)
