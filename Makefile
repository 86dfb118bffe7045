# fewsound-sb: two commands do all set-up on a fresh machine.
#   make demo   - runs the main job on the embedded corpus
#   make test   - runs the test suite (unit, doctests, integration)
# Both create .venv/ in the repository root when it is missing.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch 2.14.1 + torchaudio 2.11.0: the pair verified to work together on the project machines.
TORCH_PINS := torch==2.14.1 torchaudio==2.11.0
OUT ?= results

.PHONY: venv test demo fit-demo bench clean-venv

$(VENV)/.installed: setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel setuptools
	$(PY) -m pip install --quiet torch==2.14.1
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest

demo: venv
	$(PY) recipes/VCTK/fit_inr.py hparams/inr/kan.yaml --data_folder tests/samples/VCTK-mini \
		--output_folder $(OUT)/demo_fit_kan --n_steps 300 --n_clips 4 --batch_clips 4

fit-demo: demo

bench: venv
	$(PY) -m pip install --quiet -e ".[bench]" || echo "peer KAN packages unavailable: benchmarking without them"
	$(PY) bench/run_all.py --output bench/results.md

clean-venv:
	rm -rf $(VENV)
