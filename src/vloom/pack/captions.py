"""An image's caption back beside its image in the token stream.

HTML ingest keeps a figure's caption out of the page text (it is not main content, and half of
them are photo credits) and stores it in the image's `metadata["images"][k]["caption"]` field,
so it goes when its image goes. Pack puts it right after the image: the model reads the text
written for that picture next to it, and a text-only stream never sees a caption of a missing
picture. Image metadata pairs with the image items by order (ingest lists the attached images
only, and curation drops whole documents, never single images); a document whose counts differ
is packed as it is.
"""

from __future__ import annotations

from typing import Any


def with_captions(texts: list[str | None], metadata: dict[str, Any]) -> list[str | None]:
    """`texts` (None = an image slot) with each image's non-empty caption inserted after it,
    unless the text that follows already starts with it (a source that kept it in the text)."""
    meta = metadata.get("images") if isinstance(metadata, dict) else None
    n_images = sum(t is None for t in texts)
    if not isinstance(meta, list) or len(meta) != n_images or n_images == 0:
        return texts
    out: list[str | None] = []
    k = 0
    for i, t in enumerate(texts):
        out.append(t)
        if t is not None:
            continue
        m = meta[k]
        k += 1
        cap = m.get("caption") if isinstance(m, dict) else None
        if not isinstance(cap, str) or not (cap := " ".join(cap.split())):
            continue
        nxt = texts[i + 1] if i + 1 < len(texts) else None
        if isinstance(nxt, str) and " ".join(nxt.split()).startswith(cap):
            continue
        out.append(cap)
    return out
