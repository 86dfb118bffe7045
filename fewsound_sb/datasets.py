"""Train / valid / test datasets of the hypernetwork recipes, from manifests.

Every dataset recipe is a ``<dataset>_prepare.py`` that writes three
SpeechBrain JSON manifests (``{"id": {"wav": "{data_root}/...", ...}}``), a
small dataset YAML that names them, and a short ``train.py`` that calls
:func:`make_datasets`. Nothing here depends on the dataset.

Keys read from the hparams: of the recipe's dataset YAML ``data_folder``
(replaces ``{data_root}`` in the manifests), ``train_annotation``,
``valid_annotation``, ``test_annotation``; of the model YAML ``sample_rate``,
``crop_length``, ``data_seed``, ``samples_per_epoch``, ``n_valid``, ``n_test``.

Example
-------
See :func:`make_datasets` and ``recipes/VCTK/train.py``.
"""

import random

from speechbrain.dataio.dataio import load_data_json
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.sampler import ReproducibleWeightedRandomSampler
from speechbrain.utils.logger import get_logger

from fewsound_sb.dataio import make_audio_pipeline

logger = get_logger(__name__)

SPLITS = ("train", "valid", "test")


def make_datasets(hparams):
    """Creates the train, valid and test datasets and the train sampler.

    Train: random crops of ``crop_length`` samples (seeded), drawn by a
    sampler that takes ``samples_per_epoch`` items per epoch with replacement
    (reproducible per epoch, so every DDP process draws the same list before
    SpeechBrain shards it). Valid / test: the first ``crop_length`` samples of
    each clip of ``valid_annotation`` / ``test_annotation``, optionally a
    seeded subset of ``n_valid`` / ``n_test`` clips (null = all). Every crop is
    peak-normalised.

    Arguments
    ---------
    hparams : dict
        The loaded model + dataset YAML (keys in the module docstring).

    Returns
    -------
    datasets : dict
        ``{"train", "valid", "test"}`` -> DynamicItemDataset with output keys
        ``id``, ``sig`` (``[crop_length]``) and ``length`` (the relative valid
        length: < 1 for a clip shorter than the crop, whose zero padding the
        loss and the metrics then ignore).
    train_sampler : ReproducibleWeightedRandomSampler
        Pass it as ``sampler`` in the train loader options.

    Raises
    ------
    ValueError
        A manifest holds no clips (names the manifest and the split).

    Example
    -------
    >>> import json, os, tempfile, torch
    >>> from fewsound_sb.dataio import write_audio
    >>> root = tempfile.mkdtemp()
    >>> for i in range(3):
    ...     write_audio(os.path.join(root, f"c{i}.wav"), 0.1 * torch.ones(300), 8000)
    >>> manifest = os.path.join(root, "all.json")
    >>> _ = open(manifest, "w").write(json.dumps(
    ...     {f"c{i}": {"wav": "{data_root}/" + f"c{i}.wav"} for i in range(3)}))
    >>> hparams = {"data_folder": root, "train_annotation": manifest,
    ...            "valid_annotation": manifest, "test_annotation": manifest,
    ...            "sample_rate": 8000, "crop_length": 256, "data_seed": 0,
    ...            "samples_per_epoch": 5, "n_valid": 2, "n_test": None}
    >>> datasets, sampler = make_datasets(hparams)
    >>> [len(datasets[split]) for split in ("train", "valid", "test")], len(sampler)
    ([3, 2, 3], 5)
    >>> datasets["test"][0]["sig"].shape
    torch.Size([256])
    """
    limits = {"train": None, "valid": hparams["n_valid"], "test": hparams["n_test"]}
    datasets = {}
    for split in SPLITS:
        manifest = hparams[f"{split}_annotation"]
        audio_pipeline = make_audio_pipeline(
            sample_rate=hparams["sample_rate"],
            crop_length=hparams["crop_length"],
            train=split == "train",
            seed=hparams["data_seed"],
        )
        data = load_data_json(manifest, replacements={"data_root": hparams["data_folder"]})
        if not data:
            raise ValueError(
                f"No clips in '{manifest}' ({split} split): check --data_folder "
                "and the recipe's prepare options"
            )
        dataset = DynamicItemDataset(
            data, dynamic_items=[audio_pipeline], output_keys=["id", "sig", "length"]
        )
        limit = limits[split]
        if limit is not None and limit < len(dataset):
            chosen = set(random.Random(hparams["data_seed"]).sample(dataset.data_ids, limit))
            dataset = dataset.filtered_sorted(key_test={"id": lambda i: i in chosen})
        logger.info("%s split: %d clips from %s", split, len(dataset), manifest)
        datasets[split] = dataset

    train_sampler = ReproducibleWeightedRandomSampler(
        weights=[1.0] * len(datasets["train"]),
        num_samples=hparams["samples_per_epoch"],
        replacement=True,
        seed=hparams["data_seed"],
    )
    return datasets, train_sampler
