"""The reference greedy decoder the generation tests compare against."""

import torch

from vloom.sequence import EOS_ID, IMAGE_ID, PAD_ID


def manual_greedy(model, prompt, image, n):
    """One example, one token at a time, argmax over allowed tokens."""
    ids, new = list(prompt), []
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids]), image)[0][0, -1].clone()
            logits[[IMAGE_ID, PAD_ID]] = float("-inf")
            t = int(logits.argmax())
            if t == EOS_ID:
                break
            new.append(t)
            ids.append(t)
    return new
