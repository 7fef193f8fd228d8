"""Can the demo's language model look things up in its context at all? (issue 16's binding
question). It trains the demo-sized LM (vloom's init) on a pure copy task: H random tokens,
then the same H again; the second half is predictable only by attending back. Prints the
loss of each half every 100 steps (first half stays at ln V; second falls to ~0 when an
induction-style lookup forms).

    python scripts/probe_incontext_copy.py [--steps 600] [--d-model 128] [--n-layers 4]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
import torch.nn.functional as F

from vloom.config import ModelConfig
from vloom.model.lm import LanguageModel
from vloom.model.vlm import VLM


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--n-layers", type=int, default=4)
    ap.add_argument("--half", type=int, default=24, help="tokens in each half")
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    a = ap.parse_args()
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=a.d_model, n_layers=a.n_layers)
    V, H = a.vocab, a.half
    lm = LanguageModel(cfg, V, 2 * H)
    lm.apply(VLM._init)
    for name, p in lm.named_parameters():  # the residual-out scaling VLM applies
        if name.endswith(("o_proj.weight", "down_proj.weight")):
            torch.nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layers))
    opt = torch.optim.AdamW(lm.parameters(), lr=a.lr, weight_decay=0.1, betas=(0.9, 0.95))
    t0 = time.time()
    for step in range(a.steps + 1):
        x = torch.randint(4, V, (32, H))
        seq = torch.cat([x, x], 1)
        logits = lm.forward_embeds(lm.embed_tokens(seq[:, :-1]))
        first = F.cross_entropy(logits[:, : H - 1].reshape(-1, V), seq[:, 1:H].reshape(-1))
        copy = F.cross_entropy(logits[:, H:].reshape(-1, V), seq[:, H + 1 :].reshape(-1))
        opt.zero_grad()
        (first + copy).backward()
        opt.step()
        if step % 100 == 0:
            print(
                f"step {step}: first half {first.item():.3f} (ln {V - 4} = {math.log(V - 4):.3f})"
                f"  copy half {copy.item():.3f}  {time.time() - t0:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
