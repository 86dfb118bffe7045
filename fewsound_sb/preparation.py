"""Dataset preparation shared by every recipe's ``<dataset>_prepare.py``.

A prepare script knows one dataset's on-disk layout: it checks the folder
(an error says what was expected where), lists the files of each split and
hands them to :func:`prepare_manifests`, which does the rest the same way for
every dataset:

* each file is probed (:func:`probe_audio`: header, first and last frames),
  so undecodable or truncated files are left out, each with a warning naming
  it, before training ever meets them;
* one SpeechBrain JSON manifest per split is written (atomically) to
  ``save_folder``, paths relative to ``{data_root}``::

      {"blues.00000": {"wav": "{data_root}/genres_original/blues/blues.00000.wav",
                       "duration": 30.013, "num_samples": 661794,
                       "file_sample_rate": 22050, "channels": 1, "genre": "blues"}}

  ``num_samples`` is the clip's true length in samples at
  ``file_sample_rate``, so a clip shorter than the crop (zero-padded when
  loaded; the pipeline's relative ``length`` tells the loss and the metrics to
  ignore the padding) is known (:func:`valid_samples`);
* the manifests are written once and reused: a rerun with the same options
  only logs the saved counts;
* a progress bar (tqdm) runs over the files, and the counts of files found,
  kept, skipped (per reason) and padded are logged per split.

:func:`pick_per_group` draws the seeded single-clip fitting sets (10 clips per
GTZAN genre, 10 per UrbanSound8K fold: the paper's Tables 18-19) from the
manifests.
"""

import json
import math
import os
import random
import re

import soundfile
from speechbrain.utils.logger import get_logger
from tqdm import tqdm

from fewsound_sb.dataio import AudioReadError, check_audio_files
from fewsound_sb.files import write_text

logger = get_logger(__name__)

DATA_ROOT = "{data_root}"  # replaced by the real folder when a manifest is loaded
SPLITS = ("train", "valid", "test")
OPTIONS_JSON = "prepare_options.json"  # written last: the manifests are complete
BAD_FILES = "bad_audio_files.txt"  # with check_audio: the files left out
PROBE_FRAMES = 1024  # frames decoded at the start and at the end of each file


def probe_audio(path):
    """Checks that soundfile decodes ``path``; returns its length and format.

    Reads the header and decodes the first and the last ``PROBE_FRAMES``
    frames, which catches files that are not audio, have a broken header, are
    empty or are truncated, without decoding the whole file.

    Arguments
    ---------
    path : str
        An audio file.

    Returns
    -------
    dict
        ``duration`` (s), ``num_samples`` (at the file's rate),
        ``file_sample_rate`` (Hz), ``channels``.

    Raises
    ------
    AudioReadError
        Naming the file and what is wrong with it.

    Example
    -------
    >>> import os, tempfile, torch
    >>> from fewsound_sb.dataio import write_audio
    >>> folder = tempfile.mkdtemp()
    >>> write_audio(os.path.join(folder, "a.wav"), torch.zeros(2, 4410), 44100)
    >>> probe_audio(os.path.join(folder, "a.wav"))
    {'duration': 0.1, 'num_samples': 4410, 'file_sample_rate': 44100, 'channels': 2}
    >>> _ = open(os.path.join(folder, "b.wav"), "wb").write(b"RIFF junk")
    >>> try:
    ...     probe_audio(os.path.join(folder, "b.wav"))
    ... except AudioReadError as err:
    ...     print(str(err).split(":")[0])
    Cannot read audio file '.../b.wav'
    """
    try:
        with soundfile.SoundFile(path) as sound:
            frames, rate, channels = sound.frames, sound.samplerate, sound.channels
            if frames <= 0:
                raise AudioReadError(
                    f"Cannot read audio file '{path}': it contains no samples. "
                    "Remove it from the data."
                )
            head = sound.read(min(frames, PROBE_FRAMES), dtype="float32")
            sound.seek(max(0, frames - PROBE_FRAMES))
            tail = sound.read(dtype="float32")
    except (soundfile.SoundFileError, RuntimeError, OSError) as err:
        raise AudioReadError(
            f"Cannot read audio file '{path}': soundfile cannot decode it ({err}). "
            "Re-copy or re-export it, or leave it out."
        ) from err
    if len(head) == 0 or len(tail) < min(frames, PROBE_FRAMES):
        raise AudioReadError(
            f"Cannot read audio file '{path}': its header announces {frames} frames "
            "but the data ends earlier (truncated). Re-copy it or leave it out."
        )
    return {
        "duration": round(frames / rate, 6),
        "num_samples": int(frames),
        "file_sample_rate": int(rate),
        "channels": int(channels),
    }


def valid_samples(entry, sample_rate):
    """Samples of a manifest entry at ``sample_rate`` (after resampling).

    Arguments
    ---------
    entry : dict
        A manifest entry with ``num_samples`` and ``file_sample_rate``.
    sample_rate : int
        The rate the recipe resamples to.

    Returns
    -------
    int

    Example
    -------
    >>> valid_samples({"num_samples": 88200, "file_sample_rate": 44100}, 22050)
    44100
    >>> valid_samples({"num_samples": 1000, "file_sample_rate": 48000}, 22050)
    459
    """
    return int(math.floor(entry["num_samples"] * sample_rate / entry["file_sample_rate"]))


def prepare_manifests(
    dataset, data_folder, save_folder, options, list_splits, sample_rate, crop_length,
    progress=True, check_audio=False,
):
    """Writes (or reuses) the ``train``/``valid``/``test`` manifests of a dataset.

    If every manifest exists and ``OPTIONS_JSON`` in ``save_folder`` holds the
    same ``dataset``, ``data_folder`` and ``options``, nothing is rewritten (the saved counts
    are logged again). Otherwise ``list_splits()`` lists the files, each is
    probed (:func:`probe_audio`), unreadable ones are left out with a warning
    naming them, and the manifests are written atomically, then
    ``OPTIONS_JSON`` (its presence means the manifests are complete).

    Arguments
    ---------
    dataset : str
        The dataset's name, for the log and the options file.
    data_folder : str
        The dataset's root; manifest paths are relative to it.
    save_folder : str
        Where ``train.json``, ``valid.json``, ``test.json`` are written.
    options : dict
        Everything the manifests depend on (JSON-serialisable).
    list_splits : callable
        ``list_splits()`` returns ``(splits, skipped)``: ``splits`` maps each
        of ``train``, ``valid``, ``test`` to a list of ``(id, relative_path,
        fields)`` (``relative_path`` under the data folder, ``fields`` a dict
        of extra manifest keys); ``skipped`` maps a split to ``{reason:
        [paths]}``, the files the layout step already left out (e.g. listed in
        a metadata file but missing). Only called when the manifests are
        (re)written.
    sample_rate : int
        The recipe's sample rate, to count clips that will be padded.
    crop_length : int
        The recipe's clip length in samples.
    progress : bool
        Show a progress bar over the files.
    check_audio : bool
        Decode every file completely (:func:`fewsound_sb.dataio.check_audio_files`),
        not only its first and last frames; the bad files are left out and
        listed in ``<save_folder>/bad_audio_files.txt`` and the log.

    Returns
    -------
    dict
        ``split -> {"found", "kept", "skipped": {reason: count}, "padded"}``.

    Example
    -------
    >>> import os, tempfile, torch
    >>> from fewsound_sb.dataio import write_audio
    >>> data, save = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> write_audio(os.path.join(data, "a.wav"), torch.zeros(100), 8000)
    >>> _ = open(os.path.join(data, "bad.wav"), "wb").write(b"not audio")
    >>> files = [("a", "a.wav", {}), ("bad", "bad.wav", {})]
    >>> def list_splits():
    ...     return {"train": files, "valid": files[:1], "test": files[:1]}, {}
    >>> counts = prepare_manifests(
    ...     "toy", data, save, {}, list_splits, 8000, crop_length=200, progress=False
    ... )
    >>> counts["train"]
    {'found': 2, 'kept': 1, 'skipped': {'unreadable': 1}, 'padded': 1}
    >>> json.load(open(os.path.join(save, "train.json")))["a"]["wav"]
    '{data_root}/a.wav'
    """
    paths = {split: os.path.join(save_folder, f"{split}.json") for split in SPLITS}
    options_path = os.path.join(save_folder, OPTIONS_JSON)
    wanted = {"dataset": dataset, "data_folder": os.path.abspath(data_folder),
              "options": {**options, "check_audio": True} if check_audio else options}
    saved = _read_json(options_path)
    if saved is not None and all(os.path.isfile(p) for p in paths.values()):
        if {key: saved.get(key) for key in wanted} == wanted:
            counts = {
                split: {**saved["counts"][split],
                        "padded": _count_padded(_read_json(path), sample_rate, crop_length)}
                for split, path in paths.items()
            }
            logger.info("%s manifests in %s exist (same options): reusing them",
                        dataset, save_folder)
            _log_counts(dataset, counts, sample_rate, crop_length)
            return counts
        logger.info("%s manifests in %s were made with other options: rewriting them",
                    dataset, save_folder)

    splits, layout_skipped = list_splits()
    os.makedirs(save_folder, exist_ok=True)
    probed = {}  # the test split often repeats the valid one: probe each file once
    counts = {}
    for split in SPLITS:
        entries, skipped = {}, {}
        for reason, skipped_paths in layout_skipped.get(split, {}).items():
            skipped[reason] = len(skipped_paths)
            for path in skipped_paths:
                logger.warning("%s %s: skipping '%s' (%s)", dataset, split, path, reason)
        items = splits[split]
        for item_id, rel_path, fields in tqdm(
            items, desc=f"{dataset} {split}", disable=not progress, mininterval=1.0
        ):
            if rel_path not in probed:
                probed[rel_path] = _probe_or_warn(dataset, os.path.join(data_folder, rel_path),
                                                  check_audio)
            info = probed[rel_path]
            if info is None:
                skipped["unreadable"] = skipped.get("unreadable", 0) + 1
                continue
            entries[item_id] = {"wav": f"{DATA_ROOT}/{rel_path}", **info, **fields}
        found = len(items) + sum(n for r, n in skipped.items() if r != "unreadable")
        counts[split] = {"found": found, "kept": len(entries), "skipped": skipped,
                         "padded": _count_padded(entries, sample_rate, crop_length)}
        if not entries:
            raise ValueError(
                f"No readable audio for the {dataset} {split} split in '{data_folder}' "
                f"({len(items)} file(s) listed): check --data_folder and the split options."
            )
        write_text(paths[split], json.dumps(entries, indent=2))
        logger.info("Wrote %s (%d clips)", paths[split], len(entries))
    if check_audio:
        bad = sorted(rel for rel, info in probed.items() if info is None)
        write_text(os.path.join(save_folder, BAD_FILES), "".join(f"{rel}\n" for rel in bad))
        logger.info("%s check_audio: %d bad file(s) left out (listed in %s)", dataset,
                    len(bad), os.path.join(save_folder, BAD_FILES))
    stored = {split: {k: v for k, v in c.items() if k != "padded"} for split, c in counts.items()}
    write_text(options_path, json.dumps({**wanted, "counts": stored}, indent=2))
    _log_counts(dataset, counts, sample_rate, crop_length)
    return counts


def pick_per_group(manifests, group_key, per_group, seed, data_folder):
    """Seeded choice of ``per_group`` clips from each group of the manifests.

    The single-clip fitting sets of the paper's Tables 18-19: 10 clips per
    GTZAN genre, 10 per UrbanSound8K fold (100 each). Groups are sorted by
    name and clips by id before the seeded draw, so the same manifests and
    seed give the same clips.

    Arguments
    ---------
    manifests : list of str
        Manifest paths; their entries are pooled (an id in several counts once).
    group_key : str
        The manifest field that names the group (``"genre"``, ``"fold"``).
    per_group : int
        Clips drawn from each group (all of a smaller group, with a warning).
    seed : int
        Seed of the draw.
    data_folder : str
        Replaces ``{data_root}`` in the paths.

    Returns
    -------
    list of (str, str)
        ``(id, path)`` pairs, grouped in sorted group order.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "m.json")
    >>> entries = {f"{g}{i}": {"wav": f"{{data_root}}/{g}{i}.wav", "genre": g}
    ...            for g in "ab" for i in range(5)}
    >>> _ = open(path, "w").write(json.dumps(entries))
    >>> picks = pick_per_group([path], "genre", 2, seed=0, data_folder="/data")
    >>> [p[0][0] for p in picks], picks[0][1].startswith("/data/a")
    (['a', 'a', 'b', 'b'], True)
    >>> picks == pick_per_group([path], "genre", 2, seed=0, data_folder="/data")
    True
    """
    pooled = {}  # by id: the test manifest may repeat the valid one
    for manifest in manifests:
        entries = _read_json(manifest)
        if entries is None:
            raise FileNotFoundError(f"Manifest not found or unreadable: '{manifest}'")
        pooled.update(entries)
    groups = {}
    for item_id, entry in pooled.items():
        groups.setdefault(str(entry[group_key]), []).append((item_id, entry["wav"]))
    rng = random.Random(seed)
    picks = []
    for group in sorted(groups, key=_natural_key):
        members = sorted(groups[group])
        if len(members) < per_group:
            logger.warning("%s %s has only %d clips (wanted %d): taking all",
                           group_key, group, len(members), per_group)
            chosen = members
        else:
            chosen = sorted(rng.sample(members, per_group))
        picks.extend((i, wav.replace(DATA_ROOT, data_folder)) for i, wav in chosen)
    return picks


def check_folder(data_folder, dataset, expected, hint):
    """Raises if ``data_folder`` is missing or lacks an ``expected`` path.

    Arguments
    ---------
    data_folder : str
        The folder given as ``--data_folder``.
    dataset : str
        The dataset's name, for the message.
    expected : list of str
        Paths (relative to ``data_folder``) that must exist.
    hint : str
        What ``--data_folder`` should point at (ends the message).

    Raises
    ------
    FileNotFoundError
        ``data_folder`` does not exist.
    ValueError
        An expected path is missing; the message lists what was found.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> try:
    ...     check_folder(folder, "GTZAN", ["genres_original"], "the folder holding genres_original/")
    ... except ValueError as err:
    ...     print(str(err).split(";")[0])  # doctest: +ELLIPSIS
    '...' is not a GTZAN folder: expected '.../genres_original'
    """
    if not os.path.isdir(data_folder):
        raise FileNotFoundError(
            f"{dataset} data folder not found: '{data_folder}'. Pass --data_folder "
            f"pointing at {hint}."
        )
    for rel in expected:
        path = os.path.join(data_folder, rel)
        if not os.path.exists(path):
            raise ValueError(
                f"'{data_folder}' is not a {dataset} folder: expected "
                f"'{path}'; found {sorted(os.listdir(data_folder))[:10]}. Pass "
                f"--data_folder pointing at {hint}."
            )


def _probe_or_warn(dataset, path, check_audio=False):
    try:
        info = probe_audio(path)
    except AudioReadError as err:
        logger.warning("%s: skipping undecodable file '%s' (%s)", dataset, path, err)
        return None
    if check_audio and check_audio_files([path], progress=False)[1]:
        return None  # check_audio_files logged the reason
    return info


def _count_padded(entries, sample_rate, crop_length):
    return sum(valid_samples(e, sample_rate) < crop_length for e in (entries or {}).values())


def _log_counts(dataset, counts, sample_rate, crop_length):
    for split, c in counts.items():
        skipped = ", ".join(f"{n} {reason}" for reason, n in c["skipped"].items()) or "none"
        logger.info(
            "%s %s: %d files found, %d kept, skipped: %s; %d shorter than %d samples "
            "at %d Hz (padded, the padding is ignored by loss and metrics)",
            dataset, split, c["found"], c["kept"], skipped, c["padded"], crop_length,
            sample_rate,
        )


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as fin:
            return json.load(fin)
    except (OSError, ValueError):
        return None


def _natural_key(name):
    """Sort key putting ``fold2`` before ``fold10``."""
    return [int(part) if part.isdigit() else part
            for part in re.split(r"(\d+)", name)]
