# Two entry points: `make demo` (the main job) and `make test`. Each creates or reuses .venv and
# installs what it needs: torch==2.13.0 first when no torch is present (a local CPU build here;
# on a GPU machine install your CUDA torch first), then the package with its dev extra.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: install test demo figures notebooks toy-model clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n $(PYTEST_WORKERS) tests

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m circuits sev validate sev_data/sev.jsonl sev_data/sev_test.jsonl
	HF_HUB_OFFLINE=1 $(PY) -m circuits demo --out runs/demo --eval-limit 40

figures: $(STAMP)
	@test -f runs/demo/summary.json || $(MAKE) demo
	@test -f runs/va/summary.json || HF_HUB_OFFLINE=1 $(PY) -m circuits va --model toy --out runs/va
	HF_HUB_OFFLINE=1 $(PY) figures/make_figures.py --discover runs/demo --va runs/va

notebooks: $(STAMP)
	@$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install "jupyterlab>=4"
	HF_HUB_OFFLINE=1 $(VENV)/bin/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(JUPYTER_ARGS)

toy-model: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m circuits toy train

clean-venv:
	rm -rf $(VENV)
