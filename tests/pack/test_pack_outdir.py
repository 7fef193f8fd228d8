"""Pack's output directory: never its input, built aside and renamed into place when complete."""

import hashlib
from pathlib import Path

import pytest
from tinyexp import tiny_config

from vloom.doc import Document, write_shard
from vloom.ondisk import read_json
from vloom.pack import run_pack

PROSE = "The red circle is at the top left of the picture and the blue square is below it."
CFG = dict(pack__vocab_size=300, pack__tokenizer_docs=20)


def _input(root: Path, n: int = 8) -> Path:
    write_shard(
        root / "in" / "a.parquet", [Document.from_items(f"t{i}", [PROSE * 3]) for i in range(n)]
    )
    return root / "in"


def _hashes(d: Path) -> dict[str, str]:
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("out", [".", "packed", "deeper/packed"])
def test_pack_into_its_input_or_inside_it_is_refused_and_the_input_is_untouched(tmp_path, out):
    inp = _input(tmp_path)
    before = _hashes(inp)
    with pytest.raises(ValueError, match="input") as e:
        run_pack(inp, inp / out, tiny_config(**CFG), quiet=True)
    assert "\n" not in str(e.value)
    assert _hashes(inp) == before  # nothing deleted, nothing added
    assert not list(tmp_path.rglob(".tmp-*"))


def test_input_inside_the_output_is_refused(tmp_path):
    inp = _input(tmp_path / "out")
    before = _hashes(tmp_path)
    with pytest.raises(ValueError, match="inside the output"):
        run_pack(inp, tmp_path / "out", tiny_config(**CFG), quiet=True)
    assert _hashes(tmp_path) == before


def test_a_failed_pack_leaves_the_previous_output_whole(tmp_path):
    inp = _input(tmp_path)
    out = tmp_path / "out"
    stats = run_pack(inp, out, tiny_config(**CFG), quiet=True)
    before = _hashes(out)
    # An image budget larger than a row is an error: it used to come after the old output
    # had been deleted.
    bad = tiny_config(**CFG, pack__seq_len=16, pack__image_size=128)  # 64 tokens per image
    with pytest.raises(ValueError, match="pack.seq_len"):
        run_pack(inp, out, bad, quiet=True)
    assert _hashes(out) == before and read_json(out / "stats.json") == stats
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_rerun_replaces_the_previous_output_without_leftovers(tmp_path):
    inp = _input(tmp_path, n=40)
    out = tmp_path / "out"
    first = run_pack(inp, out, tiny_config(**CFG, pack__shard_sequences=2), quiet=True)
    assert first["shards"]["text"] > 1
    (out / "stats.json").write_text('{"sequences": {"te')  # a torn marker from a killed run
    second = run_pack(inp, out, tiny_config(**CFG), quiet=True)
    assert second["shards"]["text"] == 1 and read_json(out / "stats.json") == second
    assert sorted(p.name for p in out.glob("text-*")) == ["text-00000.safetensors"]


def test_an_output_holding_other_files_is_not_replaced(tmp_path):
    inp = _input(tmp_path)
    out = tmp_path / "home"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not pack output"):
        run_pack(inp, out, tiny_config(**CFG), quiet=True)
    assert (out / "notes" / "todo.txt").read_text() == "keep me"
