"""A conversation as a generation prompt for a vloom model: the chat template's render with its
answer cue, tokenized piece by piece as SFT packs it, images prepared as evaluation prepares
them. `vloom serve` and the vloom generator backend build their prompts here, so the same
messages give the same tokens through either."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from vloom.chat.conversation import Conversation, Turn
from vloom.chat.template import HFTemplate, VloomTemplate, make_template
from vloom.evaluate.scoring import Images
from vloom.evaluate.tasks.data import image_input
from vloom.imagebatch import join_images
from vloom.model.vlm import VLM
from vloom.pack.sft import encode


def chat_prompt(
    model: VLM, tok: Tokenizer, template: VloomTemplate | HFTemplate, turns: Sequence[Turn]
) -> tuple[list[int], Images]:
    """Prompt ids and the images in prompt order (None without images) for `turns`, which end
    with the user's. Raises ChatError (template) or ImageError (an image that does not decode)."""
    rendered = template.prompt(Conversation("prompt", list(turns)))
    enc = encode(rendered, tok, model.layout, lambda data: image_input(model, data))
    vc = model.vision.cfg
    return enc.ids, join_images(enc.pixels, vc.patch_size, vc.merge)


def model_template(model: VLM, choice: str = "auto") -> VloomTemplate | HFTemplate:
    """The chat template `choice` (auto, vloom, hf) names for a loaded checkpoint: its HF
    tokenizer directory's chat template (model.lm.tokenizer / init) or vloom's. With auto, a
    directory that is no longer there leaves vloom's template; hf then is an error."""
    if choice not in ("auto", "vloom", "hf"):
        raise ValueError(f"chat template {choice!r}: expected auto, vloom or hf")
    tok_dir = model.cfg.lm.tokenizer_dir
    if tok_dir is not None and not Path(tok_dir).is_dir():
        if choice == "hf":
            raise FileNotFoundError(f"{tok_dir}: the checkpoint's Hugging Face tokenizer is gone")
        tok_dir = None
    return make_template(choice, model.layout, tok_dir)
