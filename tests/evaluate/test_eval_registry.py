import pytest

from vloom.evaluate.tasks import (
    MODALITIES,
    SCORINGS,
    TASKS,
    parse_task_spec,
    register,
    split_task_list,
)


def test_every_task_declares_modality_and_scoring():
    assert {"vqa", "text_qa", "text_ppl", "caption_loss"} <= set(TASKS)  # old names kept
    vision = {n for n, f in TASKS.items() if f.modality == "vision-language"}
    text = {n for n, f in TASKS.items() if f.modality == "text"}
    assert vision | text == set(TASKS)
    assert {"vqa", "vqa_open", "vqa_mc_converted", "caption_gen", "multi_image"} <= vision
    assert {"text_ppl", "text_qa", "world_qa", "fewshot_qa"} <= text
    assert all(f.scoring in SCORINGS for f in TASKS.values())
    assert TASKS["vqa_open"].scoring == "generation" and TASKS["text_ppl"].scoring == "perplexity"
    assert MODALITIES == ("vision-language", "text")


def test_task_specs_parse_params_and_name_results():
    assert parse_task_spec("vqa") == ("vqa", {}, "vqa")
    assert parse_task_spec("text_qa:num_fewshot=3") == ("text_qa", {"num_fewshot": 3}, "text_qa")
    name, params, key = parse_task_spec("text_qa: num_fewshot=2, as=text_qa_2shot")
    assert (name, params, key) == ("text_qa", {"num_fewshot": 2}, "text_qa_2shot")
    assert parse_task_spec("vmcbench:path=a/b.parquet")[1] == {"path": "a/b.parquet"}


def test_bad_task_specs_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown eval task 'nope'"):
        parse_task_spec("nope:x=1")
    with pytest.raises(ValueError, match="'vqa' has no parameter 'num_fewshot'; it takes: none"):
        parse_task_spec("vqa:num_fewshot=2")
    with pytest.raises(ValueError, match="expected key=value, got 'fast'"):
        parse_task_spec("text_qa:fast")
    with pytest.raises(ValueError, match="modality must be one of"):
        register("x", modality="audio")


def test_duplicate_results_key_fails_before_loading(tmp_path):
    from vloom.evaluate import evaluate

    with pytest.raises(ValueError, match="'text_qa' is listed twice; give one a name with as="):
        evaluate(tmp_path / "no-ckpt", tmp_path, ["text_qa", "text_qa:num_fewshot=1"])


def test_task_lists_split_on_commas_between_specs_only():
    got = split_task_list("vqa, text_qa:num_fewshot=3,as=tqa3,world_qa,vmcbench:path=a:b.tsv")
    assert got == ["vqa", "text_qa:num_fewshot=3,as=tqa3", "world_qa", "vmcbench:path=a:b.tsv"]
    assert [parse_task_spec(t)[2] for t in got] == ["vqa", "tqa3", "world_qa", "vmcbench"]


def test_cli_eval_takes_task_specs(rand_ckpt, tiny_data, tmp_path, capsys):
    import json

    from vloom.cli import main

    rc = main(
        [
            "eval",
            str(rand_ckpt),
            "--data",
            str(tiny_data["eval"]),
            "--out",
            str(tmp_path),
            "--tasks",
            "world_qa,world_qa:num_fewshot=1,as=world_qa_1shot",
            "--quiet",
            "--set",
            "eval.max_examples=4",
        ]
    )
    assert rc == 0
    ev = json.loads((tmp_path / "results.json").read_text())["eval"]
    assert set(ev) == {"world_qa", "world_qa_1shot"} and ev["world_qa_1shot"]["num_fewshot"] == 1
    capsys.readouterr()
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "vqa_open" in out and "vision-language" in out and "generation" in out
