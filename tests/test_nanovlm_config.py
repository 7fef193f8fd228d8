"""configs/nanovlm.yaml: it parses on a machine without its weights and data, a run names the
first missing directory in one line, and with tiny stand-ins at those paths (rewritten with
--set) the recipe runs end to end on CPU: the_cauldron's conversation layout through `data:`,
a SmolLM2-style LM and a SigLIP tower from local directories, MMStar through mcbench."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hflm import save_hf_lm
from PIL import Image

from vloom.cli import main
from vloom.config import ConfigError, load_config, parse_overrides

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "nanovlm.yaml"
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 60, 220)}


def test_nanovlm_parses_without_its_weights_and_keeps_the_recipe():
    cfg = load_config(CONFIG)
    v = cfg.model.vision
    assert (v.arch, v.connector, v.merge, v.post_norm, v.patch_size) == (
        "siglip",
        "pixel_shuffle",
        2,
        True,
        16,
    )
    assert cfg.pack.image_size == 224 and (224 // 16 // 2) ** 2 == 49  # nanoVLM's 49 tokens
    (src,) = cfg.data.sources
    assert src.kind == "hf" and src.options == {"layout": "conversation"}
    assert len(src.paths) == 45 and not Path(src.paths[0]).exists()
    assert [s.trainable for s in cfg.train.stages] == [["connector"], ["vision", "connector", "lm"]]
    assert cfg.eval.tasks[0].startswith("mcbench:path=/data/MMStar/mmstar.parquet")


def test_a_nanovlm_run_without_the_weights_is_a_one_line_error(tmp_path, capsys):
    assert main(["run", str(CONFIG), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model.lm.init: /data/SmolLM2-135M: no such directory" in err
    assert not (tmp_path / "run").exists()  # refused before the run directory is claimed


def test_set_indexes_lists():
    raw = {"data": {"sources": [{"paths": ["/a"]}]}, "eval": {"tasks": ["x", "y"]}}
    from vloom.config import set_dotted

    set_dotted(raw, "data.sources.0.paths", ["/b"])
    set_dotted(raw, "eval.tasks.1", "z")
    assert raw == {"data": {"sources": [{"paths": ["/b"]}]}, "eval": {"tasks": ["x", "z"]}}
    with pytest.raises(ConfigError, match="3 is not an index of a 2-item list"):
        set_dotted(raw, "eval.tasks.3", "w")
    with pytest.raises(ConfigError, match="x is not a section"):
        set_dotted({"x": 1}, "x.y", 2)


# ---------------------------------------------------------------- tiny stand-ins


def _png(colour: str, seed: int) -> bytes:
    rng = random.Random(seed)
    im = Image.new("RGB", (40, 40), COLOURS[colour])
    for _ in range(4):
        x, y = rng.randrange(32), rng.randrange(32)
        im.paste(tuple(rng.randrange(256) for _ in range(3)), (x, y, x + 6, y + 6))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def _cauldron(root: Path, subset: str, n: int, seed: int) -> None:
    """`<subset>/train-00000-of-00001.parquet` as the Hub stores the_cauldron."""
    datasets = pytest.importorskip("datasets", reason="the_cauldron stand-in is built by datasets")
    turn = {k: datasets.Value("string") for k in ("user", "assistant", "source")}
    feats = datasets.Features({"images": datasets.List(datasets.Image()), "texts": [turn]})
    names = list(COLOURS)
    rows = {"images": [], "texts": []}
    for i in range(n):
        c = names[i % 3]
        rows["images"].append([{"bytes": _png(c, seed + i), "path": None}])
        rows["texts"].append(
            [
                {
                    "user": "Which colour fills the image?",
                    "assistant": f"It is {c}.",
                    "source": subset,
                },
                {
                    "user": "Is there a pattern?",
                    "assistant": "A few small squares.",
                    "source": subset,
                },
            ]
        )
    ds = datasets.Dataset.from_dict(rows, features=feats)
    ds.to_parquet(str(root / subset / "train-00000-of-00001.parquet"))


def _mmstar(path: Path) -> None:
    names = list(COLOURS)
    rows = []
    for i in range(9):
        c = names[i % 3]
        opts = [c, *[n for n in names if n != c]]
        random.Random(i).shuffle(opts)
        rows.append(
            {
                "index": i,
                "question": "Which colour fills the image?\nOptions: "
                + ", ".join(f"{L}: {o}" for L, o in zip("ABC", opts, strict=True)),
                "answer": "ABC"[opts.index(c)],
                "category": "coarse perception",
                "l2_category": "colour",
                "image": {"bytes": _png(c, 100 + i), "path": None},
            }
        )
    pq.write_table(pa.Table.from_pylist(rows), path)


def _tower(path: Path) -> None:
    pytest.importorskip("transformers", reason="the tower stand-in is built by transformers")
    import torch
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    cfg = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=64,
        patch_size=16,
    )
    SiglipVisionModel(cfg).save_pretrained(str(path))


def test_nanovlm_runs_two_steps_on_tiny_stand_ins(tmp_path):
    pytest.importorskip("transformers", reason="the LM stand-in is built by transformers")
    _cauldron(tmp_path / "the_cauldron", "ai2d", 12, 0)
    _cauldron(tmp_path / "the_cauldron", "vqav2", 12, 50)
    _mmstar(tmp_path / "mmstar.parquet")
    save_hf_lm(tmp_path / "SmolLM2-135M")  # a tiny Llama with its own BPE
    _tower(tmp_path / "siglip")
    sets = {
        "model.lm.init": str(tmp_path / "SmolLM2-135M"),
        "model.vision.init": str(tmp_path / "siglip"),
        "pack.image_size": 64,
        "pack.seq_len": 96,
        "data.sources.0.paths": [str(tmp_path / "the_cauldron" / s) for s in ("ai2d", "vqav2")],
        "eval.tasks.0": f"mcbench:path={tmp_path / 'mmstar.parquet'},score=letter,as=mmstar",
        "eval.during_training.every": 1,
        "eval.during_training.max_examples": 4,
        "curate.workers": 1,
        "train.steps": 2,
        "train.stages.0.steps": 1,
        "train.stages.1.steps": 1,
        "train.batch_size": 2,
        "train.warmup_steps": 0,
        "train.precision": "fp32",
        "train.device": "cpu",
        "train.threads": 1,
        "eval.device": "cpu",
    }
    argv = [f"{k}={json.dumps(v)}" for k, v in sets.items()]
    assert parse_overrides(argv)["data.sources.0.paths"] == sets["data.sources.0.paths"]
    run = tmp_path / "run"
    cmd = ["run", str(CONFIG), "--out", str(run), "--quiet"]
    assert main([*cmd, *(x for a in argv for x in ("--set", a))]) == 0
    # The stand-ins' sizes came from their directories, not from the recipe's defaults.
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["d_model"] == 32 and saved["model"]["vision"]["d_model"] == 32
    # Every cauldron row became a document with its image and turns, all of them trained on.
    union = json.loads((run / "union" / "ledger.json").read_text())
    assert union["input"] == 24 and union["kept"] == 24
    stats = json.loads((run / "packed" / "stats.json").read_text())
    assert stats["images"] == 24
    res = json.loads((run / "results.json").read_text())["eval"]["mmstar"]
    assert res["n"] == 9 and res["layout"] == "mmstar" and 0 <= res["accuracy"] <= 1
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    curve = [m["step"] for m in metrics if "eval/mmstar/accuracy" in m]
    assert curve == [0, 1, 2]
    assert "| cauldron | hf | 24 | 24 |" in (run / "report.md").read_text()
