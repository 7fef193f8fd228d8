"""Model-based quality filtering (DCLM): a fastText classifier of good vs bad documents.

`train_classifier` fits a supervised fastText model on two document sets (positive =
the kind of text to keep, negative = the kind to drop), saves it in fastText's own
`.bin` format (not pickle) and writes a JSON sidecar (`model.json` beside `model.bin`)
with the labels, the positive label and the training parameters. Training runs on one
thread with a fixed seed, so the same inputs give the same model bytes.

The `fasttext_quality` step writes the positive-class probability to
`metadata["quality_score"]` and keeps documents by `threshold` (score >= threshold),
by `keep_top_fraction` (a GlobalStep: the signature is the score, the plan keeps the
best fraction over all shards, ties broken by global order), or neither (score only,
e.g. for `mix`'s per-document repetition). Documents without text are not scored and
pass. Text is prepared as in training: text items joined, lowercased, whitespace
collapsed to single spaces (fastText reads one line per example).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from vloom import ondisk
from vloom.curate.base import CurateError, GlobalStep
from vloom.curate.registry import register
from vloom.doc import Document, Rejected, list_shards, read_shard

POSITIVE, NEGATIVE = "__label__hq", "__label__lq"
FASTTEXT_MAGIC = 793712314  # first int32 of every fastText .bin (FASTTEXT_FILEFORMAT_MAGIC_INT32)
_WS = re.compile(r"\s+")


def classifier_text(doc: Document) -> str:
    return _WS.sub(" ", doc.text.lower()).strip()


def sidecar_path(model_path: str | os.PathLike) -> Path:
    return Path(model_path).with_suffix(".json")


def _import_fasttext() -> Any:
    try:
        import fasttext
    except ImportError:
        raise CurateError(
            "fasttext_quality needs the fasttext module (fasttext-numpy2-wheel)"
        ) from None
    return fasttext


def read_texts(path: str | os.PathLike, limit: int | None = None) -> tuple[list[str], int]:
    """Classifier texts of the documents under a shard or directory; also the rows skipped."""
    texts: list[str] = []
    skipped = 0
    for shard in list_shards(path):
        for d in read_shard(shard):
            if isinstance(d, Rejected):
                skipped += 1
                continue
            t = classifier_text(d)
            if t:
                texts.append(t)
            else:
                skipped += 1
            if limit is not None and len(texts) >= limit:
                return texts, skipped
    return texts, skipped


def train_classifier(
    positive: list[str],
    negative: list[str],
    out: str | os.PathLike,
    epochs: int = 5,
    lr: float = 0.1,
    dim: int = 64,
    word_ngrams: int = 2,
    seed: int = 0,
    bucket: int = 100_000,
) -> dict[str, Any]:
    """Train and save a fastText model (+ JSON sidecar); returns the sidecar's content.

    `bucket` (hashed n-gram rows) is smaller than fastText's 2M default: the model file
    is (words + bucket) x dim floats, 25 MB at the defaults here instead of 512 MB.
    """
    # one example per line: a newline inside a text would start an unlabelled example
    positive = [t for t in (_WS.sub(" ", x).strip() for x in positive) if t]
    negative = [t for t in (_WS.sub(" ", x).strip() for x in negative) if t]
    if not positive or not negative:
        raise CurateError(
            f"classifier training needs documents of both classes "
            f"(positive: {len(positive)}, negative: {len(negative)})"
        )
    _import_fasttext()  # a clear error here rather than in the child process
    rows = [f"{POSITIVE} {t}" for t in positive] + [f"{NEGATIVE} {t}" for t in negative]
    random.Random(seed).shuffle(rows)
    out = Path(out).resolve()  # the trainer child runs in a temporary directory
    out.parent.mkdir(parents=True, exist_ok=True)
    params = {
        "epoch": epochs,
        "lr": lr,
        "dim": dim,
        "wordNgrams": word_ngrams,
        "seed": seed,
        "bucket": bucket,
    }
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.txt"
        train_file.write_text("\n".join(rows) + "\n", encoding="utf-8")
        tmp_model = out.with_name(f".{out.name}.tmp")
        # fastText's trainer (fasttext-numpy2-wheel) fails with a spurious "Encountered NaN"
        # on small inputs in a process that imported vloom.curate first (measured: 4 of 4
        # runs; 0 of 20 in a process that imported only fasttext). A child that imports
        # nothing else trains reliably, and gives the same bytes every time.
        job = {"input": str(train_file), "params": params, "out": str(tmp_model)}
        proc = subprocess.run(
            [sys.executable, "-c", _FIT_CHILD, json.dumps(job)],
            capture_output=True,
            text=True,
            cwd=tmp,
        )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            why = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise CurateError(f"fastText training failed: {why}")
        result = json.loads(lines[-1])
        if "error" in result:
            raise CurateError(f"fastText training failed ({result['error']}); try a lower lr")
        labels = result["labels"]
    meta = {
        "format": "fasttext",
        "labels": sorted(labels),
        "positive_label": POSITIVE,
        "params": params,
        "trained_on": {"positive": len(positive), "negative": len(negative)},
    }
    ondisk.atomic_write_json(sidecar_path(out), meta, indent=1, sort_keys=True)
    os.replace(tmp_model, out)  # the model last: its presence means both files are complete
    return meta


_FIT_CHILD = """
import json, sys
import fasttext
job = json.loads(sys.argv[1])
try:
    m = fasttext.train_supervised(
        input=job["input"], minCount=1, thread=1, verbose=0, **job["params"]
    )
except RuntimeError as e:
    print(json.dumps({"error": str(e)}))
else:
    m.save_model(job["out"])
    print(json.dumps({"labels": list(m.get_labels())}))
"""


class Classifier:
    """A loaded fastText model; `score(text)` is the positive-class probability."""

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        try:
            with path.open("rb") as f:
                head = f.read(8)
        except OSError as e:
            raise CurateError(f"{path}: cannot read classifier ({e.strerror or e})") from None
        if len(head) < 8 or struct.unpack("<i", head[:4])[0] != FASTTEXT_MAGIC:
            raise CurateError(f"{path}: not a fastText model (no fastText magic number)")
        fasttext = _import_fasttext()
        try:
            self.model = fasttext.load_model(str(path))
        except (ValueError, RuntimeError, MemoryError) as e:
            raise CurateError(f"{path}: not a usable fastText model ({e})") from None
        _check_complete(path, self.model)
        labels = list(self.model.get_labels())
        positive = POSITIVE
        side = sidecar_path(path)
        if side.exists():
            try:
                positive = json.loads(side.read_text())["positive_label"]
            except (ValueError, KeyError, TypeError):
                raise CurateError(f"{side}: sidecar is not a classifier description") from None
        if positive not in labels:
            raise CurateError(
                f"{path}: fastText model has labels {labels}, not the positive label {positive!r}"
            )
        self.path, self.positive = path, positive

    def score(self, text: str) -> float:
        labels, probs = self.model.predict(text, k=-1)
        for label, p in zip(labels, probs, strict=True):
            if label == self.positive:
                return round(min(float(p), 1.0), 6)
        return 0.0


def _check_complete(path: Path, model: Any) -> None:
    """fastText loads a truncated file without complaint; its exact size gives it away.

    Layout of an unquantized .bin (fastText's FastText::saveModel): magic + version,
    args (12 int32 + 1 double), dictionary header (3 int32 + 2 int64) and entries (word,
    NUL, int64 count, int8 type), a flag byte and the input matrix (2 int64 + floats),
    a flag byte and the output matrix.
    """
    if model.is_quantized():
        return
    args = model.f.getArgs()
    dim = model.get_dimension()
    words, labels = list(model.get_words()), list(model.get_labels())
    entries = sum(len(w.encode("utf-8")) + 10 for w in words + labels)
    n_out = len(labels) if args.model.name == "supervised" else len(words)
    need = 8 + 56 + 28 + entries + 1 + 16 + 4 * dim * (len(words) + args.bucket) + 1 + 16
    need += 4 * dim * n_out
    size = path.stat().st_size
    if size < need:
        raise CurateError(f"{path}: truncated fastText model ({size} bytes of {need})")


@register("fasttext_quality")
class FastTextQuality(GlobalStep):
    """Score documents with a fastText quality classifier; keep by threshold or top fraction.

    `model` is a trained `.bin`; or give `positive` and `negative` document directories:
    the executor trains once on the driver and caches the model in the output directory
    (`.curate/fasttext-<hash>.bin`), or at `model` when that path does not exist yet.
    """

    sig_size = 8

    def __init__(
        self,
        model: str | None = None,
        positive: str | None = None,
        negative: str | None = None,
        threshold: float | None = None,
        keep_top_fraction: float | None = None,
        score_key: str = "quality_score",
        epochs: int = 5,
        lr: float = 0.1,
        dim: int = 64,
        word_ngrams: int = 2,
        seed: int = 0,
        bucket: int = 100_000,
        max_train_docs: int | None = None,
    ) -> None:
        super().__init__()
        if threshold is not None and keep_top_fraction is not None:
            raise CurateError("give 'threshold' or 'keep_top_fraction', not both")
        if keep_top_fraction is not None and not 0 < keep_top_fraction <= 1:
            raise CurateError(f"keep_top_fraction={keep_top_fraction} must be in (0, 1]")
        self.threshold, self.keep_top_fraction, self.score_key = (
            threshold,
            keep_top_fraction,
            score_key,
        )
        if model is not None and Path(model).exists():
            self.clf = Classifier(model)
        elif positive is not None and negative is not None:
            # in-memory use (run_steps): train into a temporary file; the executor's
            # `prepare` trains once instead and passes the cached model's path
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "model.bin"
                _train_from_dirs(positive, negative, path, self._train_kw(locals()))
                self.clf = Classifier(path)
        elif model is not None:
            raise CurateError(f"{model}: no such classifier file (train one with classifier-train)")
        else:
            raise CurateError("needs 'model' (a fastText .bin) or 'positive' and 'negative' dirs")
        self._mask: bytes | None = None
        self.n_scored = self.n_no_text = 0

    @staticmethod
    def _train_kw(p: dict[str, Any]) -> dict[str, Any]:
        keys = ("epochs", "lr", "dim", "word_ngrams", "seed", "bucket", "max_train_docs")
        return {k: p.get(k) for k in keys if p.get(k) is not None}

    @classmethod
    def needs_plan(cls, params: dict[str, Any]) -> bool:
        return params.get("keep_top_fraction") is not None

    @classmethod
    def prepare(cls, params: dict[str, Any], work_dir: Path) -> dict[str, Any]:
        """Train once on the driver when the config names training sets; returns model path."""
        pos, neg, model = params.get("positive"), params.get("negative"), params.get("model")
        if pos is None or neg is None or (model is not None and Path(model).exists()):
            return params
        if model is None:
            key = {
                "train": cls._train_kw(params),
                "inputs": [[str(p), p.stat().st_size] for d in (pos, neg) for p in list_shards(d)],
            }
            digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
            model = str(work_dir / f"fasttext-{digest}.bin")
        if not Path(model).exists():
            _train_from_dirs(pos, neg, Path(model), cls._train_kw(params))
        return {k: v for k, v in params.items() if k not in ("positive", "negative")} | {
            "model": model
        }

    def score(self, doc: Document) -> float | None:
        text = classifier_text(doc)
        if not text:
            self.n_no_text += 1
            return None
        self.n_scored += 1
        return self.clf.score(text)

    def stats(self) -> dict[str, Any]:
        return {"scored": self.n_scored, "no_text": self.n_no_text}

    def signatures(self, docs: Iterable[Document]) -> Iterator[bytes]:
        for doc in docs:
            s = self.score(doc)
            yield struct.pack("<d", math.nan if s is None else s)

    def plan(self, per_shard: list[list[bytes]]) -> list[Any]:
        fraction = self.keep_top_fraction if self.keep_top_fraction is not None else 1.0
        scored = [
            (-struct.unpack("<d", sig)[0], i, j)
            for i, sigs in enumerate(per_shard)
            for j, sig in enumerate(sigs)
            if not math.isnan(struct.unpack("<d", sig)[0])
        ]
        scored.sort()  # best first; equal scores: earlier shard, then earlier row wins
        n_keep = math.floor(fraction * len(scored) + 0.5)
        masks = [bytearray(b"\x01" * len(sigs)) for sigs in per_shard]  # unscored docs pass
        for _, i, j in scored[n_keep:]:
            masks[i][j] = 0
        return [bytes(m) for m in masks]

    def load_plan(self, state: Any) -> None:
        self._mask = bytes(state)

    def after_self_plan(self) -> None:
        self.n_scored = self.n_no_text = 0  # `run` scores every document again

    def run(
        self, docs: Iterable[Document], rank: int = 0, world_size: int = 1
    ) -> Iterator[Document]:
        if self.keep_top_fraction is not None:
            docs = self.planned_stream(docs)
        for j, doc in enumerate(docs):
            s = self.score(doc)
            if s is not None:
                doc.metadata[self.score_key] = s
            if self._mask is not None:
                if j >= len(self._mask):
                    raise CurateError(f"{self.name}: more documents than the plan covers")
                if not self._mask[j]:
                    self.drop("fasttext_below_top_fraction")
                    continue
            elif self.threshold is not None and s is not None and s < self.threshold:
                self.drop("fasttext_below_threshold")
                continue
            yield doc


def _train_from_dirs(
    positive: str | os.PathLike, negative: str | os.PathLike, out: Path, kw: dict[str, Any]
) -> dict[str, Any]:
    limit = kw.pop("max_train_docs", None)
    pos, _ = read_texts(positive, limit)
    neg, _ = read_texts(negative, limit)
    return train_classifier(pos, neg, out, **kw)
