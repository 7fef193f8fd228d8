import io
import random

import numpy as np
import pytest
from PIL import Image
from tinyexp import tiny_config

from vloom.doc import Document, write_shard
from vloom.ledger import Ledger
from vloom.pack import PackedStream, run_pack
from vloom.pack.packing import PackedShardWriter, Packer
from vloom.sequence import BOS_ID, EOS_ID, IMAGE_ID, PAD_ID, encode_items, load_tokenizer


def test_tokenizer_round_trips_and_reserves_special_ids(tiny_data):
    tok = load_tokenizer(tiny_data["packed"] / "tokenizer.json")
    text = "Question: What colour is the circle? Answer: red."
    ids = tok.encode(text, add_special_tokens=False).ids
    assert tok.decode(ids) == text
    assert min(ids) > IMAGE_ID  # text never produces a special id
    # Encoding a prompt then an option gives the same ids as encoding them together.
    a = (
        tok.encode("Answer:", add_special_tokens=False).ids
        + tok.encode(" red", add_special_tokens=False).ids
    )
    assert a == tok.encode("Answer: red", add_special_tokens=False).ids


def test_packed_rows_have_whole_image_blocks(tiny_data):
    import json

    stats = json.loads((tiny_data["packed"] / "stats.json").read_text())
    k, T = stats["tokens_per_image"], stats["seq_len"]
    assert k == 4 and stats["sequences"]["image"] > 0 and stats["sequences"]["text"] > 0
    s = PackedStream(tiny_data["packed"], "image", 0)
    total_images = 0
    for i in range(len(s)):
        tokens, images = s.row(i)
        assert tokens.shape == (T + 1,)
        is_img = tokens[:-1] == IMAGE_ID
        assert int(is_img.sum()) == k * len(images)  # every block is whole inside the inputs
        # blocks are contiguous runs of exactly k
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], is_img.astype(int), [0]]))))[::2]
        assert all(r % k == 0 for r in runs)
        assert images.shape[1:] == (32, 32, 3) and images.dtype == np.uint8
        total_images += len(images)
    assert total_images == stats["images"]  # the image stream holds every image
    text = PackedStream(tiny_data["packed"], "text", 0)
    assert all(len(text.row(i)[1]) == 0 for i in range(len(text)))


def test_packer_pads_instead_of_splitting_an_image(tmp_path):
    w = PackedShardWriter(tmp_path, "image", row_len=10, image_size=4, shard_rows=100)
    p = Packer(w)
    px = np.zeros((4, 4, 3), dtype=np.uint8)
    p.add_text([BOS_ID, 10, 11, 12, 13, 14])  # 6 tokens
    p.add_image(4, px)  # would end at position 10 > row_len - 1: goes to the next row
    p.add_text([15, EOS_ID])
    p.close()
    s = PackedStream(tmp_path, "image")
    r0, i0 = s.row(0)
    r1, i1 = s.row(1)
    assert list(r0) == [BOS_ID, 10, 11, 12, 13, 14, PAD_ID, PAD_ID, PAD_ID, PAD_ID] and len(i0) == 0
    assert list(r1[:6]) == [IMAGE_ID] * 4 + [15, EOS_ID] and len(i1) == 1


def test_stream_order_is_seeded_and_resumable(tiny_data):
    a = PackedStream(tiny_data["packed"], "text", seed=5)
    first = [r[0].tobytes() for r in a.take(len(a) + 3)]  # crosses an epoch
    state = a.state()
    nxt = [r[0].tobytes() for r in a.take(4)]
    b = PackedStream(tiny_data["packed"], "text", seed=5)
    b.load_state(state)
    assert [r[0].tobytes() for r in b.take(4)] == nxt
    c = PackedStream(tiny_data["packed"], "text", seed=6)
    assert [r[0].tobytes() for r in c.take(len(c))] != first[: len(c)]
    assert sorted(first[: len(a)]) == sorted(r[0].tobytes() for r in c.take(len(c)))


def _png(seed: int) -> bytes:
    rng = random.Random(seed)
    img = Image.new("RGB", (16, 16), (rng.randint(0, 255), 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_corrupt_image_is_rejected_and_the_pack_goes_on(tmp_path):
    prose = "The red circle is at the top left of the picture and the blue square is below it."
    docs = [Document.from_items(f"ok{i}", [_png(i), prose]) for i in range(6)]
    docs.append(Document.from_items("corrupt", [b"\x89PNG\r\n\x1a\n truncated", prose]))
    docs.append(Document.from_items("text", [prose * 3]))
    write_shard(tmp_path / "in" / "a.parquet", docs)
    cfg = tiny_config(pack__vocab_size=300, pack__tokenizer_docs=20)
    stats = run_pack(tmp_path / "in", tmp_path / "out", cfg, quiet=True)
    led = Ledger.read(tmp_path / "out")
    assert led.input == 8 and led.kept == 7 and dict(led.rejected) == {"undecodable_image": 1}
    assert stats["images"] == 6


def test_pack_missing_input_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="input directory does not exist"):
        run_pack(tmp_path / "nope", tmp_path / "out", tiny_config(), quiet=True)


def test_encode_items_layout(tiny_data):
    tok = load_tokenizer(tiny_data["packed"] / "tokenizer.json")
    ids = encode_items(tok, ["Figure 1.", None, "A red circle."], tokens_per_image=4)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID and ids.count(IMAGE_ID) == 4
