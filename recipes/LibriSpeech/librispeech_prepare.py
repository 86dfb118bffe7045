"""Data preparation for LibriSpeech (Panayotov et al., 2015), read English speech.

Layout as distributed (openslr.org/12, each subset's archive unpacks into
``LibriSpeech/``): ``LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``,
16 kHz, mono, 16 bit. Pass the ``LibriSpeech`` folder (the one holding
``train-clean-100/``, ``test-other/``, ...) as ``--data_folder``.

Split (paper, Sec. "Effect of dataset variability"): train on
``train-clean-100``, validate on ``test-other``; the final evaluation uses
``test_subsets`` (default ``test-other`` too). Any subsets may be listed.

Writes ``train.json``, ``valid.json``, ``test.json`` in ``manifest_folder``
(entries with ``spk_id``, ``chapter``, ``subset``); see
:mod:`fewsound_sb.preparation`.
"""

import os

from fewsound_sb.preparation import check_folder, prepare_manifests

SUBSETS = (
    "train-clean-100", "train-clean-360", "train-other-500",
    "dev-clean", "dev-other", "test-clean", "test-other",
)
PARENT_NAME = "LibriSpeech"


def prepare_librispeech(
    data_folder, manifest_folder, train_subsets, valid_subsets, test_subsets, sample_rate,
    crop_length, skip_prep=False, check_audio=False, progress=True,
):
    """Writes the LibriSpeech manifests (once; reruns with the same options reuse them).

    Arguments
    ---------
    data_folder : str
        The ``LibriSpeech`` folder holding the subsets.
    manifest_folder : str
        Where the manifests are written.
    train_subsets, valid_subsets, test_subsets : list of str
        Subsets (``train-clean-100``, ``test-other``, ...) of each split.
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
    subsets = {"train": list(train_subsets), "valid": list(valid_subsets),
               "test": list(test_subsets)}
    for split, names in subsets.items():
        unknown = [name for name in names if name not in SUBSETS]
        if not names or unknown:
            raise ValueError(
                f"{split}_subsets must be a non-empty list of {SUBSETS}. Found: {names!r}"
            )
    _check_layout(data_folder, sorted({n for names in subsets.values() for n in names}))
    return prepare_manifests(
        "LibriSpeech", data_folder, manifest_folder, subsets,
        lambda: _list_splits(data_folder, subsets),
        sample_rate, crop_length, progress, check_audio,
    )


def _check_layout(data_folder, needed):
    """Errors for the common mistakes: the archive's parent or a subset folder."""
    hint = (f"the '{PARENT_NAME}' folder holding the subsets "
            f"('{PARENT_NAME}/train-clean-100/<speaker>/<chapter>/*.flac', ...)")
    if os.path.isdir(os.path.join(data_folder, PARENT_NAME)):
        raise ValueError(
            f"'{data_folder}' holds '{PARENT_NAME}/': expected the subsets "
            f"{needed} directly inside --data_folder. Pass --data_folder "
            f"{os.path.join(data_folder, PARENT_NAME)}"
        )
    if os.path.basename(os.path.normpath(data_folder)) in SUBSETS:
        raise ValueError(
            f"'{data_folder}' is a LibriSpeech subset folder: expected its parent, "
            f"holding the subsets {needed}. Pass --data_folder "
            f"{os.path.dirname(os.path.normpath(data_folder))}"
        )
    check_folder(data_folder, "LibriSpeech", needed, hint)


def _list_splits(data_folder, subsets):
    """Every ``*.flac`` under each subset's speaker/chapter folders."""
    listed = {}
    for names in subsets.values():
        for subset in names:
            if subset in listed:
                continue
            items = []
            root = os.path.join(data_folder, subset)
            for spk in sorted(os.listdir(root)):
                for chapter in sorted(_subfolders(os.path.join(root, spk))):
                    folder = os.path.join(root, spk, chapter)
                    for name in sorted(os.listdir(folder)):
                        if name.endswith(".flac"):
                            items.append((name[: -len(".flac")],
                                          f"{subset}/{spk}/{chapter}/{name}",
                                          {"spk_id": spk, "chapter": chapter,
                                           "subset": subset}))
            if not items:
                raise ValueError(
                    f"No '<speaker>/<chapter>/*.flac' files in '{root}': expected "
                    f"'{root}/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac'."
                )
            listed[subset] = items
    splits = {split: [item for s in names for item in listed[s]]
              for split, names in subsets.items()}
    return splits, {}


def _subfolders(folder):
    if not os.path.isdir(folder):
        return []
    return [n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n))]
