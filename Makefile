PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS ?= constraints-cpu.txt
CONFIG ?= configs/demo.yaml
# Where a machine keeps the CPU torch wheel on disk, let pip find it without the network.
FIND_LINKS := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,)

.PHONY: setup demo study real test test-all lint bench clean

$(BIN)/vloom: pyproject.toml $(CONSTRAINTS)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(FIND_LINKS) -c $(CONSTRAINTS) -e '.[dev]'
	# lmms-eval's own requirements pull a CUDA torchvision that breaks beside the CPU torch
	# (and pin wandb back): install it without them, plus the two it really imports.
	$(BIN)/pip install -q --no-deps 'lmms-eval>=0.7.3,<0.8'
	$(BIN)/pip install -q $(FIND_LINKS) -c $(CONSTRAINTS) accelerate tenacity
	touch $@

setup: $(BIN)/vloom

demo: setup
	$(BIN)/vloom run $(CONFIG)

# The default study (configs/study.yaml): image_start_fraction x 2 seeds, fine-tuned, evaluated.
study: setup
	$(BIN)/vloom sweep configs/study.yaml

# Real manuals -> ingest -> curate -> pack -> a VLM from a locally built SmolLM2-shaped LM and
# SigLIP tower -> held-out text, captions and an MMStar-layout benchmark (configs/real.yaml).
real: setup
	$(BIN)/python scripts/make_real_assets.py --config configs/real.yaml --out runs/assets
	$(BIN)/vloom run configs/real.yaml

test: setup
	$(BIN)/pytest -q

test-all: setup
	$(BIN)/pytest -m ''

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: setup
	for f in benchmarks/*.py; do $(BIN)/python $$f || exit 1; done

clean:
	rm -rf runs .pytest_cache
