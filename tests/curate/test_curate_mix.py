import copy
from collections import Counter

import pytest
from curate_world import small_world

from vloom.config import CurateConfig, StepConfig
from vloom.curate import CurateError, build_step, run_curate, run_steps
from vloom.curate.funnel import text_tokens
from vloom.curate.mix import kind_of
from vloom.doc import read_documents, write_documents
from vloom.ledger import Ledger
from vloom.report.tables import funnel_table

SHARES = {"interleaved": 0.5, "pairs": 0.3, "text": 0.2}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    train = small_world(tmp_path_factory.mktemp("mixworld"), spam=0.1, shard_size=45)
    return train, list(read_documents(train))


def tokens(d, per_image=16):
    return text_tokens(d) + per_image * d.n_images


def test_kinds_match_what_synth_writes(world):
    _, docs = world
    for d in docs:
        if "defect" not in d.metadata:
            assert d.source == f"synth/{kind_of(d)}", d.id


def test_token_shares_by_downsampling_across_shards(world, tmp_path):
    train, docs = world
    step = StepConfig(name="mix", shares=SHARES, seed=1)
    led = run_curate(train, tmp_path / "out", CurateConfig(steps=[step]), quiet=True)
    out = list(read_documents(tmp_path / "out"))
    got = Counter()
    for d in out:
        got[kind_of(d)] += tokens(d)
    total = sum(got.values())
    for kind, share in SHARES.items():
        assert abs(got[kind] / total - share) < 0.03, (kind, got)
    # pure downsampling (no total given): nothing repeated, the scarcest source kept whole
    assert len({d.id for d in out}) == len(out) and led.kept == len(out)
    supply = Counter()
    for d in docs:
        supply[kind_of(d)] += tokens(d)
    scarcest = min(SHARES, key=lambda k: supply[k] / SHARES[k])
    assert got[scarcest] == supply[scarcest]
    assert led.dropped["mix"] == {"mix_downsampled": len(docs) - len(out)}
    # the ledger and the funnel carry tokens per source, and the report shows them
    stats = led.extra["step_stats"]["mix"]["sources"]
    assert {k: v["tokens"] for k, v in stats.items()} == dict(got)
    row = led.extra["funnel"][-1]
    assert row["step"] == "mix" and row["documents"] == len(out)
    assert row["by_source"]["text"]["text_tokens"] == sum(
        text_tokens(d) for d in out if kind_of(d) == "text"
    )
    md = funnel_table(Ledger.read(tmp_path / "out").extra["funnel"])
    assert "After mix, by source" in md and "| interleaved |" in md
    # the executor's global plan equals one in-memory stream in the same order
    mem, _ = run_steps(docs, [build_step(step)])
    assert [d.id for d in mem] == [d.id for d in out]


def test_same_seed_same_mixture_other_seed_other_sample(world):
    _, docs = world
    ids = {}
    for seed in (1, 1, 2):
        kept, _ = run_steps(docs, [build_step(StepConfig(name="mix", shares=SHARES, seed=seed))])
        ids.setdefault(seed, []).append([d.id for d in kept])
    assert ids[1][0] == ids[1][1]
    assert ids[1][0] != ids[2][0]


def test_best_documents_repeated_more(world):
    _, docs = world
    text = [copy.deepcopy(d) for d in docs if kind_of(d) == "text"]
    for i, d in enumerate(text):
        d.metadata["quality_score"] = i / len(text)  # later = better
    step = StepConfig(
        name="mix",
        shares={"text": 1.0},
        unit="documents",
        score_key="quality_score",
        repeat=[[0.2, 3], [0.5, 2]],
    )
    kept, led = run_steps(text, [build_step(step)])
    copies = Counter(d.metadata.get("repeat_of", d.id) for d in kept)
    n = len(text)
    ranked = sorted(text, key=lambda d: -d.metadata["quality_score"])
    top, mid = round(0.2 * n), round(0.5 * n)
    assert [copies[d.id] for d in ranked] == [3] * top + [2] * (mid - top) + [1] * (n - mid)
    assert len(kept) == 3 * top + 2 * (mid - top) + (n - mid)
    best = ranked[0]
    assert [d.id for d in kept if d.metadata.get("repeat_of") == best.id] == [
        f"{best.id}-rep1",
        f"{best.id}-rep2",
    ]
    # each input counted once in the books; the copies are in the step stats and funnel
    assert led.input == led.kept == n
    assert led.extra["step_stats"]["mix"]["copies_added"] == len(kept) - n
    assert led.extra["funnel"][-1]["documents"] == len(kept)
    led.check()


def test_total_upsamples_a_scarce_source(world):
    _, docs = world
    step = StepConfig(
        name="mix", shares={"pairs": 0.5, "text": 0.5}, unit="documents", total=400, others="keep"
    )
    kept, led = run_steps(docs, [build_step(step)])
    got = Counter(kind_of(d) for d in kept)
    n_inter = sum(kind_of(d) == "interleaved" for d in docs)
    assert abs(got["pairs"] - 200) <= 1 and abs(got["text"] - 200) <= 1
    assert got["interleaved"] == n_inter  # others: keep passes unlisted sources once
    assert led.extra["step_stats"]["mix"]["copies_added"] == len(kept) - led.kept
    led.check()


def test_unlisted_sources_are_dropped_and_counted(world):
    _, docs = world
    step = StepConfig(name="mix", by="source", shares={"text": 1.0})  # matches synth/text
    kept, led = run_steps(docs, [build_step(step)])
    assert {d.source for d in kept} == {"synth/text"}
    n_other = sum(d.source != "synth/text" for d in docs)
    assert led.dropped["mix"]["mix_unlisted_source"] == n_other
    assert led.kept == len(kept) == len(docs) - n_other


def test_bad_mix_configs(world, tmp_path):
    _, docs = world
    with pytest.raises(CurateError, match="add up to 1"):
        build_step(StepConfig(name="mix", shares={"text": 0.5, "pairs": 0.2}))
    with pytest.raises(CurateError, match="not video"):
        build_step(StepConfig(name="mix", shares={"text": 0.5, "video": 0.5}))
    with pytest.raises(CurateError, match="score_key"):
        build_step(StepConfig(name="mix", shares={"text": 1.0}, repeat=[[0.1, 2]]))
    with pytest.raises(CurateError, match="repeat tier"):
        build_step(StepConfig(name="mix", shares={"text": 1.0}, score_key="s", repeat=[[2, 2]]))
    only_text = [d for d in docs if kind_of(d) == "text"]
    with pytest.raises(CurateError, match="'pairs' has a share of 0.5 but no documents"):
        run_steps(
            only_text, [build_step(StepConfig(name="mix", shares={"text": 0.5, "pairs": 0.5}))]
        )
    write_documents(tmp_path / "in", only_text[:5])
    steps = [StepConfig(name="mix", shares={"text": 1.0}), StepConfig(name="exact_dedup")]
    with pytest.raises(CurateError, match="must be the last step"):
        run_curate(tmp_path / "in", tmp_path / "out", CurateConfig(steps=steps), quiet=True)
