"""Data preparation for GTZAN (Tzanetakis and Cook, 2002), music in 10 genres.

Layout as distributed (the Kaggle "GTZAN Dataset - Music Genre Classification"
archive, folder ``Data/``): ``genres_original/<genre>/<genre>.000NN.wav``,
100 clips of 30 s per genre, 22,050 Hz, mono, 16 bit. Pass the folder holding
``genres_original/`` as ``--data_folder``.

The distributed archive holds an undecodable file,
``genres_original/jazz/jazz.00054.wav``: it is left out with a warning naming
it (as is any other file soundfile cannot decode).

Split (GTZAN has no official one; the paper gives none): within each genre the
clips are sorted, shuffled with ``random.Random(split_seed)`` and the last
``valid_ratio`` of them (10 of 100 by default) are held out for validation;
the test manifest is the validation split (as for VCTK in the paper).

Writes ``train.json``, ``valid.json``, ``test.json`` in ``manifest_folder``
(entries with ``genre``); see :mod:`fewsound_sb.preparation`.
"""

import os
import random

from fewsound_sb.preparation import check_folder, prepare_manifests

AUDIO_SUBFOLDER = "genres_original"
GROUP_KEY = "genre"  # the manifest field the single-clip fitting set is drawn by


def prepare_gtzan(
    data_folder, manifest_folder, valid_ratio, split_seed, sample_rate, crop_length,
    skip_prep=False, check_audio=False, progress=True,
):
    """Writes the GTZAN manifests (once; reruns with the same options reuse them).

    Arguments
    ---------
    data_folder : str
        The folder holding ``genres_original/``.
    manifest_folder : str
        Where the manifests are written.
    valid_ratio : float
        Fraction of each genre held out for validation (and test).
    split_seed : int
        Seed of the per-genre shuffle.
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
        data_folder, "GTZAN", [AUDIO_SUBFOLDER],
        f"the GTZAN folder holding '{AUDIO_SUBFOLDER}/<genre>/<genre>.000NN.wav' "
        "(in the Kaggle archive: Data/)",
    )
    options = {"valid_ratio": valid_ratio, "split_seed": split_seed}
    return prepare_manifests(
        "GTZAN", data_folder, manifest_folder, options,
        lambda: _list_splits(data_folder, valid_ratio, split_seed),
        sample_rate, crop_length, progress, check_audio,
    )


def _list_splits(data_folder, valid_ratio, split_seed):
    """Per-genre seeded split of the ``*.wav`` files."""
    audio = os.path.join(data_folder, AUDIO_SUBFOLDER)
    rng = random.Random(split_seed)
    train, valid = [], []
    genres = sorted(g for g in os.listdir(audio) if os.path.isdir(os.path.join(audio, g)))
    if not genres:
        raise ValueError(
            f"No genre folders in '{audio}': expected '{audio}/<genre>/<genre>.000NN.wav'."
        )
    for genre in genres:
        names = sorted(n for n in os.listdir(os.path.join(audio, genre)) if n.endswith(".wav"))
        rng.shuffle(names)
        n_valid = max(1, round(valid_ratio * len(names))) if len(names) > 1 else 0
        items = [
            (os.path.splitext(n)[0], f"{AUDIO_SUBFOLDER}/{genre}/{n}", {GROUP_KEY: genre})
            for n in names
        ]
        train.extend(items[: len(items) - n_valid])
        valid.extend(items[len(items) - n_valid:])
    return {"train": train, "valid": valid, "test": valid}, {}
