"""Data preparation for VCTK-Corpus-0.92.

Writes SpeechBrain JSON manifests ``train.json``, ``valid.json`` and ``test.json``:

    {"p225_001": {"wav": "{data_root}/wav48_silence_trimmed/p225/p225_001_mic1.flac",
                  "spk_id": "p225", "duration": 2.54}, ...}

Speakers are sorted by name; the last ``valid_speakers`` of them (10 in the
paper) are held out for validation. The paper has no separate VCTK test split,
so ``test.json`` holds the validation speakers too. Also picks one recording
per speaker for single-clip INR fitting (the paper's Table 1).

Download: https://datashare.ed.ac.uk/handle/10283/3443 (VCTK-Corpus-0.92).

Called by train.py as ``run_on_main(prepare_vctk, kwargs=...)``; fit_inr.py
uses :func:`pick_one_per_speaker`.
"""

import json
import os
import random

import soundfile
from speechbrain.utils.logger import get_logger

from fewsound_sb.dataio import check_audio_files
from fewsound_sb.files import write_text
from fewsound_sb.preparation import check_folder

logger = get_logger(__name__)

AUDIO_SUBFOLDER = "wav48_silence_trimmed"
AUDIO_EXTENSION = ".flac"
MICS = ("mic1", "mic2")
TRAIN_JSON = "train.json"
VALID_JSON = "valid.json"
TEST_JSON = "test.json"  # the paper evaluates on the validation speakers
OPTIONS_JSON = "vctk_prepare_options.json"  # options the manifests were made with
BAD_FILES = "bad_audio_files.txt"  # check_audio: the files left out, with the reason
DATA_ROOT = "{data_root}"  # replaced by the real folder when the dataset is loaded


def prepare_vctk(
    data_folder, save_folder, valid_speakers=10, mic="mic1", skip_prep=False,
    check_audio=False, progress=True,
):
    """Writes train/valid/test JSON manifests for VCTK-Corpus-0.92.

    Only the ``mic`` copy of each utterance is used. Quirk: the authors' code
    globbed ``*.flac`` and so read both the mic1 and mic2 copies (every
    utterance twice); we follow the paper's intent, one copy per utterance.

    If the manifests already exist and were made with the same options, the
    preparation is skipped (reruns reuse them); with other options they are
    rewritten. Manifests are written atomically.

    Arguments
    ---------
    data_folder : str
        The VCTK-Corpus-0.92 root (holding ``wav48_silence_trimmed/``).
    save_folder : str
        Where ``train.json``, ``valid.json`` and ``test.json`` (= the
        validation speakers) are written.
    valid_speakers : int
        Number of speakers, the last ones in sorted order, held out for
        validation (paper: 10).
    mic : str
        ``"mic1"`` or ``"mic2"``: which microphone copy to use.
    skip_prep : bool
        If True, do nothing.
    check_audio : bool
        Decode every file completely first (with a progress bar;
        :func:`fewsound_sb.dataio.check_audio_files`) and leave the bad ones
        out of the manifests; they are listed in the log and in
        ``<save_folder>/bad_audio_files.txt``. Without it only headers are
        read, and training skips a bad file when it meets it.
    progress : bool
        Progress bar of ``check_audio``.

    Returns
    -------
    None

    Raises
    ------
    FileNotFoundError
        ``data_folder`` does not exist.
    ValueError
        ``data_folder`` is not in the VCTK-0.92 layout, or has fewer than
        ``valid_speakers + 1`` speakers.

    Example
    -------
    >>> import json, tempfile
    >>> save = tempfile.mkdtemp()
    >>> prepare_vctk("tests/samples/VCTK-mini", save, valid_speakers=10)
    >>> valid = json.load(open(os.path.join(save, "valid.json")))
    >>> sorted({u["spk_id"] for u in valid.values()})[0]
    'p229'
    """
    if skip_prep:
        return
    if not isinstance(valid_speakers, int) or valid_speakers < 0:
        raise ValueError(
            f"valid_speakers must be a non-negative int. Found: {valid_speakers!r}"
        )
    speakers = _list_speakers(data_folder, mic)
    if len(speakers) < valid_speakers + 1:
        raise ValueError(
            f"Found {len(speakers)} speakers with '*_{mic}{AUDIO_EXTENSION}' files in "
            f"'{os.path.join(data_folder, AUDIO_SUBFOLDER)}', but valid_speakers="
            f"{valid_speakers} needs at least {valid_speakers + 1} "
            "(some left for training). Lower valid_speakers or check the folder."
        )

    options = {"valid_speakers": valid_speakers, "mic": mic, "check_audio": bool(check_audio)}
    train_json = os.path.join(save_folder, TRAIN_JSON)
    valid_json = os.path.join(save_folder, VALID_JSON)
    test_json = os.path.join(save_folder, TEST_JSON)
    if _manifests_ready(save_folder, options):
        logger.info(
            "Manifests %s, %s and %s exist (same options): skipping preparation",
            train_json,
            valid_json,
            test_json,
        )
        return

    split = len(speakers) - valid_speakers
    train_spk, valid_spk = speakers[:split], speakers[split:]
    logger.info(
        "Preparing VCTK manifests: %d train speakers, %d valid speakers (%s)",
        len(train_spk),
        len(valid_spk),
        ", ".join(valid_spk),
    )
    os.makedirs(save_folder, exist_ok=True)
    bad = {}
    for spks, manifests in ((train_spk, [train_json]), (valid_spk, [valid_json, test_json])):
        entries = {}
        for spk in spks:
            entries.update(_speaker_entries(data_folder, spk, mic))
        if check_audio:
            entries, split_bad = _check_entries(data_folder, entries, progress)
            bad.update(split_bad)
        for manifest in manifests:
            _write_json_atomic(manifest, entries)
            logger.info("Wrote %s (%d utterances)", manifest, len(entries))
    if check_audio:
        bad_path = os.path.join(save_folder, BAD_FILES)
        write_text(bad_path, "".join(f"{path}\t{reason}\n" for path, reason in bad.items()))
        logger.info("check_audio: %d bad file(s) left out of the manifests%s (listed in %s)",
                    len(bad), ": " + ", ".join(bad) if bad else "", bad_path)
    # Written last: its presence means the manifests are complete.
    _write_json_atomic(os.path.join(save_folder, OPTIONS_JSON), options)


def pick_one_per_speaker(data_folder, seed, mic="mic1"):
    """Chooses one recording per speaker with a seeded RNG.

    Used to build the single-clip fitting set (paper Table 1: one random
    recording for each of VCTK's 110 speakers).

    Arguments
    ---------
    data_folder : str
        The VCTK-Corpus-0.92 root (holding ``wav48_silence_trimmed/``).
    seed : int
        Seed of the choice; the same seed gives the same files.
    mic : str
        ``"mic1"`` or ``"mic2"``.

    Returns
    -------
    list of (str, str)
        ``(speaker_id, path)`` pairs, sorted by speaker.

    Example
    -------
    >>> picks = pick_one_per_speaker("tests/samples/VCTK-mini", seed=0)
    >>> len(picks), picks[0][0]
    (14, 'p225')
    >>> picks == pick_one_per_speaker("tests/samples/VCTK-mini", seed=0)
    True
    """
    rng = random.Random(seed)
    picks = []
    for spk in _list_speakers(data_folder, mic):
        files = _speaker_files(data_folder, spk, mic)
        picks.append(
            (spk, os.path.join(data_folder, AUDIO_SUBFOLDER, spk, rng.choice(files)))
        )
    return picks


def _list_speakers(data_folder, mic):
    """Sorted speaker folders holding at least one ``*_<mic>.flac`` file.

    Checks the folder and its layout first, so errors come before any work.
    """
    if mic not in MICS:
        raise ValueError(f"mic must be one of {MICS}. Found: {mic!r}")
    check_folder(
        data_folder, "VCTK", [AUDIO_SUBFOLDER],
        f"the VCTK-Corpus-0.92 root (holding '{AUDIO_SUBFOLDER}/<speaker>/<speaker>_<utt>_"
        f"{mic}{AUDIO_EXTENSION}'; older releases with 'wav48/' are not supported)",
    )
    audio_folder = os.path.join(data_folder, AUDIO_SUBFOLDER)
    speakers = []
    for spk in sorted(os.listdir(audio_folder)):
        if not os.path.isdir(os.path.join(audio_folder, spk)):
            continue
        if _speaker_files(data_folder, spk, mic):
            speakers.append(spk)
        else:
            logger.warning(
                "Speaker folder '%s' has no *_%s%s files: ignored",
                os.path.join(audio_folder, spk),
                mic,
                AUDIO_EXTENSION,
            )
    return speakers


def _speaker_files(data_folder, spk, mic):
    """Sorted file names of one speaker's ``*_<mic>.flac`` recordings."""
    suffix = f"_{mic}{AUDIO_EXTENSION}"
    folder = os.path.join(data_folder, AUDIO_SUBFOLDER, spk)
    return sorted(name for name in os.listdir(folder) if name.endswith(suffix))


def _speaker_entries(data_folder, spk, mic):
    """Manifest entries ``{utt_id: {...}}`` of one speaker."""
    suffix = f"_{mic}{AUDIO_EXTENSION}"
    entries = {}
    for name in _speaker_files(data_folder, spk, mic):
        path = os.path.join(data_folder, AUDIO_SUBFOLDER, spk, name)
        try:
            duration = soundfile.info(path).duration  # header only: fast
        except (soundfile.SoundFileError, RuntimeError) as err:
            logger.warning("Skipping unreadable file '%s' (%s)", path, err)
            continue
        utt_id = name[: -len(suffix)]
        entries[utt_id] = {
            "wav": f"{DATA_ROOT}/{AUDIO_SUBFOLDER}/{spk}/{name}",
            "spk_id": spk,
            "duration": round(duration, 6),
        }
    return entries


def _manifests_ready(save_folder, options):
    """True if the manifests exist and were made with ``options``."""
    paths = [os.path.join(save_folder, name) for name in (TRAIN_JSON, VALID_JSON, TEST_JSON)]
    options_path = os.path.join(save_folder, OPTIONS_JSON)
    if not all(os.path.isfile(p) for p in paths + [options_path]):
        return False
    try:
        with open(options_path, encoding="utf-8") as fin:
            saved = json.load(fin)
    except (OSError, ValueError):
        return False
    if saved != options:
        logger.info(
            "Manifests in %s were made with %s, not %s: rewriting them",
            save_folder,
            saved,
            options,
        )
        return False
    return True


def _check_entries(data_folder, entries, progress):
    """Entries whose audio decodes completely, and ``{path: reason}`` of the others."""
    paths = {utt: entry["wav"].replace(DATA_ROOT, data_folder) for utt, entry in entries.items()}
    good, bad = check_audio_files(list(paths.values()), progress=progress,
                                  desc="VCTK check_audio")
    good = set(good)
    return {utt: e for utt, e in entries.items() if paths[utt] in good}, bad


def _write_json_atomic(path, obj):
    """Writes JSON atomically (:func:`fewsound_sb.files.write_text`)."""
    write_text(path, json.dumps(obj, indent=2))
