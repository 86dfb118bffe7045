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

# FewSound-KAN on the embedded corpus, small enough for 2 CPU cores (about 5 minutes
# in all); then the table and the Reconstructor. The model YAML's defaults (constant
# lr 1e-4, no warm-up of f, theta/H init "target", the authors' augmentation) are
# the measured ones (bench/learning.py); the overrides make it small: crops of
# 4,096 samples, E with 8 channels and per-frame norm, H [256, 256], G 1001 -> 256,
# and the 19,908-weight KAN of the HyperSound YAML (PE 8, [48, 12, 6]), which starts
# using the clip within about 100 steps where the 33,768-weight one can take 300
# (tests/integration/test_train_recipe.py). 400 steps of batch 8, validation on the 24
# clips of the 4 held-out speakers after each 100 steps, with the silence and
# clip-blind references in train_log.txt. The eval clips are 4,096 samples (0.19 s):
# too short for PESQ (0.25 s) and STOI, so the table leaves them out; the
# Reconstructor rows (1 s clip) have PESQ. Dataset keys (--data_folder,
# --valid_speakers) come from recipes/VCTK/vctk.yaml, model keys from the hparams
# YAML; both are overridden on the command line.
DEMO := $(OUT)/demo_fewsound_kan
DEMO_REFINE_STEPS ?= 50
demo: venv
	$(PY) recipes/VCTK/train.py hparams/fewsound_kan.yaml --data_folder tests/samples/VCTK-mini \
		--output_folder $(DEMO) --crop_length 4096 --enc_norm channel \
		--enc_channels 8 --enc_output_channels 16 --hypernet_hidden [256,256] \
		--g_output_dim 256 --g_kernel_size 1001 --kan_encoding_length 8 --kan_hidden [48,12,6] \
		--samples_per_epoch 800 --batch_size 8 --number_of_epochs 4 --valid_speakers 4 \
		--n_valid 24 --n_test 24 --n_examples 2 --valid_every 4 --num_workers 0 \
		--ckpt_interval_minutes 0 --eval_metrics [mse,psnr,lsd,si_snr,wasserstein]
	@cat $(DEMO)/train_log.txt
	@cat $(DEMO)/eval/test_epoch*.md
	@echo "Reconstructions (wav + png): $$(ls -d $(DEMO)/eval/test_epoch*/)"
	# The trained model on a held-out speaker's clip, through the Reconstructor
	# ($(DEMO)/inference, written at the end of training), without and with refinement.
	$(PY) -m fewsound_sb.inference_cli --manifest $(DEMO)/save/test.json \
		--data_folder tests/samples/VCTK-mini --model $(DEMO)/inference \
		--output $(DEMO)/inference_demo --refine_steps $(DEMO_REFINE_STEPS) --max_seconds 1

# Single-clip KAN fits (paper Table 1 setting, 300 of the 10,000 steps) on 4 clips
# (--data_folder and --n_clips are keys of recipes/VCTK/fit_inr.yaml).
fit-demo: venv
	$(PY) recipes/VCTK/fit_inr.py hparams/inr/kan.yaml --data_folder tests/samples/VCTK-mini \
		--output_folder $(OUT)/demo_fit_kan --n_steps 300 --n_clips 4 --batch_clips 4
	@cat $(OUT)/demo_fit_kan/summary.md

# Every table in bench/results.md: the KAN against its peers, fitting throughput of all six
# targets (eager and compiled), FewSound inference (default compiled KAN target), the encoders.
# One thread: on this 2-core machine a second thread mostly adds noise.
bench: venv
	$(PY) -m pip install --quiet -e ".[bench]" || echo "peer KAN packages unavailable: benchmarking without them"
	$(PY) bench/run_all.py --threads 1 --fewsound-compile --output bench/results.md

clean-venv:
	rm -rf $(VENV)
