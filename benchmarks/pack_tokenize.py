"""`vloom pack` with a Hugging Face tokenizer vs `datasets.map` + the same tokenizer (batched).

    python benchmarks/pack_tokenize.py                # 20,000 synthetic world documents
    python benchmarks/pack_tokenize.py --docs 5000 --vocab 4096

Both sides tokenize the same documents with the same fast tokenizer: a byte-level BPE trained
on the corpus, saved as a local Hugging Face LM directory (config.json + tokenizer files, as
`model.lm.init` reads it; pack never loads the weights, so none are written). Text-only world
documents, so neither side decodes images.

- pack: `run_pack` with `model.lm.init`, end to end: reads the Parquet shards, tokenizes each
  document's text items (encode_batch over `ENCODE_DOCS` documents at a time), packs the rows
  and writes the safetensors shards and stats.
- datasets: `Dataset.from_parquet` (the `texts` column only) + `.map(batched=True)` calling the
  PreTrainedTokenizerFast on every text item of the batch (in memory, no cache files), the
  items of a document concatenated.
Tokens are the text items' tokens (pack's bos / eos not counted); the two counts must agree,
and the script checks they do. tokens/s = tokens / wall seconds, best of `--repeat` runs; the
ratio is pack's over datasets' (>= 1: pack is at least as fast).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def build_world(root: Path, n_docs: int) -> Path:
    from vloom.config import NoiseConfig, SynthConfig
    from vloom.synth import generate

    noise = NoiseConfig(**dict.fromkeys(NoiseConfig.model_fields, 0.0))
    cfg = SynthConfig(n_interleaved=0, n_pairs=0, n_text=n_docs, noise=noise, shard_size=5000)
    generate(cfg, root / "world", seed=0)
    return root / "world" / "train"


def build_hf_dir(docs_dir: Path, out: Path, vocab: int) -> None:
    """A byte-level BPE on the corpus as a HF tokenizer + a Llama config.json sized to it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    from vloom.doc import list_shards, read_shard

    texts = (t for s in list_shards(docs_dir) for d in read_shard(s) for t in d.texts if t)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>")
    fast.save_pretrained(str(out))
    LlamaConfig(
        vocab_size=len(fast),
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=1,
        num_attention_heads=4,
        bos_token_id=0,
        eos_token_id=1,
    ).save_pretrained(str(out))


def run_pack_once(docs_dir: Path, hf_dir: Path, out: Path) -> tuple[float, int]:
    from vloom.config import config_from_dict
    from vloom.pack import run_pack

    cfg = config_from_dict(
        {"model": {"lm": {"init": str(hf_dir)}}, "pack": {"seq_len": 2048, "shard_sequences": 4096}}
    )
    t = time.perf_counter()
    stats = run_pack(docs_dir, out, cfg, quiet=True)
    wall = time.perf_counter() - t
    # text-only documents: every packed token is a text item's, bos and eos aside
    return wall, sum(stats["tokens_in"].values()) - 2 * _kept(out)


def _kept(packed: Path) -> int:
    import json

    return json.loads((packed / "ledger.json").read_text())["kept"]


def run_datasets_once(docs_dir: Path, hf_dir: Path) -> tuple[float, int]:
    import datasets
    from transformers import AutoTokenizer

    from vloom.doc import list_shards
    from vloom.sequence import item_texts

    datasets.disable_caching()
    datasets.disable_progress_bars()
    tok = AutoTokenizer.from_pretrained(str(hf_dir))

    def encode(batch):
        per_doc = [[t for t in item_texts(items) if t is not None] for items in batch["texts"]]
        flat = [t for ts in per_doc for t in ts]
        enc = iter(tok(flat, add_special_tokens=False)["input_ids"])
        return {"input_ids": [[i for _ in ts for i in next(enc)] for ts in per_doc]}

    t = time.perf_counter()
    files = [str(p) for p in list_shards(docs_dir)]
    ds = datasets.Dataset.from_parquet(files, columns=["texts"], keep_in_memory=True)
    out = ds.map(encode, batched=True, batch_size=1000, remove_columns=["texts"])
    wall = time.perf_counter() - t
    return wall, sum(len(x) for x in out["input_ids"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=20000, help="synthetic text documents")
    ap.add_argument("--vocab", type=int, default=8192, help="BPE vocabulary size")
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per side (best kept)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        docs_dir = build_world(root, args.docs)
        build_hf_dir(docs_dir, root / "hf", args.vocab)
        packs = [
            run_pack_once(docs_dir, root / "hf", root / f"packed{i}") for i in range(args.repeat)
        ]
        dss = [run_datasets_once(docs_dir, root / "hf") for _ in range(args.repeat)]
    (p_wall, p_tok), (d_wall, d_tok) = min(packs), min(dss)
    if p_tok != d_tok:
        raise SystemExit(f"token counts differ: pack {p_tok}, datasets {d_tok}")
    p_rate, d_rate = p_tok / p_wall, d_tok / d_wall
    print(f"documents {args.docs}, text tokens {p_tok}, vocab {args.vocab}")
    print(f"pack (model.lm.init)        {p_wall:7.2f} s  {p_rate:12,.0f} tokens/s")
    print(f"datasets.map(batched=True)  {d_wall:7.2f} s  {d_rate:12,.0f} tokens/s")
    print(f"ratio pack / datasets: {p_rate / d_rate:.2f}x (target >= 1x)")


if __name__ == "__main__":
    main()
