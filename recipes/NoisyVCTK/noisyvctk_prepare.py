"""Data preparation for noisy VCTK (Valentini-Botinhao et al., 2016).

The "Noisy speech database for training speech enhancement algorithms and TTS
models" (datashare.ed.ac.uk/handle/10283/2791, also called VoiceBank-DEMAND):
VCTK speakers mixed with DEMAND and speech-shaped noise. Layout as distributed:
``noisy_trainset_28spk_wav/p226_001.wav`` ..., ``noisy_testset_wav/`` (speakers
p232, p257) and the clean counterparts ``clean_trainset_28spk_wav/``,
``clean_testset_wav/`` (48 kHz, mono, 16 bit; the 56-speaker training set,
``*_trainset_56spk_wav/``, is selectable with ``train_set: 56spk``). Pass the
folder holding them as ``--data_folder``.

As in the paper's Table 6, the model encodes and reconstructs the *noisy*
clip: ``wav`` is the noisy file; ``clean_wav`` names its clean counterpart
when that folder is present (not used by training).

Split: the official training set for training, the official test set for
validation and the final evaluation (the paper has no separate test split).

Writes ``train.json``, ``valid.json``, ``test.json`` in ``manifest_folder``
(entries with ``spk_id`` and, where present, ``clean_wav``); see
:mod:`fewsound_sb.preparation`.
"""

import os

from fewsound_sb.preparation import DATA_ROOT, check_folder, prepare_manifests

TRAIN_SETS = ("28spk", "56spk")
TEST_FOLDER = "testset_wav"


def prepare_noisy_vctk(
    data_folder, manifest_folder, train_set, sample_rate, crop_length, skip_prep=False,
    check_audio=False, progress=True,
):
    """Writes the noisy VCTK manifests (once; reruns with the same options reuse them).

    Arguments
    ---------
    data_folder : str
        The folder holding ``noisy_trainset_<train_set>_wav/`` and
        ``noisy_testset_wav/``.
    manifest_folder : str
        Where the manifests are written.
    train_set : str
        ``"28spk"`` (the usual one) or ``"56spk"``.
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
    if train_set not in TRAIN_SETS:
        raise ValueError(f"train_set must be one of {TRAIN_SETS}. Found: {train_set!r}")
    folders = {"train": f"trainset_{train_set}_wav", "valid": TEST_FOLDER}
    check_folder(
        data_folder, "noisy VCTK", [f"noisy_{f}" for f in folders.values()],
        f"the folder holding 'noisy_{folders['train']}/' and 'noisy_{TEST_FOLDER}/' "
        "(the unpacked archives of datashare.ed.ac.uk/handle/10283/2791)",
    )
    return prepare_manifests(
        "NoisyVCTK", data_folder, manifest_folder, {"train_set": train_set},
        lambda: _list_splits(data_folder, folders),
        sample_rate, crop_length, progress, check_audio,
    )


def _list_splits(data_folder, folders):
    """The noisy ``*.wav`` files of each set, with their clean counterparts."""
    splits = {}
    for split, folder in folders.items():
        noisy, clean = f"noisy_{folder}", f"clean_{folder}"
        items = []
        for name in sorted(os.listdir(os.path.join(data_folder, noisy))):
            if not name.endswith(".wav"):
                continue
            fields = {"spk_id": name.split("_")[0]}
            if os.path.isfile(os.path.join(data_folder, clean, name)):
                fields["clean_wav"] = f"{DATA_ROOT}/{clean}/{name}"
            items.append((name[: -len(".wav")], f"{noisy}/{name}", fields))
        splits[split] = items
    splits["test"] = splits["valid"]
    return splits, {}
