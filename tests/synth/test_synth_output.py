"""The synth output directory is replaced whole: no old shards beside new ones, no partial corpus
under a complete-looking name, nothing foreign deleted."""

import hashlib

import pytest

from vloom.config import SynthConfig
from vloom.doc import list_shards, read_documents
from vloom.ondisk import read_json
from vloom.synth import generate

SMALL = SynthConfig(n_interleaved=6, n_pairs=10, n_text=6, n_eval_vqa=8, n_eval_text=4)


def _hashes(d):
    return {
        str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    }


def test_a_smaller_rerun_leaves_no_old_shards_beside_the_new_ones(tmp_path):
    out = tmp_path / "synth"
    generate(SMALL.model_copy(update={"shard_size": 4}), out, seed=0)
    assert len(list_shards(out / "train")) > 2
    man = generate(SMALL.model_copy(update={"shard_size": 100}), out, seed=1)
    assert len(list_shards(out / "train")) == man["train"]["shards"] == 1
    assert len(list(read_documents(out / "train"))) == man["train"]["documents"]
    assert read_json(out / "manifest.json") == man


def test_a_run_that_dies_midway_leaves_the_previous_corpus_whole(tmp_path, monkeypatch):
    import vloom.synth.corpus as corpus

    out = tmp_path / "synth"
    generate(SMALL, out, seed=0)
    before = _hashes(out)

    def killed(*a, **k):  # the kill lands after the new training shards were written
        raise KeyboardInterrupt

    monkeypatch.setattr(corpus, "write_evalsets", killed)
    with pytest.raises(KeyboardInterrupt):
        generate(SMALL, out, seed=1)
    assert _hashes(out) == before  # old shards under the old manifest, nothing mixed in
    assert not list(tmp_path.glob(".tmp-*"))


def test_a_directory_holding_other_files_is_not_replaced(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not synth output"):
        generate(SMALL, tmp_path, seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]


def test_count_answers_are_spread_over_the_held_out_counts(tmp_path):
    """A model that always answers the commonest count must not score well on count: the
    held-out stream skips scenes seen in training, which left 75% of count answers "three"."""
    from collections import Counter

    import pyarrow.parquet as pq

    cfg = SynthConfig(n_interleaved=60, n_pairs=200, n_text=60, n_eval_vqa=160, n_eval_text=160)
    generate(cfg, tmp_path / "w", seed=0)
    for name in ("vqa", "text_qa"):
        rows = pq.read_table(tmp_path / "w" / "eval" / f"{name}.parquet").to_pylist()
        answers = Counter(r["options"][r["answer"]] for r in rows if r["qtype"] == "count")
        assert sum(answers.values()) == 40 and len(answers) >= 2, (name, answers)
        assert max(answers.values()) - min(answers.values()) <= 1, (name, answers)
