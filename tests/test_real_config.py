"""configs/real.yaml and what it starts from: scripts/make_real_assets.py builds a SmolLM2-shaped
LM with a BPE trained on the manuals, a SigLIP tower and an MMStar-layout benchmark whose
answers are in the pixels; the config parses before they exist; an optional source that is not
on this machine is left out; the whole `make real` run end to end (slow)."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from realdata import png, write_html_dir
from scriptmod import load_script
from tinyexp import tiny_config

from vloom.config import ConfigError, check_model_dirs, load_config
from vloom.media import decode_image
from vloom.sources import SourceError, check_sources, present

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "real.yaml"


def _script():
    return load_script("scripts/make_real_assets.py")


def _config_with(tmp_path: Path, **paths) -> Path:
    raw = yaml.safe_load(CONFIG.read_text())
    raw["model"]["lm"]["init"] = str(paths.get("lm", tmp_path / "no-lm"))
    raw["model"]["vision"]["init"] = str(paths.get("tower", tmp_path / "no-tower"))
    if "html" in paths:
        raw["data"]["sources"] = [{"name": "manuals", "kind": "html", "path": str(paths["html"])}]
    out = tmp_path / "real.yaml"
    out.write_text(yaml.safe_dump(raw))
    return out


def test_real_yaml_parses_before_its_assets_exist_and_a_run_start_names_them(tmp_path):
    cfg = load_config(_config_with(tmp_path))
    assert cfg.model.vision.connector == "pixel_shuffle" and cfg.model.vision.post_norm
    assert {s.name: s.optional for s in cfg.data.sources}["gimp"] is True
    assert any(t.startswith("mcbench:path=runs/assets/mmstar_real.parquet") for t in cfg.eval.tasks)
    with pytest.raises(ConfigError, match=r"model.lm.init: .*no-lm: no such directory"):
        check_model_dirs(cfg)


def test_the_assets_are_a_llama_lm_with_a_manual_bpe_a_siglip_tower_and_a_benchmark(tmp_path):
    pytest.importorskip("transformers", reason="the assets are transformers models")
    mod = _script()
    write_html_dir(tmp_path / "html", n=12)
    pics = tmp_path / "pics"
    pics.mkdir()
    rng = random.Random(0)
    for i in range(40):  # plain fields, patched ones, light and dark: every question kind fits
        side = 24 + 8 * (i % 4)
        im = Image.new("RGB", (side * 2, side), (250, 250, 250) if i % 2 else (10, 10, 10))
        if i % 3 == 0:  # a red top half: the brighter half is then top or bottom
            im.paste((200, 40, 40), (0, 0, side * 2, side // 2))
        im.putpixel((i, side - 1), (128, 128, 128))  # each file distinct (the pool dedups)
        im.save(pics / f"p{i:02d}.png")
        (pics / f"x{i:02d}.png").write_bytes(png(rng))
    cfg = _config_with(tmp_path, html=tmp_path / "html")
    out = tmp_path / "assets"
    assert mod.main(["--config", str(cfg), "--out", str(out), "--images", str(pics)]) == 0

    # The LM: SmolLM2's shape at tiny sizes, read by vloom as model fields; its tokenizer was
    # trained on the pages' words (a frequent manual word is one token).
    from transformers import AutoTokenizer, LlamaForCausalLM

    lm = LlamaForCausalLM.from_pretrained(str(out / "lm"))
    assert lm.config.num_key_value_heads * 3 == lm.config.num_attention_heads
    tok = AutoTokenizer.from_pretrained(str(out / "lm"))
    assert len(tok.encode(" coloured")) == 1 and tok.eos_token == "<|endoftext|>"
    # The tower and the benchmark, through vloom's own loaders.
    loaded = load_config(_config_with(tmp_path, lm=out / "lm", tower=out / "siglip"))
    check_model_dirs(loaded)
    assert (loaded.model.d_model, loaded.model.n_kv_heads, loaded.pack.image_size) == (144, 3, 32)
    from vloom.evaluate.benchmarks import load_benchmark

    bench = load_benchmark(out / "mmstar_real.parquet")
    assert bench.layout == "mmstar" and 60 <= len(bench.rows) <= 80  # one question an image
    assert {r.category for r in bench.rows} == {"coarse_perception", "fine-grained_perception"}
    # Each answer is what the pixels say, recomputed here from the stored image.
    import pyarrow.parquet as pq

    for row in pq.read_table(out / "mmstar_real.parquet").to_pylist():
        a = mod.rgb(row["image"]["bytes"])
        if row["l2_category"] == "brightness":
            truth = "light" if mod.luminance(a).mean() >= 0.6 else "dark"
        elif row["l2_category"] == "image style & quality":
            truth = "in colour" if (a.max(-1) - a.min(-1)).mean() >= 0.08 else "in greyscale"
        else:
            continue
        opts = row["question"].split("Options: ")[1].split(", ")
        assert opts["ABCD".index(row["answer"])].split(": ")[1] == truth


def test_an_optional_source_not_on_this_machine_is_left_out(tmp_path):
    write_html_dir(tmp_path / "html", n=12)
    gone = str(tmp_path / "gone")
    data = {
        "held_out_per_mille": 200,
        "sources": [
            {"name": "web", "kind": "html", "path": str(tmp_path / "html")},
            {"name": "gimp", "kind": "html", "path": gone, "optional": True},
            {
                "name": "half",
                "kind": "html",
                "paths": [gone, str(tmp_path / "html")],
                "optional": True,
            },
        ],
    }
    cfg = tiny_config(data=data, eval__tasks=["text_ppl"])
    kept, left_out = present(cfg.data)
    assert [s.name for s in kept.sources] == ["web", "half"] and left_out == ["gimp"]
    assert kept.sources[1].paths == [str(tmp_path / "html")]
    check_sources(cfg.data)  # no error: the optional paths are not required
    data["sources"][1]["optional"] = False
    with pytest.raises(SourceError, match=r"gone: no such file .*data.sources\[1\] \(gimp\)"):
        check_sources(tiny_config(data=data, eval__tasks=["text_ppl"]).data)
    with pytest.raises(SourceError, match="every source is optional and none is on this machine"):
        lone = {"sources": [data["sources"][1] | {"optional": True}]}
        present(tiny_config(data=lone, eval__tasks=["text_ppl"]).data)
    with pytest.raises(ConfigError, match="kind synth has no paths to be optional"):
        tiny_config(data={"sources": [{"name": "w", "kind": "synth", "optional": True}]})

    from vloom.pipeline import prepare_data

    d = prepare_data(cfg, tmp_path / "run", quiet=True)
    union = json.loads((d.union / "ledger.json").read_text())
    assert sorted(union["sources"]) == ["half", "web"]
    assert union["input"] == 24  # the 12 pages, once per source that reads them


def test_palette_images_with_transparency_decode_without_a_warning():
    im = Image.new("P", (20, 10))
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    im.paste(1, (0, 0, 10, 10))
    im.paste(2, (10, 0, 20, 10))
    buf = io.BytesIO()
    im.save(buf, format="PNG", transparency=bytes([0, 128, 255]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # GIMP's help has hundreds of these screenshots
        got = np.asarray(decode_image(buf.getvalue()))
    assert np.array_equal(got, ref) and got[0, 0].tolist() == [255, 0, 0]


@pytest.mark.slow
def test_make_real_end_to_end(tmp_path):
    """`make real` into tmp: assets, then vloom run configs/real.yaml (about 10 minutes)."""
    raw = yaml.safe_load(CONFIG.read_text())
    missing = [
        p
        for s in raw["data"]["sources"]
        if not s.get("optional")
        for p in s["paths"]
        if not Path(p).exists()
    ]
    if missing:
        pytest.skip(f"Debian manuals not installed here: {missing[0]}")
    assets = tmp_path / "assets"
    raw["model"]["lm"]["init"] = str(assets / "lm")
    raw["model"]["vision"]["init"] = str(assets / "siglip")
    raw["eval"]["tasks"][2] = raw["eval"]["tasks"][2].replace("runs/assets", str(assets))
    cfg = tmp_path / "real.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    script = ROOT / "scripts" / "make_real_assets.py"
    subprocess.run(
        [sys.executable, str(script), "--config", str(cfg), "--out", str(assets)], check=True
    )
    run = tmp_path / "run"
    subprocess.run(
        [sys.executable, "-m", "vloom", "run", str(cfg), "--out", str(run), "--quiet"], check=True
    )
    res = json.loads((run / "results.json").read_text())["eval"]
    assert res["text_ppl"]["tokens"] > 10_000 and res["caption_loss"]["tokens"] > 0
    assert res["mmstar_real"]["n"] == 240 and res["mmstar_real"]["skipped"] == 0
    report = (run / "report.md").read_text()
    assert "| manuals | html |" in report and "| pdfs | pdf |" in report
    assert "mmstar_real" in report and "has not run" not in report
