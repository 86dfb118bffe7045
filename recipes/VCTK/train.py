#!/usr/bin/env python3
"""Recipe for training FewSound / HyperSound hypernetworks on VCTK-Corpus-0.92.

A sound encoder and a hypernetwork learn to turn a 32,768-sample clip into the
weights of a small target network (KAN, NeRF, SIREN) that reproduces the clip
(paper: "FewSound", https://arxiv.org/abs/2503.02585). The model YAML decides
the method (FewSoundHead or HyperSoundHead) and the target; ``vctk.yaml``
(next to this file) holds the dataset keys (data_folder, valid_speakers, mic,
skip_prep, the manifests).

To run this recipe:

> python train.py hparams/fewsound_kan.yaml --data_folder /data/VCTK-Corpus-0.92

Multi-GPU (SpeechBrain DDP):

> torchrun --nproc_per_node=8 train.py hparams/fewsound_kan.yaml --data_folder ...

Validation: the last 10 speakers; the final evaluation runs on them too (the
paper has no separate VCTK test split). Metric tables and example
reconstructions are written under ``<output_folder>/eval/``.
"""

import os
import sys

import speechbrain as sb
from speechbrain.utils.distributed import run_on_main

from fewsound_sb.brains import FewSoundBrain
from fewsound_sb.config import load_recipe_hparams
from fewsound_sb.datasets import make_datasets

sys.path.append(os.path.dirname(os.path.abspath(__file__)))
from vctk_prepare import prepare_vctk  # noqa: E402

DATASET_YAML = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vctk.yaml")

if __name__ == "__main__":
    # CLI: model YAML, run options and overrides (every key of it and of vctk.yaml)
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
    hparams, hparams_to_save = load_recipe_hparams(hparams_file, overrides, DATASET_YAML)

    # Initialize DDP (useful only for multi-GPU DDP training)
    sb.utils.distributed.ddp_init_group(run_opts)

    # Manifests, written once (main process) and reused on reruns
    run_on_main(
        prepare_vctk,
        kwargs={
            "data_folder": hparams["data_folder"],
            "save_folder": hparams["save_folder"],
            "valid_speakers": hparams["valid_speakers"],
            "mic": hparams["mic"],
            "skip_prep": hparams["skip_prep"],
        },
    )
    datasets, train_sampler = make_datasets(hparams)

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_to_save,
    )

    brain = FewSoundBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    brain.fit(
        brain.hparams.epoch_counter,
        datasets["train"],
        datasets["valid"],
        train_loader_kwargs={**hparams["train_dataloader_opts"], "sampler": train_sampler},
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    brain.evaluate(
        datasets["test"],
        min_key="loss",
        test_loader_kwargs=hparams["valid_dataloader_opts"],
    )
