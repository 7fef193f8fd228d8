import json
import struct

import pytest
from curate_world import small_world, split_by_defect, write_set

from vloom.cli import main
from vloom.config import CurateConfig, StepConfig
from vloom.curate import CurateError, build_step, run_curate, run_steps
from vloom.curate.classify import FASTTEXT_MAGIC, Classifier, classifier_text
from vloom.doc import read_documents, write_documents
from vloom.ledger import Ledger

TRAIN = ["--epochs", "20", "--dim", "16", "--bucket", "20000", "--lr", "0.5"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The synthetic world's clean and spam documents, half of each for training."""
    root = tmp_path_factory.mktemp("world")
    train = small_world(root / "synth")
    clean, spam = split_by_defect(train)
    assert len(clean) >= 100 and len(spam) >= 30
    pos = write_set(root / "pos", clean[::2])
    neg = write_set(root / "neg", spam[::2])
    model = root / "model.bin"
    assert (
        main(["classifier-train", str(pos), str(neg), "--out", str(model), "--quiet", *TRAIN]) == 0
    )
    return {
        "root": root,
        "train": train,
        "pos": pos,
        "neg": neg,
        "model": model,
        "held_clean": clean[1::2],
        "held_spam": spam[1::2],
    }


def test_classifier_separates_held_out_clean_from_spam(world):
    clf = Classifier(world["model"])
    clean = [clf.score(classifier_text(d)) for d in world["held_clean"] if classifier_text(d)]
    spam = [clf.score(classifier_text(d)) for d in world["held_spam"]]
    # every held-out clean document outscores every held-out spam page
    assert min(clean) > max(spam)
    assert sum(s >= 0.5 for s in clean) / len(clean) >= 0.95
    assert sum(s < 0.5 for s in spam) / len(spam) >= 0.95


def test_model_is_fasttext_bin_with_json_sidecar(world):
    head = world["model"].read_bytes()[:4]
    assert struct.unpack("<i", head)[0] == FASTTEXT_MAGIC
    side = json.loads(world["model"].with_suffix(".json").read_text())
    assert side["positive_label"] == "__label__hq"
    assert side["labels"] == ["__label__hq", "__label__lq"]
    assert side["params"]["epoch"] == 20 and side["trained_on"]["negative"] > 0


def test_training_is_deterministic(world, tmp_path):
    again = tmp_path / "again.bin"
    args = ["classifier-train", str(world["pos"]), str(world["neg"]), "--out", str(again)]
    assert main([*args, "--quiet", *TRAIN]) == 0
    assert again.read_bytes() == world["model"].read_bytes()


def test_relative_paths_train_and_cache_the_model(world, tmp_path, monkeypatch):
    # the trainer runs in a child process in a temporary directory: relative paths (what a
    # config in a project directory has) must still land where they say
    monkeypatch.chdir(tmp_path)
    args = ["classifier-train", str(world["pos"]), str(world["neg"]), "--out", "rel/m.bin"]
    assert main([*args, "--quiet", *TRAIN]) == 0
    assert (tmp_path / "rel" / "m.bin").read_bytes() == world["model"].read_bytes()
    step = StepConfig(
        name="fasttext_quality", positive=str(world["pos"]), negative=str(world["neg"])
    )
    run_curate(world["train"], "out", CurateConfig(steps=[step]), quiet=True)
    assert list((tmp_path / "out" / ".curate").glob("fasttext-*.bin"))


def test_threshold_step_drops_spam_and_writes_scores(world, tmp_path):
    held = world["held_clean"] + world["held_spam"]
    step = build_step(StepConfig(name="fasttext_quality", model=str(world["model"]), threshold=0.5))
    kept, led = run_steps(held, [step])
    kept_ids = {d.id for d in kept}
    assert all(d.id not in kept_ids for d in world["held_spam"])
    assert len(kept) >= 0.95 * len(world["held_clean"])
    assert all(isinstance(d.metadata["quality_score"], float) for d in kept)
    assert led.dropped["fasttext_quality"]["fasttext_below_threshold"] == len(held) - len(kept)
    led.check()


def test_keep_top_fraction_is_global_across_shards(world, tmp_path):
    in_dir = tmp_path / "in"
    docs = world["held_clean"] + world["held_spam"]
    write_documents(in_dir, docs, shard_size=13)  # several shards, uneven
    cfg = CurateConfig(
        steps=[
            StepConfig(name="fasttext_quality", model=str(world["model"]), keep_top_fraction=0.4)
        ],
        workers=1,
    )
    led = run_curate(in_dir, tmp_path / "out", cfg, quiet=True)
    out = list(read_documents(tmp_path / "out"))
    scored = [d for d in docs if classifier_text(d)]
    assert led.kept == len(out) == round(0.4 * len(scored)) + (len(docs) - len(scored))
    assert led.dropped["fasttext_quality"]["fasttext_below_top_fraction"] == len(docs) - len(out)
    # the kept ones are the best scores over all shards, not per shard
    clf = Classifier(world["model"])
    kept_ids = {d.id for d in out}
    kept_scores = [clf.score(classifier_text(d)) for d in scored if d.id in kept_ids]
    dropped_scores = [clf.score(classifier_text(d)) for d in scored if d.id not in kept_ids]
    assert min(kept_scores) >= max(dropped_scores)
    # the executor's global decision equals one in-memory stream over the same order
    mem_kept, _ = run_steps(list(read_documents(in_dir)), [build_step(cfg.steps[0])])
    assert [d.id for d in mem_kept] == [d.id for d in out]
    assert [d.metadata["quality_score"] for d in out if classifier_text(d)] == [
        d.metadata["quality_score"] for d in mem_kept if classifier_text(d)
    ]


def test_config_trains_once_and_caches_model_in_output_dir(world, tmp_path):
    in_dir = write_set(tmp_path / "in", world["held_clean"][:20] + world["held_spam"][:10], 10)
    step = StepConfig(
        name="fasttext_quality",
        positive=str(world["pos"]),
        negative=str(world["neg"]),
        threshold=0.5,
        epochs=20,
        dim=16,
        bucket=20000,
        lr=0.5,
    )
    out = tmp_path / "out"
    led = run_curate(in_dir, out, CurateConfig(steps=[step]), quiet=True)
    cached = list((out / ".curate").glob("fasttext-*.bin"))
    assert len(cached) == 1 and cached[0].with_suffix(".json").exists()
    assert cached[0].read_bytes() == world["model"].read_bytes()  # same data, same params
    assert led.kept == 20 and Ledger.read(out).dropped["fasttext_quality"] == {
        "fasttext_below_threshold": 10
    }


def test_not_a_model_is_a_one_line_error(world, tmp_path):
    junk = tmp_path / "model.bin"
    junk.write_bytes(b"__label__hq this is a training file, not a model\n")
    with pytest.raises(CurateError) as e:
        build_step(StepConfig(name="fasttext_quality", model=str(junk)))
    assert str(junk) in str(e.value) and "not a fastText model" in str(e.value)
    assert "\n" not in str(e.value)

    truncated = tmp_path / "trunc.bin"
    truncated.write_bytes(world["model"].read_bytes()[:-64])
    with pytest.raises(CurateError, match="truncated fastText model"):
        build_step(StepConfig(name="fasttext_quality", model=str(truncated)))


def test_cli_curate_with_bad_model_exits_2_naming_file(world, tmp_path, capsys):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 64)
    cfg = tmp_path / "curate.yaml"
    cfg.write_text(f"steps:\n  - name: fasttext_quality\n    model: {junk}\n    threshold: 0.5\n")
    rc = main(["curate", str(world["pos"]), "--out", str(tmp_path / "o"), "--config", str(cfg)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and str(junk) in err and len(err.splitlines()) == 1


def test_bad_parameters_and_missing_training_data(world, tmp_path):
    with pytest.raises(CurateError, match="not both"):
        build_step(
            StepConfig(
                name="fasttext_quality",
                model=str(world["model"]),
                threshold=0.5,
                keep_top_fraction=0.5,
            )
        )
    with pytest.raises(CurateError, match="keep_top_fraction"):
        build_step(
            StepConfig(name="fasttext_quality", model=str(world["model"]), keep_top_fraction=1.5)
        )
    with pytest.raises(CurateError, match="no such classifier"):
        build_step(StepConfig(name="fasttext_quality", model=str(tmp_path / "nope.bin")))
    empty = tmp_path / "empty"
    write_documents(empty, [])
    rc = main(["classifier-train", str(world["pos"]), str(empty), "--out", str(tmp_path / "m.bin")])
    assert rc == 2
