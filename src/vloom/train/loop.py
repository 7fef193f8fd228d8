"""The training loop: AdamW, LR schedule, stages and mixtures, accumulation, checkpoints,
on one process or data-parallel under torchrun (DDP or FSDP2, see distributed.py).

`train()` is resumable by construction: it starts from the newest complete checkpoint
in `out_dir/checkpoints`, whose state holds the step, the RNG and the data position, so
a killed run restarted ends with the same weights as one that never stopped. With
`train.init_from` a new run starts from another run's weights (continual pre-training:
new optimizer, the schedule warms up again from step 0).

The loss of a step is the mean over all its target tokens (all micro-batches, all
ranks), so the gradient does not depend on how the global batch is split.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from vloom.config import ExperimentConfig
from vloom.model.vlm import VLM
from vloom.ondisk import (
    CHECKPOINTS,
    FINAL,
    METRICS,
    STATS,
    TOKENIZER,
    TRAIN_SUMMARY,
    atomic_write_json,
    atomic_write_text,
    read_json,
    training_complete,
)
from vloom.sequence import TokenLayout
from vloom.train import distributed as D
from vloom.train.batches import StepBatch, StepReader
from vloom.train.checkpoint import (
    latest_checkpoint,
    load_training_state,
    load_weights,
    prune,
    save_checkpoint,
)
from vloom.train.denormal import flush_denormals
from vloom.train.distributed import pick_device  # noqa: F401  (re-exported for callers)
from vloom.train.evalhook import DuringTraining
from vloom.train.flops import flops_per_image, lm_flops_per_token, peak_flops
from vloom.train.mixture import IMAGE, TEXT, images_on, resolve_mixture, stage_at, stage_bounds
from vloom.train.prefetch import Prefetcher
from vloom.train.schedule import lr_at
from vloom.train.sinks import log_metrics


def cpu_threads() -> int:
    """CPU cores this process may use, shared among the ranks torchrun started on this node."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def use_bf16(precision: str, device: torch.device) -> bool:
    if precision == "bf16":
        return True
    # On CPU bf16 autocast is slower than fp32 for small matmuls; only auto-enable on GPU.
    return precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported()


def make_optimizer(
    model: torch.nn.Module, cfg: ExperimentConfig, device: torch.device
) -> torch.optim.AdamW:
    mult = cfg.train.lr_mult
    groups: dict[tuple[bool, float], list[torch.nn.Parameter]] = {}
    seen = set()
    for name, p in model.named_parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        part = name.split(".", 1)[0]  # vision, connector or lm (the unwrapped VLM's names)
        groups.setdefault((p.dim() >= 2, mult.get(part, 1.0)), []).append(p)
    # `lr_mult` rides in each group: the loop sets lr = schedule x lr_mult every step
    param_groups = [
        {"params": ps, "weight_decay": cfg.train.weight_decay if dec else 0.0, "lr_mult": m}
        for (dec, m), ps in sorted(groups.items(), key=lambda kv: (not kv[0][0], kv[0][1]))
    ]  # decayed first: without lr_mult, the two groups of checkpoints written before it
    # Fused kernels on GPU and on CPU (one pass over each tensor: a step of the d 128, 1M
    # parameter LM's AdamW took 1.5 ms against 6.6 ms foreach, one thread); the numbers are
    # foreach's to float rounding (1.8e-7 apart after 60 steps). Other devices: foreach.
    kw: dict[str, Any] = {"fused": True} if device.type in ("cuda", "cpu") else {"foreach": True}
    return torch.optim.AdamW(param_groups, lr=cfg.train.lr, betas=tuple(cfg.train.betas), **kw)


def read_packed_stats(packed_dir: Path) -> dict[str, Any]:
    path = packed_dir / STATS
    if not path.exists():
        raise FileNotFoundError(f"{path}: packed data is missing or incomplete (run `vloom pack`)")
    try:
        return read_json(path)
    except ValueError as e:  # a torn marker: the pack never finished
        raise ValueError(f"{e}: packed data is incomplete (run `vloom pack` again)") from None


def build_model(cfg: ExperimentConfig, stats: dict[str, Any], pretrained: bool = True) -> VLM:
    packed_res = stats.get("resolution", "fixed")
    if packed_res != cfg.model.vision.resolution:
        raise ValueError(
            f"packed data has {packed_res}-resolution images but model.vision.resolution is "
            f"{cfg.model.vision.resolution}: re-pack with the model's config"
        )
    layout = TokenLayout.from_json(stats.get("token_layout"), f"{STATS}: token_layout")
    model = VLM(
        cfg.model,
        stats["vocab_size"],
        stats["seq_len"],
        stats["image_size"],
        pretrained=pretrained,
        layout=layout,
    )
    if model.tokens_per_image != stats["tokens_per_image"]:
        raise ValueError(
            f"packed data has {stats['tokens_per_image']} tokens per image but the model makes "
            f"{model.tokens_per_image}: re-pack with the model's patch size"
        )
    return model


def _truncate_metrics(path: Path, upto_step: int) -> None:
    """Keep the lines up to the resumed checkpoint's step (written before it was saved); later
    ones are redone."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= upto_step:
                keep.append(line)
        except json.JSONDecodeError:
            break  # a line cut by a kill: drop it and what follows
    atomic_write_text(path, "".join(f"{line}\n" for line in keep))  # a kill keeps the old log


def _check_data(
    cfg: ExperimentConfig, reader: StepReader, packed_dir: Path, sources: list[str]
) -> None:
    """Fail before training when a stage needs rows the packed data does not have."""
    tc = cfg.train
    n_text, n_image = len(reader.streams[TEXT]), len(reader.streams[IMAGE])
    for i, (start, end) in enumerate(stage_bounds(tc)):
        st = tc.stages[i]
        if st.kind != "pretrain":  # sft / rl stages read their own data
            continue
        if st.mixture is not None:
            resolve_mixture(st, sources)  # unknown source names: error
        on = end > start and images_on(end - 1, tc)
        off = end > start and not images_on(start, tc)
        ratio = tc.image_text_ratio if st.image_text_ratio is None else st.image_text_ratio
        if st.mixture is None and on and ratio > 0 and n_image == 0:
            raise ValueError(
                f"{packed_dir}: stage {st.name} turns images on but there are no image sequences"
            )
        if ((st.mixture is None and ratio < 1.0) or off) and n_text == 0:
            raise ValueError(
                f"{packed_dir}: stage {st.name} needs text-only sequences but there are none"
            )


@dataclass
class _Meter:
    """Tokens and model FLOPs since the last metrics line (for its rates) and over this
    invocation (for the summary's MFU)."""

    peak: float | None  # the device's peak FLOP/s; None when unknown
    world: int
    t0: float = field(default_factory=time.perf_counter)
    t_log: float = field(init=False)
    tok_log: int = 0
    flop_log: float = 0.0
    flop_run: float = 0.0

    def __post_init__(self) -> None:
        self.t_log = self.t0

    def add(self, tokens: int, flops: float) -> None:
        self.tok_log += tokens
        self.flop_log += flops
        self.flop_run += flops

    def rates(self, now: float) -> tuple[float, float]:
        """(tokens/s, FLOP/s) since the previous call; starts the next interval."""
        dt = max(now - self.t_log, 1e-9)
        out = (self.tok_log / dt, self.flop_log / dt)
        self.t_log, self.tok_log, self.flop_log = now, 0, 0.0
        return out


class _Run:
    """Everything one training run holds; `train()` below is the public entry point."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        packed_dir: Path,
        out_dir: Path,
        quiet: bool,
        eval_dir: Path | None = None,
        sft_dir: Path | None = None,
    ) -> None:
        self.cfg, self.tc, self.packed_dir, self.out_dir = cfg, cfg.train, packed_dir, out_dir
        self.eval_dir, self.sft_dir = eval_dir, sft_dir
        self.info, self.device = D.init_distributed(cfg.train.device)
        self.quiet = quiet or not self.info.main
        self.fsdp = self.info.active and self.tc.parallel == "fsdp"

    def log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def wrap(self, stage: int) -> None:
        """Set the stage's trainable parts and (re)build the parallel wrapper over them."""
        self.vlm.set_trainable(self.tc.stages[stage].trainable)
        if self.info.active and not self.fsdp:
            self.model = D.wrap_ddp(self.vlm, self.device)
        if self.tc.compile:
            self.model = torch.compile(self.model)

    def checkpoint(self, name: str, state: dict[str, Any]) -> Path:
        path = self.ckpt_root / name
        if self.fsdp or self.info.main:  # gathering FSDP shards is a collective
            weights = D.full_model_state(self.model_root, self.vlm, self.fsdp)
            optim = D.full_optim_state(self.model_root, self.vlm, self.opt, self.fsdp)
        if self.info.main:
            path = save_checkpoint(
                self.ckpt_root, name, self.vlm, weights, optim, state, self.ckpt_meta
            )
        D.barrier(self.info)
        return path

    def run(self) -> dict[str, Any]:
        self._setup()
        if training_complete(self.out_dir):
            return read_json(self.out_dir / TRAIN_SUMMARY)
        info = self.info
        reader = StepReader(
            self.packed_dir,
            self.cfg,
            self.sources,
            info.rank,
            info.world,
            pin=self.device.type == "cuda",
            layout=self.vlm.layout,
            sft_dir=self.sft_dir,
            seq_len=self.stats["seq_len"],
        )
        _check_data(self.cfg, reader, self.packed_dir, self.sources)
        start, optim_tensors = self._restore(reader)
        if info.main:
            if self.resumed is None:
                self.metrics_path.unlink(missing_ok=True)
            _truncate_metrics(self.metrics_path, start)
        self._place(optim_tensors)
        loss = self._loop(reader, start)
        run_s = time.perf_counter() - self.meter.t0
        state = {
            "step": self.tc.steps,
            "tokens": self.tokens_seen,
            "elapsed_s": self.elapsed_before + run_s,
            "data": reader.state(),
        }
        final = self.checkpoint(FINAL, state)
        summary = self._summary(final, loss, run_s)
        if info.main:
            atomic_write_json(self.out_dir / TRAIN_SUMMARY, summary)  # written last: complete
        D.barrier(info)
        return summary

    def _setup(self) -> None:
        """Threads, seed, the packed data's stats and a freshly initialised model."""
        tc = self.tc
        D.check_world(tc.batch_size, tc.grad_accum, self.info.world)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # Always set: 0 means every core this process may use, not "whatever an earlier run in
        # this process left" (a sweep runs several trainings in one process).
        torch.set_num_threads(tc.threads or cpu_threads())
        torch.manual_seed(self.cfg.seed)
        self.bf16 = use_bf16(tc.precision, self.device)
        self.stats = read_packed_stats(self.packed_dir)
        self.sources = list(self.stats.get("sources", []))
        self.ckpt_root = self.out_dir / CHECKPOINTS
        # Weights that a checkpoint will overwrite need not be read (nor exist any more): a
        # pretrained tower is loaded only for a fresh run.
        will_load = bool(self.tc.init_from) or any(
            p.is_dir() for p in [*self.ckpt_root.glob("step-*"), *self.ckpt_root.glob("stage-*")]
        )
        self.vlm = build_model(self.cfg, self.stats, pretrained=not will_load)
        self.metrics_path = self.out_dir / METRICS
        self.rl = None  # kind rl stages: prompts, reward and recipe checked before any step
        if any(st.kind == "rl" for st in self.tc.stages):
            from vloom.rl.step import RLStep
            from vloom.sequence import load_tokenizer

            tok = load_tokenizer(str(self.packed_dir / TOKENIZER), self.vlm.layout)
            self.rl = RLStep(self.cfg, self.vlm, tok, self.device, self.info, self.packed_dir)
        self.evals = None  # eval.during_training: checked here, before any step
        if self.cfg.eval.during_training.enabled:
            self.evals = DuringTraining(
                self.cfg, self.eval_dir, self.packed_dir / TOKENIZER, self.vlm.layout, self.fsdp
            )

    def _restore(self, reader: StepReader) -> tuple[int, dict[str, torch.Tensor] | None]:
        """Resume from the newest checkpoint (weights, RNG, data position) or start from
        `train.init_from`'s weights; returns the first step and the optimizer tensors."""
        info, tc, vlm = self.info, self.tc, self.vlm
        self.tokens_seen, self.elapsed_before = 0, 0.0
        resumed = latest_checkpoint(self.ckpt_root) if info.main else None
        if info.active:  # rank 0 decides, so all ranks resume from the same checkpoint
            box = [str(resumed) if resumed else None]
            torch.distributed.broadcast_object_list(box, src=0)
            resumed = Path(box[0]) if box[0] else None
        self.resumed = resumed
        if resumed is not None:
            load_weights(vlm, resumed)
            optim_tensors, st = load_training_state(resumed)
            self.tokens_seen = st["tokens"]
            self.elapsed_before = st.get("elapsed_s", 0.0)
            reader.load_state(st["data"])
            self.log(f"resuming from {resumed} (step {st['step']})")
            return st["step"], optim_tensors
        if tc.init_from:
            load_weights(vlm, tc.init_from)  # weights only: new optimizer, schedule from 0
            m = self.cfg.model
            self.log(
                f"initialised from {tc.init_from} (its architecture: d_model {m.d_model}, "
                f"{m.n_layers} layers, {m.n_heads} heads)"
            )
        return 0, None

    def _place(self, optim_tensors: dict[str, torch.Tensor] | None) -> None:
        """Move the model to the device (sharded under FSDP) and build its optimizer."""
        tc, vlm = self.tc, self.vlm
        vlm.to(self.device)
        if tc.activation_checkpointing:
            D.enable_activation_checkpointing(vlm)
        self.model = self.model_root = vlm
        if self.fsdp:
            self.model = self.model_root = D.shard_fsdp(vlm, self.bf16)
        self.opt = make_optimizer(self.model_root, self.cfg, self.device)
        if optim_tensors is not None:
            D.load_optim_state(
                self.model_root, vlm, self.opt, optim_tensors, self.fsdp, str(self.resumed)
            )
        self.ckpt_meta = {"tokenizer": str((self.packed_dir / TOKENIZER).resolve())}
        if tc.init_from:
            self.ckpt_meta["init_from"] = str(Path(tc.init_from).resolve())

    def _loop(self, reader: StepReader, start: int) -> float:
        """Steps `start` .. `train.steps`: stage switches, optimizer steps, metrics lines,
        stage-end and periodic checkpoints. Returns the last step's loss."""
        tc, info = self.tc, self.info
        n_seq = tc.batch_size * tc.grad_accum
        row_tokens = self.stats["seq_len"]
        step_flops = n_seq * row_tokens * lm_flops_per_token(self.vlm, row_tokens)
        img_flops = flops_per_image(self.vlm)
        self.meter = meter = _Meter(peak_flops(self.device, self.bf16, tc.peak_flops), info.world)
        # bf16 autocast only without FSDP's own mixed-precision policy
        autocast = self.bf16 and not self.fsdp
        cur_stage, loss = -1, 0.0
        mf = self.metrics_path.open("a") if info.main else None
        bar = tqdm(
            range(start, tc.steps),
            initial=start,
            total=tc.steps,
            desc="train",
            disable=self.quiet,
            mininterval=2,
        )
        # rl steps read no packed rows: the feed serves the other steps only
        is_rl = [st.kind == "rl" for st in tc.stages]
        data_steps = [s for s in range(start, tc.steps) if not is_rl[stage_at(s, tc)]]
        feed = Prefetcher(reader.read, data_steps, tc.prefetch)  # type: ignore[arg-type]
        batches = iter(feed)
        data_state = reader.state()  # the data position a checkpoint records
        rl_recs: list[dict[str, Any]] = []  # rl figures since the last metrics line
        try:
            if start == 0:  # a fresh run's curve starts at 0 tokens
                self._evaluate(0, 0, 0, False, mf)
            for step in bar:
                si = stage_at(step, tc)
                if si != cur_stage:
                    self.wrap(si)
                    if is_rl[si]:
                        self._begin_rl(si, step)
                    cur_stage = si
                lr = lr_at(step, tc)
                if is_rl[si]:
                    loss, rl_rec = self._rl_update(step, lr, autocast)
                    rl_recs.append(rl_rec)
                    step_tokens, image_frac = rl_rec["rollout_tokens"], 1.0
                    meter.add(step_tokens, 0.0)  # no FLOP count for rollouts: no MFU
                else:
                    batch = next(batches)
                    assert batch.step == step, (batch.step, step)
                    data_state = batch.data_state
                    loss, n_images = self._update(batch, lr, autocast)
                    step_tokens, image_frac = n_seq * row_tokens, n_images / n_seq
                    meter.add(step_tokens, step_flops + n_images * img_flops)
                self.tokens_seen += step_tokens
                done = step + 1
                # before the step's metrics line: the final one closes the metric sinks
                self._evaluate(done, self.tokens_seen, step_tokens, done == tc.steps, mf)
                if done % tc.log_every == 0 or done == tc.steps:
                    rec = self._metrics_line(done, si, loss, lr, image_frac)
                    if rl_recs:
                        from vloom.rl.summary import merge_step_records

                        rec.update(merge_step_records(rl_recs))
                        rl_recs = []
                    if mf is not None:
                        mf.write(json.dumps(rec) + "\n")
                        mf.flush()
                        log_metrics(self.cfg, self.out_dir, rec)  # TensorBoard / MLflow / W&B
                    bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{rec['tokens_per_s']:.0f}")
                self._save_periodic(done, si, data_state)
        finally:
            feed.close()
            if mf is not None:
                mf.close()
        return loss

    def _evaluate(self, done: int, tokens: int, step_tokens: int, last: bool, mf: Any) -> None:
        """`eval.during_training` after step `done` when due: rank 0 evaluates and writes the
        record, the other ranks wait; its time is left out of the next line's throughput."""
        ev = self.evals
        if ev is None or not (done == 0 or ev.due(done, tokens, step_tokens, last)):
            return
        t = time.perf_counter()
        if self.info.main:
            rec = ev.record(self.vlm, self.device, done, tokens)
            rec["elapsed_s"] = round(self.elapsed_before + time.perf_counter() - self.meter.t0, 2)
            mf.write(json.dumps(rec) + "\n")
            mf.flush()
            log_metrics(self.cfg, self.out_dir, rec)
        D.barrier(self.info)
        self.meter.t_log += time.perf_counter() - t

    def _set_lr(self, lr: float) -> None:
        """The schedule's `lr` in every group, times the group's part multiple (lr_mult)."""
        for g in self.opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)

    def _update(self, batch: StepBatch, lr: float, autocast: bool) -> tuple[float, int]:
        """One optimizer step at learning rate `lr`; returns (loss, global image rows)."""
        self._set_lr(lr)
        loss, n_images = self.step(batch, autocast)
        self._optimizer_step()
        return loss, n_images

    def _optimizer_step(self) -> None:
        if self.tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model_root.parameters() if p.requires_grad], self.tc.grad_clip
            )
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def _begin_rl(self, si: int, step: int) -> None:
        """Enter rl stage `si` at `step`: its reference is the stage's starting weights, which
        are the model itself when the stage starts now, else (a run resumed inside the
        stage) the previous stage's end checkpoint or `train.init_from`."""
        start_ckpt: Path | str | None = None
        if step != stage_bounds(self.tc)[si][0]:
            if si > 0:
                start_ckpt = self.ckpt_root / f"stage-{self.tc.stages[si - 1].name}"
            elif self.tc.init_from:
                start_ckpt = self.tc.init_from
            elif not self.cfg.rl or not self.cfg.rl.reference:
                raise ValueError(
                    f"train.stages.{self.tc.stages[si].name}: resumed inside an rl stage that "
                    "started from random weights; set rl.reference or train.init_from"
                )
        assert self.rl is not None
        self.rl.begin(si, start_ckpt)

    def _rl_update(self, step: int, lr: float, autocast: bool) -> tuple[float, dict[str, Any]]:
        """One rl optimizer step (vloom.rl.step) at learning rate `lr`; (loss, its figures)."""
        assert self.rl is not None
        self._set_lr(lr)

        def ctx() -> contextlib.AbstractContextManager:
            if autocast:
                return torch.autocast(self.device.type, dtype=torch.bfloat16)
            return contextlib.nullcontext()

        loss, rec = self.rl.run(step, self.model, ctx, self._optimizer_step)
        self._optimizer_step()
        return loss, rec

    def _metrics_line(
        self, done: int, si: int, loss: float, lr: float, image_frac: float
    ) -> dict[str, Any]:
        """The metrics.jsonl record after `done` steps; throughput since the previous one."""
        m = self.meter
        now = time.perf_counter()
        tok_s, flop_s = m.rates(now)
        return {
            "step": done,
            "loss": round(loss, 5),
            "lr": lr,
            "tokens": self.tokens_seen,
            "tokens_per_s": round(tok_s, 1),
            "mfu": float(f"{flop_s / (m.peak * m.world):.4g}") if m.peak else None,
            "image_frac": image_frac,
            "images_on": images_on(done - 1, self.tc),
            "stage": self.tc.stages[si].name,
            "elapsed_s": round(self.elapsed_before + now - m.t0, 2),
        }

    def _save_periodic(self, done: int, si: int, data_state: dict[str, Any]) -> None:
        """A checkpoint at the end of each stage (multi-stage recipes) and every
        `train.checkpoint_every` steps (the newest two kept)."""
        tc = self.tc
        stage_end = done == stage_bounds(tc)[si][1] and len(tc.stages) > 1
        periodic = done % tc.checkpoint_every == 0 and done < tc.steps
        if not (stage_end or periodic):
            return
        state = {
            "step": done,
            "tokens": self.tokens_seen,
            "elapsed_s": self.elapsed_before + time.perf_counter() - self.meter.t0,
            "data": data_state,
        }
        if stage_end:
            self.checkpoint(f"stage-{tc.stages[si].name}", state)
        if periodic:
            self.checkpoint(f"step-{done:06d}", state)
            if self.info.main:
                prune(self.ckpt_root)

    def _summary(self, final: Path, loss: float, run_s: float) -> dict[str, Any]:
        tc, info, m = self.tc, self.info, self.meter
        wall = self.elapsed_before + run_s
        return {
            "steps": tc.steps,
            "tokens": self.tokens_seen,
            "tokens_per_s": round(self.tokens_seen / max(wall, 1e-9), 1),
            "wall_s": round(wall, 2),
            "final_loss": round(loss, 5),
            "mfu": float(f"{m.flop_run / max(run_s, 1e-9) / (m.peak * info.world):.4g}")
            if m.peak and m.flop_run
            else None,
            "params": self.vlm.num_params(),
            "device": str(self.device),
            "world_size": info.world,
            "parallel": (tc.parallel if info.active else "none"),
            "bf16": self.bf16,
            "threads": torch.get_num_threads(),
            "checkpoint": str(final),
            "resumed_from": str(self.resumed) if self.resumed else None,
            "init_from": tc.init_from,
            # this invocation's in-training evaluation time, part of wall_s
            "during_eval_s": round(self.evals.total_s, 2) if self.evals else None,
            **(self._rl_summary() if self.rl is not None else {}),
            "pid": os.getpid(),
        }

    def _rl_summary(self) -> dict[str, Any]:
        from vloom.rl.summary import summarise_rl

        return {"rl": summarise_rl(self.metrics_path)} if self.info.main else {}

    def step(self, batch: StepBatch, autocast: bool) -> tuple[float, int]:
        """Forward and backward over this rank's micro-batches; returns (global mean loss,
        global image rows)."""
        info, device, tc = self.info, self.device, self.tc
        counts = torch.tensor(
            [float(sum(m.n_tokens for m in batch.micros)), float(batch.image_rows)]
        )
        n_tokens, n_images = D.all_reduce_sum(counts, info).tolist()
        trainable = set(tc.stages[stage_at(batch.step, tc)].trainable)
        vision_used = n_images > 0 and bool(trainable & {"vision", "connector"})
        # A step where nothing trainable is reached (e.g. connector-only, no images) has no
        # backward on any rank.
        has_grad = "lm" in trainable or vision_used
        loss_sum = torch.zeros((), device=device)
        for i, m in enumerate(batch.micros):
            last = i == len(batch.micros) - 1
            sync = contextlib.nullcontext() if has_grad else self._no_sync()
            with sync, D.grad_sync(self.model, last or not has_grad):
                inputs = m.inputs.to(device, non_blocking=True)
                targets = m.targets.to(device, non_blocking=True)
                images = m.images.to(device, non_blocking=True) if m.images is not None else None
                segs = m.segments.to(device, non_blocking=True) if m.segments is not None else None
                ctx = (
                    torch.autocast(device.type, dtype=torch.bfloat16)
                    if autocast
                    else contextlib.nullcontext()
                )
                # every rank runs the vision encoder when any rank has images (FSDP gathers
                # its weights collectively, even when it is frozen)
                if info.active and n_images > 0 and images is None:
                    inputs, targets, images, segs = D.blank_image_row(
                        inputs, targets, self.vlm, segs
                    )
                with ctx:
                    logits, loss = self.model(inputs, images, targets, segments=segs)
                if m.n_tokens:
                    term = loss * (m.n_tokens / max(n_tokens, 1.0) * info.world)
                    loss_sum += loss.detach().float() * m.n_tokens
                else:  # no target tokens: a zero that keeps the graph (and the collectives)
                    term = logits.float().sum() * 0.0
                if has_grad and term.requires_grad:
                    term.backward()
        total = D.all_reduce_sum(loss_sum.reshape(1).cpu(), info)
        return float(total.item()) / max(n_tokens, 1.0), int(n_images)

    def _no_sync(self):
        return self.model.no_sync() if hasattr(self.model, "no_sync") else contextlib.nullcontext()


def train(
    cfg: ExperimentConfig,
    packed_dir: str | Path,
    out_dir: str | Path,
    quiet: bool = False,
    eval_dir: str | Path | None = None,
    sft_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train (or resume) on packed data; one process, or one rank of a torchrun job.

    `eval_dir` holds the evaluation sets `eval.during_training` reads (the final eval's);
    `sft_dir` the SFT shards `kind: sft` stages read (vloom.pack.sft)."""
    run = _Run(
        cfg,
        Path(packed_dir),
        Path(out_dir),
        quiet,
        Path(eval_dir) if eval_dir else None,
        Path(sft_dir) if sft_dir else None,
    )
    try:
        # On CPU, flush denormals for the whole run: a softmax or an optimizer state that
        # drifts below 1.2e-38 otherwise slows every op that reads it several-fold
        # (benchmarks/train_throughput.py; vloom.train.denormal).
        with flush_denormals(run.device):
            return run.run()
    finally:
        D.shutdown(run.info)
