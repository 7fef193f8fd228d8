"""The step registry: a config names a step, `build_step` makes it with checked parameters."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable

from pydantic import TypeAdapter, ValidationError

from vloom.config import StepConfig
from vloom.curate.base import CurateError, Step

STEPS: dict[str, type[Step]] = {}


def register(name: str) -> Callable[[type[Step]], type[Step]]:
    """Class decorator: make a step available to configs under `name`."""

    def deco(cls: type[Step]) -> type[Step]:
        if name in STEPS and STEPS[name] is not cls:
            raise CurateError(f"step name {name!r} is already registered by {STEPS[name].__name__}")
        cls.name = name
        STEPS[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    # importing the packages runs their @register decorators
    import vloom.curate.classify  # noqa: F401
    import vloom.curate.dedup  # noqa: F401
    import vloom.curate.filters  # noqa: F401
    import vloom.curate.generated  # noqa: F401
    import vloom.curate.mix  # noqa: F401
    import vloom.curate.refine  # noqa: F401


def check_params(cls: type[Step], params: dict[str, typing.Any]) -> dict[str, typing.Any]:
    """Validate `params` against the constructor's signature and annotations; return them coerced."""
    sig = inspect.signature(cls.__init__)
    accepted = {
        n: p
        for n, p in sig.parameters.items()
        if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    hints = typing.get_type_hints(cls.__init__)
    out = {}
    for key, value in params.items():
        if key not in accepted:
            known = ", ".join(accepted) or "none"
            raise CurateError(f"step {cls.name!r}: unknown parameter {key!r} (accepted: {known})")
        ann = hints.get(key)
        if ann is None:
            out[key] = value
            continue
        try:
            out[key] = TypeAdapter(ann).validate_python(value, strict=isinstance(value, str))
        except ValidationError as e:
            msg = e.errors()[0]["msg"]
            raise CurateError(
                f"step {cls.name!r}: parameter {key!r}={value!r}: {msg} (expected {_fmt_type(ann)})"
            ) from None
    return out


def _fmt_type(ann: typing.Any) -> str:
    if isinstance(ann, type) and typing.get_origin(ann) is None:
        return ann.__name__
    return str(ann).replace("typing.", "")


def resolve_step(cfg: StepConfig) -> tuple[type[Step], dict[str, typing.Any]]:
    """The class and checked parameters for a step config (picklable, for worker processes)."""
    _load_builtins()
    cls = STEPS.get(cfg.name)
    if cls is None:
        raise CurateError(
            f"unknown curation step {cfg.name!r}; known steps: {', '.join(sorted(STEPS))}"
        )
    return cls, check_params(cls, cfg.params())


def build_step(cfg: StepConfig) -> Step:
    """Make the step a config names; a one-line CurateError for unknown names or bad parameters."""
    cls, params = resolve_step(cfg)
    return make_step(cls, params)


def make_step(cls: type[Step], params: dict[str, typing.Any]) -> Step:
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise CurateError(f"step {cls.name!r}: {e}") from None
