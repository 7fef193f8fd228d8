"""scripts/kale_pretrain.py's corpora: the tiny world's pairs with their alt-texts, the same
pairs through the real `kale` curate step (a random tiny checkpoint generating), and the
world's true captions; the corpora differ in the pairs' captions alone and pack with one
tokenizer."""

from __future__ import annotations

from scriptmod import load_script

from vloom.curate.generated.common import doc_scenes, world_documents
from vloom.curate.generated.kale import world_alt_text_pairs
from vloom.doc import list_shards, read_documents, read_shard
from vloom.ondisk import LEDGER, read_json
from vloom.synth.factcheck import score


def _script():
    return load_script("scripts/kale_pretrain.py")


def test_world_alt_text_pairs_are_the_worlds_pairs_with_true_partial_captions(world_gen):
    alts = world_alt_text_pairs(world_gen.world)
    true = {d.id: d for d in world_documents(world_gen.world, "pair-", 1 << 30)}
    assert alts and sorted(d.id for d in alts) == sorted(true)
    partial = 0
    for d in alts:
        scene = doc_scenes(d)[1]
        assert d.images[0] == true[d.id].images[0]
        full = score(true[d.id].text, scene)  # the scene is the one the world captioned
        assert full.true == full.stated and full.covered == full.scene_facts
        s = score(d.text, scene)
        assert s.stated > 0 and s.true == s.stated  # an alt-text states true facts only
        partial += s.covered < s.scene_facts
    assert partial > len(alts) // 4  # and often not all of them


def test_corpora_differ_only_in_the_pairs_captions(world_gen, tmp_path):
    from tinyexp import tiny_config

    kp = _script()
    params = {"batch_size": 8, "max_new_tokens": 16}
    alt, kale, table = kp.kale_pairs(
        world_gen.world, tmp_path, world_gen.ckpt, config=kp.KALE_CONFIG, params=params
    )
    n = len(alt)
    assert n > 10 and [d.id for d in kale] == [d.id for d in alt]
    # the augmented captions are the real kale step's: one caption generated per pair
    led = read_json(tmp_path / "pairs" / "kale" / LEDGER)
    assert led["step_stats"]["kale"]["generation"]["caption"] == {"generated": n}
    assert table["kept"] == n and table["facts"][0]["text"] == "alt_text"
    for a, k in zip(alt, kale, strict=True):
        assert k.metadata["kale"]["alt_text"] == a.text
        assert "dense" in k.metadata["kale"]
    # a rerun of the step (another output dir, the same cache) generates nothing
    again = tmp_path / "again"
    again.mkdir()
    (again / "generations").symlink_to(tmp_path / "generations")
    _, kale2, t2 = kp.kale_pairs(world_gen.world, again, world_gen.ckpt, params=params)
    assert [d.text for d in kale2] == [d.text for d in kale]
    assert t2["generation"]["caption"] == {"cache_hit": n}

    corpora = kp.build_corpora(world_gen.world, alt, kale, tmp_path)
    docs = {arm: list(read_documents(d)) for arm, d in corpora.items()}
    ids = [d.id for d in docs["alt"]]
    assert all([d.id for d in docs[arm]] == ids for arm in kp.ARMS)
    world = {
        d.id: d
        for s in list_shards(world_gen.world / "train")
        for d in read_shard(s)
        if "defect" not in d.metadata
    }
    caption = {
        "alt": {d.id: d.text for d in alt},
        "kale": {d.id: d.text for d in kale},
        "true": {i: d.text for i, d in world.items() if i.startswith("pair-")},
    }
    shared = [i for i in ids if not i.startswith("pair-")]
    assert shared == ids[: len(shared)] and len(ids) - len(shared) == n  # shared docs first
    for j, i in enumerate(ids):
        row = {arm: docs[arm][j] for arm in kp.ARMS}
        if i in shared:  # interleaved and text documents: the world's, the same in every arm
            for d in row.values():
                assert d.texts == world[i].texts and d.images == world[i].images
            continue
        for arm, d in row.items():  # pairs: the world's image, the arm's caption
            assert d.images[0] == world[i].images[0]
            assert d.text == caption[arm][i]
    assert any(caption["alt"][i] != caption["true"][i] for i in caption["alt"])

    cfg = tiny_config(pack__tokenizer_docs=len(shared))
    packed = kp.pack_arms(cfg, corpora, tmp_path)  # raises if the tokenizers differ
    assert set(packed) == set(kp.ARMS)
