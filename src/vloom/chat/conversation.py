"""The conversation: turns with a role and ordered text / image parts, checked on construction.

A part is a `str` (text) or `bytes` (an encoded image), as `Document.from_items` takes them.
Images are kept encoded; `check` sniffs and decodes each with vloom's image checks
(`vloom.media.check_image`), so a conversation that passes can be packed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vloom.media import ImageError, check_image
from vloom.sequence import IMAGE

ROLES = ("system", "user", "assistant")
Part = str | bytes


class ChatError(ValueError):
    """A conversation that cannot be used; `reason` is the ledger's name for it and the message
    names file, row and field."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Turn:
    role: str  # one of ROLES
    parts: tuple[Part, ...]

    @property
    def text(self) -> str:
        """The turn's text parts joined by newlines (images left out)."""
        return "\n".join(p for p in self.parts if isinstance(p, str))

    @property
    def images(self) -> list[bytes]:
        return [p for p in self.parts if isinstance(p, bytes)]


@dataclass(slots=True)
class Conversation:
    """An ordered list of turns; `id` and `source` tag it, `meta` carries what a reward or a
    report may need (the world's scene, the question's accepted answers)."""

    id: str
    turns: list[Turn]
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def images(self) -> list[bytes]:
        return [im for t in self.turns for im in t.images]

    def check(self, where: str = "") -> Conversation:
        """Raise ChatError for an unknown role, no assistant turn, an image in an assistant
        turn, a literal `<image>` left in a text, an empty assistant turn or an image that does not decode; trailing turns
        after the last assistant turn are dropped (nothing there is trained on)."""
        at = f"{where}: " if where else ""
        for i, t in enumerate(self.turns):
            if t.role not in ROLES:
                raise ChatError(
                    "unknown_role", f"{at}turns[{i}].role: {t.role!r} is not one of {ROLES}"
                )
        last = max((i for i, t in enumerate(self.turns) if t.role == "assistant"), default=None)
        if last is None:
            raise ChatError("no_assistant_turn", f"{at}turns: no assistant turn")
        self.turns = self.turns[: last + 1]
        for i, t in enumerate(self.turns):
            if any(isinstance(p, str) and IMAGE in p for p in t.parts):
                # a literal <image> would encode to the image id with no image behind it
                raise ChatError(
                    "placeholder_without_image", f"{at}turns[{i}]: an <image> left in the text"
                )
            if t.role == "assistant":
                if t.images:
                    raise ChatError(
                        "image_in_assistant_turn", f"{at}turns[{i}]: an assistant turn has an image"
                    )
                if not t.text.strip():
                    raise ChatError("empty_assistant_turn", f"{at}turns[{i}]: empty answer")
            for k, im in enumerate(t.images):
                try:
                    check_image(im)
                except ImageError as e:
                    raise ChatError(e.reason, f"{at}turns[{i}] image {k}: {e}") from None
        return self


def text_turn(role: str, text: str) -> Turn:
    return Turn(role, (text,))
