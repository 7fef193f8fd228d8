"""Completion markers and checkpoints survive a kill at any moment: a torn marker means
"incomplete" (the stage runs again), and a checkpoint is never deleted before its
replacement is in place."""

import os

import pytest
import torch
from tinyexp import tiny_config

from vloom.ondisk import read_json, training_complete
from vloom.train import train
from vloom.train.checkpoint import latest_checkpoint, load_weights, save_checkpoint
from vloom.train.loop import build_model, read_packed_stats


def _tear(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("marker", ["train_summary.json", "checkpoints/final/state.json"])
def test_a_torn_marker_reruns_training(tiny_data, tmp_path, marker):
    cfg = tiny_config(train__steps=4, train__checkpoint_every=2)
    run = tmp_path / "run"
    first = train(cfg, tiny_data["packed"], run, quiet=True)
    _tear(run / marker)  # a kill in the middle of writing it
    assert not training_complete(run)
    again = train(cfg, tiny_data["packed"], run, quiet=True)  # neither a crash nor a skip
    assert training_complete(run) and read_json(run / "train_summary.json") == again
    assert again["pid"] == os.getpid() and again["final_loss"] == first["final_loss"]
    assert read_json(run / "checkpoints" / "final" / "state.json")["step"] == 4


def test_a_complete_run_is_skipped(tiny_data, tmp_path):
    cfg = tiny_config(train__steps=2)
    run = tmp_path / "run"
    first = train(cfg, tiny_data["packed"], run, quiet=True)
    stamp = (run / "checkpoints" / "final" / "state.json").stat().st_mtime_ns
    assert train(cfg, tiny_data["packed"], run, quiet=True) == first
    assert (run / "checkpoints" / "final" / "state.json").stat().st_mtime_ns == stamp


def test_torn_packed_stats_is_a_one_line_error(tiny_data, tmp_path):
    packed = tmp_path / "packed"
    packed.mkdir()
    for f in tiny_data["packed"].iterdir():
        (packed / f.name).symlink_to(f)
    (packed / "stats.json").unlink()
    (packed / "stats.json").write_text((tiny_data["packed"] / "stats.json").read_text()[:50])
    with pytest.raises(ValueError, match="incomplete") as e:
        read_packed_stats(packed)
    assert "\n" not in str(e.value)


def test_a_checkpoint_replaced_mid_rename_leaves_the_old_one_loadable(
    tiny_data, tmp_path, monkeypatch
):
    vlm = build_model(tiny_config(), read_packed_stats(tiny_data["packed"]))
    root = tmp_path / "checkpoints"
    old = {k: v.clone() for k, v in vlm.state_dict().items()}
    save_checkpoint(root, "stage-a", vlm, old, {}, {"step": 3})
    new = {k: v + 1 for k, v in old.items()}

    real = os.replace
    calls = []

    def killed_before_the_new_one_lands(src, dst):
        calls.append((str(src), str(dst)))
        if ".tmp-stage-a" in str(src):  # the complete new checkpoint is about to move in
            raise OSError("killed")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", killed_before_the_new_one_lands)
    with pytest.raises(OSError, match="killed"):
        save_checkpoint(root, "stage-a", vlm, new, {}, {"step": 5})
    monkeypatch.setattr(os, "replace", real)
    assert any(".tmp-stage-a" in s for s, _ in calls)
    # The next run finds the old checkpoint, whole, under its name.
    assert latest_checkpoint(root) == root / "stage-a"
    assert read_json(root / "stage-a" / "state.json")["step"] == 3
    load_weights(vlm, root / "stage-a")
    for k, v in vlm.state_dict().items():
        assert torch.equal(v, old[k]), k
    assert sorted(p.name for p in root.iterdir()) == ["stage-a"]
