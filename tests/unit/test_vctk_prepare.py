"""Tests for recipes/VCTK/vctk_prepare.py and the embedded VCTK-mini corpus."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import soundfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "recipes", "VCTK"))

from vctk_prepare import pick_one_per_speaker, prepare_vctk  # noqa: E402

CORPUS = os.path.join(REPO, "tests", "samples", "VCTK-mini")
AUDIO = os.path.join(CORPUS, "wav48_silence_trimmed")


def _load(path):
    with open(path, encoding="utf-8") as fin:
        return json.load(fin)


# --------------------------------------------------------------- the corpus
def test_corpus_layout():
    speakers = sorted(os.listdir(AUDIO))
    assert len(speakers) >= 14
    for spk in speakers:
        files = sorted(os.listdir(os.path.join(AUDIO, spk)))
        assert len(files) >= 6
        for name in files:
            assert name.startswith(spk + "_") and name.endswith("_mic1.flac")
            utt = name[: -len("_mic1.flac")]
            txt = os.path.join(CORPUS, "txt", spk, utt + ".txt")
            with open(txt, encoding="utf-8") as fin:
                assert len(fin.read().split()) >= 3


def test_corpus_audio_format_and_durations():
    durations = []
    for spk in os.listdir(AUDIO):
        for name in os.listdir(os.path.join(AUDIO, spk)):
            info = soundfile.info(os.path.join(AUDIO, spk, name))
            assert info.samplerate == 48000
            assert info.channels == 1
            assert info.format == "FLAC" and info.subtype == "PCM_16"
            durations.append(info.duration)
    assert len(durations) >= 84
    assert 2.0 <= min(durations) and max(durations) <= 4.0


def test_corpus_speaker_info_and_size():
    with open(os.path.join(CORPUS, "speaker-info.txt"), encoding="utf-8") as fin:
        lines = fin.read().splitlines()
    assert lines[0].split() == ["ID", "AGE", "GENDER", "ACCENTS", "REGION", "COMMENTS"]
    ids = [line.split()[0] for line in lines[1:] if line.strip()]
    assert ids == sorted(os.listdir(AUDIO))
    assert {line.split()[2] for line in lines[1:]} == {"F", "M"}
    size = sum(
        os.path.getsize(os.path.join(root, f))
        for root, _, files in os.walk(CORPUS)
        for f in files
    )
    assert size < 10 * 1024 * 1024


def test_speakers_sound_different():
    """Different espeak voices/pitches: the speakers' clips are not copies."""
    import torch

    from fewsound_sb.dataio import read_audio

    a = read_audio(os.path.join(AUDIO, "p225", "p225_001_mic1.flac"), 16000)
    b = read_audio(os.path.join(AUDIO, "p226", "p226_001_mic1.flac"), 16000)
    assert a.shape != b.shape or not torch.allclose(a, b)


# ------------------------------------------------------------- prepare_vctk
def test_manifests_written(tmp_path):
    prepare_vctk(CORPUS, str(tmp_path), valid_speakers=10)
    train = _load(tmp_path / "train.json")
    valid = _load(tmp_path / "valid.json")
    speakers = sorted(os.listdir(AUDIO))
    assert {u["spk_id"] for u in valid.values()} == set(speakers[-10:])
    assert {u["spk_id"] for u in train.values()} == set(speakers[:-10])
    assert len(train) + len(valid) == sum(
        len(os.listdir(os.path.join(AUDIO, s))) for s in speakers
    )
    assert _load(tmp_path / "test.json") == valid  # no VCTK test split in the paper
    entry = train["p225_001"]
    assert entry["wav"] == "{data_root}/wav48_silence_trimmed/p225/p225_001_mic1.flac"
    assert entry["spk_id"] == "p225"
    real = entry["wav"].replace("{data_root}", CORPUS)
    assert entry["duration"] == pytest.approx(soundfile.info(real).duration, abs=1e-5)


def test_manifests_load_in_speechbrain(tmp_path):
    from speechbrain.dataio.dataset import DynamicItemDataset

    from fewsound_sb.dataio import make_audio_pipeline

    prepare_vctk(CORPUS, str(tmp_path), valid_speakers=10)
    dataset = DynamicItemDataset.from_json(
        str(tmp_path / "valid.json"),
        replacements={"data_root": CORPUS},
        dynamic_items=[make_audio_pipeline(22050, 32768, train=False, seed=0)],
        output_keys=["id", "sig"],
    )
    item = dataset[0]
    assert item["sig"].shape == (32768,)
    assert float(item["sig"].abs().max()) == pytest.approx(1.0)


def test_manifests_reused_on_rerun(tmp_path):
    prepare_vctk(CORPUS, str(tmp_path), valid_speakers=10)
    train_json, valid_json = tmp_path / "train.json", tmp_path / "valid.json"
    mtimes = (os.stat(train_json).st_mtime_ns, os.stat(valid_json).st_mtime_ns)
    prepare_vctk(CORPUS, str(tmp_path), valid_speakers=10)
    assert (os.stat(train_json).st_mtime_ns, os.stat(valid_json).st_mtime_ns) == mtimes
    # Other options: rewritten.
    prepare_vctk(CORPUS, str(tmp_path), valid_speakers=3)
    assert len({u["spk_id"] for u in _load(valid_json).values()}) == 3
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


def test_skip_prep_does_nothing(tmp_path):
    prepare_vctk(str(tmp_path / "nowhere"), str(tmp_path / "out"), skip_prep=True)
    assert not (tmp_path / "out").exists()


def test_mic2_copies_are_ignored(tmp_path):
    data = tmp_path / "VCTK"
    shutil.copytree(CORPUS, data)
    for spk in ("p225", "p239"):
        src = data / "wav48_silence_trimmed" / spk / f"{spk}_001_mic1.flac"
        shutil.copy(src, src.with_name(f"{spk}_001_mic2.flac"))
    prepare_vctk(str(data), str(tmp_path / "out"), valid_speakers=10)
    train = _load(tmp_path / "out" / "train.json")
    valid = _load(tmp_path / "out" / "valid.json")
    wavs = [u["wav"] for u in list(train.values()) + list(valid.values())]
    assert wavs and all(w.endswith("_mic1.flac") for w in wavs)
    prepare_vctk(str(data), str(tmp_path / "out2"), valid_speakers=1, mic="mic2")
    mic2 = _load(tmp_path / "out2" / "train.json")
    assert list(mic2) == ["p225_001"]  # p225 and p239 have mic2; p239 is valid


def test_missing_data_folder(tmp_path):
    missing = str(tmp_path / "no_vctk")
    with pytest.raises(FileNotFoundError) as info:
        prepare_vctk(missing, str(tmp_path / "out"))
    assert missing in str(info.value) and "--data_folder" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_wrong_layout(tmp_path):
    (tmp_path / "wav48" / "p225").mkdir(parents=True)  # an older VCTK release
    with pytest.raises(ValueError, match="wav48_silence_trimmed"):
        prepare_vctk(str(tmp_path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_too_few_speakers(tmp_path):
    data = tmp_path / "VCTK"
    for spk in ("p225", "p226", "p227"):
        (data / "wav48_silence_trimmed" / spk).mkdir(parents=True)
        shutil.copy(
            os.path.join(AUDIO, spk, f"{spk}_001_mic1.flac"),
            data / "wav48_silence_trimmed" / spk,
        )
    with pytest.raises(ValueError, match="Found 3 speakers"):
        prepare_vctk(str(data), str(tmp_path / "out"), valid_speakers=3)
    prepare_vctk(str(data), str(tmp_path / "out"), valid_speakers=2)
    assert len(_load(tmp_path / "out" / "valid.json")) == 2


def test_bad_mic(tmp_path):
    with pytest.raises(ValueError, match="mic"):
        prepare_vctk(CORPUS, str(tmp_path), mic="mic3")


# ------------------------------------------------------ pick_one_per_speaker
def test_pick_one_per_speaker():
    picks = pick_one_per_speaker(CORPUS, seed=0)
    speakers = sorted(os.listdir(AUDIO))
    assert [spk for spk, _ in picks] == speakers
    for spk, path in picks:
        assert os.path.isfile(path) and os.path.basename(path).startswith(spk + "_")
        assert path.endswith("_mic1.flac")
    assert picks == pick_one_per_speaker(CORPUS, seed=0)
    others = [pick_one_per_speaker(CORPUS, seed=s) for s in range(1, 4)]
    assert any(o != picks for o in others)


def test_pick_one_per_speaker_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        pick_one_per_speaker(str(tmp_path / "none"), seed=0)


# ------------------------------------------------------------- the generator
@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None,
    reason="needs espeak-ng and sox",
)
def test_generator_script_regenerates_the_corpus(tmp_path):
    """The script rebuilds the same tree; with the espeak-ng/sox versions the corpus
    was made with (Debian 12: espeak-ng 1.51, SoX 14.4.2), byte for byte."""
    out = tmp_path / "regen"
    subprocess.run(
        ["bash", os.path.join(REPO, "tools", "make_vctk_mini.sh"), str(out)],
        check=True,  # the script exits 1 if a clip is outside 2-4 s
        capture_output=True,
    )
    version = subprocess.run(
        ["espeak-ng", "--version"], capture_output=True, text=True
    ).stdout
    same_tools = "1.51" in version
    for root, _, files in os.walk(CORPUS):
        for name in files:
            ref = os.path.join(root, name)
            new = os.path.join(out, os.path.relpath(ref, CORPUS))
            assert os.path.isfile(new), new
            if same_tools or not name.endswith(".flac"):
                with open(ref, "rb") as a, open(new, "rb") as b:
                    assert a.read() == b.read(), ref
