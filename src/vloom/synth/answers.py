"""The synthetic world's answer plug-in for open -> multiple-choice conversion.

`vloom.evaluate.convert` knows no world; it asks an eval set's plug-in two things (the
`Distractors` protocol there): which words may stand as wrong options for a question (here:
every word of the world in the role the question asks about, shuffled; the converter skips
the right ones), and whether an option is right although the row does not list it (here:
whether it is true of the row's scene). The world's eval sets name this plug-in in their
Parquet metadata (`NAME` under `vloom.ondisk.DISTRACTORS_KEY`).
"""

from __future__ import annotations

import json
import random
from typing import Any

from vloom.synth.language import COUNT_OPTIONS, asked_colour
from vloom.synth.world import CELLS, COLOURS, COUNT_WORDS, SHAPES

NAME = "synthetic-world"
ROLE_WORDS: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "position": CELLS,
    "count": COUNT_OPTIONS,
}


class WorldAnswers:
    """Wrong options from the world's vocabulary; truth read from the row's `scene` JSON."""

    def propose(self, row: dict[str, Any], k: int, rng: random.Random) -> list[str]:
        pool = list(ROLE_WORDS.get(row.get("qtype", ""), ()))
        return rng.sample(pool, len(pool))  # all of them: some may be right, skipped later

    def also_right(self, row: dict[str, Any], option: str) -> bool:
        if not row.get("scene"):
            return False
        objs = json.loads(row["scene"])
        qt = row.get("qtype")
        if qt == "colour":
            return option in {o["colour"] for o in objs}
        if qt == "count":
            return len(objs) < len(COUNT_WORDS) and option == COUNT_WORDS[len(objs)]
        named = asked_colour(row.get("question") or "")
        hit = [o for o in objs if named is not None and o["colour"] == named]
        if qt == "shape":
            return any(o["shape"] == option for o in hit)
        if qt == "position":
            return any(o["cell"] == option for o in hit)
        return False


WORLD = WorldAnswers()
