import pytest

from vloom.evaluate.tasks import MODALITIES, SCORINGS, TASKS, parse_task_spec, register


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
