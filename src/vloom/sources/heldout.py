"""The held-out split of real sources and the eval sets made from it.

A document is held out when xxhash64(id) mod 1000 < `per_mille`: a pure function of its id, so
the split is the same on every rerun and worker count, and a document repeated in two sources
(same id) falls on the same side in both. The sets are written in the synthetic world's
formats, so the text_ppl and caption_loss tasks read them unchanged:
    heldout_text.parquet  Documents, text items only (text_ppl scores every text)
    captions.parquet      Documents of one image + its caption (caption_loss)
A caption is the image's own caption or alt text where the ingest kept one, else the text
right after the image (else right before it), cut to `CAPTION_CHARS` at a word boundary.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import xxhash

from vloom.doc import Document, read_documents, write_shard

HELDOUT_TEXT, CAPTIONS = "heldout_text.parquet", "captions.parquet"
CAPTION_CHARS = 300


def is_held_out(doc_id: str, per_mille: int) -> bool:
    return xxhash.xxh64_intdigest(doc_id.encode("utf-8", "surrogatepass")) % 1000 < per_mille


def _cut(text: str, n: int = CAPTION_CHARS) -> str:
    text = " ".join(text.split())
    if len(text) <= n:
        return text
    head = text[:n]
    return head[: head.rfind(" ")] if " " in head else head


def text_doc(doc: Document) -> Document | None:
    texts = [t for t in doc.texts if t]
    if not texts:
        return None
    return Document(doc.id, texts, [None] * len(texts), doc.source, doc.url, doc.language)


def caption_docs(doc: Document) -> list[Document]:
    """One (image, caption) document per image that has a caption to score."""
    meta = doc.metadata.get("images")
    meta = meta if isinstance(meta, list) else []
    out, k = [], 0
    for pos, im in enumerate(doc.images):
        if im is None:
            continue
        m = meta[k] if k < len(meta) and isinstance(meta[k], dict) else {}
        k += 1
        nearby = [doc.texts[j] for j in (pos + 1, pos - 1) if 0 <= j < len(doc.texts)]
        cands = [m.get("caption"), m.get("alt"), *nearby]
        cap = next((_cut(c) for c in cands if isinstance(c, str) and c.strip()), "")
        if cap:
            out.append(
                Document(f"{doc.id}-img{k - 1}", [None, cap], [im, None], doc.source, doc.url)
            )
    return out


class HeldOutSets:
    """Collects held-out documents; `write` puts the eval sets in a directory."""

    def __init__(self) -> None:
        self.texts: list[Document] = []
        self.captions: list[Document] = []

    def add(self, doc: Document) -> None:
        t = text_doc(doc)
        if t is not None:
            self.texts.append(t)
        self.captions += caption_docs(doc)

    def write(self, eval_dir: Path, synth_eval: Path | None) -> dict[str, int]:
        """Write the sets; with the world's eval dir, its files are copied and its held-out
        text and captions come first in the two shared sets."""
        eval_dir.mkdir(parents=True, exist_ok=True)
        texts, captions = list(self.texts), list(self.captions)
        if synth_eval is not None:
            for f in sorted(synth_eval.glob("*.parquet")):
                shutil.copyfile(f, eval_dir / f.name)
            texts = list(read_documents(synth_eval / HELDOUT_TEXT)) + texts
            captions = list(read_documents(synth_eval / CAPTIONS)) + captions
        write_shard(eval_dir / HELDOUT_TEXT, texts)
        write_shard(eval_dir / CAPTIONS, captions)
        return {"heldout_text": len(texts), "captions": len(captions)}
