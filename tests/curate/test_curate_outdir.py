"""The curate output directory and its books: true counts for unreadable shards, inputs
identified by content, a ledger that is there only when the output is complete."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import slow_step  # noqa: F401 - registers "slow_passthrough"
from shapes import clean_docs

from vloom.config import CurateConfig, StepConfig
from vloom.curate import CurateError, run_curate
from vloom.doc import read_shard, write_shard
from vloom.ledger import Ledger

HERE = Path(__file__).parent
SRC = HERE.parents[1] / "src"


def _corrupt_pages(path: Path) -> None:
    """Flip bytes inside the texts column's compressed pages; the footer stays readable."""
    md = pq.ParquetFile(path).metadata
    col = next(
        md.row_group(0).column(i)
        for i in range(md.num_columns)
        if md.row_group(0).column(i).path_in_schema.startswith("texts")
    )
    data = bytearray(path.read_bytes())
    lo = col.data_page_offset + col.total_compressed_size // 3
    for i in range(lo, lo + max(16, col.total_compressed_size // 3)):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def test_unreadable_shard_counts_the_rows_its_footer_declares(tmp_path):
    in_dir = tmp_path / "in"
    write_shard(in_dir / "a.parquet", clean_docs(5, seed=1))
    write_shard(in_dir / "b-pages.parquet", clean_docs(7, seed=2, prefix="b"))
    _corrupt_pages(in_dir / "b-pages.parquet")
    with pytest.raises(Exception):  # noqa: B017 - the precondition: its rows cannot be read
        list(read_shard(in_dir / "b-pages.parquet"))
    write_shard(in_dir / "c-cut.parquet", clean_docs(9, seed=3, prefix="c"))
    cut = (in_dir / "c-cut.parquet").read_bytes()
    (in_dir / "c-cut.parquet").write_bytes(cut[: len(cut) // 2])  # footer gone

    led = run_curate(in_dir, tmp_path / "out", CurateConfig(steps=[]), quiet=True)
    # 7 rows declared by the readable footer; the cut file's count is unknown: 1, named so
    assert dict(led.rejected) == {"bad_shard": 7, "bad_shard_rows_unknown": 1}
    assert led.input == 5 + 7 + 1 and led.kept == 5
    led.check()


def test_a_replaced_input_of_the_same_name_and_size_is_not_taken_for_the_old(tmp_path):
    in_dir, out = tmp_path / "in", tmp_path / "out"
    write_shard(in_dir / "a.parquet", clean_docs(4, seed=1))
    write_shard(in_dir / "b.parquet", clean_docs(4, seed=2, prefix="b"))
    cfg = CurateConfig(steps=[StepConfig(name="exact_dedup")])
    first = run_curate(in_dir, out, cfg, quiet=True)
    assert run_curate(in_dir, out, cfg, quiet=True).to_dict() == first.to_dict()  # resumes

    # same name, same size, other bytes (before: skipped as done, the old output kept)
    f = in_dir / "b.parquet"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CurateError, match="other steps or inputs"):
        run_curate(in_dir, out, cfg, quiet=True)


def test_a_directory_that_holds_no_curate_run_is_not_written_into(tmp_path):
    in_dir, out = tmp_path / "in", tmp_path / "out"
    write_shard(in_dir / "a.parquet", clean_docs(3, seed=1))
    write_shard(out / "old.parquet", clean_docs(2, seed=9, prefix="old"))
    with pytest.raises(CurateError, match="holds no curate run"):
        run_curate(in_dir, out, CurateConfig(steps=[]), quiet=True)
    assert sorted(p.name for p in out.iterdir()) == ["old.parquet"]


STEPS = [{"name": "slow_passthrough", "seconds": 0.3}, {"name": "exact_dedup"}]


def test_a_rerun_killed_midway_leaves_no_ledger_over_mixed_shards(tmp_path):
    in_dir, out = tmp_path / "in", tmp_path / "out"
    for i in range(8):
        write_shard(in_dir / f"s{i}.parquet", clean_docs(3, seed=i, prefix=f"s{i}-"))
    cfg = CurateConfig(steps=[StepConfig(**s) for s in STEPS])
    complete = run_curate(in_dir, out, cfg, quiet=True)
    assert (out / "ledger.json").exists()
    # half the shards to do again (as after a kill): the rerun must drop the old marker first
    for i in range(4, 8):
        (out / ".curate" / f"s{i}.parquet.done").unlink()
    script = (
        "import sys, slow_step\n"
        "from vloom.config import CurateConfig\n"
        "from vloom.curate import run_curate\n"
        f"run_curate(sys.argv[1], sys.argv[2], CurateConfig(steps={STEPS!r}), quiet=True)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(SRC)]))
    proc = subprocess.Popen([sys.executable, "-c", script, str(in_dir), str(out)], env=env)
    try:
        deadline = time.monotonic() + 60
        while len(list((out / ".curate").glob("*.done"))) < 5:
            assert proc.poll() is None, "the rerun ended before it was killed"
            assert time.monotonic() < deadline, "no shard finished within 60 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert len(list((out / ".curate").glob("*.done"))) < 8, "the kill must land mid-run"
    assert not (out / "ledger.json").exists()  # incomplete: no marker says otherwise
    assert not list(out.rglob("*.tmp*"))
    resumed = run_curate(in_dir, out, cfg, quiet=True)
    assert resumed.to_dict() == complete.to_dict() == Ledger.read(out).to_dict()


def test_cli_refuses_out_equal_to_or_inside_the_input(tmp_path, capsys):
    from vloom.cli import main

    in_dir = tmp_path / "in"
    write_shard(in_dir / "a.parquet", clean_docs(3, seed=1))
    before = sorted(p.name for p in in_dir.iterdir())
    for out in (in_dir, in_dir / "curated"):
        assert main(["curate", str(in_dir), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and ("cannot also be an input" in err[0] or "inside" in err[0])
    assert sorted(p.name for p in in_dir.iterdir()) == before  # nothing written, nothing lost
