"""Train / valid / test datasets of the hypernetwork recipes, from manifests.

Every dataset recipe is a ``<dataset>_prepare.py`` that writes three
SpeechBrain JSON manifests (``{"id": {"wav": "{data_root}/...", ...}}``), a
small dataset YAML that names them, and a short ``train.py`` that calls
:func:`make_datasets`. Nothing here depends on the dataset.

Keys read from the hparams: of the recipe's dataset YAML ``data_folder``
(replaces ``{data_root}`` in the manifests), ``train_annotation``,
``valid_annotation``, ``test_annotation``; of the model YAML ``sample_rate``,
``crop_length``, ``data_seed``, ``samples_per_epoch``, ``n_valid``, ``n_test``,
``max_bad_fraction``, and the training augmentation ``augment_phase_mangle_p``
and ``dequantize`` (:func:`fewsound_sb.dataio.augment`; off when absent).

Two guarantees for long runs live here, so that every recipe gets them:

* **a bad file never kills a run**: an item whose audio cannot be read
  (:class:`fewsound_sb.dataio.AudioReadError`: truncated, corrupt, missing)
  is replaced by the next readable item of the split, with one warning naming
  the file; every item carries ``skipped`` (how many bad items were passed
  over to get it), so the Brain counts the skips per epoch in the main
  process whatever the number of DataLoader workers or DDP processes. Only
  when more than ``max_bad_fraction`` of a split's files turn out bad does a
  ``ValueError`` (listing them) stop the run (:class:`SkippingDataset`);
* **exact resume**: the sampler yields ``(index, crop_seed)`` draws whose
  ``crop_seed`` is a function of ``(data_seed, epoch, draw number)`` only
  (:func:`crop_seed`, :class:`KeyedCropSampler`), and the training crop is a
  function of that seed, so a run killed mid-epoch and resumed draws the same
  clips and the same crops as an uninterrupted one, with any
  ``num_workers``.

Example
-------
See :func:`make_datasets` and ``recipes/VCTK/train.py``.
"""

import hashlib
import os
import random

import torch
from speechbrain.dataio.dataio import load_data_json
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.sampler import ReproducibleWeightedRandomSampler
from speechbrain.utils.logger import get_logger

from fewsound_sb.dataio import AudioReadError, make_audio_pipeline

logger = get_logger(__name__)

SPLITS = ("train", "valid", "test")


def default_num_workers(cap=4):
    """DataLoader workers for this machine: the usable cores less one, at most ``cap``.

    Used in the YAMLs as ``num_workers: !apply:fewsound_sb.datasets.default_num_workers [4]``
    so the default follows the machine (no warning from torch on a 2-core
    machine) and stays overridable (``--num_workers 8``). The usable cores are
    those this process may run on (``os.sched_getaffinity``: a SLURM or
    ``taskset`` allocation, not the whole node); one is left to the training
    process itself.

    Arguments
    ---------
    cap : int
        Upper bound.

    Returns
    -------
    int
        ``max(0, min(cap, cores - 1))``.

    Example
    -------
    >>> 0 <= default_num_workers(4) <= 4, default_num_workers(0)
    (True, 0)
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(int(cap), cores - 1))


def crop_seed(seed, epoch, draw):
    """Seed of the training crop of draw ``draw`` of epoch ``epoch``.

    A hash, so neighbouring draws and epochs get unrelated crops.

    Arguments
    ---------
    seed : int
        The data seed.
    epoch : int
        The epoch (the sampler's ``set_epoch`` value).
    draw : int
        Position of the draw in the epoch.

    Returns
    -------
    int
        In ``[0, 2**63)``.

    Example
    -------
    >>> crop_seed(0, 1, 5) == crop_seed(0, 1, 5), crop_seed(0, 1, 5) == crop_seed(0, 2, 5)
    (True, False)
    """
    digest = hashlib.blake2b(f"{seed}:{epoch}:{draw}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class KeyedCropSampler(ReproducibleWeightedRandomSampler):
    """The reproducible weighted sampler, yielding ``(index, crop_seed)`` draws.

    The indices are those of ``ReproducibleWeightedRandomSampler`` (seeded by
    ``seed + epoch``); draw ``k`` of the epoch also carries
    ``crop_seed(seed, epoch, k)``, which :class:`SkippingDataset` hands to
    the audio pipeline. SpeechBrain's intra-epoch resume fast-forwards the
    sampler, so the draws after a resume are those of the uninterrupted run;
    under DDP, SpeechBrain's ``DistributedSamplerWrapper`` shards the draws
    (with their seeds) across processes.

    Arguments are those of ``ReproducibleWeightedRandomSampler``.

    Example
    -------
    >>> sampler = KeyedCropSampler([1.0] * 3, num_samples=4, replacement=True, seed=0)
    >>> sampler.set_epoch(2)
    >>> draws = list(sampler)
    >>> len(draws), draws == list(sampler), all(0 <= i < 3 for i, _ in draws)
    (4, True, True)
    """

    def __iter__(self):
        for draw, index in enumerate(super().__iter__()):
            yield int(index), crop_seed(self.seed, self.epoch, draw)


class SkippingDataset(DynamicItemDataset):
    """A ``DynamicItemDataset`` that skips items whose audio cannot be read.

    ``dataset[key]`` (``key``: an index, or an ``(index, crop_seed)`` draw of
    :class:`KeyedCropSampler`) computes the item; if reading its audio raises
    :class:`~fewsound_sb.dataio.AudioReadError`, the file is logged once (per
    process) with the reason and the next index (cyclically) is tried, so the
    replacement is deterministic (resume stays exact). The item gets
    ``skipped``: the number of bad items passed over (0 normally), which
    SpeechBrain's ``PaddedBatch`` turns into a ``[B]`` tensor the Brain sums
    per epoch. If the bad files seen by this process exceed
    ``max_bad_fraction`` of the split, a ``ValueError`` lists them.

    Arguments
    ---------
    data : dict
        The manifest (``{id: {...}}``).
    dynamic_items : list
        Pipelines, as for ``DynamicItemDataset``.
    output_keys : list of str
        Output keys (``skipped`` is added).
    max_bad_fraction : float
        Largest tolerated fraction of bad files (0: the first one stops).
    name : str
        The split's name, for messages.
    seed : int
        Crop seed of a plain-index access: ``crop_seed(seed, 0, index)``.

    Example
    -------
    >>> import os, tempfile
    >>> from fewsound_sb.dataio import write_audio
    >>> root = tempfile.mkdtemp()
    >>> write_audio(os.path.join(root, "good.wav"), 0.1 * torch.ones(64), 8000)
    >>> _ = open(os.path.join(root, "bad.wav"), "wb").write(b"RIFF junk")
    >>> data = {n: {"wav": os.path.join(root, n + ".wav")} for n in ("bad", "good")}
    >>> pipe = make_audio_pipeline(8000, crop_length=32, train=False, seed=0)
    >>> dataset = SkippingDataset(data, [pipe], ["id", "sig"], max_bad_fraction=0.5)
    >>> item = dataset[0]
    >>> item["id"], item["skipped"], list(dataset.bad_files)
    ('good', 1, ['bad'])
    """

    def __init__(self, data, dynamic_items=(), output_keys=(), max_bad_fraction=0.0,
                 name="dataset", seed=0):
        super().__init__(data)
        self.pipeline.add_static_keys(["crop_seed"])  # put in each data point by __getitem__
        for item in dynamic_items:
            self.add_dynamic_item(item)
        self.set_output_keys(list(output_keys))
        self.seed = seed
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise ValueError(f"max_bad_fraction must be in [0, 1]. Found: {max_bad_fraction!r}")
        self.max_bad_fraction = float(max_bad_fraction)
        self.name = name
        self.bad_files = {}  # id -> reason, in this process

    def __getitem__(self, key):
        index, seed = key if isinstance(key, (tuple, list)) else (key, None)
        for skipped in range(len(self)):
            data_id = self.data_ids[(int(index) + skipped) % len(self)]
            if data_id in self.bad_files:
                continue
            point = {"id": data_id, **self.data[data_id],
                     "crop_seed": crop_seed(self.seed, 0, index) if seed is None else seed}
            try:
                item = self.pipeline.compute_outputs(point)
            except AudioReadError as err:
                self._record_bad(data_id, err)
                continue
            item["skipped"] = skipped
            return item
        raise ValueError(f"No readable audio in the {self.name} split: {self._bad_list()}")

    def _record_bad(self, data_id, err):
        self.bad_files[data_id] = str(err)
        logger.warning("Bad audio in the %s split, item %s skipped (another is drawn "
                       "instead): %s", self.name, data_id, err)
        if len(self.bad_files) > self.max_bad_fraction * len(self):
            raise ValueError(
                f"{len(self.bad_files)} of the {len(self)} files of the {self.name} split "
                f"are unreadable, more than max_bad_fraction = {self.max_bad_fraction:g}: "
                f"{self._bad_list()}. Fix or remove them (rerun the preparation with "
                "--check_audio True to leave them out of the manifests), or raise "
                "--max_bad_fraction."
            )

    def _bad_list(self):
        return "; ".join(self.bad_files.values())


def make_datasets(hparams):
    """Creates the train, valid and test datasets and the train sampler.

    Train: random crops of ``crop_length`` samples (seeded per draw), drawn by a
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
        ``{"train", "valid", "test"}`` -> :class:`SkippingDataset` with output keys
        ``id``, ``sig`` (``[crop_length]``), ``skipped`` (bad items passed
        over) and ``length`` (the relative valid
        length: < 1 for a clip shorter than the crop, whose zero padding the
        loss and the metrics then ignore).
    train_sampler : KeyedCropSampler
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
    # absent from a hand-made dict: the first bad file stops the run, as before
    max_bad_fraction = hparams.get("max_bad_fraction", 0.0)
    datasets = {}
    for split in SPLITS:
        manifest = hparams[f"{split}_annotation"]
        audio_pipeline = make_audio_pipeline(
            sample_rate=hparams["sample_rate"],
            crop_length=hparams["crop_length"],
            train=split == "train",
            seed=hparams["data_seed"],
            keyed_crops=True,
            # the authors' training augmentation; keys absent from a YAML: off
            phase_mangle_p=hparams.get("augment_phase_mangle_p", 0.0),
            dequantize_noise=hparams.get("dequantize", False),
        )
        data = load_data_json(manifest, replacements={"data_root": hparams["data_folder"]})
        if not data:
            raise ValueError(
                f"No clips in '{manifest}' ({split} split): check --data_folder "
                "and the recipe's prepare options"
            )
        limit = limits[split]
        if limit is not None and limit < len(data):
            chosen = set(random.Random(hparams["data_seed"]).sample(list(data), limit))
            data = {key: value for key, value in data.items() if key in chosen}
        dataset = SkippingDataset(
            data, dynamic_items=[audio_pipeline], output_keys=["id", "sig", "length"],
            max_bad_fraction=max_bad_fraction, name=split, seed=hparams["data_seed"],
        )
        logger.info("%s split: %d clips from %s", split, len(dataset), manifest)
        datasets[split] = dataset

    train_sampler = KeyedCropSampler(
        weights=[1.0] * len(datasets["train"]),
        num_samples=hparams["samples_per_epoch"],
        replacement=True,
        seed=hparams["data_seed"],
    )
    return datasets, train_sampler
