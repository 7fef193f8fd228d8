"""lm-evaluation-harness on a vloom checkpoint, with tasks defined from local files only."""

import json

import pytest
import torch

pytest.importorskip(
    "lm_eval", reason="lm-evaluation-harness is an optional extra: pip install 'vloom[hf]'"
)

from vloom.evaluate.generation import greedy_generate
from vloom.evaluate.scoring import continuation_logprobs, sequence_loss
from vloom.sequence import BOS_ID, encode_text

DOCS = [
    {
        "question": "What shape is the red object?",
        "choices": ["circle", "square", "triangle"],
        "label": 0,
        "text": "In the scene, at the top left there is a small red circle.",
    },
    {
        "question": "Where is the blue object?",
        "choices": ["top left", "bottom right"],
        "label": 1,
        "text": "There are two objects. The blue square is below the red circle.",
    },
    {
        "question": "How many objects are there?",
        "choices": ["one", "two", "three"],
        "label": 2,
        "text": "The picture has green, blue and white in it.",
    },
]


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("lmeval_tasks")
    (d / "docs.jsonl").write_text("\n".join(json.dumps(x) for x in DOCS) + "\n")
    common = f"""dataset_path: json
dataset_kwargs:
  data_files:
    test: {d / "docs.jsonl"}
test_split: test
"""
    (d / "mc.yaml").write_text(f"""task: vloom_local_mc
{common}output_type: multiple_choice
doc_to_text: "Question: {{{{question}}}} Answer:"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
""")
    (d / "ppl.yaml").write_text(f"""task: vloom_local_ppl
{common}output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
""")
    (d / "gen.yaml").write_text(f"""task: vloom_local_gen
{common}output_type: generate_until
doc_to_text: "Question: {{{{question}}}} Answer:"
doc_to_target: "{{{{choices[label]}}}}"
generation_kwargs:
  until: ["."]
  max_gen_toks: 4
metric_list:
  - metric: exact_match
""")
    return d


@pytest.fixture(scope="module")
def lm(rand_ckpt, monkeypatch_module):
    from vloom.evaluate.lm_eval_adapter import VloomLM

    return VloomLM(str(rand_ckpt), batch_size=2)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_DATASETS_OFFLINE", "1")
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield mp
    mp.undo()


class Req:
    def __init__(self, *args):
        self.args = args


def test_adapter_methods_match_vloom_scoring(lm, rand_ctx):
    m, tok, cpu = rand_ctx.model, rand_ctx.tokenizer, torch.device("cpu")
    ll = lm.loglikelihood(
        [Req("Question: What shape? Answer:", " circle"), Req("There is", " a red object.")]
    )
    for (ctx, cont), (lp, greedy) in zip(  # noqa: B905
        [("Question: What shape? Answer:", " circle"), ("There is", " a red object.")], ll
    ):
        c_ids = encode_text(tok, ctx)
        whole = encode_text(tok, ctx + cont)
        want = continuation_logprobs(m, [[BOS_ID] + c_ids], [whole[len(c_ids) :]], [None], cpu)[0]
        assert lp == pytest.approx(want, abs=1e-4) and isinstance(greedy, bool)
    text = "In the scene, at the top left there is a small red circle. " * 24  # > one window
    ids = [BOS_ID] + encode_text(tok, text)
    w = m.lm.max_seq_len
    assert len(ids) > w
    want = -sum(
        sequence_loss(m, ids[s : s + w + 1], 1, None, cpu)[0] for s in range(0, len(ids) - 1, w)
    )
    assert lm.loglikelihood_rolling([Req(text)])[0] == pytest.approx(want, rel=1e-5)
    gen = lm.generate_until([Req("There is", {"until": ["."], "max_gen_toks": 5})])
    assert gen == greedy_generate(
        m, tok, [[BOS_ID] + encode_text(tok, "There is")], [None], cpu, 5, ["."]
    )


def test_simple_evaluate_on_local_task_files(lm, task_dir, monkeypatch_module):
    import lm_eval
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(task_dir), include_defaults=False)
    res = lm_eval.simple_evaluate(
        model=lm,
        tasks=["vloom_local_mc", "vloom_local_ppl", "vloom_local_gen"],
        task_manager=tm,
        log_samples=False,
    )["results"]
    assert 0 <= res["vloom_local_mc"]["acc,none"] <= 1
    assert res["vloom_local_ppl"]["word_perplexity,none"] > 1
    assert 0 <= res["vloom_local_gen"]["exact_match,none"] <= 1
    # The harness's accuracy is what the adapter's own log-likelihoods pick.
    picks = []
    for d in DOCS:
        lls = lm.loglikelihood(
            [Req(f"Question: {d['question']} Answer:", f" {c}") for c in d["choices"]]
        )
        picks.append(max(range(len(lls)), key=lambda j: lls[j][0]) == d["label"])
    assert res["vloom_local_mc"]["acc,none"] == pytest.approx(sum(picks) / len(DOCS))


def test_cli_lm_eval(rand_ckpt, task_dir, tmp_path, capsys, monkeypatch_module):
    from vloom.cli import main

    out = tmp_path / "lm.json"
    rc = main(
        [
            "lm-eval",
            str(rand_ckpt),
            "--tasks",
            "vloom_local_mc",
            "--include-path",
            str(task_dir),
            "--only-include-path",
            "--limit",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    assert "acc,none" in json.loads(out.read_text())["vloom_local_mc"]
    capsys.readouterr()
    assert (
        main(
            [
                "lm-eval",
                str(rand_ckpt),
                "--tasks",
                "no_such_task",
                "--include-path",
                str(task_dir),
                "--only-include-path",
            ]
        )
        == 2
    )
    assert "unknown lm-eval task(s): no_such_task" in capsys.readouterr().err
    assert (
        main(
            [
                "lm-eval",
                str(tmp_path),
                "--tasks",
                "vloom_local_mc",
                "--include-path",
                str(task_dir),
                "--only-include-path",
            ]
        )
        == 2
    )
    assert "not a checkpoint" in capsys.readouterr().err
