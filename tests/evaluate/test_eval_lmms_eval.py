"""lmms-eval on a vloom checkpoint with images, tasks defined from local files only."""

import io

import pyarrow.parquet as pq
import pytest
import torch

pytest.importorskip(
    "lmms_eval",
    reason="lmms-eval is an optional extra: pip install 'vloom[lmms]' (CPU torch: see pyproject)",
)

from PIL import Image

from vloom.evaluate.generation import greedy_generate
from vloom.evaluate.scoring import continuation_logprobs, multiple_choice
from vloom.evaluate.tasks.data import image_prompt
from vloom.sequence import BOS_ID, encode_text

PROMPT = "Question: {q} Answer:"


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_DATASETS_OFFLINE", "1")
    mp.setenv("HF_HUB_OFFLINE", "1")
    # lmms-eval's datasets cache, kept out of the home directory
    mp.setenv("LMMS_EVAL_DATASETS_CACHE", str(tmp_path_factory.mktemp("lmms_cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def rows(tiny_data):
    """Held-out scenes of the tiny world (PNG renders) with 2, 3 or 4 options each; every
    third image re-saved as a non-square JPEG, so eval's resize runs on it."""
    out = pq.read_table(tiny_data["eval"] / "vqa.parquet").slice(0, 6).to_pylist()
    for i, r in enumerate(out):
        keep = 2 + i % 3
        opts = [o for j, o in enumerate(r["options"]) if j != r["answer"]][: keep - 1]
        at = i % keep
        r["options"] = opts[:at] + [r["options"][r["answer"]]] + opts[at:]
        r["answer"] = at
        if i % 3 == 2:
            buf = io.BytesIO()
            Image.open(io.BytesIO(r["image"])).resize((48, 40)).save(buf, format="JPEG")
            r["image"] = buf.getvalue()
    return out


@pytest.fixture(scope="module")
def task_dir(rows, tmp_path_factory):
    import datasets

    d = tmp_path_factory.mktemp("lmms_tasks")
    feats = datasets.Features(
        {
            "image": datasets.Image(),
            "question": datasets.Value("string"),
            "options": datasets.Sequence(datasets.Value("string")),
            "answer": datasets.Value("int64"),
        }
    )
    cols = {k: [r[k] for r in rows] for k in feats}
    cols["image"] = [{"bytes": b, "path": None} for b in cols["image"]]
    datasets.Dataset.from_dict(cols, features=feats).to_parquet(str(d / "vqa.parquet"))
    common = f"""dataset_path: parquet
dataset_kwargs:
  data_files:
    test: {d / "vqa.parquet"}
test_split: test
doc_to_visual: image
doc_to_text: "Question: {{{{question}}}} Answer:"
"""
    (d / "mc.yaml").write_text(f"""task: vloom_local_vqa_mc
{common}output_type: multiple_choice
doc_to_choice: "{{{{options}}}}"
doc_to_target: answer
metric_list:
  - metric: acc
""")
    (d / "gen.yaml").write_text(f"""task: vloom_local_vqa_gen
{common}output_type: generate_until
doc_to_target: "{{{{options[answer]}}}}"
generation_kwargs:
  until: ["."]
  max_new_tokens: 4
metric_list:
  - metric: exact_match
""")
    return d


@pytest.fixture(scope="module")
def lmm(rand_ckpt, offline):
    from vloom.evaluate.lmms_eval_adapter import VloomLMM

    return VloomLMM(str(rand_ckpt), batch_size=4)


def requests(kind, items, visual=None):
    """lmms-eval Instances as its tasks build them: (context, continuation or generation
    settings, doc_to_visual, doc_id, task, split)."""
    from lmms_eval.api.instance import Instance

    def as_pil(doc):
        return [Image.open(io.BytesIO(b)) for b in doc["images"]]

    return [
        Instance(
            request_type=kind,
            arguments=(ctx, second, visual or as_pil, doc_id, "t", "test"),
            idx=0,
            metadata={"task": "t", "doc_id": doc_id, "repeats": 1},
        )
        for ctx, second, doc_id in items
    ]


def pair(resp):
    """A loglikelihood response as lmms-eval's evaluator reads it."""
    from lmms_eval.api.instance import unwrap_generation_output

    return unwrap_generation_output(resp)[0]


def test_adapter_matches_vloom_scoring_and_generation(lmm, rand_ctx, rows):
    m, tok, cpu = rand_ctx.model, rand_ctx.tokenizer, torch.device("cpu")
    docs = [{"images": [rows[0]["image"]]}, {"images": [rows[2]["image"]]}, {"images": []}]
    lmm.task_dict = {"t": {"test": docs}}
    cases = [  # context, continuation, doc: image first, a JPEG, text only, <image> in place
        ("Question: What shape? Answer:", " circle", 0),
        ("Question: What colour? Answer:", " red", 1),
        ("There is", " a red object.", 2),
        ("Look: <image> What shape? Answer:", " square", 0),
    ]
    got = [pair(r) for r in lmm.loglikelihood(requests("loglikelihood", cases))]
    for (ctx, cont, d), (nll, greedy) in zip(cases, got, strict=True):
        slots, px = image_prompt(m, docs[d]["images"][0]) if docs[d]["images"] else ([], None)
        head, _, tail = ctx.rpartition("<image>")  # the image sits where <image> stands
        prompt = [BOS_ID] + encode_text(tok, head) + slots + encode_text(tok, tail)
        c = encode_text(tok, tail + cont)[len(encode_text(tok, tail)) :]
        want = continuation_logprobs(m, [prompt], [c], [px], cpu)[0]
        assert nll == pytest.approx(-want, abs=1e-5)  # lmms-eval's sign: lower is likelier
        assert isinstance(greedy, bool)
    blind = continuation_logprobs(
        m, [[BOS_ID] + encode_text(tok, cases[0][0])], [encode_text(tok, " circle")], [None], cpu
    )[0]
    assert abs(got[0][0] + blind) > 1e-3  # the image is seen
    q = "Question: What shape? Answer:"
    gen = [(q, {"until": ["."], "max_new_tokens": 5}, d) for d in (0, 1)]
    out = lmm.generate_until(requests("generate_until", gen))
    want = []
    for d in (0, 1):
        slots, px = image_prompt(m, docs[d]["images"][0])
        prompt = [BOS_ID] + slots + encode_text(tok, q)
        want += greedy_generate(m, tok, [prompt], [px], cpu, 5, ["."])
    assert out == want
    # A task's max_new_tokens beyond the context (lmms-eval tasks often ask 1024) is capped.
    long = lmm.generate_until(requests("generate_until", [(q, {"max_new_tokens": 1000}, 0)]))
    slots, px = image_prompt(m, docs[0]["images"][0])
    prompt = [BOS_ID] + slots + encode_text(tok, q)
    room = m.lm.max_seq_len - len(prompt)
    assert long == greedy_generate(m, tok, [prompt], [px], cpu, room)
    video = [{"images": ["/no/such/clip.mp4"]}]
    lmm.task_dict = {"t": {"test": video}}
    with pytest.raises(
        ValueError, match="t doc 0: vloom takes images only, doc_to_visual gave str"
    ):
        lmm.generate_until(requests("generate_until", [(q, {}, 0)], lambda d: d["images"]))


def test_simple_evaluate_on_local_parquet_task(offline, rand_ckpt, rand_ctx, rows, task_dir):
    import lmms_eval.evaluator
    from lmms_eval.tasks import TaskManager

    import vloom.evaluate.lmms_eval_adapter  # noqa: F401  (registers model "vloom")

    tm = TaskManager(include_path=str(task_dir), include_defaults=False)
    res = lmms_eval.evaluator.simple_evaluate(
        model="vloom",  # resolved through lmms-eval's registry
        model_args=f"pretrained={rand_ckpt},batch_size=4",
        tasks=["vloom_local_vqa_mc", "vloom_local_vqa_gen"],
        task_manager=tm,
        log_samples=True,
    )
    acc = res["results"]["vloom_local_vqa_mc"]["acc,none"]
    assert 0 <= res["results"]["vloom_local_vqa_gen"]["exact_match,none"] <= 1
    # lmms-eval's accuracy is the one vloom's own scorer gets on the same images and prompts.
    m, tok, cpu = rand_ctx.model, rand_ctx.tokenizer, torch.device("cpu")
    prompts, options, images = [], [], []
    for r in rows:
        slots, px = image_prompt(m, r["image"])
        prompts.append([BOS_ID] + slots + encode_text(tok, PROMPT.format(q=r["question"])))
        options.append([encode_text(tok, " " + o) for o in r["options"]])
        images.append(px)
    picks = multiple_choice(m, prompts, options, images, cpu)
    assert acc == pytest.approx(sum(p == r["answer"] for p, r in zip(picks, rows)) / len(rows))  # noqa: B905
    assert len({len(o) for o in options}) == 3  # 2, 3 and 4 options
    # The generated answers lmms-eval scored are vloom's greedy generations.
    samples = sorted(res["samples"]["vloom_local_vqa_gen"], key=lambda s: s["doc_id"])
    want = greedy_generate(m, tok, prompts, images, cpu, 4, ["."])
    assert [s["filtered_resps"][0] for s in samples] == want
