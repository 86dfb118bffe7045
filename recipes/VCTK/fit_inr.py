#!/usr/bin/env python3
"""Fits one INR per VCTK clip: the paper's Table 1 and its KAN ablations.

One recording per speaker is picked (seeded), resampled to 22,050 Hz, randomly
cropped (seeded) to ``crop_length`` samples, peak-normalised, and fitted by its
own target network for ``n_steps`` AdamW steps; ``batch_clips`` clips are
optimised together (equal to fitting them one by one). Writes results.csv,
summary.md (mean ± std, Table 1 layout), weights, wavs, figures and a loss
curve to ``output_folder``; rerunning the same command resumes.

> python recipes/VCTK/fit_inr.py hparams/inr/kan.yaml --data_folder /data/VCTK-Corpus-0.92
> python recipes/VCTK/fit_inr.py hparams/inr/kan.yaml --data_folder ... --grid_size 5

The INR YAML (hparams/inr/) holds no dataset keys; ``fit_inr.yaml`` (next to
this file) adds data_folder, mic and n_clips. The fitting itself lives in
``fewsound_sb.fitting`` (shared with ``fewsound-fit``).
"""

import os
import sys

import speechbrain as sb
from speechbrain.utils.distributed import infer_device
from speechbrain.utils.logger import get_logger

from fewsound_sb.config import load_recipe_hparams
from fewsound_sb.dataio import prepare_clips
from fewsound_sb.fitting import fit_from_hparams

sys.path.append(os.path.dirname(os.path.abspath(__file__)))
from vctk_prepare import pick_one_per_speaker  # noqa: E402

logger = get_logger(__name__)

DATASET_YAML = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fit_inr.yaml")


def select_clips(hparams):
    """One seeded random recording per speaker, cropped at a seeded random start.

    Arguments
    ---------
    hparams : dict
        Needs data_folder, seed, mic, n_clips, sample_rate, crop_length.

    Returns
    -------
    list of fewsound_sb.dataio.FitClip
    """
    picks = pick_one_per_speaker(hparams["data_folder"], hparams["seed"], mic=hparams["mic"])
    if hparams["n_clips"] is not None:
        picks = picks[: hparams["n_clips"]]
    logger.info("Fitting %d clips (one per speaker) from %s", len(picks), hparams["data_folder"])
    return prepare_clips(
        picks, hparams["sample_rate"], hparams["crop_length"], crop="random",
        seed=hparams["seed"],
    )


if __name__ == "__main__":
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
    hparams, hparams_to_save = load_recipe_hparams(hparams_file, overrides, DATASET_YAML)

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_to_save,
    )
    clips = select_clips(hparams)
    fit_from_hparams(clips, hparams, device=run_opts["device"] or infer_device())
