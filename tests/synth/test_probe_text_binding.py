"""scripts/probe_text_binding.py: trains a tiny LM on the world's text and scores text_qa."""

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location(
        "probe_text_binding", ROOT / "scripts/probe_text_binding.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quiz_documents_ask_every_objects_shape_and_place_after_its_scene():
    probe = _script()
    text = probe.build_texts(1, 2, seed=0, variant="quiz")[0]
    for para in text.split("\n\n"):
        n = para.count(" there is a ")
        assert para.count("What shape is the") == n and para.count("Where is the") == n


def test_a_tiny_run_scores_every_type_and_leaves_torch_as_it_found_it():
    probe = _script()
    threads = torch.get_num_threads()
    out = probe.main(
        [
            "--steps",
            "3",
            "--n-text",
            "30",
            "--eval-n",
            "8",
            "--eval-every",
            "3",
            "--d-model",
            "32",
            "--n-layers",
            "1",
            "--seq",
            "64",
            "--batch",
            "2",
        ]
    )
    for q in ("colour", "shape", "count", "position"):
        assert 0.0 <= out[f"accuracy_{q}"] <= 1.0 and out[f"nll_{q}"] > 0
    assert -1.0 <= out["cos_shape"] <= 1.0
    assert torch.get_num_threads() == threads
