"""Chat files (JSONL, a JSON array, Parquet) in the common layouts -> Conversations, every row
accounted for.

Layouts (detected per file from its keys / columns, or given):
- llava: `conversations: [{from: human|gpt|system, value}]` with `<image>` placeholders in the
  values and `image` (one) or `images` (a list): paths, bytes, or `{bytes, path}` structs.
- cauldron: `images: [...]`, `texts: [{user, assistant, source}]`: the images open the first
  user turn (the_cauldron has no placeholders).
- openai: `messages: [{role, content}]`, content a string (with `<image>` placeholders taken
  from the row's `images`) or a list of `{type: text, text}` / `{type: image, image?}` /
  `{type: image_url, image_url: {url}}` parts; an image part without data takes the row's next
  image.
Image paths are relative to `image_root` (default: the file's directory) and must stay inside
it; `data:` URLs are decoded; http(s) URLs are refused (no downloads here).

Documents (OBELICS-schema shards, e.g. a `data:` source ingested with `vloom ingest hf`'s
conversation layout) whose `metadata["conversation"]` lists the turns (`[{role, text}]`,
aligned with the text items after the images) read as conversations too
(`read_document_conversations`): the images open the first user turn.

A row that cannot become a valid Conversation is yielded as `Rejected` (reason + a one-line
message naming file, row and field), so the caller counts it and goes on.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from vloom.chat.conversation import ChatError, Conversation, Turn
from vloom.doc import Rejected, list_shards, read_shard
from vloom.ingest.base import inside_root, read_regular_file
from vloom.sequence import IMAGE

LAYOUTS = ("llava", "cauldron", "openai")
SUFFIXES = (".jsonl", ".parquet")  # walked in directories; a .json file only when named
MAX_IMAGE_BYTES = 64 << 20
_LLAVA_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}


def detect_layout(keys: set[str] | list[str]) -> str | None:
    """The layout a row's keys (or a table's columns) say, or None."""
    keys = set(keys)
    if "conversations" in keys:
        return "llava"
    if "messages" in keys:
        return "openai"
    if "texts" in keys and "images" in keys:
        return "cauldron"
    return None


def chat_files(paths: list[str | Path]) -> list[Path]:
    """The files of `paths`, directories walked for .jsonl / .parquet (sorted; a directory's
    .json files are often metadata, e.g. a save_to_disk's state.json); a path that does not exist
    is an error naming it."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*") if q.suffix in SUFFIXES and q.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: chat file not found")
    return out


def read_chat_file(
    path: str | Path,
    layout: str = "auto",
    image_root: str | Path | None = None,
    source: str = "",
    limit: int | None = None,
) -> Iterator[Conversation | Rejected]:
    """Every row of one file as a checked Conversation or a Rejected (see the module docstring)."""
    path = Path(path)
    root = Path(image_root) if image_root else path.parent
    read = {".parquet": _parquet_rows, ".json": _json_rows}.get(path.suffix, _jsonl_rows)
    rows = read(path)
    chosen = None if layout == "auto" else layout
    for i, row in enumerate(_guarded(rows, path)):
        if limit is not None and i >= limit:
            return
        where = f"{path}: row {i}"
        if isinstance(row, Rejected):
            yield Rejected(f"{path.name}:{i}", row.reason, f"{where}: {row.error}")
            continue
        lay = chosen or detect_layout(row)
        if lay is None:
            yield Rejected(
                f"{path.name}:{i}",
                "unknown_layout",
                f"{where}: keys {sorted(row)[:6]} match no chat layout ({', '.join(LAYOUTS)})",
            )
            continue
        chosen = chosen or lay  # one layout per file, from its first row
        cid = str(row.get("id") or f"{path.name}:{i}")
        try:
            turns = _READERS[lay](row, _Images(root, where))
            conv = Conversation(cid, turns, source=source).check(where)
        except ChatError as e:
            msg = str(e) if str(e).startswith(where) else f"{where}: {e}"
            yield Rejected(cid, e.reason, msg)
            continue
        except Exception as e:  # a value of a shape no reader expects: this row only
            yield Rejected(cid, f"row_error:{type(e).__name__}", f"{where}: {e}")
            continue
        yield conv


def _guarded(rows: Iterator, path: Path) -> Iterator:
    """`rows`, ending with one `unreadable_file` rejection where reading the file breaks."""
    try:
        yield from rows
    except Exception as e:  # a corrupt or truncated file: the rows read so far stand
        yield Rejected(path.name, "unreadable_file", f"{type(e).__name__}: {e}")


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any] | Rejected]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                yield Rejected("", "bad_json", f"not JSON ({e.msg} at column {e.colno})")
                continue
            yield row if isinstance(row, dict) else Rejected("", "bad_json", "not a JSON object")


def _json_rows(path: Path) -> Iterator[dict[str, Any] | Rejected]:
    """A JSON array of rows (LLaVA-Instruct ships `llava_instruct_150k.json` so), read whole."""
    with open(path, encoding="utf-8", errors="replace") as f:
        data = json.load(f)
    if not isinstance(data, list):
        raise ValueError("a .json chat file holds a JSON array of rows (JSON Lines: .jsonl)")
    for row in data:
        yield row if isinstance(row, dict) else Rejected("", "bad_json", "not a JSON object")


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    f = pq.ParquetFile(path)
    for batch in f.iter_batches(batch_size=64):  # bounded memory: image columns can be large
        yield from batch.to_pylist()


class _Images:
    """Resolves a row's image values (bytes, `{bytes, path}`, a path, a data: URL) to bytes."""

    def __init__(self, root: Path, where: str) -> None:
        self.root, self.where = root, where

    def get(self, value: Any, field: str) -> bytes:
        if isinstance(value, dict):
            if value.get("bytes"):
                return bytes(value["bytes"])
            value = value.get("path") or value.get("url")
        if isinstance(value, bytes | bytearray):
            return bytes(value)
        if not isinstance(value, str) or not value:
            raise ChatError("missing_image", f"{field}: no image bytes or path")
        if value.startswith("data:"):
            try:
                return base64.b64decode(value.partition(",")[2], validate=True)
            except ValueError:
                raise ChatError("bad_data_url", f"{field}: data: URL is not base64") from None
        if value.startswith(("http://", "https://")):
            raise ChatError("image_url_not_fetched", f"{field}: {value[:80]} (no downloads)")
        p = self.root / value
        if not inside_root(p, self.root):
            raise ChatError("image_outside_root", f"{field}: {value} lies outside {self.root}")
        try:
            return read_regular_file(p, MAX_IMAGE_BYTES)
        except FileNotFoundError:
            raise ChatError("image_not_found", f"{field}: {p} not found") from None
        except (OSError, ValueError) as e:
            raise ChatError("image_unreadable", f"{field}: {e}") from None


def _with_placeholders(text: str, images: list[bytes], used: list[int], field: str) -> list:
    """`text` split at `<image>` placeholders, each replaced by the row's next image (the
    newline LLaVA puts after a placeholder goes with it)."""
    chunks = text.split(IMAGE)
    parts: list[str | bytes] = []
    for k, chunk in enumerate(chunks):
        if k:
            if used[0] >= len(images):
                raise ChatError(
                    "placeholder_without_image",
                    f"{field}: <image> placeholder {used[0] + 1} but the row has {len(images)} "
                    "image(s)",
                )
            parts.append(images[used[0]])
            used[0] += 1
            chunk = chunk.removeprefix("\n")
        if k < len(chunks) - 1:
            chunk = chunk.removesuffix("\n")
        if chunk.strip():
            parts.append(chunk.strip())
    return parts


def _all_used(images: list[bytes], used: list[int], field: str) -> None:
    if used[0] < len(images):
        raise ChatError(
            "image_without_placeholder",
            f"{field}: {len(images)} image(s) but {used[0]} <image> placeholder(s)",
        )


def _row_images(row: dict[str, Any], imgs: _Images, keys: tuple[str, ...]) -> list[bytes]:
    out: list[bytes] = []
    for key in keys:
        v = row.get(key)
        if v is None:
            continue
        vals = v if isinstance(v, list) else [v]
        out += [
            imgs.get(x, f"{key}[{j}]" if isinstance(v, list) else key) for j, x in enumerate(vals)
        ]
    return out


def _role(raw: Any, table: dict[str, str], field: str) -> str:
    role = table.get(str(raw).lower()) if isinstance(raw, str) else None
    if role is None:
        raise ChatError("unknown_role", f"{field}: unknown role {raw!r}")
    return role


def _llava(row: dict[str, Any], imgs: _Images) -> list[Turn]:
    images = _row_images(row, imgs, ("image", "images"))
    conv = row.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise ChatError("no_turns", "conversations: missing or empty")
    used, turns = [0], []
    for i, t in enumerate(conv):
        field = f"conversations[{i}]"
        if not isinstance(t, dict) or not isinstance(t.get("value"), str):
            raise ChatError("malformed_turn", f"{field}.value: missing or not text")
        role = _role(t.get("from"), _LLAVA_ROLES, f"{field}.from")
        turns.append(Turn(role, tuple(_with_placeholders(t["value"], images, used, field))))
    _all_used(images, used, "conversations")
    return turns


def _cauldron(row: dict[str, Any], imgs: _Images) -> list[Turn]:
    images = _row_images(row, imgs, ("images",))
    texts = row.get("texts")
    if not isinstance(texts, list) or not texts:
        raise ChatError("no_turns", "texts: missing or empty")
    turns: list[Turn] = []
    for i, t in enumerate(texts):
        field = f"texts[{i}]"
        if not isinstance(t, dict):
            raise ChatError("malformed_turn", f"{field}: not a {{user, assistant}} struct")
        for key in ("user", "assistant"):
            if not isinstance(t.get(key), str):
                raise ChatError("incomplete_turn", f"{field}.{key}: missing or not text")
        if IMAGE in t["user"] or IMAGE in t["assistant"]:
            raise ChatError("stray_placeholder", f"{field}: <image> in a cauldron text")
        lead = tuple(images) if i == 0 else ()
        turns += [Turn("user", (*lead, t["user"])), Turn("assistant", (t["assistant"],))]
    return turns


def _openai(row: dict[str, Any], imgs: _Images) -> list[Turn]:
    images = _row_images(row, imgs, ("images",))
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise ChatError("no_turns", "messages: missing or empty")
    used, turns = [0], []
    roles = {r: r for r in ("system", "user", "assistant")}
    for i, m in enumerate(msgs):
        field = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ChatError("malformed_turn", f"{field}: not a {{role, content}} object")
        role = _role(m.get("role"), roles, f"{field}.role")
        content = m.get("content")
        if isinstance(content, str):
            parts = _with_placeholders(content, images, used, f"{field}.content")
        elif isinstance(content, list):
            parts = _openai_parts(content, images, used, imgs, f"{field}.content")
        else:
            raise ChatError("malformed_turn", f"{field}.content: not text or a list of parts")
        turns.append(Turn(role, tuple(parts)))
    _all_used(images, used, "messages")
    return turns


def _openai_parts(
    content: list, images: list[bytes], used: list[int], imgs: _Images, field: str
) -> list[str | bytes]:
    parts: list[str | bytes] = []
    for k, p in enumerate(content):
        f = f"{field}[{k}]"
        kind = p.get("type") if isinstance(p, dict) else None
        if kind == "text" and isinstance(p.get("text"), str):
            if IMAGE in p["text"]:
                raise ChatError("stray_placeholder", f"{f}.text: <image> in a text part")
            parts.append(p["text"])
        elif kind in ("image", "image_url"):
            data = p.get("image") if kind == "image" else (p.get("image_url") or {})
            if isinstance(data, dict) and kind == "image_url":
                data = data.get("url")
            if data is None:  # the row's next image
                if used[0] >= len(images):
                    raise ChatError(
                        "placeholder_without_image",
                        f"{f}: image part {used[0] + 1} but the row has {len(images)} image(s)",
                    )
                parts.append(images[used[0]])
                used[0] += 1
            else:
                parts.append(imgs.get(data, f))
        else:
            raise ChatError("malformed_part", f"{f}.type: {kind!r} is not text, image or image_url")
    return parts


_READERS = {"llava": _llava, "cauldron": _cauldron, "openai": _openai}


def read_document_conversations(
    path: str | Path, source: str = "", limit: int | None = None
) -> Iterator[Conversation | Rejected]:
    """The documents of an OBELICS-schema shard directory (or file) that carry
    `metadata["conversation"]`, as conversations; any other document is `not_a_conversation`."""
    docs = (d for shard in list_shards(path) for d in read_shard(shard))
    for i, d in enumerate(docs):
        if limit is not None and i >= limit:
            return
        if isinstance(d, Rejected):
            yield d
            continue
        where = f"{path}: document {d.id}"
        convo = d.metadata.get("conversation")
        if not isinstance(convo, list) or not convo:
            yield Rejected(d.id, "not_a_conversation", f"{where}: metadata.conversation: none")
            continue
        images = [im for im in d.images if im is not None]
        turns: list[Turn] = []
        try:
            for k, t in enumerate(convo):
                field = f"metadata.conversation[{k}]"
                if not isinstance(t, dict) or not isinstance(t.get("text"), str):
                    raise ChatError("malformed_turn", f"{field}.text: missing or not text")
                role = _role(t.get("role"), _LLAVA_ROLES, f"{field}.role")
                lead = tuple(images) if k == 0 else ()
                turns.append(Turn(role, (*lead, t["text"])))
            yield Conversation(d.id, turns, source=source or d.source).check(where)
        except ChatError as e:
            msg = str(e) if str(e).startswith(where) else f"{where}: {e}"
            yield Rejected(d.id, e.reason, msg)
