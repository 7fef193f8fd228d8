"""Generation: the one sampling loop (greedy, temperature / top-k / top-p) with the KV cache."""

from vloom.generate.sampling import Sample, cut_at_stop, fit_prompts, sample

__all__ = ["Sample", "cut_at_stop", "fit_prompts", "sample"]
