"""Data-parallel training on torch.distributed: process group from torchrun, DDP or FSDP2.

`torchrun --nproc_per_node N -m vloom train ...` sets RANK / WORLD_SIZE / LOCAL_RANK;
`init_distributed` joins the group (nccl on CUDA, gloo on CPU). Without torchrun the
run is one process and nothing here costs anything.

The global batch (batch_size x grad_accum sequences) is the same for any world size:
rank r trains on the r-th contiguous share of the step's sequences, and the loss is
normalised by the step's token count over all ranks, so N ranks compute the same
gradient as one process (up to float summation order).

Every rank must run the same modules in every micro-batch (DDP buckets and FSDP2
all-gathers are collectives). A VLM breaks that when one rank's micro-batch has images
and another's has none, so when a step has images anywhere, a micro-batch without any
gets one extra row: image slots for a blank image, then padding, with no targets. The
row goes through the model like any other and adds nothing to the loss, so the vision
encoder and connector get zero gradient there, which the other ranks' real gradients
add to; the cost is one row of compute. A step with no images on any rank runs no
vision at all, exactly as one process.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from vloom.model.vlm import VLM
from vloom.sequence import IGNORE_INDEX


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this run created the process group and must destroy it

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def init_distributed(device_name: str) -> tuple[DistInfo, torch.device]:
    """Join the torchrun process group if there is one; the device is per local rank on GPU."""
    device = pick_device(device_name)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, owns), device


def shutdown(info: DistInfo) -> None:
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def check_world(batch_size: int, grad_accum: int, world: int) -> None:
    n = batch_size * grad_accum
    if n % world:
        raise ValueError(
            f"train: the global batch batch_size x grad_accum = {batch_size} x {grad_accum} = {n} "
            f"sequences is not divisible by the world size {world}"
        )


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if info.active:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(info: DistInfo) -> None:
    if info.active:
        dist.barrier()


def broadcast_flag(ok: bool, info: DistInfo) -> bool:
    """True on every rank only if `ok` on every rank (a collective 'all')."""
    if not info.active:
        return ok
    t = torch.tensor([0 if ok else 1])
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return int(t.item()) == 0


def blank_image_row(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    vlm: VLM,
    segments: torch.Tensor | None = None,
):
    """One extra row of image slots for a blank image, then padding, with no targets, and
    that image: the row runs the vision encoder without changing the loss (zero gradient).
    Returns (inputs, targets, image, segments), segments (document masking) grown by the
    row too (one document)."""
    v = vlm.cfg.vision
    if getattr(v, "resolution", "fixed") == "dynamic":  # smallest valid image: one LM token
        from vloom.imagebatch import ImageBatch

        side = v.patch_size * v.merge
        px = torch.zeros(side, side, 3, dtype=torch.uint8)
        blank = ImageBatch.from_pixels([px], v.patch_size, v.merge).to(inputs.device)
        n_slots = 1
    else:
        side = vlm.vision.image_size
        blank = torch.zeros(1, side, side, 3, dtype=torch.uint8, device=inputs.device)
        n_slots = vlm.tokens_per_image
    row = torch.full_like(inputs[:1], vlm.layout.pad)
    row[0, :n_slots] = vlm.layout.image
    no_target = torch.full_like(targets[:1], IGNORE_INDEX)
    if segments is not None:
        segments = torch.cat([segments, torch.zeros_like(segments[:1])])
    return torch.cat([inputs, row]), torch.cat([targets, no_target]), blank, segments


def enable_activation_checkpointing(vlm: VLM) -> None:
    """Recompute each transformer block's activations in backward instead of keeping them."""
    from torch.utils.checkpoint import checkpoint

    for blk in [*vlm.lm.layers, *vlm.vision.layers]:
        if not getattr(blk, "_vloom_ckpt", False):
            blk.forward = functools.partial(checkpoint, blk.forward, use_reentrant=False)
            blk._vloom_ckpt = True


def shard_fsdp(vlm: VLM, bf16: bool) -> nn.Module:
    """FSDP2: each transformer block is its own unit; embeddings, head, connector in the root."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    kw = {}
    if bf16:
        kw["mp_policy"] = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16, reduce_dtype=torch.float32
        )
    for blk in [*vlm.vision.layers, *vlm.lm.layers]:
        fully_shard(blk, **kw)
    fully_shard(vlm, **kw)
    return vlm


def wrap_ddp(vlm: VLM, device: torch.device) -> nn.Module:
    """DDP over the currently trainable parameters (re-wrap when a stage changes them)."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    # find_unused_parameters: a text-only step leaves the vision encoder out of the graph.
    return DDP(
        vlm,
        device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=True,
        forward_sync_buffers=False,  # the only buffers are RoPE tables, equal on every rank
    )


def grad_sync(model: nn.Module, sync: bool):
    """Context for one micro-batch's backward: skip the gradient all-reduce unless `sync`."""
    import contextlib

    if hasattr(model, "no_sync"):  # DDP
        return contextlib.nullcontext() if sync else model.no_sync()
    if hasattr(model, "set_requires_gradient_sync"):  # FSDP2
        model.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()


def full_model_state(model: nn.Module, vlm: VLM, fsdp: bool) -> dict[str, torch.Tensor]:
    """Full (unsharded) weights on CPU, keyed as the VLM names them. Collective under FSDP;
    the result is only complete on rank 0 there."""
    if not fsdp:
        return {k: v.detach() for k, v in vlm.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    sd = get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    return dict(sd)


def full_optim_state(
    model: nn.Module, vlm: VLM, opt: torch.optim.Optimizer, fsdp: bool
) -> dict[str, torch.Tensor]:
    """Optimizer tensors as `<param name>::<key>` (collective under FSDP, complete on rank 0)."""
    if not fsdp:
        names = {id(p): n for n, p in vlm.named_parameters()}
        return {
            f"{names[id(p)]}::{k}": v.detach().contiguous().cpu()
            for p, st in opt.state.items()
            for k, v in st.items()
            if torch.is_tensor(v)
        }
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
    )

    osd = get_optimizer_state_dict(
        model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    return {
        f"{name}::{k}": v.contiguous()
        for name, st in osd.get("state", {}).items()
        for k, v in st.items()
        if torch.is_tensor(v)
    }


def load_optim_state(
    model: nn.Module,
    vlm: VLM,
    opt: torch.optim.Optimizer,
    tensors: dict[str, torch.Tensor],
    fsdp: bool,
    where: str,
) -> None:
    """Put `<param name>::<key>` tensors back into the optimizer (sharding them under FSDP)."""
    params = dict(vlm.named_parameters())
    per: dict[str, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        pname, _, k = key.partition("::")
        if pname not in params:
            raise ValueError(f"{where}: optimizer state for unknown parameter {pname}")
        if k != "step" and tuple(v.shape) != tuple(params[pname].shape):
            raise ValueError(
                f"{where}: optimizer state {key} has shape {tuple(v.shape)} but the parameter "
                f"has {tuple(params[pname].shape)}"
            )
        per.setdefault(pname, {})[k] = v
    if not fsdp:
        for pname, st in per.items():
            p = params[pname]
            opt.state[p] = {k: v.to(p.device) for k, v in st.items()}
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_optimizer_state_dict,
        set_optimizer_state_dict,
    )

    # strict=False: a parameter that never had a gradient (e.g. frozen so far) has no state.
    opts = StateDictOptions(full_state_dict=True, strict=False)
    groups = get_optimizer_state_dict(model, opt, options=opts)["param_groups"]
    set_optimizer_state_dict(
        model, opt, optim_state_dict={"state": per, "param_groups": groups}, options=opts
    )
    # Loading initialises every parameter's state (step 1, zero moments); one that had none
    # in the checkpoint must start fresh, as it would on one process.
    for name, p in model.named_parameters():
        if name not in per:
            opt.state.pop(p, None)
