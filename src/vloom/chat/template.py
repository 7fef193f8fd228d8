"""Chat templates: a conversation -> pieces (text, image or token id), each marked trained or not.

vloom's own template is the world's evaluation prompt, turn after turn, so SFT starts from
what the pre-trained model already reads (`vqa_open` prompts `<bos><image> Question: q Answer:`
and the world's documents answer ` The red object is a circle.`):

    <bos>[system text\\n]<image>...Question: q1 Answer: a1<eos>Question: q2 Answer: a2<eos>

The user's first text part follows `Question: `, later text parts a newline; ` Answer:` ends the
user turn; the assistant's text follows one space and `<eos>` closes it. Trained (loss) pieces:
the assistant text and its `<eos>`, nothing else. The role words are ones the world's small BPE
has as single tokens (words it lacks, "Point", are spelled in pieces as any text is).

A Hugging Face tokenizer's `chat_template` (`template: hf`) is rendered with transformers'
`apply_chat_template`, images as the literal `<image>` inside each message's text. The
assistant spans are found by rendering prefixes, so templates without `{% generation %}` tags
work: for assistant turn i, the prompt P_i = render(turns[:i], add_generation_prompt) and the
turn R_i = render(turns[:i+1]); its trained text is R_i[len(P_i):]: the content and the
template's closing token (e.g. `<|im_end|>`; the whitespace after a closing special token is
left to the next turn, a template that closes answers with a plain newline trains on it). A
template whose renders are not prefixes of each other (one that rewrites earlier turns) is
refused per conversation (`chat_template_unstable`). Pieces are tokenized one by one, so a
trained span starts and ends on a token boundary, exactly as at generation time (prompt
encoded, answer sampled after it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vloom.chat.conversation import ChatError, Conversation, Turn
from vloom.sequence import IMAGE, TokenLayout

Piece = str | bytes | int  # text, an encoded image, a literal token id


@dataclass(frozen=True, slots=True)
class Rendered:
    """A conversation as pieces; `train[i]` marks piece i as trained; `turn_ends` are the
    piece indices just past each assistant turn (where it may be truncated)."""

    pieces: list[Piece]
    train: list[bool]
    turn_ends: list[int]


class VloomTemplate:
    name = "vloom"

    def __init__(self, layout: TokenLayout) -> None:
        self.layout = layout

    def render(self, conv: Conversation) -> Rendered:
        out = _Builder()
        if self.layout.bos is not None:
            out.add(self.layout.bos)
        for t in conv.turns:
            if t.role == "assistant":
                out.add(" " + t.text.strip(), train=True)
                out.add(self.layout.eos, train=True)
                out.turn_ends.append(len(out.pieces))
            elif t.role == "user":
                self._user(t, out)
            else:  # system: its text on a line of its own, before the first question
                out.extend(_texts_and_images(t, "", ""))
                out.add("\n")
        return out.done()

    def prompt(self, conv: Conversation) -> Rendered:
        """What a model continues to answer `conv` (ending in a user turn): its render, which
        ends with the answer cue ` Answer:` (serving; nothing in it is trained)."""
        return self.render(conv)

    @staticmethod
    def _user(t: Turn, out: _Builder) -> None:
        pieces = _texts_and_images(t, "Question: ", "\n")
        if pieces and isinstance(pieces[-1], str):
            pieces[-1] += " Answer:"
        else:  # no text after the last image: the answer cue follows it as text does
            pieces.append("Answer:" if not any(isinstance(p, str) for p in pieces) else " Answer:")
        out.extend(pieces)


def _texts_and_images(t: Turn, first: str, sep: str) -> list[Piece]:
    """A turn's parts in order: the first text prefixed with `first`, a text right after a
    text with `sep` (adjacent text parts are separate blocks, as sequence.item_texts has it)."""
    out: list[Piece] = []
    seen_text, prev_text = False, False
    for p in t.parts:
        if isinstance(p, bytes):
            out.append(p)
            prev_text = False
            continue
        lead = first if not seen_text else (sep if prev_text else "")
        out.append(lead + p)
        seen_text = prev_text = True
    return out


class _Builder:
    def __init__(self) -> None:
        self.pieces: list[Piece] = []
        self.train: list[bool] = []
        self.turn_ends: list[int] = []

    def add(self, p: Piece, train: bool = False) -> None:
        if isinstance(p, str) and not p:
            return
        self.pieces.append(p)
        self.train.append(train)

    def extend(self, ps: list[Piece], train: bool = False) -> None:
        for p in ps:
            self.add(p, train)

    def done(self) -> Rendered:
        return Rendered(self.pieces, self.train, self.turn_ends)


class HFTemplate:
    """A Hugging Face tokenizer's chat template (see the module docstring)."""

    name = "hf"

    def __init__(self, hf_tokenizer: Any, layout: TokenLayout, where: str = "") -> None:
        self.tok, self.layout, self.where = hf_tokenizer, layout, where

    def _apply(self, messages: list[dict[str, str]], gen: bool) -> str:
        from jinja2 import TemplateError

        try:
            return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        except TemplateError as e:
            raise ChatError("chat_template_error", f"chat template: {e}") from None

    def _turn_end(self, upto: str) -> int:
        """Where an answer's trained text ends: after its closing special token (the newline
        a template puts after it is the next turn's), or, when the template closes answers
        with plain text (a newline), after that text."""
        stripped = upto.rstrip()
        specials = [t for t in getattr(self.tok, "all_special_tokens", []) if t]
        return len(stripped) if any(stripped.endswith(t) for t in specials) else len(upto)

    def render(self, conv: Conversation) -> Rendered:
        messages = [{"role": t.role, "content": _content(t)} for t in conv.turns]
        full = self._apply(messages, False)
        spans: list[tuple[int, int]] = []
        for i, t in enumerate(conv.turns):
            if t.role != "assistant":
                continue
            prompt, upto = self._apply(messages[:i], True), self._apply(messages[: i + 1], False)
            if not (upto.startswith(prompt) and full.startswith(upto)):
                raise ChatError(
                    "chat_template_unstable",
                    f"turns[{i}]: the chat template's render of the conversation up to this "
                    "answer is not a prefix of the whole (it rewrites earlier turns)",
                )
            start, end = len(prompt), self._turn_end(upto)
            if end <= start or (spans and start < spans[-1][1]):
                raise ChatError("chat_template_unstable", f"turns[{i}]: empty assistant span")
            spans.append((start, end))
        out = _Builder()
        images = iter(conv.images)
        pos = 0
        for start, end in spans:
            _split_images(full[pos:start], images, out, train=False)
            _split_images(full[start:end], images, out, train=True)
            out.turn_ends.append(len(out.pieces))
            pos = end
        _split_images(full[pos:], images, out, train=False)
        return self._finish(full, images, out)

    def prompt(self, conv: Conversation) -> Rendered:
        """What a model continues to answer `conv`: the template's render with its generation
        prompt (add_generation_prompt), images where `<image>` stands (serving)."""
        messages = [{"role": t.role, "content": _content(t)} for t in conv.turns]
        text = self._apply(messages, True)
        out = _Builder()
        images = iter(conv.images)
        _split_images(text, images, out, train=False)
        return self._finish(text, images, out)

    def _finish(self, full: str, images, out: _Builder) -> Rendered:
        """Check every image was placed; prepend bos when the template does not write it."""
        if next(images, None) is not None:
            raise ChatError(
                "chat_template_dropped_image", "the chat template's output lost an <image>"
            )
        if self.layout.bos is not None and not (full.startswith(self.tok.bos_token or "\0")):
            out.pieces.insert(0, self.layout.bos)
            out.train.insert(0, False)
            out.turn_ends[:] = [e + 1 for e in out.turn_ends]
        return out.done()


def _content(t: Turn) -> str:
    return "\n".join(IMAGE if isinstance(p, bytes) else p for p in t.parts)


def _split_images(text: str, images, out: _Builder, train: bool) -> None:
    """Text pieces with an image piece wherever the literal `<image>` stands."""
    chunks = text.split(IMAGE)
    for k, chunk in enumerate(chunks):
        if k:
            im = next(images, None)
            if im is None:
                raise ChatError(
                    "chat_template_added_image", "the chat template's output has an extra <image>"
                )
            if train:
                raise ChatError("image_in_assistant_turn", "an <image> inside an answer")
            out.add(im)
        out.add(chunk, train)


def load_hf_chat(tokenizer_dir: str | Path) -> Any | None:
    """The transformers tokenizer of `tokenizer_dir` when it has a chat template, else None."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
    return tok if getattr(tok, "chat_template", None) else None


def make_template(
    choice: str, layout: TokenLayout, tokenizer_dir: str | Path | None
) -> VloomTemplate | HFTemplate:
    """The template `sft.template` asks for. `hf` without a Hugging Face tokenizer, or with one
    that has no chat_template, is an error naming the field and the directory."""
    if choice == "vloom":
        return VloomTemplate(layout)
    hf = load_hf_chat(tokenizer_dir) if tokenizer_dir else None
    if hf is not None:
        return HFTemplate(hf, layout, str(tokenizer_dir))
    if choice == "hf":
        if tokenizer_dir is None:
            raise ValueError(
                "sft.template: hf needs a Hugging Face tokenizer (model.lm.init or "
                "model.lm.tokenizer); vloom's own BPE has no chat template"
            )
        raise ValueError(
            f"sft.template: hf, but the tokenizer in {tokenizer_dir} has no chat_template "
            "(tokenizer_config.json or chat_template.jinja); use template: vloom or auto"
        )
    return VloomTemplate(layout)
