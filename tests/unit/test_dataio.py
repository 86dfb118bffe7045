"""Tests for fewsound_sb.dataio: reading, bad files, cropping, pipelines, writing, fit clips."""

import math
import os
import pickle

import numpy as np
import pytest
import soundfile
import torch

from fewsound_sb.dataio import (
    AudioReadError,
    crop_or_pad,
    list_audio_files,
    make_audio_pipeline,
    peak_normalize,
    prepare_clips,
    read_audio,
    split_pieces,
    unique_ids,
    write_audio,
)

SAMPLES = os.path.join(os.path.dirname(__file__), "..", "samples", "VCTK-mini")
SAMPLE_FLAC = os.path.join(
    SAMPLES, "wav48_silence_trimmed", "p225", "p225_001_mic1.flac"
)


def _sine(num_samples, sample_rate, freq=440.0, amp=0.5):
    t = np.arange(num_samples) / sample_rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ----------------------------------------------------------------- read_audio
def test_read_flac_resamples_to_requested_rate():
    info = soundfile.info(SAMPLE_FLAC)
    assert info.samplerate == 48000
    wav = read_audio(SAMPLE_FLAC, sample_rate=22050)
    assert wav.dtype == torch.float32 and wav.dim() == 1
    assert wav.shape[0] == math.ceil(info.frames * 22050 / 48000)
    native = read_audio(SAMPLE_FLAC, sample_rate=None)
    assert native.shape[0] == info.frames
    assert torch.isfinite(wav).all() and wav.abs().max() > 0.1


def test_resampled_sine_keeps_its_frequency(tmp_path):
    path = tmp_path / "sine.wav"
    soundfile.write(path, _sine(48000, 48000, freq=1000.0), 48000, subtype="FLOAT")
    wav = read_audio(path, sample_rate=16000)
    assert wav.shape == (16000,)
    spectrum = torch.fft.rfft(wav).abs()
    assert int(spectrum.argmax()) == 1000  # 1 Hz bins over 1 s


def test_no_resampling_when_rates_match(tmp_path):
    path = tmp_path / "x.wav"
    data = _sine(1000, 8000)
    soundfile.write(path, data, 8000, subtype="FLOAT")
    wav = read_audio(path, sample_rate=8000)
    assert torch.equal(wav, torch.from_numpy(data))


def test_stereo_is_mixed_to_mono(tmp_path):
    path = tmp_path / "stereo.wav"
    left = np.full(500, 0.8, dtype=np.float32)
    right = np.full(500, -0.2, dtype=np.float32)
    soundfile.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    mono = read_audio(path, sample_rate=16000)
    assert mono.shape == (500,)
    assert torch.allclose(mono, torch.full((500,), 0.3))
    both = read_audio(path, sample_rate=16000, mono=False)
    assert both.shape == (2, 500)
    assert torch.allclose(both[0], torch.full((500,), 0.8))


def test_ogg_is_read(tmp_path):
    path = tmp_path / "x.ogg"
    soundfile.write(path, _sine(8000, 16000), 16000)
    assert read_audio(path, sample_rate=16000).shape[0] == 8000


def _bad_file(tmp_path, kind):
    """Creates one kind of unusable audio file and returns its path."""
    if kind == "missing":
        return tmp_path / "missing.wav"
    if kind == "empty":
        path = tmp_path / "empty.wav"
        path.write_bytes(b"")
    elif kind == "truncated_flac":
        path = tmp_path / "truncated.flac"
        with open(SAMPLE_FLAC, "rb") as fin:
            path.write_bytes(fin.read(3000))
    elif kind == "header_only_flac":
        path = tmp_path / "header_only.flac"
        with open(SAMPLE_FLAC, "rb") as fin:
            path.write_bytes(fin.read(100))
    elif kind == "text_as_wav":
        path = tmp_path / "notes.wav"
        path.write_text("this is not audio\n" * 20)
    elif kind == "zero_length":
        path = tmp_path / "zero.wav"
        soundfile.write(path, np.zeros(0, dtype=np.float32), 16000)
    elif kind == "nan":
        path = tmp_path / "nan.wav"
        data = _sine(100, 16000)
        data[10] = np.nan
        soundfile.write(path, data, 16000, subtype="FLOAT")
    elif kind == "inf":
        path = tmp_path / "inf.wav"
        data = _sine(100, 16000)
        data[5] = np.inf
        soundfile.write(path, data, 16000, subtype="FLOAT")
    elif kind == "folder":
        path = tmp_path / "folder.wav"
        path.mkdir()
    return path


@pytest.mark.parametrize(
    "kind, words",
    [
        ("missing", "not found"),
        ("empty", "empty (0 bytes)"),
        ("truncated_flac", "truncated/corrupt"),
        ("header_only_flac", "truncated/corrupt"),
        ("text_as_wav", "not audio"),
        ("zero_length", "no samples"),
        ("nan", "NaN or inf"),
        ("inf", "NaN or inf"),
        ("folder", "not a regular file"),
    ],
)
def test_bad_audio_raises_one_clear_error(tmp_path, kind, words):
    path = _bad_file(tmp_path, kind)
    with pytest.raises(AudioReadError) as info:
        read_audio(path, sample_rate=16000)
    message = str(info.value)
    assert str(path) in message  # names the file
    assert words in message  # names the problem
    assert isinstance(info.value, ValueError)


def test_bad_sample_rate_argument():
    with pytest.raises(ValueError, match="sample_rate"):
        read_audio(SAMPLE_FLAC, sample_rate=0)


# ------------------------------------------------------------- peak_normalize
def test_peak_normalize():
    wav = torch.tensor([[0.2, -0.4, 0.1], [3.0, 1.0, -1.5]])
    out = peak_normalize(wav)
    assert torch.allclose(out.abs().amax(dim=-1), torch.ones(2))
    assert torch.allclose(out[0], torch.tensor([0.5, -1.0, 0.25]))


def test_peak_normalize_silence_is_not_nan():
    out = peak_normalize(torch.zeros(100))
    assert torch.isfinite(out).all() and torch.equal(out, torch.zeros(100))


# ---------------------------------------------------------------- crop_or_pad
def test_crop_modes_are_exact():
    wav = torch.arange(100.0)
    out, n = crop_or_pad(wav, 10, mode="start")
    assert n == 10 and torch.equal(out, torch.arange(10.0))
    out, n = crop_or_pad(wav, 10, mode="center")
    assert torch.equal(out, torch.arange(45.0, 55.0))


def test_short_clip_is_zero_padded_at_the_end():
    wav = torch.ones(7)
    for mode in ("random", "start", "center"):
        out, n = crop_or_pad(wav, 10, mode=mode)
        assert n == 7 and out.shape == (10,)
        assert torch.equal(out[:7], torch.ones(7)) and torch.equal(
            out[7:], torch.zeros(3)
        )


def test_exact_length_is_unchanged():
    wav = torch.randn(32)
    out, n = crop_or_pad(
        wav, 32, mode="random", generator=torch.Generator().manual_seed(1)
    )
    assert n == 32 and torch.equal(out, wav)


def test_random_crop_is_seeded_and_varies():
    wav = torch.arange(10000.0)
    crops_a = [
        crop_or_pad(wav, 64, "random", torch.Generator().manual_seed(3))[0]
        for _ in range(2)
    ]
    assert torch.equal(crops_a[0], crops_a[1])  # same seed, same crop
    g = torch.Generator().manual_seed(3)
    starts = {int(crop_or_pad(wav, 64, "random", g)[0][0]) for _ in range(10)}
    assert len(starts) > 5  # successive calls differ
    for start in starts:
        assert 0 <= start <= 10000 - 64


def test_crop_keeps_leading_dims():
    out, _ = crop_or_pad(torch.randn(2, 3, 50), 20, mode="center")
    assert out.shape == (2, 3, 20)
    out, _ = crop_or_pad(torch.randn(2, 5), 20, mode="start")
    assert out.shape == (2, 20)


def test_crop_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        crop_or_pad(torch.zeros(10), 5, mode="end")
    with pytest.raises(ValueError, match="length"):
        crop_or_pad(torch.zeros(10), 0)


# --------------------------------------------------------------- split_pieces
def test_split_pieces_covers_everything():
    wav = torch.randn(25)
    pieces = split_pieces(wav, 10)
    assert len(pieces) == 3 and all(p.shape == (10,) for p in pieces)
    assert torch.equal(torch.cat(pieces)[:25], wav)
    assert torch.equal(pieces[-1][5:], torch.zeros(5))
    assert len(split_pieces(torch.randn(20), 10)) == 2
    with pytest.raises(ValueError):
        split_pieces(torch.zeros(0), 10)


# ------------------------------------------------------------------ pipelines
def test_eval_pipeline_takes_the_first_samples(tmp_path):
    path = tmp_path / "ramp.wav"
    ramp = np.linspace(-0.5, 0.5, 4000, dtype=np.float32)
    soundfile.write(path, ramp, 8000, subtype="FLOAT")
    pipe = make_audio_pipeline(8000, crop_length=256, train=False, seed=0)
    assert pipe.takes == ["wav"] or tuple(pipe.takes) == ("wav",)
    assert list(pipe.provides) == ["sig", "length"]
    sig, length = pipe(str(path))
    expected = torch.from_numpy(ramp[:256]) / 0.5
    assert sig.shape == (256,) and torch.allclose(sig, expected) and length == 1.0
    assert torch.equal(sig, pipe(str(path))[0])  # deterministic


def test_train_pipeline_random_crops_seeded(tmp_path):
    path = tmp_path / "noise.wav"
    soundfile.write(path, _sine(8000, 8000, freq=3.7), 8000, subtype="FLOAT")
    pipe_a = make_audio_pipeline(8000, crop_length=128, train=True, seed=7)
    pipe_b = make_audio_pipeline(8000, crop_length=128, train=True, seed=7)
    crops_a = [pipe_a(str(path))[0] for _ in range(4)]
    crops_b = [pipe_b(str(path))[0] for _ in range(4)]
    for a, b in zip(crops_a, crops_b):
        assert torch.equal(a, b)  # same seed, same sequence
    assert not torch.equal(crops_a[0], crops_a[1])  # a new crop per call
    for crop in crops_a:
        assert crop.shape == (128,)
        assert torch.isclose(crop.abs().max(), torch.tensor(1.0))  # normalised


def test_pipeline_resamples_and_skips_normalisation(tmp_path):
    path = tmp_path / "x.flac"
    soundfile.write(path, np.full(4800, 0.25, dtype=np.float32), 48000)
    pipe = make_audio_pipeline(
        16000, crop_length=2000, train=False, seed=0, normalize=False
    )
    sig, length = pipe(str(path))
    assert sig.shape == (2000,)
    assert torch.allclose(sig[100:1500], torch.full((1400,), 0.25), atol=1e-3)
    assert torch.equal(sig[1600:], torch.zeros(400))  # 1600 real samples, then padding
    assert length == 0.8  # the relative valid length: loss and metrics ignore the padding


def test_pipeline_is_picklable_for_dataloader_workers():
    pipe = make_audio_pipeline(8000, crop_length=16, train=True, seed=0)
    clone = pickle.loads(pickle.dumps(pipe))
    assert list(clone.provides) == ["sig", "length"]


def test_pipeline_in_dataloader_workers_gives_distinct_crops(tmp_path):
    from speechbrain.dataio.dataset import DynamicItemDataset

    path = str(tmp_path / "long.wav")
    soundfile.write(path, _sine(16000, 8000, freq=2.3), 8000, subtype="FLOAT")
    data = {f"u{i}": {"wav": path} for i in range(4)}
    pipe = make_audio_pipeline(
        8000, crop_length=64, train=True, seed=0, normalize=False
    )
    dataset = DynamicItemDataset(data, dynamic_items=[pipe], output_keys=["sig"])
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, num_workers=2, collate_fn=lambda x: x
    )
    torch.manual_seed(0)
    crops = [item["sig"] for item in loader]
    firsts = {round(float(c[0]), 6) for c in crops}
    assert len(firsts) == 4  # the two workers do not repeat each other's crops


# ----------------------------------------------------------- list_audio_files
def test_list_audio_files(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("z.wav", "a/y.flac", "a/b/x.OGG", "a/readme.txt"):
        (tmp_path / name).write_bytes(b"x")
    found = list_audio_files(tmp_path)
    assert [os.path.relpath(f, tmp_path) for f in found] == [
        "a/b/x.OGG",
        "a/y.flac",
        "z.wav",
    ]
    single = list_audio_files([tmp_path / "z.wav", tmp_path / "a"])
    assert len(single) == 3
    assert list_audio_files(tmp_path, extensions=(".flac",)) == [
        str(tmp_path / "a" / "y.flac")
    ]


def test_list_audio_files_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        list_audio_files([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="No audio files found"):
        list_audio_files(tmp_path / "empty")


def test_list_audio_files_on_corpus():
    files = list_audio_files(SAMPLES)
    assert len(files) >= 84 and all(f.endswith("_mic1.flac") for f in files)


# ---------------------------------------------------------------- write_audio
def test_write_audio_roundtrip_and_atomic(tmp_path):
    path = tmp_path / "sub" / "out.wav"
    wav = torch.from_numpy(_sine(1600, 16000))
    write_audio(path, wav, 16000)
    back = read_audio(path, sample_rate=None)
    assert soundfile.info(path).samplerate == 16000
    assert torch.allclose(back, wav, atol=1e-4)
    assert os.listdir(path.parent) == ["out.wav"]  # no temporary file left
    write_audio(tmp_path / "st.flac", torch.zeros(2, 100), 8000)
    assert soundfile.info(tmp_path / "st.flac").channels == 2


def test_write_audio_failure_leaves_no_file(tmp_path):
    path = tmp_path / "bad.wav"
    with pytest.raises(ValueError, match="NaN"):
        write_audio(path, torch.tensor([0.0, float("nan")]), 16000)
    with pytest.raises(Exception):
        write_audio(path, torch.zeros(10), 16000, subtype="NOT_A_SUBTYPE")
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------- clips to fit
def test_prepare_clips_pads_crops_and_reports(tmp_path):
    long_path = str(tmp_path / "long.wav")
    short_path = str(tmp_path / "short.flac")
    write_audio(long_path, 0.3 * torch.randn(2, 5000).clamp(-1, 1), 16000)
    write_audio(short_path, 0.3 * torch.ones(300), 8000)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav")
    clips = prepare_clips([("long", long_path), ("short", short_path), ("bad", str(bad))],
                          sample_rate=8000, crop_length=1000, crop="start")
    assert [c.id for c in clips] == ["long", "short", "bad"]
    assert clips[0].num_valid == 1000 and clips[0].wav.abs().max() == pytest.approx(1.0)
    assert clips[1].num_valid == 300 and "padded" in clips[1].note
    assert clips[2].wav is None and "bad.wav" in clips[2].error
    random_a = prepare_clips([("long", long_path)], 8000, 1000, crop="random", seed=3)[0]
    random_b = prepare_clips([("long", long_path)], 8000, 1000, crop="random", seed=3)[0]
    assert torch.equal(random_a.wav, random_b.wav)
    with pytest.raises(ValueError, match="crop must be"):
        prepare_clips([("long", long_path)], 8000, 1000, crop="middle")


def test_prepare_clips_gain_restores_the_original_level(tmp_path):
    path = str(tmp_path / "quiet.wav")
    wav = torch.from_numpy(_sine(3000, 8000, amp=0.25))
    write_audio(path, wav, 8000, subtype="FLOAT")
    pieces = prepare_clips([("q", path)], 8000, 1000, all_pieces=True)
    assert [p.id for p in pieces] == ["q_piece000", "q_piece001", "q_piece002"]
    for k, piece in enumerate(pieces):
        assert piece.wav.abs().max() == pytest.approx(1.0)
        torch.testing.assert_close(piece.gain * piece.wav, wav[k * 1000: (k + 1) * 1000])
    silent = str(tmp_path / "silent.wav")
    write_audio(silent, torch.zeros(500), 8000)
    clip = prepare_clips([("s", silent)], 8000, 1000)[0]
    assert clip.gain == 1.0 and not clip.wav.any()


def test_unique_ids():
    assert unique_ids(["x/a.wav", "y/a.flac", "a.ogg", "b.mp3"]) == ["a", "a-2", "a-3", "b"]
