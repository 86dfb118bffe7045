"""Data preparation for UrbanSound8K (Salamon et al., 2014), urban sounds.

Layout as distributed: ``audio/fold1`` ... ``audio/fold10`` holding the
8,732 excerpts (``<fsID>-<classID>-<occurrenceID>-<sliceID>.wav``, up to 4 s)
and ``metadata/UrbanSound8K.csv`` (slice_file_name, fsID, start, end,
salience, fold, classID, class). Pass the ``UrbanSound8K`` folder holding
``audio/`` and ``metadata/`` as ``--data_folder``.

The files keep their original formats: sample rates from 8 to 192 kHz, mono
or stereo, 8/16/24/32-bit; every file is mixed to mono and resampled when
loaded. Many excerpts are shorter than 32,768 samples at 22,050 Hz (1.49 s):
they are zero-padded, the manifest records their true ``num_samples``, and the
loss and the metrics ignore the padding (the pipeline's relative ``length``).

Split: the dataset's own 10 folds (never reshuffled, as its authors ask):
``train_folds`` (1-8), ``valid_folds`` (9), ``test_folds`` (10).

Writes ``train.json``, ``valid.json``, ``test.json`` in ``manifest_folder``
(entries with ``fold`` and ``class``); see :mod:`fewsound_sb.preparation`.
"""

import csv
import os

from fewsound_sb.preparation import SPLITS, check_folder, prepare_manifests

METADATA_CSV = os.path.join("metadata", "UrbanSound8K.csv")
GROUP_KEY = "fold"  # the manifest field the single-clip fitting set is drawn by


def prepare_urbansound8k(
    data_folder, manifest_folder, train_folds, valid_folds, test_folds, sample_rate,
    crop_length, skip_prep=False, check_audio=False, progress=True,
):
    """Writes the UrbanSound8K manifests (once; reruns with the same options reuse them).

    Arguments
    ---------
    data_folder : str
        The ``UrbanSound8K`` folder (holding ``audio/`` and ``metadata/``).
    manifest_folder : str
        Where the manifests are written.
    train_folds, valid_folds, test_folds : list of int
        The folds (1-10) of each split.
    sample_rate : int
        The recipe's sample rate (to count clips shorter than the crop).
    crop_length : int
        The recipe's clip length in samples.
    skip_prep : bool
        If True, do nothing.
    check_audio : bool
        Decode every file completely instead of probing its first and last
        frames (slower; catches damage in the middle of a file).
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict or None
        Per split: files found, kept, skipped (per reason), padded.
    """
    if skip_prep:
        return None
    folds = {"train": list(train_folds), "valid": list(valid_folds), "test": list(test_folds)}
    for split, values in folds.items():
        if not values or any(f not in range(1, 11) for f in values):
            raise ValueError(
                f"{split}_folds must be a non-empty list of folds 1-10. Found: {values!r}"
            )
    check_folder(
        data_folder, "UrbanSound8K", ["audio", METADATA_CSV],
        "the UrbanSound8K folder holding 'audio/fold1..10/*.wav' and "
        f"'{METADATA_CSV}'",
    )
    return prepare_manifests(
        "UrbanSound8K", data_folder, manifest_folder, folds,
        lambda: _list_splits(data_folder, folds),
        sample_rate, crop_length, progress, check_audio,
    )


def _list_splits(data_folder, folds):
    """The CSV's rows, by fold; rows whose file is missing are skipped."""
    split_of = {fold: split for split, values in folds.items() for fold in values}
    splits = {split: [] for split in SPLITS}
    skipped = {split: {} for split in SPLITS}
    with open(os.path.join(data_folder, METADATA_CSV), newline="", encoding="utf-8") as fin:
        for row in csv.DictReader(fin):
            fold = int(row["fold"])
            split = split_of.get(fold)
            if split is None:
                continue
            rel_path = f"audio/fold{fold}/{row['slice_file_name']}"
            if not os.path.isfile(os.path.join(data_folder, rel_path)):
                reason = f"listed in {METADATA_CSV}, missing"
                skipped[split].setdefault(reason, []).append(rel_path)
                continue
            item_id = os.path.splitext(row["slice_file_name"])[0]
            splits[split].append((item_id, rel_path, {GROUP_KEY: fold, "class": row["class"]}))
    return splits, skipped
