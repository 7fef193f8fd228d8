"""A run killed with SIGKILL and started again ends with the same weights as one never killed."""

import os
import signal
import subprocess
import sys
import time

import torch
import yaml
from safetensors.torch import load_file
from tinyexp import tiny_raw


def _cmd(cfg_path, packed, out):
    return [
        sys.executable,
        "-m",
        "vloom",
        "train",
        str(packed),
        "--out",
        str(out),
        "--config",
        str(cfg_path),
        "--quiet",
    ]


def test_killed_run_resumes_to_identical_weights(tiny_data, tmp_path):
    raw = tiny_raw(train__steps=60, train__checkpoint_every=10, train__log_every=5)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    env = dict(os.environ, PYTHONHASHSEED="0")

    ref = tmp_path / "ref"
    subprocess.run(_cmd(cfg_path, tiny_data["packed"], ref), check=True, env=env)

    run = tmp_path / "killed"
    proc = subprocess.Popen(_cmd(cfg_path, tiny_data["packed"], run), env=env)
    deadline = time.time() + 120
    while not (run / "checkpoints" / "step-000020").exists():
        assert proc.poll() is None, "training finished before it could be killed"
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "checkpoints" / "final").exists()

    out = subprocess.run(
        _cmd(cfg_path, tiny_data["packed"], run),
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    summary = yaml.safe_load((run / "train_summary.json").read_text())
    assert summary["resumed_from"] and "step-0000" in summary["resumed_from"]
    a = load_file(str(ref / "checkpoints" / "final" / "model.safetensors"))
    b = load_file(str(run / "checkpoints" / "final" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [yaml.safe_load(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == 60, out.stdout
