"""The commands a user types, run as subprocesses: --help, one-line errors, a tiny end-to-end run."""

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image
from tinyexp import tiny_raw

from vloom.cli import main


def _subcommands() -> list[str]:
    """Every subcommand the parser knows, the ones packages register included."""
    import argparse

    from vloom.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


COMMANDS = _subcommands()


def vloom(*args, check=True):
    r = subprocess.run(
        [sys.executable, "-m", "vloom", *map(str, args)], capture_output=True, text=True
    )
    if check and r.returncode:
        raise AssertionError(f"vloom {args} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def test_the_command_list_is_the_parsers():
    # the stage commands and the ones packages bring (sweep, scaling, grow, tasks, ...)
    packaged = {"sweep", "scaling", "tasks", "lm-eval", "ingest", "grow"}
    assert {"run", "eval"} | packaged <= set(COMMANDS)


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    missing = [c for c in COMMANDS if f"\n    {c} " not in out and f"\n    {c}\n" not in out]
    assert not missing, out


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    assert "usage: vloom " + cmd in capsys.readouterr().out


def _one_line_error(r, *needles):
    assert r.returncode == 2
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err


def test_unknown_config_key_is_one_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  stepz: 5\n")
    _one_line_error(vloom("run", p, check=False), "bad.yaml", "train.stepz: unknown key")


def test_missing_input_directory_is_one_line(tmp_path):
    _one_line_error(
        vloom("pack", tmp_path / "nowhere", "--out", tmp_path / "o", check=False),
        "nowhere",
        "does not exist",
    )
    _one_line_error(
        vloom("curate", tmp_path / "nowhere", "--out", tmp_path / "o", check=False), "nowhere"
    )


def test_wrong_schema_shard_is_named(tmp_path):
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"text": ["just text"]}), tmp_path / "in" / "x.parquet")
    r = vloom("curate", tmp_path / "in", "--out", tmp_path / "out")
    assert "x.parquet" in r.stdout + r.stderr and "missing column" in r.stdout + r.stderr
    led = json.loads((tmp_path / "out" / "ledger.json").read_text())
    assert led["rejected"] == {"bad_shard": 1} and led["kept"] == 0


def test_tiny_run_end_to_end_and_resume(tmp_path):
    raw = tiny_raw(control=True, out_dir=str(tmp_path / "run"))
    raw["synth"]["noise"] = {"broken_image": 0.1}
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    vloom("run", cfg)
    run = tmp_path / "run"
    for f in [
        "report.md",
        "plots/loss.png",
        "plots/eval.png",
        "metrics.jsonl",
        "results.json",
        "checkpoints/final/model.safetensors",
        "checkpoints/final/config.json",
        "control/results.json",
        "curated/ledger.json",
        "packed/ledger.json",
    ]:
        assert (run / f).exists(), f
    Image.open(run / "plots" / "loss.png").verify()
    res = json.loads((run / "results.json").read_text())
    assert 0 <= res["eval"]["vqa"]["accuracy"] <= 1 and res["config"]["name"] == "tiny"
    ctl = json.loads((run / "control" / "results.json").read_text())
    assert ctl["config"]["train"]["image_start_fraction"] == 1.0
    assert ctl["train"]["tokens"] == res["train"]["tokens"]  # the same budget
    led = json.loads((run / "curated" / "ledger.json").read_text())
    dropped = sum(sum(v.values()) for v in led["dropped"].values())
    assert led["input"] == led["kept"] + dropped + sum(led["rejected"].values())
    assert led["dropped"]["image_filter"]["undecodable_image"] >= 1  # the broken images
    report = (run / "report.md").read_text()
    assert "vqa" in report and str(led["input"]) in report
    # A second invocation finds every stage complete and only rewrites the report.
    r2 = vloom("run", cfg)
    assert r2.stdout.count("complete, skipped") >= 4
    cmp = vloom("compare", run, run / "control").stdout
    assert "vqa.accuracy" in cmp


def test_help_does_not_import_torch():
    # `vloom --help` and light commands must start fast: torch is imported only by what uses it.
    import subprocess
    import sys

    code = "import sys, vloom.cli; vloom.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
