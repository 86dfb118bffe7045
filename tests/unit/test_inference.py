"""Reconstructor, piece joining, rate change, CLIs and their bad-input errors."""

import math
import os

import pytest
import soundfile
import torch

from fewsound_sb.dataio import write_audio
from fewsound_sb.inference import (
    Reconstructor,
    check_model_folder,
    decode_weights,
    export_inference,
    plan_pieces,
    write_tiny_model,
)
from fewsound_sb.inference_cli import main_decode, main_encode, main_reconstruct
from fewsound_sb.weights import INRWeights

RATE = 8000
FREQ = 110.0  # Hz


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return write_tiny_model(str(tmp_path_factory.mktemp("model")))


@pytest.fixture(scope="module")
def model(model_folder):
    return Reconstructor.from_hparams(source=model_folder, overrides={"progress": False})


# ----------------------------------------------------------------- lengths
@pytest.mark.parametrize("length", [1, 7, 900, 1023, 1024, 1025, 1921, 3000, 5000])
def test_lengths_round_trip(model, length):
    """Shorter than a piece, exactly one, non-multiples of the hop: N in, N out."""
    wav = 0.3 * torch.sin(torch.arange(length) / 7.0)
    weights = model.encode(wav, RATE)
    n_pieces, hop = plan_pieces(length, 1024, 128)
    assert (weights.n_pieces, weights.hop, weights.num_samples) == (n_pieces, hop, length)
    assert weights.piece_length == 1024
    assert model.decode(weights).shape == (length,)


def test_plan_covers_signal():
    for length in range(1, 5000, 37):
        n, hop = plan_pieces(length, 1024, 128)
        assert (n - 1) * hop < length <= (n - 1) * hop + 1024
        assert n == 1 or (n - 2) * hop + 1024 < length  # no useless piece
    with pytest.raises(ValueError, match="overlap"):
        plan_pieces(100, 64, 33)


def test_encode_mixes_channels_and_resamples(model):
    stereo = torch.rand(2, 3000) - 0.5
    weights = model.encode(stereo, 16000)
    assert weights.num_samples == 1500 and weights.sample_rate == RATE
    assert weights.metadata["source_sample_rate"] == 16000


def test_gains_restore_level(model):
    """Pieces are peak-normalised for the model; gains are their peaks."""
    wav = torch.cat([0.05 * torch.ones(1024), 0.8 * torch.ones(1000)])
    weights = model.encode(wav, RATE)
    assert weights.n_pieces == 3
    assert weights.gains[0].item() == pytest.approx(0.05)
    assert weights.gains[-1].item() == pytest.approx(0.8)


# ----------------------------------------------------------------- joining
def tone_weights(num_samples, piece_length=512, overlap=64, gains=None, phase_error=0.0):
    """Pieces of SIREN(1 hidden unit) that are exactly pieces of a 110 Hz tone.

    ``A sin(a t + b_k)`` on the piece's grid t = -1 + 2u / (L - 1) is the tone
    ``A sin(2 pi f (k hop + u) / sr)``: a = pi f (L - 1) / sr, b_k = a + 2 pi f k hop / sr.
    ``phase_error`` shifts odd pieces (a piece that reproduces the tone imperfectly).
    """
    n, hop = plan_pieces(num_samples, piece_length, overlap)
    a = math.pi * FREQ * (piece_length - 1) / RATE
    rows = []
    for k in range(n):
        b = a + 2 * math.pi * FREQ * k * hop / RATE + (phase_error if k % 2 else 0.0)
        rows.append([a, b, 0.5, 0.0])  # w0, b0, w1, b1
    return INRWeights(
        "siren", {"first_omega": 1.0, "hidden_omega": 1.0, "hidden_sizes": [1]},
        torch.tensor(rows), RATE, num_samples, piece_length=piece_length, hop=hop,
        gains=gains if gains is not None else torch.ones(n), join="raised_cosine",
    )


def tone(num_samples, rate=RATE):
    return 0.5 * torch.sin(2 * math.pi * FREQ * torch.arange(num_samples, dtype=torch.float64)
                           / rate).float()


def test_exact_pieces_give_the_tone():
    weights = tone_weights(3000)
    assert weights.n_pieces == 7
    assert torch.allclose(decode_weights(weights), tone(3000), atol=1e-4)
    assert torch.allclose(weights.reconstruct(), tone(3000), atol=1e-4)  # same decoder


def test_no_seam_jump_beyond_local_variation():
    """Imperfect pieces (gains 0.9 / 1.1, odd pieces 0.1 rad off) joined by cross-fade:
    around every seam the sample-to-sample change stays within the tone's own."""
    n = 4000
    weights = tone_weights(n, gains=torch.tensor([0.9, 1.1] * 5)[:9], phase_error=0.1)
    assert weights.n_pieces == 9
    out = decode_weights(weights)
    local = tone(n).diff().abs().max().item()  # 2 pi f / sr * A = 0.043
    steps = out.diff().abs()
    assert steps.max().item() <= 1.15 * local
    # a hard join (no cross-fade) of the same pieces jumps well past it
    hard = INRWeights(weights.target, weights.config, weights.weights, RATE, n,
                      piece_length=512, hop=448, gains=weights.gains, join="mean")
    naive = torch.zeros(n)
    for k in range(weights.n_pieces):
        start = k * 448
        piece = decode_weights(INRWeights(hard.target, hard.config, hard.weights[k:k + 1],
                                          RATE, 512, gains=hard.gains[k:k + 1]))
        naive[start: start + 512] = piece[: n - start]  # later piece overwrites
    assert naive.diff().abs().max().item() > 2 * local


def test_windows_sum_to_one():
    weights = tone_weights(3000)
    ones = INRWeights("siren", weights.config, weights.weights, RATE, 3000, piece_length=512,
                      hop=448, gains=weights.gains, join="raised_cosine")
    ones.weights[:, 2] = 0.0  # output weight 0 -> the piece is its bias b1
    ones.weights[:, 3] = 1.0
    assert torch.allclose(decode_weights(ones), torch.ones(3000), atol=1e-6)
    assert torch.allclose(decode_weights(ones, sample_rate=44100), torch.ones(16538), atol=1e-6)


@pytest.mark.parametrize("rate", [16000, 44100, 4000, 11025])
def test_rate_change_is_continuous_interpolation(rate):
    """Decoded at another rate, the exact-tone pieces give the tone sampled at that rate."""
    weights = tone_weights(3000)
    out = decode_weights(weights, sample_rate=rate)
    assert out.shape == (round(3000 * rate / RATE),)
    assert torch.allclose(out, tone(out.shape[0], rate), atol=2e-4)


def test_decode_num_samples(model):
    weights = tone_weights(3000)
    assert decode_weights(weights, num_samples=100).shape == (100,)
    with pytest.raises(ValueError, match="num_samples must be between 1 and 3000"):
        decode_weights(weights, num_samples=3001)


# ----------------------------------------------------------------- refinement
def test_refinement_starts_from_the_hypernetwork(model):
    wav = 0.5 * torch.sin(torch.arange(2000) / 5.0)
    from fewsound_sb.metrics import mse

    start = model.encode(wav, RATE, refine_steps=0)
    refined = model.encode(wav, RATE, refine_steps=30)
    assert refined.metadata["refine_steps"] == 30
    assert refined.n_pieces == start.n_pieces
    moved = (refined.weights - start.weights).norm(dim=1) / start.weights.norm(dim=1)
    assert 0 < moved.max().item() < 0.5  # close to where it started
    err0 = mse(model.decode(start)[None], wav[None]).item()
    err1 = mse(model.decode(refined)[None], wav[None]).item()
    assert err1 < 0.9 * err0  # 30 steps at refine_lr 1e-3 of a 140-weight KAN: 0.164 -> 0.139


# ----------------------------------------------------------------- files and CLIs
def test_weights_file_round_trip(model, tmp_path):
    wav = torch.rand(2500) - 0.5
    weights = model.encode(wav, RATE)
    path = str(tmp_path / "a.safetensors")
    weights.save(path)
    again = INRWeights.load(path)
    assert again.join == "raised_cosine" and again.hop == weights.hop
    assert torch.equal(model.decode(again), model.decode(weights))


def test_cli_encode_prints_bitrate_and_decode(model_folder, tmp_path, capsys):
    src = str(tmp_path / "in.wav")
    write_audio(src, 0.5 * (torch.rand(2, 4410) - 0.5), 22050)  # stereo, another rate
    out = str(tmp_path / "a.safetensors")
    assert main_encode([src, out, "--model", model_folder, "--dtype", "int8",
                        "--no_progress"]) == 0
    line = capsys.readouterr().out
    weights = INRWeights.load(out)
    assert weights.dtype == "int8" and weights.num_samples == 1600
    expected = weights.n_pieces * (140 * 8 + 64) * 8000 / 1600 / 1000
    assert f"{expected:.1f} kbit/s" in line
    wav_out = str(tmp_path / "out.wav")
    assert main_decode([out, wav_out, "--sample_rate", "22050"]) == 0
    assert soundfile.info(wav_out).frames == 4410


def test_decode_fitted_weights_without_model(tmp_path):
    """A single-clip fit's file (join mean, one piece) decodes with fewsound-decode."""
    from fewsound_sb.nnet.inr import build_inr, time_grid

    net = build_inr("nerf", encoding_length=2, hidden_sizes=(8,))
    path = str(tmp_path / "fit.safetensors")
    INRWeights.from_network(net, {"encoding_length": 2, "hidden_sizes": [8]}, RATE, 300,
                            gains=[0.5]).save(path)
    assert main_decode([path, str(tmp_path / "fit.wav")]) == 0
    data, rate = soundfile.read(str(tmp_path / "fit.wav"), dtype="float32")
    expected = (0.5 * net(time_grid(300)).squeeze(-1)).clamp(-1, 1).detach()
    assert rate == RATE and torch.allclose(torch.from_numpy(data), expected, atol=1e-4)


def _expect_exit(main, argv, capsys, *fragments):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_bad_weights_files(tmp_path, capsys):
    from safetensors.torch import save_file

    out = str(tmp_path / "o.wav")
    other = str(tmp_path / "v0.safetensors")
    save_file({"weights": torch.zeros(1, 4), "gains": torch.ones(1)}, other,
              metadata={"format": "fewsound-inr-weights", "format_version": "0", "info": "{}"})
    _expect_exit(main_decode, [other, out], capsys, "v0.safetensors", "format version 0")
    good = str(tmp_path / "good.safetensors")
    tone_weights(1000).save(good)
    corrupt = str(tmp_path / "corrupt.safetensors")
    with open(good, "rb") as fin, open(corrupt, "wb") as fout:
        fout.write(fin.read()[:-7])
    _expect_exit(main_decode, [corrupt, out], capsys, "corrupt.safetensors", "corrupt")
    _expect_exit(main_decode, [str(tmp_path / "none.safetensors"), out], capsys,
                 "not found")
    _expect_exit(main_decode, [good, str(tmp_path / "missing" / "o.wav")], capsys,
                 "Output folder does not exist", "missing")
    assert not os.path.exists(out)
    assert sorted(os.listdir(tmp_path)) == ["corrupt.safetensors", "good.safetensors",
                                            "v0.safetensors"]


def test_bad_model_folders(model_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="Model folder not found"):
        Reconstructor.from_hparams(source=str(tmp_path / "nowhere"))  # never a hub id
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "encoder.ckpt").write_bytes(open(os.path.join(model_folder, "encoder.ckpt"),
                                               "rb").read())
    with pytest.raises(FileNotFoundError, match="lacks hyperparams.yaml, head.ckpt"):
        check_model_folder(str(broken))
    src = str(tmp_path / "in.wav")
    write_audio(src, torch.zeros(100), RATE)
    _expect_exit(main_reconstruct, [src, str(tmp_path / "o.wav"), "--model", str(broken)],
                 capsys, "broken", "fewsound-export")
    assert not os.path.exists(tmp_path / "o.wav")


def test_bf16_precision_runs_the_encoder_in_bf16_and_the_head_in_fp32(model_folder):
    fp32 = Reconstructor.from_hparams(source=model_folder, overrides={"progress": False})
    bf16 = Reconstructor.from_hparams(source=model_folder,
                                      overrides={"progress": False, "precision": "bf16"})
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen[name] = output.dtype
        return hook

    bf16.mods.encoder.register_forward_hook(record("encoder"))
    bf16.mods.head.register_forward_hook(record("head"))
    pieces = torch.sin(torch.arange(2 * 1024, dtype=torch.float32) / 7.0).view(2, 1024)
    reference, low = fp32.encode_batch(pieces), bf16.encode_batch(pieces)
    assert seen == {"encoder": torch.bfloat16, "head": torch.float32}
    assert low.dtype == torch.float32
    deviation = ((low - reference).norm() / reference.norm()).item()
    assert 0 < deviation < 0.05  # rounded, not wrong
    wav = torch.sin(torch.arange(3000) / 20.0)
    assert bf16.decode(bf16.encode(wav, sample_rate=RATE)).dtype == torch.float32


def test_cli_precision_also_for_model_folders_without_the_key(model_folder, tmp_path):
    """--precision is a run option: it works on a folder exported before the YAML had the
    key, and bf16 reconstructs what fp32 does, rounded."""
    import shutil

    old = str(tmp_path / "old")
    shutil.copytree(model_folder, old)
    yaml_path = os.path.join(old, "hyperparams.yaml")
    with open(yaml_path, encoding="utf-8") as fin:
        text = fin.read()
    assert "\nprecision: fp32\n" in text
    with open(yaml_path, "w", encoding="utf-8") as fout:
        fout.write(text.replace("\nprecision: fp32\n", "\n"))
    src = str(tmp_path / "in.wav")
    write_audio(src, 0.5 * torch.sin(2 * math.pi * FREQ * torch.arange(3000) / RATE), RATE)
    outs = {}
    for precision in ("fp32", "bf16"):
        outs[precision] = str(tmp_path / f"{precision}.wav")
        assert main_reconstruct([src, outs[precision], "--model", old, "--precision", precision,
                                 "--no_progress"]) == 0
    ref, low = (torch.as_tensor(soundfile.read(outs[p])[0]) for p in ("fp32", "bf16"))
    assert ref.shape == low.shape == (3000,)
    # rounded, not wrong (this tiny untrained model: 9 %; the trained demo model: -42 dB)
    assert 0 < (low - ref).norm() < 0.2 * ref.norm()


def test_unknown_precision_names_the_file(model_folder):
    with pytest.raises(ValueError, match="precision 'fp8' in the model's hyperparams.yaml: use one of fp32"):
        Reconstructor.from_hparams(source=model_folder, overrides={"precision": "fp8"})


def test_bad_audio_and_output(model_folder, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF0000WAVEjunk")
    out = str(tmp_path / "o.wav")
    _expect_exit(main_reconstruct, [str(bad), out, "--model", model_folder], capsys,
                 "bad.wav")
    src = str(tmp_path / "in.wav")
    write_audio(src, torch.zeros(100), RATE)
    _expect_exit(main_reconstruct, [src, str(tmp_path / "no" / "o.wav"), "--model",
                                    model_folder], capsys, "Output folder does not exist")
    _expect_exit(main_encode, [src, str(tmp_path / "no" / "a.safetensors"), "--model",
                               model_folder], capsys, "Output folder does not exist")
    assert sorted(os.listdir(tmp_path)) == ["bad.wav", "in.wav"]


def test_reconstruct_file_multichannel_any_rate(model_folder, tmp_path):
    src = str(tmp_path / "in.flac")
    write_audio(src, 0.3 * (torch.rand(3, 4800) - 0.5), 48000)
    out = str(tmp_path / "out.wav")
    assert main_reconstruct([src, out, "--model", model_folder, "--refine_steps", "2",
                             "--no_progress"]) == 0
    info = soundfile.info(out)
    assert (info.frames, info.samplerate, info.channels) == (800, RATE, 1)


# ----------------------------------------------------------------- export
def test_export_from_checkpoint(tmp_path):
    """A run folder (training YAML + checkpoint) exports a loadable inference folder."""
    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.utils.checkpoints import Checkpointer

    from fewsound_sb.inference import TINY_MODEL_YAML

    run = tmp_path / "run"
    text = TINY_MODEL_YAML + f"output_folder: {run}\nsave_folder: !ref <output_folder>/save\n"
    run.mkdir()
    (run / "hyperparams.yaml").write_text(text)
    hparams = load_hyperpyyaml(text)
    ckpt = Checkpointer(str(run / "save"), {"encoder": hparams["encoder"],
                                             "head": hparams["head"]})
    with torch.no_grad():
        hparams["head"].theta.add_(0.25)  # a "trained" head
    ckpt.save_checkpoint(meta={"loss": 1.0})
    folder = export_inference(str(run))
    assert sorted(os.listdir(folder)) == ["encoder.ckpt", "head.ckpt", "hyperparams.yaml"]
    model = Reconstructor.from_hparams(source=folder, savedir=str(tmp_path / "links"))
    assert torch.equal(model.mods.head.theta, hparams["head"].theta)
    wav = torch.rand(1024) - 0.5
    expected = hparams["head"].eval()(hparams["encoder"].eval()(wav[None] / wav.abs().max()))
    assert torch.allclose(model.encode(wav, RATE).weights, expected.detach(), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="not a training run"):
        export_inference(str(tmp_path))
