"""SFT shards from the tiny world's instruction sets and a chat file with malformed rows:
conversations packed whole, segments, the loss mask, the ledger, truncation, and
document-masking segments on pre-training rows."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file
from tinyexp import tiny_config

from vloom.ledger import Ledger
from vloom.pack import run_pack
from vloom.pack.sft import build_sft_data
from vloom.sequence import DEFAULT_LAYOUT, load_tokenizer

COUNTS = {"vqa": 40, "pointing": 10, "captions": 10, "multi_turn": 12}


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (40, 170, 60)).save(buf, format="PNG")
    return buf.getvalue()


def chat_file(tmp_path):
    ok = {
        "messages": [
            {"role": "user", "content": "<image>What colour?"},
            {"role": "assistant", "content": "Green."},
        ],
        "images": ["g.png"],
    }
    (tmp_path / "g.png").write_bytes(png())
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    rows = [
        ok,
        {"messages": [{"role": "user", "content": "Only a question"}]},  # no_assistant_turn
        {"messages": [{"role": "wizard", "content": "x"}, {"role": "assistant", "content": "y"}]},
        {
            "messages": [
                {"role": "user", "content": "<image>x"},
                {"role": "assistant", "content": "y"},
            ]
        },
        {
            "messages": [
                {"role": "user", "content": "<image>x"},
                {"role": "assistant", "content": "y"},
            ],
            "images": ["bad.png"],
        },
        {
            "messages": [
                {"role": "user", "content": "long " * 300},
                {"role": "assistant", "content": "y"},
            ]
        },
        ok,
    ]
    f = tmp_path / "chat.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return f


def sft_cfg(tmp_path, **sft):
    sources = [
        {"name": "world", "kind": "world", "counts": COUNTS},
        {"name": "files", "kind": "chat", "path": str(chat_file(tmp_path))},
    ]
    # rows of 160: the tiny world's 320-token BPE spells a three-object caption in ~100
    return tiny_config(sft={"sources": sources, "seq_len": 160, **sft})


def rows_of(out):
    shards = sorted(out.glob("sft-*.safetensors"))
    assert shards
    return [load_file(str(p)) for p in shards]


def test_sft_shards_pack_whole_conversations_with_assistant_only_mask(tiny_data, tmp_path):
    cfg = sft_cfg(tmp_path)
    tok = load_tokenizer(tiny_data["packed"] / "tokenizer.json")
    out = tmp_path / "sft"
    stats = build_sft_data(cfg, tok, DEFAULT_LAYOUT, out, tiny_data["synth"])
    led = Ledger.read(out)
    n_in = sum(COUNTS.values()) + 7
    assert led.input == n_in and led.kept + led.n_rejected == n_in
    assert dict(led.rejected) == {
        "no_assistant_turn": 1,
        "unknown_role": 1,
        "placeholder_without_image": 1,
        "undecodable_image": 1,
        "too_long": 1,
    }
    assert stats["conversations"] == led.kept == sum(COUNTS.values()) + 2
    L = cfg.sft.seq_len
    n_conv = n_asst = n_img = 0
    eos, bos, pad = DEFAULT_LAYOUT.eos, DEFAULT_LAYOUT.bos, DEFAULT_LAYOUT.pad
    for sh in rows_of(out):
        assert sh["tokens"].shape[1] == L + 1 and sh["loss_mask"].shape == sh["tokens"].shape
        assert sh["segments"].dtype == np.int32 and sh["loss_mask"].dtype == np.uint8
        for r in range(sh["tokens"].shape[0]):
            ids, mask, seg = sh["tokens"][r], sh["loss_mask"][r], sh["segments"][r]
            real = seg >= 0
            k = int(real.sum())
            assert real[:k].all() and not real[k:].any()  # padding only at the tail
            assert (ids[k:] == pad).all() and not mask[k:].any()
            segs = seg[:k]
            assert segs[0] == 0 and set(np.diff(segs)) <= {0, 1}
            for s in range(int(segs.max()) + 1):
                idx = np.flatnonzero(seg == s)
                c_ids, c_mask = ids[idx].tolist(), mask[idx].tolist()
                # never split across rows: every segment is a whole conversation
                assert c_ids[0] == bos and c_ids[-1] == eos and c_mask[-1] == 1
                assert c_mask[0] == 0
                # the mask covers exactly the answers: every trained run ends with <eos> and
                # every <eos> is trained; no image token is trained
                text = tok.decode(
                    [t for t, m in zip(c_ids, c_mask, strict=True) if m], skip_special_tokens=False
                )
                assert text.count("<eos>") == c_ids.count(eos)
                assert not any(
                    m and t == DEFAULT_LAYOUT.image for t, m in zip(c_ids, c_mask, strict=True)
                )
                prompt = tok.decode(
                    [t for t, m in zip(c_ids, c_mask, strict=True) if not m],
                    skip_special_tokens=False,
                )
                assert "Answer:" in prompt and "Answer:" not in text
                n_conv += 1
            n_asst += int(mask.sum())
        n_img += sh["image_offsets"][-1]
    assert n_conv == stats["conversations"]
    assert n_asst == stats["assistant_tokens"]
    assert n_img == stats["images"] == sum(COUNTS.values()) + 2
    assert stats["tokens"] == stats["rows"] * (L + 1)
    assert json.loads((out / "stats.json").read_text())["template"] == "vloom"
    # several conversations share a row (packing), none longer than a row
    assert stats["rows"] < stats["conversations"] / 2


def test_overlong_conversations_truncate_at_a_turn_or_are_rejected(tiny_data, tmp_path):
    tok = load_tokenizer(tiny_data["packed"] / "tokenizer.json")
    src = [{"name": "w", "kind": "world", "counts": {"multi_turn": 30}, "max_turns": 5}]
    cfg = tiny_config(sft={"sources": src, "seq_len": 64})
    stats = build_sft_data(cfg, tok, DEFAULT_LAYOUT, tmp_path / "t", tiny_data["synth"])
    first_too_long = Ledger.read(tmp_path / "t").rejected["too_long"]  # not even answer 1 fits
    assert stats["truncated"] > 0 and stats["conversations"] + first_too_long == 30
    for sh in rows_of(tmp_path / "t"):
        for r in range(sh["tokens"].shape[0]):
            seg, ids = sh["segments"][r], sh["tokens"][r]
            for s in set(seg[seg >= 0].tolist()):
                assert ids[np.flatnonzero(seg == s)[-1]] == DEFAULT_LAYOUT.eos  # ends on an answer
    cfg = tiny_config(sft={"sources": src, "seq_len": 64, "overlong": "reject"})
    stats2 = build_sft_data(cfg, tok, DEFAULT_LAYOUT, tmp_path / "r", tiny_data["synth"])
    led = Ledger.read(tmp_path / "r")
    assert led.rejected["too_long"] == first_too_long + stats["truncated"]
    assert stats2["conversations"] == stats["conversations"] - stats["truncated"]
    assert stats2["truncated"] == 0


def test_world_source_without_a_world_is_an_error(tiny_data, tmp_path):
    tok = load_tokenizer(tiny_data["packed"] / "tokenizer.json")
    cfg = tiny_config(sft={})
    with pytest.raises(ValueError, match="kind world needs the world"):
        build_sft_data(cfg, tok, DEFAULT_LAYOUT, tmp_path / "x", None)
    assert not (tmp_path / "x").exists()


def test_sft_dynamic_resolution_writes_patches(tiny_data, tmp_path):
    tok = load_tokenizer(tiny_data["packed"] / "tokenizer.json")
    cfg = tiny_config(
        sft={"sources": [{"name": "w", "kind": "world", "counts": {"vqa": 8}}]},
        model__vision__resolution="dynamic",
        model__vision__min_pixels=256,
        model__vision__max_pixels=1024,
    )
    stats = build_sft_data(cfg, tok, DEFAULT_LAYOUT, tmp_path / "d", tiny_data["synth"])
    [sh] = rows_of(tmp_path / "d")
    assert "patches" in sh and sh["image_grids"].shape == (8, 2)
    assert (
        (sh["tokens"] == DEFAULT_LAYOUT.image).sum()
        == sum((g[0] // 2) * (g[1] // 2) for g in sh["image_grids"])
        == stats["image_tokens"]["mean"] * 8
    )


def test_pretraining_rows_carry_document_segments_when_asked(tiny_data, tmp_path):
    cfg = tiny_config(pack__document_masking=True)
    stats = run_pack(tiny_data["curated"], tmp_path / "p", cfg, quiet=True)
    assert stats["document_masking"] is True
    lay = DEFAULT_LAYOUT
    seen_multi = False
    for p in sorted((tmp_path / "p").glob("*-*.safetensors")):
        sh = load_file(str(p))
        assert sh["segments"].shape == sh["tokens"].shape and "loss_mask" not in sh
        for ids, seg in zip(sh["tokens"], sh["segments"], strict=True):
            real = ids != lay.pad
            assert (seg[~real] == -1).all() and (seg[real] >= 0).all()
            assert seg[0] == 0 and set(np.diff(seg[real])) <= {0, 1}
            # a new segment starts exactly after an <eos>
            starts = np.flatnonzero(np.diff(seg[real]) == 1) + 1
            assert (ids[starts - 1] == lay.eos).all() and (ids[starts] == lay.bos).all()
            n_eos_inside = int((ids[real][:-1] == lay.eos).sum())
            assert len(starts) == n_eos_inside
            seen_multi |= len(starts) > 0
    assert seen_multi
    plain = load_file(str(next(tiny_data["packed"].glob("text-*.safetensors"))))
    assert "segments" not in plain


def test_documents_source_reads_ingested_conversations(tiny_data, tmp_path):
    from vloom.doc import Document, write_shard

    conv = [{"role": "user", "text": "What colour?"}, {"role": "assistant", "text": "Green."}]
    docs = [
        Document.from_items(
            "d0", [png(), "What colour?", "Green."], metadata={"conversation": conv}
        ),
        Document.from_items("d1", ["plain prose, no turns"]),
        Document.from_items(
            "d2", ["Hi", "x"], metadata={"conversation": [{"role": "user", "text": "Hi"}]}
        ),
    ]
    (tmp_path / "docs").mkdir()
    write_shard(tmp_path / "docs" / "part-00000.parquet", docs)
    tok = load_tokenizer(tiny_data["packed"] / "tokenizer.json")
    src = [{"name": "cauldron", "kind": "documents", "path": str(tmp_path / "docs")}]
    stats = build_sft_data(tiny_config(sft={"sources": src}), tok, DEFAULT_LAYOUT, tmp_path / "o")
    led = Ledger.read(tmp_path / "o")
    assert (led.input, led.kept) == (3, 1)
    assert dict(led.rejected) == {"not_a_conversation": 1, "no_assistant_turn": 1}
    [sh] = rows_of(tmp_path / "o")
    ids, mask = sh["tokens"][0], sh["loss_mask"][0]
    assert tok.decode(ids[mask == 1].tolist(), skip_special_tokens=False) == " Green.<eos>"
    assert stats["images"] == 1 and stats["conversations_by_source"] == {"cauldron": 1}


def test_hf_chat_template_end_to_end(tiny_data, tmp_path):
    from chattok import CHATML, hf_dir

    from vloom.pack.hf_tokenizer import prepare_hf_tokenizer

    d = hf_dir(tmp_path, CHATML)
    tok, layout, _ = prepare_hf_tokenizer(d, tmp_path / "tok.json")
    src = [{"name": "w", "kind": "world", "counts": {"vqa": 6}}]
    cfg = tiny_config(sft={"sources": src, "template": "hf", "seq_len": 160})
    cfg.model.lm.tokenizer = str(d)
    stats = build_sft_data(cfg, tok, layout, tmp_path / "h", tiny_data["synth"])
    assert stats["template"] == "hf" and stats["conversations"] == 6
    [sh] = rows_of(tmp_path / "h")
    end = tok.token_to_id("<|im_end|>")
    for ids, mask, seg in zip(sh["tokens"], sh["loss_mask"], sh["segments"], strict=True):
        for s in set(seg[seg >= 0].tolist()):
            c_ids, c_mask = ids[seg == s], mask[seg == s]
            answer = tok.decode(c_ids[c_mask == 1].tolist(), skip_special_tokens=False)
            assert answer.endswith("<|im_end|>") and answer.count("<|im_end|>") == 1
            assert answer.startswith("The ") or answer.startswith("There ")
            assert (c_ids == end).sum() == 2  # the user's turn closes too, untrained


def test_sft_data_command(tiny_data, tmp_path, capsys):
    from vloom.cli import main

    rc = main(
        [
            "sft-data",
            str(tiny_data["packed"]),
            "--out",
            str(tmp_path / "s"),
            "--synth",
            str(tiny_data["synth"]),
            "--quiet",
            "--set",
            "sft.sources=[{name: w, kind: world, counts: {vqa: 5, pointing: 3}}]",
        ]
    )
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["conversations"] == 8 and out["rejected"] == 0
    assert (tmp_path / "s" / "stats.json").exists()
    rc = main(["sft-data", str(tiny_data["packed"]), "--out", str(tmp_path / "n"), "--quiet"])
    assert rc == 2 and "kind world needs the world" in capsys.readouterr().err
