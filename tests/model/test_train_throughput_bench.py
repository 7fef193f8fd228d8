"""benchmarks/train_throughput.py runs end to end on a tiny shape: both models train in turns,
each repeat's rate and ratio are printed (no timing is asserted)."""

from __future__ import annotations

import re
import sys

import pytest
import torch
from scriptmod import load_script


def test_benchmark_prints_each_repeat_and_the_ratio(monkeypatch, capsys):
    pytest.importorskip("transformers")
    mod = load_script("benchmarks/train_throughput.py")
    args = "--d-model 32 --n-layers 1 --n-heads 2 --vocab 64 --seq-len 16 --batch 2"
    args += " --steps 2 --repeats 4 --warmup 1 --threads 1"
    monkeypatch.setattr(sys, "argv", ["train_throughput.py", *args.split()])
    threads = torch.get_num_threads()
    try:
        mod.main()
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    rows = {
        m[1]: m[2].split()
        for m in re.finditer(r"^  (\S+)\s+([\d. ]+?)\s*(tok/s)?[ A-Z]*$", out, re.M)
    }
    assert len(rows["vloom"]) == len(rows["transformers-llama"]) == len(rows["ratio"]) == 4, out
    assert all(float(x) > 0 for x in rows["vloom"] + rows["transformers-llama"]), out
    assert re.search(r"ratio \d+\.\d\d \(median of the repeats' ratios \d+\.\d\d\)$", out, re.M), (
        out
    )
    assert "threads=1" in out and "dtype=fp32" in out and "denormals=flushed" in out, out
