#!/usr/bin/env python3
"""Recipe for training FewSound / HyperSound hypernetworks on VCTK-Corpus-0.92.

A sound encoder and a hypernetwork learn to turn a 32,768-sample clip into the
weights of a small target network (KAN, NeRF, SIREN) that reproduces the clip
(paper: "FewSound", https://arxiv.org/abs/2503.02585). The YAML decides the
method (FewSoundHead or HyperSoundHead) and the target.

To run this recipe:

> python train.py hparams/fewsound_kan.yaml --data_folder /data/VCTK-Corpus-0.92

Multi-GPU (SpeechBrain DDP):

> torchrun --nproc_per_node=8 train.py hparams/fewsound_kan.yaml --data_folder ...

Validation: the last 10 speakers; the final evaluation runs on them too (the
paper has no separate VCTK test split). Metric tables and example
reconstructions are written under ``<output_folder>/eval/``.
"""

import os
import random
import sys

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.sampler import ReproducibleWeightedRandomSampler
from speechbrain.utils.distributed import run_on_main

from fewsound_sb.brains import FewSoundBrain, check_overrides
from fewsound_sb.dataio import make_audio_pipeline

sys.path.append(os.path.dirname(os.path.abspath(__file__)))
from vctk_prepare import prepare_vctk  # noqa: E402


def dataio_prepare(hparams):
    """Creates the train, valid and test datasets and the train sampler.

    Train: random crops of ``crop_length`` samples (seeded), drawn by a
    sampler that takes ``samples_per_epoch`` items per epoch with replacement
    (reproducible per epoch, so every DDP process draws the same list before
    SpeechBrain shards it). Valid / test: the first ``crop_length`` samples of
    the validation speakers' clips, optionally a seeded subset of
    ``n_valid`` / ``n_test`` clips.

    Arguments
    ---------
    hparams : dict
        The loaded YAML.

    Returns
    -------
    datasets : dict
        ``{"train", "valid", "test"}`` -> DynamicItemDataset.
    train_sampler : ReproducibleWeightedRandomSampler
    """
    splits = {
        "train": (hparams["train_annotation"], True, None),
        "valid": (hparams["valid_annotation"], False, hparams["n_valid"]),
        "test": (hparams["valid_annotation"], False, hparams["n_test"]),
    }
    datasets = {}
    for split, (manifest, train, limit) in splits.items():
        audio_pipeline = make_audio_pipeline(
            sample_rate=hparams["sample_rate"],
            crop_length=hparams["crop_length"],
            train=train,
            seed=hparams["data_seed"],
        )
        dataset = DynamicItemDataset.from_json(
            json_path=manifest,
            replacements={"data_root": hparams["data_folder"]},
            dynamic_items=[audio_pipeline],
            output_keys=["id", "sig"],
        )
        if len(dataset) == 0:
            raise ValueError(f"No clips in '{manifest}' ({split} split): check --data_folder")
        if limit is not None and limit < len(dataset):
            chosen = set(random.Random(hparams["data_seed"]).sample(dataset.data_ids, limit))
            dataset = dataset.filtered_sorted(key_test={"id": lambda i: i in chosen})
        datasets[split] = dataset

    train_sampler = ReproducibleWeightedRandomSampler(
        weights=[1.0] * len(datasets["train"]),
        num_samples=hparams["samples_per_epoch"],
        replacement=True,
        seed=hparams["data_seed"],
    )
    return datasets, train_sampler


if __name__ == "__main__":
    # CLI: YAML file, run options and overrides (every top-level YAML key)
    hparams_file, run_opts, overrides = sb.parse_arguments(sys.argv[1:])
    overrides = check_overrides(hparams_file, overrides)
    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)

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
    datasets, train_sampler = dataio_prepare(hparams)

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
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
