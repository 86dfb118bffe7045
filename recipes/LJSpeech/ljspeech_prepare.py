"""Data preparation for LJSpeech-1.1 (Ito and Johnson, 2017), one English speaker.

Layout as distributed (keithito.com/LJ-Speech-Dataset): ``LJSpeech-1.1/wavs/
LJ001-0001.wav`` ... (13,100 clips, 22,050 Hz, mono, 16 bit) and
``LJSpeech-1.1/metadata.csv`` (``id|transcription|normalized transcription``).
Pass the ``LJSpeech-1.1`` folder as ``--data_folder``.

Split (the dataset has no official one; the paper gives none; this follows the
authors' code, github.com/gmum/fewsound): the ids of ``metadata.csv`` are
sorted, shuffled with ``random.Random(split_seed)`` (seed 1) and the last
``valid_ratio`` (5%) are held out for validation; the test manifest is the
validation split.

Writes ``train.json``, ``valid.json``, ``test.json`` in ``manifest_folder``
(entries with ``words``, the normalized transcription); see
:mod:`fewsound_sb.preparation`.
"""

import os
import random

from fewsound_sb.preparation import check_folder, prepare_manifests

AUDIO_SUBFOLDER = "wavs"
METADATA_CSV = "metadata.csv"


def prepare_ljspeech(
    data_folder, manifest_folder, valid_ratio, split_seed, sample_rate, crop_length,
    skip_prep=False, check_audio=False, progress=True,
):
    """Writes the LJSpeech manifests (once; reruns with the same options reuse them).

    Arguments
    ---------
    data_folder : str
        The ``LJSpeech-1.1`` folder (holding ``wavs/`` and ``metadata.csv``).
    manifest_folder : str
        Where the manifests are written.
    valid_ratio : float
        Fraction of the clips held out for validation (and test).
    split_seed : int
        Seed of the shuffle.
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
    if not 0.0 < valid_ratio < 1.0:
        raise ValueError(f"valid_ratio must be in (0, 1). Found: {valid_ratio!r}")
    check_folder(
        data_folder, "LJSpeech-1.1", [AUDIO_SUBFOLDER, METADATA_CSV],
        "the LJSpeech-1.1 folder holding 'wavs/LJ001-0001.wav ...' and 'metadata.csv'",
    )
    options = {"valid_ratio": valid_ratio, "split_seed": split_seed}
    return prepare_manifests(
        "LJSpeech", data_folder, manifest_folder, options,
        lambda: _list_splits(data_folder, valid_ratio, split_seed),
        sample_rate, crop_length, progress, check_audio,
    )


def _list_splits(data_folder, valid_ratio, split_seed):
    """metadata.csv's ids, seeded split; ids whose wav is missing are skipped."""
    rows = {}
    with open(os.path.join(data_folder, METADATA_CSV), encoding="utf-8") as fin:
        for line in fin:
            fields = line.rstrip("\n").split("|")
            if fields[0]:
                rows[fields[0]] = fields[-1]
    ids = sorted(rows)
    random.Random(split_seed).shuffle(ids)
    n_valid = max(1, round(valid_ratio * len(ids)))
    parts = {"train": ids[: len(ids) - n_valid], "valid": ids[len(ids) - n_valid:]}
    splits, skipped = {}, {}
    for split, split_ids in parts.items():
        splits[split], skipped[split] = [], {}
        for utt in split_ids:
            rel_path = f"{AUDIO_SUBFOLDER}/{utt}.wav"
            if os.path.isfile(os.path.join(data_folder, rel_path)):
                splits[split].append((utt, rel_path, {"words": rows[utt]}))
            else:
                skipped[split].setdefault(f"listed in {METADATA_CSV}, missing", []).append(rel_path)
    splits["test"], skipped["test"] = splits["valid"], skipped["valid"]
    return splits, skipped
