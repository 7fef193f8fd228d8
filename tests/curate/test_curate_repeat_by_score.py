"""Per-document repetition by a quality score, as configs/study_repeat_score.yaml runs it: the
world writes clean reference documents, a fastText classifier learns reference vs the raw
corpus ("{input}" names the curation input), and mix repeats the best-scored documents."""

from collections import Counter

import pytest

from vloom.config import CurateConfig, NoiseConfig, StepConfig, SynthConfig
from vloom.curate import CurateError, build_step, run_curate
from vloom.curate.mix import kind_of
from vloom.doc import read_documents
from vloom.synth import generate


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    out = tmp_path_factory.mktemp("refworld")
    cfg = SynthConfig(
        n_interleaved=30,
        n_pairs=60,
        n_text=60,
        n_reference=100,
        n_eval_vqa=4,
        n_eval_text=4,
        shard_size=40,
        noise=NoiseConfig(spam=0.2),
    )
    manifest = generate(cfg, out, seed=5)
    return out, manifest


def test_reference_documents_are_clean_in_the_corpus_kinds_and_not_in_train(world):
    out, manifest = world
    ref = list(read_documents(out / "reference"))
    assert len(ref) == manifest["reference"]["documents"] == 100
    assert Counter(kind_of(d) for d in ref) == {"interleaved": 20, "pairs": 40, "text": 40}
    assert all(d.id.startswith("ref-") and "defect" not in d.metadata for d in ref)
    assert all(d.source.startswith("synth/reference/") for d in ref)

    def body(d):
        return "\n".join(t for t in d.texts if t)

    train = {body(d) for d in read_documents(out / "train")}
    # new documents, not copies (a one-object pair caption can recur: the world is small)
    same = [d.id for d in ref if body(d) in train]
    assert len(same) < 0.1 * len(ref), same


def test_classifier_from_input_relative_sets_then_repetition_tiers(world, tmp_path):
    out, _ = world
    steps = [
        StepConfig(
            name="fasttext_quality",
            positive="{input}/../reference",
            negative="{input}",
            epochs=25,
            lr=0.5,
        ),
        StepConfig(name="mix", score_key="quality_score", repeat=[[0.1, 4], [0.3, 2]]),
    ]
    led = run_curate(out / "train", tmp_path / "cur", CurateConfig(steps=steps), quiet=True)
    docs = list(read_documents(tmp_path / "cur"))
    originals = {d.id: d for d in docs if "repeat_of" not in d.metadata}
    n = len(originals)
    assert n == led.input  # one source, no shares: nothing downsampled
    copies = Counter(d.metadata.get("repeat_of", d.id) for d in docs)
    ranked = sorted(originals.values(), key=lambda d: -d.metadata["quality_score"])
    top, mid = round(0.1 * n), round(0.3 * n)
    assert [copies[d.id] for d in ranked] == [4] * top + [2] * (mid - top) + [1] * (n - mid)

    # the classifier learned what the noise looks like: spam scores below clean documents
    def mean_score(defect):
        got = [d.metadata["quality_score"] for d in ranked if d.metadata.get("defect") == defect]
        return sum(got) / len(got)

    assert mean_score("spam") < mean_score(None) - 0.2
    assert all(d.metadata.get("defect") != "spam" for d in ranked[:top])
    assert led.extra["step_stats"]["mix"]["copies_added"] == len(docs) - n
    led.check()


def test_input_placeholder_that_names_nothing_is_a_clear_error(world, tmp_path):
    out, _ = world
    step = StepConfig(name="fasttext_quality", positive="{input}/../nowhere", negative="{input}")
    with pytest.raises(FileNotFoundError, match="nowhere: no such file or directory"):
        run_curate(out / "train", tmp_path / "cur", CurateConfig(steps=[step]), quiet=True)


def test_mix_without_shares_takes_no_by():
    with pytest.raises(CurateError, match="single source of a mix without 'shares'"):
        build_step(StepConfig(name="mix", shares={"text": 1.0}, by="all"))
