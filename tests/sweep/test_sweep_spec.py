"""Study files: grid expansion, equal compute, shared-data keys, and bad input before any run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from sweepkit import write_study

from vloom.config import ConfigError
from vloom.sweep import load_study
from vloom.sweep.data import data_key
from vloom.sweep.slurm import write_slurm


def test_grid_expands_cartesian_with_seeds_last(tmp_path):
    study = load_study(
        write_study(
            tmp_path, grid={"train.image_start_fraction": [0.0, 0.5, 1.0], "train.lr": [1e-3, 3e-3]}
        )
    )
    assert len(study.runs) == 3 * 2 * 2
    names = [r.name for r in study.runs]
    assert names[0] == "image_start_fraction-0_lr-0.001_seed-0"
    assert names[1] == "image_start_fraction-0_lr-0.001_seed-1"
    assert len(set(names)) == len(names)
    r = study.runs[-1]
    assert r.settings == {"train.image_start_fraction": 1.0, "train.lr": 3e-3, "seed": 1}
    assert (r.config.train.image_start_fraction, r.config.train.lr, r.config.seed) == (1.0, 3e-3, 1)
    assert study.swept == ["train.image_start_fraction", "train.lr"]


def test_equal_compute_derives_steps_from_tokens(tmp_path):
    study = load_study(write_study(tmp_path, grid={"train.batch_size": [2, 4, 8]}, tokens=8192))
    seq = study.runs[0].config.pack.seq_len
    steps = {r.config.train.batch_size: r.config.train.steps for r in study.runs}
    assert steps == {2: 64, 4: 32, 8: 16}
    assert {bs * s * seq for bs, s in steps.items()} == {8192}


def test_runs_share_data_across_seeds_and_recipe_not_across_world(tmp_path):
    study = load_study(
        write_study(
            tmp_path, grid={"train.image_start_fraction": [0.0, 1.0], "synth.n_text": [40, 50]}
        )
    )
    keys = {}
    for r in study.runs:
        keys.setdefault(r.settings["synth.n_text"], set()).add(
            data_key(r.config, study.spec.data_seed)
        )
    assert len(keys[40]) == 1 and len(keys[50]) == 1  # seeds and image fraction share data
    assert keys[40] != keys[50]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"grid": {"train.image_start_fraktion": [0.0, 1.0]}},
            "grid field 'train.image_start_fraktion' does not exist",
        ),
        ({"grid": {"train.nope.deeper": [1]}}, "grid field 'train.nope.deeper' does not exist"),
        ({"grid": {}}, "grid is empty"),
        ({"grid": {"train.lr": []}}, "grid field 'train.lr' has no values"),
        ({"grid": {"train.image_start_fraction": [0.5, 2.0]}}, "run image_start_fraction-2_seed-0"),
        ({"seeds": []}, "seeds is empty"),
        ({"grid": {"train.lr": [1e-3]}, "executor": "kubernetes"}, "executor"),
    ],
)
def test_bad_study_is_one_line_error_before_anything_runs(tmp_path, fields, message):
    path = write_study(tmp_path, **fields)
    with pytest.raises(ConfigError) as e:
        load_study(path)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "sweep").exists()


def test_cli_names_the_bad_grid_field(tmp_path, capsys):
    from vloom.cli import main

    path = write_study(tmp_path, grid={"model.widht": [32, 64]})
    assert main(["sweep", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vloom: error:") and "'model.widht' does not exist" in err
    assert len(err.splitlines()) == 1


def test_slurm_script_lists_runs_and_calls_one_run_per_task(tmp_path):
    path = write_study(
        tmp_path,
        executor="slurm",
        threads=4,
        slurm={"partition": "cpu", "time": "00:30:00", "max_parallel": 2, "extra": ["--qos=low"]},
    )
    study = load_study(path)
    script, runs = write_slurm(study, [r.name for r in study.runs])
    text = script.read_text()
    assert runs.read_text().split() == [r.name for r in study.runs]
    assert "#SBATCH --array=0-3%2" in text
    assert "#SBATCH --cpus-per-task=4" in text
    assert "#SBATCH --partition=cpu" in text and "#SBATCH --time=00:30:00" in text
    assert "#SBATCH --qos=low" in text
    assert '--run "$RUN"' in text and str(path.resolve()) in text
    assert 'sed -n "$((SLURM_ARRAY_TASK_ID + 1))p"' in text
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0  # valid shell
    # The study file parses as what the script will load.
    assert yaml.safe_load(path.read_text())["executor"] == "slurm"


STUDIES = sorted(
    p
    for p in (Path(__file__).resolve().parents[2] / "configs").glob("*.yaml")
    if any(f"\n{k}:" in "\n" + p.read_text() for k in ("grid", "variants"))
)


@pytest.mark.parametrize("path", STUDIES, ids=[p.name for p in STUDIES])
def test_every_study_config_expands(path):
    study = load_study(path)
    assert study.runs and all(r.config.train.steps >= 1 for r in study.runs)


def test_default_study_is_the_keh_grid_with_three_seeds():
    from vloom.report.study_table import task_kind

    study = load_study(Path(__file__).resolve().parents[2] / "configs" / "study.yaml")
    assert study.spec.grid == {"train.image_start_fraction": [0.0, 0.5, 0.8, 1.0]}
    assert len(study.spec.seeds) >= 3 and study.spec.finetune is not None  # issue 16
    tasks = study.runs[0].config.eval.tasks
    assert len({t for t in tasks if task_kind(t) == "vision-language"}) >= 3
    assert len({t for t in tasks if task_kind(t) == "text"}) >= 2
    from vloom.evaluate.tasks import parse_task_spec

    for t in tasks:
        parse_task_spec(t)  # every task is registered, its parameters valid
    tokens = {
        r.config.train.steps * r.config.train.batch_size * r.config.pack.seq_len for r in study.runs
    }
    assert tokens == {study.spec.tokens}


def test_variants_change_fields_together_as_one_axis(tmp_path):
    study = load_study(
        write_study(
            tmp_path,
            grid={"train.image_start_fraction": [0.0, 1.0]},
            variants={
                "small": {"synth.n_text": 20, "curate.steps": [{"name": "exact_dedup"}]},
                "big": {"synth.n_text": 80, "curate.steps": []},
            },
        )
    )
    assert len(study.runs) == 2 * 2 * 2 and study.swept[0] == "variant"
    small = [r for r in study.runs if r.settings["variant"] == "small"]
    assert {r.config.synth.n_text for r in small} == {20}
    assert {len(r.config.curate.steps) for r in small} == {1}
    assert study.runs[0].name == "variant-small_image_start_fraction-0_seed-0"
    with pytest.raises(ConfigError, match="variant 'x' sets 'synth.n_txt'"):
        load_study(write_study(tmp_path, name="bad.yaml", variants={"x": {"synth.n_txt": 1}}))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "x\nrm -rf ~"),
        ("name", "my study; rm -rf ~"),
        ("out_dir", "runs/x\nrm -rf ~"),
        ("slurm.mem", "16G\nrm -rf ~"),
        ("slurm.time", "1:00:00\nrm -rf ~"),
        ("slurm.time", "$(rm -rf ~)"),
        ("slurm.partition", "cpu\nrm -rf ~"),
        ("slurm.account", "lab`rm -rf ~`"),
        ("slurm.extra.0", "--qos=low\nrm -rf ~"),
        ("slurm.extra.0", "--comment=$(id)"),
    ],
)
def test_slurm_values_that_could_become_shell_lines_are_refused(tmp_path, capsys, field, value):
    """A study file's values land in sweep.sbatch: a newline or shell syntax is a one-line
    error naming the field, before anything is written."""
    from vloom.cli import main
    from vloom.config import set_dotted

    raw = yaml.safe_load(write_study(tmp_path, executor="slurm").read_text())
    if field == "slurm.extra.0":
        raw.setdefault("slurm", {})["extra"] = [value]
    else:
        set_dotted(raw, field, value)
    path = tmp_path / "hostile.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as e:
        load_study(path)
    msg = str(e.value)
    assert "\n" not in msg and f"{field}:" in msg and "hostile.yaml" in msg
    assert main(["sweep", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err
    assert not list(tmp_path.rglob("*.sbatch"))


def test_slurm_values_of_the_usual_shapes_are_written(tmp_path):
    slurm = {
        "partition": "gpu,gpu-long",
        "account": "lab_01",
        "time": "1-12:00:00",
        "mem": "16G",
        "extra": ["--qos=high", "--exclusive", "--mail-user=me@lab.org"],
    }
    study = load_study(write_study(tmp_path, executor="slurm", slurm=slurm))
    text = write_slurm(study, [r.name for r in study.runs])[0].read_text()
    for line in ("--partition=gpu,gpu-long", "--account=lab_01", "--time=1-12:00:00", "--mem=16G"):
        assert f"#SBATCH {line}\n" in text
    assert "#SBATCH --mail-user=me@lab.org\n" in text
    assert subprocess.run(["bash", "-n", str(write_slurm(study, ["a"])[0])]).returncode == 0


def _keys(tmp_path, grid, **fields):
    study = load_study(write_study(tmp_path, grid=grid, seeds=[0], **fields))
    return [data_key(r.config, study.spec.data_seed) for r in study.runs]


@pytest.mark.parametrize(
    "grid",
    [
        {"model.vision.resolution": ["fixed", "dynamic"]},
        {"model.vision.max_pixels": [1024, 4096]},
        {"model.vision.min_pixels": [256, 1024]},
        {"model.vision.patch_size": [4, 8]},
        {"pack.vocab_size": [320, 400]},
        {"pack.tokenizer_docs": [100, 200]},
        {"pack.seq_len": [64, 128]},
        {"synth.image_size": [32, 48]},
        {"curate.steps": [[{"name": "exact_dedup"}], [{"name": "exact_dedup", "field": "x"}]]},
    ],
    ids=lambda g: next(iter(g)),
)
def test_settings_the_data_stages_read_get_their_own_data(tmp_path, grid):
    from tinyexp import tiny_raw

    dynamic = "pixels" in next(iter(grid))  # min/max_pixels act with dynamic resolution
    base = tiny_raw(model__vision__resolution="dynamic") if dynamic else tiny_raw()
    keys = _keys(tmp_path, grid, base=base)
    assert len(set(keys)) == len(keys), keys


@pytest.mark.parametrize(
    "grid",
    [
        {"train.lr": [1e-3, 3e-3]},
        {"model.vision.d_model": [32, 64]},
        {"model.vision.n_layers": [1, 2]},
        {"model.d_model": [32, 64]},
        {"curate.workers": [1, 2]},
        {"eval.max_examples": [4, 8]},
    ],
    ids=lambda g: next(iter(g)),
)
def test_settings_the_data_stages_do_not_read_share_the_data(tmp_path, grid):
    keys = _keys(tmp_path, grid)
    assert len(set(keys)) == 1, keys
