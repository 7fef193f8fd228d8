"""A step's rows, read by each rank for its own share, in the same global order for any
number of ranks.

`step_plan` names the stream of every sequence of the global batch; rank r of N takes
the r-th contiguous N-th of it. Every rank advances every stream past the whole global
batch but reads (decodes) only its own rows, so the stream cursors — the data position
a checkpoint stores — are global and a run resumes on a different number of ranks.

SFT rows (`kind: sft` stages, read from the `sft` shard directory) carry a loss mask: only
the tokens it marks are targets. Rows packed with document masking carry segments, which
the model turns into attention that stays inside each document.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vloom.config import ExperimentConfig
from vloom.imagebatch import ImageBatch, join_images
from vloom.model.vlm import make_targets
from vloom.ondisk import STATS, read_json_object
from vloom.pack.dataset import PackedStream
from vloom.sequence import DEFAULT_LAYOUT, IGNORE_INDEX, TokenLayout
from vloom.train.mixture import IMAGE, SFT, TEXT, resolve_mixture, step_plan


@dataclass
class Micro:
    inputs: torch.Tensor  # [b, T]
    targets: torch.Tensor  # [b, T]
    images: torch.Tensor | ImageBatch | None  # [n, H, W, 3] uint8, or variable-size patches
    n_tokens: int  # targets that count in the loss
    # [b, T] document index of each input position (document masking: attention stays inside
    # a document); None = every row is one causal sequence
    segments: torch.Tensor | None = None


@dataclass
class StepBatch:
    step: int
    micros: list[Micro]
    image_rows: int  # this rank's rows that carry images
    data_state: dict[str, Any] = field(default_factory=dict)  # stream positions after this step


def _stack(rows: list[tuple], name: str, fill: int) -> torch.Tensor | None:
    """The rows' per-token array `name` [b, L+1] (rows without it: `fill`); None if none has it."""
    arrays = [r[2].get(name) if len(r) > 2 else None for r in rows]
    if all(a is None for a in arrays):
        return None
    n = len(rows[0][0])
    full = [np.full(n, fill) if a is None else a for a in arrays]
    return torch.from_numpy(np.stack(full).astype(np.int64))


def to_micro(rows: list[tuple], pin: bool, layout: TokenLayout = DEFAULT_LAYOUT) -> Micro:
    """rows: (tokens [L+1], images) or (tokens, images, per-token arrays) -> a micro-batch.

    loss_mask: target j (token j+1) counts only where loss_mask[j+1] is 1. segments: a target
    in another document than its input position is not a target (attention cannot see it)."""
    tokens = torch.from_numpy(np.stack([r[0] for r in rows]).astype(np.int64))
    images = join_images([r[1] for r in rows])
    inputs, targets = make_targets(tokens, layout)
    loss_mask = _stack(rows, "loss_mask", 1)
    if loss_mask is not None:
        targets[loss_mask[:, 1:] == 0] = IGNORE_INDEX
    segments = _stack(rows, "segments", 0)
    if segments is not None:
        targets[segments[:, 1:] != segments[:, :-1]] = IGNORE_INDEX
        segments = segments[:, :-1].contiguous()
    n_tok = int((targets != IGNORE_INDEX).sum())
    if pin:
        inputs, targets = inputs.pin_memory(), targets.pin_memory()
        images = images.pin_memory() if images is not None else None
        segments = segments.pin_memory() if segments is not None else None
    return Micro(inputs, targets, images, n_tok, segments)


def open_sft_stream(sft_dir: Path, seq_len: int, layout: TokenLayout, seed: int) -> PackedStream:
    """The SFT shards of `sft_dir` as a stream, checked against the model's rows and ids."""
    stats = read_json_object(sft_dir / STATS, "SFT data stats")  # missing or torn: one line
    if int(stats.get("seq_len", -1)) > seq_len:
        raise ValueError(
            f"{sft_dir / STATS}: seq_len {stats.get('seq_len')} exceeds the model's {seq_len}"
        )
    sft_layout = TokenLayout.from_json(stats.get("token_layout"), f"{STATS}: token_layout")
    if sft_layout != layout:
        raise ValueError(
            f"{sft_dir / STATS}: token_layout {stats.get('token_layout')} is not the model's "
            "(build the SFT data with the model's tokenizer)"
        )
    stream = PackedStream(sft_dir, SFT, seed, require=("loss_mask", "segments"))
    if not len(stream):
        raise ValueError(f"{sft_dir}: no SFT rows (sft-*.safetensors)")
    return stream


class StepReader:
    def __init__(
        self,
        packed_dir: Path,
        cfg: ExperimentConfig,
        sources: list[str],
        rank: int = 0,
        world: int = 1,
        pin: bool = False,
        layout: TokenLayout = DEFAULT_LAYOUT,
        sft_dir: Path | None = None,
        seq_len: int | None = None,
    ) -> None:
        """sft_dir: the SFT shards `kind: sft` stages read; seq_len: the model's row length."""
        self.cfg, self.sources, self.rank, self.world, self.pin = cfg, sources, rank, world, pin
        self.layout = layout  # the packed data's special ids: which targets the loss skips
        self.streams: dict[str, PackedStream] = {
            TEXT: PackedStream(packed_dir, TEXT, cfg.seed),
            IMAGE: PackedStream(packed_dir, IMAGE, cfg.seed + 1),
        }
        if any(st.kind == "sft" for st in cfg.train.stages):
            if sft_dir is None:
                raise ValueError("a kind: sft stage needs the SFT data directory (sft_dir)")
            self.streams[SFT] = open_sft_stream(
                Path(sft_dir), seq_len or 1 << 30, layout, cfg.seed + 7919
            )
        used = sorted(
            {s for st in cfg.train.stages if st.mixture for s in resolve_mixture(st, sources)}
        )
        for name in used:  # one stream per mixed source, over both text and image rows
            idx = sources.index(name)
            self.streams[f"src:{name}"] = PackedStream(
                packed_dir, (TEXT, IMAGE), cfg.seed + 2 + idx, sources={idx}
            )

    def state(self) -> dict[str, Any]:
        st: dict[str, Any] = {TEXT: self.streams[TEXT].state(), IMAGE: self.streams[IMAGE].state()}
        if SFT in self.streams:
            st[SFT] = self.streams[SFT].state()
        src = {k[4:]: s.state() for k, s in self.streams.items() if k.startswith("src:")}
        if src:
            st["src"] = src
        return st

    def load_state(self, st: dict[str, Any]) -> None:
        self.streams[TEXT].load_state(st[TEXT])
        self.streams[IMAGE].load_state(st[IMAGE])
        if SFT in st and SFT in self.streams:
            self.streams[SFT].load_state(st[SFT])
        for name, s in st.get("src", {}).items():
            if f"src:{name}" in self.streams:
                self.streams[f"src:{name}"].load_state(s)

    def read(self, step: int) -> StepBatch:
        tc = self.cfg.train
        plan = step_plan(step, tc, self.cfg.seed, self.sources)
        share = len(plan) // self.world
        lo, hi = self.rank * share, (self.rank + 1) * share
        local_rows: dict[str, list] = {}
        for key in dict.fromkeys(plan):  # streams in first-use order
            idx = [i for i, k in enumerate(plan) if k == key]
            a = sum(i < lo for i in idx)
            b = sum(i < hi for i in idx)
            local_rows[key] = self.streams[key].take(len(idx), a, b)[::-1]
        rows = [local_rows[k].pop() for k in plan[lo:hi]]
        micros = [
            to_micro(rows[i : i + tc.batch_size], self.pin, self.layout)
            for i in range(0, len(rows), tc.batch_size)
        ]
        image_rows = sum(1 for r in rows if len(r[1]))
        return StepBatch(step, micros, image_rows, self.state())
