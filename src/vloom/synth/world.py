"""Procedural scenes: coloured shapes on a 2x2 grid, rendered with Pillow.

A scene holds 1..max_objects objects; within a scene every object has its own
colour, shape and grid cell, so "the red object" or "the circle" names exactly
one object and every question about a scene has one right answer.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 200),
    "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle", "diamond")
SIZES = ("small", "large")
CELLS = ("top left", "top right", "bottom left", "bottom right")
COUNT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
BACKGROUND = (70, 70, 70)


@dataclass(frozen=True, slots=True)
class Obj:
    colour: str
    shape: str
    size: str
    cell: int  # index into CELLS
    dx: float  # jitter inside the cell, in [-1, 1] (share of free room)
    dy: float


@dataclass(frozen=True, slots=True)
class Scene:
    objects: tuple[Obj, ...]

    def key(self) -> tuple:
        """Identity ignoring jitter: two scenes with the same key read the same in words."""
        return tuple(sorted((o.colour, o.shape, o.size, o.cell) for o in self.objects))

    @property
    def count(self) -> int:
        return len(self.objects)


def sample_scene(rng: random.Random, max_objects: int = 3) -> Scene:
    n = rng.randint(1, min(max_objects, len(CELLS)))
    colours = rng.sample(list(COLOURS), n)
    shapes = rng.sample(SHAPES, n)
    cells = rng.sample(range(len(CELLS)), n)
    objs = tuple(
        Obj(c, s, rng.choice(SIZES), cell, rng.uniform(-1, 1), rng.uniform(-1, 1))
        for c, s, cell in sorted(zip(colours, shapes, cells, strict=True), key=lambda t: t[2])
    )
    return Scene(objs)


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "diamond":
        return [(cx, cy - r * 1.2), (cx + r, cy), (cx, cy + r * 1.2), (cx - r, cy)]
    raise ValueError(f"unknown shape {shape!r}")


def render(scene: Scene, size: int = 32) -> Image.Image:
    """Draw at 4x and downsample so small shapes keep recognisable anti-aliased edges."""
    ss = 4
    big = size * ss
    img = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(img)
    half = big / 2
    for o in scene.objects:
        r = big * (0.18 if o.size == "large" else 0.11)
        room = max(half / 2 - r - big * 0.02, 0)
        row, col = divmod(o.cell, 2)
        cx = col * half + half / 2 + o.dx * room
        cy = row * half + half / 2 + o.dy * room
        colour = COLOURS[o.colour]
        if o.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
        else:
            draw.polygon(_polygon(o.shape, cx, cy, r), fill=colour)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
