"""The stage chain of `vloom run`: a completion marker torn by a kill means "rerun the stage",
never "skip it" and never a crash of the next run; eval runs on the configured device."""

from __future__ import annotations

import json
import shutil

import pytest
from tinyexp import tiny_config

from vloom.ondisk import LEDGER, MANIFEST, RESULTS, RUN_CONFIG, STATS, TRAIN_SUMMARY
from vloom.pipeline import DataDirs, eval_stage, prepare_data, run_experiment


def _cfg(**kw):
    return tiny_config(eval__tasks=["vqa", "text_ppl"], eval__max_examples=4, **kw)


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("pipeline") / "run"
    run_experiment(_cfg(), run, quiet=True)
    return run


def _torn_copy(done_run, tmp_path, rel):
    run = tmp_path / "run"
    shutil.copytree(done_run, run, symlinks=True)
    path = run / rel
    text = path.read_text()
    path.write_text(text[: len(text) // 2])  # what a kill mid-write left
    return run, path


@pytest.mark.parametrize(
    ("rel", "stage"),
    [
        (RUN_CONFIG, None),
        (RESULTS, "eval ->"),
        (TRAIN_SUMMARY, "train ->"),
        (f"packed/{STATS}", "pack ->"),
        (f"curated/{LEDGER}", "curate ->"),
        (f"synth/{MANIFEST}", "synth ->"),
    ],
)
def test_a_torn_marker_reruns_its_stage(done_run, tmp_path, capsys, rel, stage):
    run, path = _torn_copy(done_run, tmp_path, rel)
    run_experiment(_cfg(), run, quiet=False)
    out = capsys.readouterr().out
    json.loads(path.read_text())  # whole again
    if stage is not None:
        assert stage in out, out
    assert json.loads((run / RESULTS).read_text())["eval"]["vqa"]["n"] == 4
    # a config.json that parses and differs is still refused
    with pytest.raises(ValueError, match="holds a run of a different config"):
        run_experiment(_cfg(train__steps=9), run, quiet=True)


def test_eval_runs_on_the_configured_device(done_run, tmp_path):
    data = DataDirs(done_run)
    ckpt = done_run / "checkpoints" / "final"
    res = eval_stage(_cfg(eval__device="cpu"), ckpt, data, tmp_path, None, quiet=True)
    assert res["config"]["eval"]["device"] == "cpu"
    with pytest.raises(ValueError, match="cuda:99"):  # the device reaches the harness
        eval_stage(_cfg(eval__device="cuda:99"), ckpt, data, tmp_path / "x", None, quiet=True)


def test_a_config_without_data_prepares_the_worlds_data_byte_for_byte(tiny_data, tmp_path):
    """No `data:` section = the world's chain as the stages give it when run one by one
    (conftest's tiny_data): the same curated shards, ledgers, tokenizer and packed shards."""
    d = prepare_data(tiny_config(), tmp_path, quiet=True)
    assert not d.sources and d.eval == tmp_path / "synth" / "eval"
    assert not (tmp_path / "union").exists() and not (tmp_path / "sources").exists()
    for stage in ("curated", "packed"):
        ours = sorted(p.name for p in (tmp_path / stage).iterdir() if p.is_file())
        theirs = sorted(p.name for p in tiny_data[stage].iterdir() if p.is_file())
        assert ours == theirs and ours
        for name in ours:
            assert (tmp_path / stage / name).read_bytes() == (tiny_data[stage] / name).read_bytes()
