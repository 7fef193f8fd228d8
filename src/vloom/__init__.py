"""vloom: an open testbed for pre-training small vision-language models on interleaved data."""

__version__ = "0.1.0"
