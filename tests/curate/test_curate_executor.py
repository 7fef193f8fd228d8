import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import slow_step  # noqa: F401 - registers "slow_passthrough"
from shapes import clean_docs

from vloom.config import CurateConfig, StepConfig
from vloom.curate import CurateError, run_curate
from vloom.doc import SCHEMA, read_documents, write_shard
from vloom.ledger import Ledger

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"


def _bad_inputs(in_dir: Path) -> None:
    # a shard with one misaligned row and one row with broken metadata among good rows
    good = [d.to_row() for d in clean_docs(3, seed=5, prefix="c")]
    misaligned = dict(good[0], id="bad-align", texts=["a", None], images=[None])
    bad_meta = dict(good[1], id="bad-meta", metadata="{not json")
    table = pa.Table.from_pylist(good + [misaligned, bad_meta], schema=SCHEMA)
    pq.write_table(table, in_dir / "b-corrupt-row.parquet")
    # a shard whose schema is wrong (readable metadata: 4 rows)
    wrong = pa.table({"id": ["1", "2", "3", "4"], "text": ["a", "b", "c", "d"]})
    pq.write_table(wrong, in_dir / "c-wrong-schema.parquet")
    # a file that is not Parquet at all (counted as one input)
    (in_dir / "d-not-parquet.parquet").write_bytes(b"this is not a parquet file")


def test_ledger_adds_up_with_corrupt_rows_and_bad_shards(tmp_path, capsys):
    in_dir = tmp_path / "in"
    docs = clean_docs(10, seed=4)
    write_shard(in_dir / "a-good.parquet", docs + [docs[0]])
    _bad_inputs(in_dir)
    cfg = CurateConfig(steps=[StepConfig(name="exact_dedup"), StepConfig(name="gopher_quality")])
    led = run_curate(in_dir, tmp_path / "out", cfg, quiet=True)

    assert led.input == 11 + 5 + 4 + 1
    assert led.kept == 10 + 3
    assert dict(led.dropped) == {"exact_dedup": {"duplicate": 1}}
    # the wrong-schema shard declares 4 rows; the non-Parquet file has no footer: 1, named so
    assert dict(led.rejected) == {
        "misaligned_items": 1,
        "bad_metadata": 1,
        "bad_shard": 4,
        "bad_shard_rows_unknown": 1,
    }
    assert led.input == led.kept + led.n_dropped + led.n_rejected

    on_disk = json.loads((tmp_path / "out" / "ledger.json").read_text())
    assert on_disk["input"] == 21 and on_disk["kept"] == 13
    assert [row["step"] for row in on_disk["funnel"]] == ["read", "exact_dedup", "gopher_quality"]
    assert [row["documents"] for row in on_disk["funnel"]] == [14, 13, 13]
    read = docs + [docs[0]] + clean_docs(3, seed=5)
    assert on_disk["funnel"][0]["images"] == sum(d.n_images for d in read)
    # text tokens are estimated as ceil(UTF-8 bytes / 4) per document
    n_bytes = [sum(len(t.encode()) for t in d.texts if t is not None) for d in read]
    assert on_disk["funnel"][0]["text_tokens"] == sum((b + 3) // 4 for b in n_bytes)
    assert on_disk["funnel"][1]["text_tokens"] == on_disk["funnel"][0]["text_tokens"] - (
        (n_bytes[0] + 3) // 4
    )  # the duplicate of docs[0] went

    err = capsys.readouterr().err
    assert "c-wrong-schema.parquet" in err and "d-not-parquet.parquet" in err
    assert len(read_documents(tmp_path / "out" / "a-good.parquet").__next__().texts) > 0
    assert not (tmp_path / "out" / "c-wrong-schema.parquet").exists()


def test_rerun_skips_finished_shards_and_refuses_other_config(tmp_path):
    in_dir = tmp_path / "in"
    write_shard(in_dir / "p0.parquet", clean_docs(4, seed=6))
    out = tmp_path / "out"
    cfg = CurateConfig(steps=[StepConfig(name="gopher_quality")])
    first = run_curate(in_dir, out, cfg, quiet=True)
    stamp = (out / "p0.parquet").stat().st_mtime_ns
    time.sleep(0.01)
    again = run_curate(in_dir, out, cfg, quiet=True)
    assert (out / "p0.parquet").stat().st_mtime_ns == stamp
    assert again.to_dict() == first.to_dict()
    other = CurateConfig(steps=[StepConfig(name="gopher_quality", min_doc_words=5)])
    with pytest.raises(CurateError, match="other steps or inputs"):
        run_curate(in_dir, out, other, quiet=True)


def _make_many_shards(in_dir: Path, n_shards: int = 24) -> None:
    docs = clean_docs(n_shards * 4, seed=7, image_share=0.5)
    for i in range(n_shards):
        part = docs[i * 4 : i * 4 + 4]
        if i:
            part.append(docs[(i * 7) % (i * 4)])  # a duplicate of an earlier shard's document
        write_shard(in_dir / f"shard-{i:03d}.parquet", part)


RESUME_STEPS = [
    {"name": "exact_dedup"},
    {"name": "slow_passthrough", "seconds": 0.08},
    {"name": "gopher_quality"},
]


def test_sigkilled_run_resumes_to_identical_output(tmp_path):
    in_dir = tmp_path / "in"
    _make_many_shards(in_dir)
    cfg = CurateConfig(steps=[StepConfig(**s) for s in RESUME_STEPS])

    killed = tmp_path / "killed"
    script = (
        "import sys, slow_step\n"
        "from vloom.config import CurateConfig\n"
        "from vloom.curate import run_curate\n"
        f"run_curate(sys.argv[1], sys.argv[2], CurateConfig(steps={RESUME_STEPS!r}), quiet=True)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(SRC)]))
    proc = subprocess.Popen([sys.executable, "-c", script, str(in_dir), str(killed)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not list((killed / ".curate").glob("*.done")):
            assert proc.poll() is None, "the run ended before any shard finished"
            assert time.monotonic() < deadline, "no shard finished within 60 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    n_done = len(list((killed / ".curate").glob("*.done")))
    assert 1 <= n_done < 24, "the kill must land mid-run for this test to mean anything"
    assert not (killed / "ledger.json").exists()

    resumed = run_curate(in_dir, killed, cfg, quiet=True)
    fresh = tmp_path / "fresh"
    run_curate(in_dir, fresh, cfg, quiet=True)

    names = sorted(p.name for p in fresh.glob("*.parquet"))
    assert len(names) == 24
    assert sorted(p.name for p in killed.glob("*.parquet")) == names
    for name in names + ["ledger.json"]:
        assert (killed / name).read_bytes() == (fresh / name).read_bytes(), name
    assert resumed.dropped["exact_dedup"]["duplicate"] == 23
    assert Ledger.read(fresh).kept == 96


def test_input_directory_must_differ_from_output(tmp_path):
    write_shard(tmp_path / "p0.parquet", clean_docs(2))
    with pytest.raises(CurateError, match="output directory cannot also be an input"):
        run_curate(tmp_path, tmp_path, CurateConfig(), quiet=True)
    # out inside the input, or the input inside out: refused before anything is written
    with pytest.raises(CurateError, match="lies inside the input"):
        run_curate(tmp_path, tmp_path / "curated", CurateConfig(), quiet=True)
    assert not (tmp_path / "curated").exists()
    nested = tmp_path / "outer" / "in"
    write_shard(nested / "p0.parquet", clean_docs(2))
    with pytest.raises(CurateError, match="inside the output directory"):
        run_curate(nested, tmp_path / "outer", CurateConfig(), quiet=True)


# ---- resuming with global steps that need every shard (top fraction, mix) in the chain ----


@pytest.fixture(scope="module")
def quality_model(tmp_path_factory):
    import random

    from vloom.curate.classify import train_classifier
    from vloom.synth.noise import spam_text

    rng = random.Random(0)
    pos = [d.text.lower() for d in clean_docs(40, seed=11)]
    neg = [spam_text(rng).lower() for _ in range(40)]
    path = tmp_path_factory.mktemp("model") / "quality.bin"
    train_classifier(pos, neg, path, epochs=5, dim=8, bucket=5000)
    return path


def _global_steps(model: Path) -> list[dict]:
    return [
        {"name": "exact_dedup"},
        {"name": "slow_passthrough", "seconds": 0.05},
        {
            "name": "refine",
            "rules": [{"program": [{"op": "normalize", "whitespace": True}]}],
            "log_programs": True,
        },
        {"name": "fasttext_quality", "model": str(model), "keep_top_fraction": 0.7},
        {
            "name": "mix",
            "shares": {"interleaved": 0.6, "text": 0.4},
            "score_key": "quality_score",
            "repeat": [[0.25, 3]],
        },
    ]


def _tree(d: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(d)): p.read_bytes()
        for p in sorted(d.rglob("*"))
        if p.is_file() and ".curate" not in p.parts
    }


@pytest.mark.parametrize("kill_when", ["signatures", "curate"])
def test_sigkilled_run_with_global_steps_resumes_to_identical_output(
    tmp_path, quality_model, kill_when
):
    in_dir = tmp_path / "in"
    _make_many_shards(in_dir, n_shards=12)
    steps = _global_steps(quality_model)
    cfg = CurateConfig(steps=[StepConfig(**s) for s in steps])
    killed = tmp_path / "killed"
    script = (
        "import sys, slow_step\n"
        "from vloom.config import CurateConfig\n"
        "from vloom.curate import run_curate\n"
        f"run_curate(sys.argv[1], sys.argv[2], CurateConfig(steps={steps!r}), quiet=True)\n"
    )
    # kill in the middle of the fasttext_quality signature pass (step 3), or of the last pass
    pattern = "sig3-*.bin" if kill_when == "signatures" else "*.done"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(SRC)]))
    proc = subprocess.Popen([sys.executable, "-c", script, str(in_dir), str(killed)], env=env)
    try:
        deadline = time.monotonic() + 90
        while len(list((killed / ".curate").glob(pattern))) < 2:
            assert proc.poll() is None, f"the run ended before 2 files {pattern} were written"
            assert time.monotonic() < deadline, f"no {pattern} within 90 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    n_written = len(list((killed / ".curate").glob(pattern)))
    assert 2 <= n_written < 12, "the kill must land mid-pass for this test to mean anything"
    assert not (killed / "ledger.json").exists()

    resumed = run_curate(in_dir, killed, cfg, quiet=True)
    fresh = tmp_path / "fresh"
    run_curate(in_dir, fresh, cfg, quiet=True)
    a, b = _tree(killed), _tree(fresh)
    assert sorted(a) == sorted(b) and sum(n.endswith(".parquet") for n in a) == 12
    for name in a:
        assert a[name] == b[name], name
    stats = resumed.extra["step_stats"]
    assert stats["mix"]["copies_added"] > 0 and resumed.dropped["exact_dedup"]["duplicate"] == 11
    assert resumed.dropped["fasttext_quality"]["fasttext_below_top_fraction"] > 0
    resumed.check()
