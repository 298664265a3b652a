# Two commands on a fresh clone: `make demo` (the app, offline) and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE ?= 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: demo test bench install

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch and torchvision first, as a matching pair (open_clip needs torchvision's ops)
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	# the ray extra too: CI runs tests/test_ray.py (a real local Ray cluster); +~6 s, ~250 MB
	$(BIN)/pip install -q -e '.[dev,heic,ray]'
	touch $@

install: $(BIN)/.installed

PORT ?= 7860

demo: $(BIN)/.installed
	$(BIN)/mmsearch demo --port $(PORT)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q -rs

bench: $(BIN)/.installed
	$(BIN)/pip install -q scikit-image  # real photos for the indexing benchmark
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/indexing.py --count 48
	$(BIN)/python bench/fidelity.py
	$(BIN)/python bench/query.py
	$(BIN)/python bench/catalog.py
	$(BIN)/python bench/app.py
