"""Tests for fewsound_sb.metrics: closed-form values derived by hand."""

import logging
import math
import sys

import numpy as np
import pytest
import torch

from fewsound_sb import metrics as M

SR = 22050


def speech_like(num_samples=32768, sample_rate=SR, seed=0):
    """Harmonic tone with vibrato and a syllable-rate envelope, peak 1."""
    gen = torch.Generator().manual_seed(seed)
    n = torch.arange(num_samples, dtype=torch.float64) / sample_rate
    f0 = 130 + 25 * torch.sin(2 * math.pi * 0.8 * n)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sample_rate
    voiced = sum(torch.sin(k * phase) / k for k in range(1, 25))
    envelope = 0.1 + 0.9 * torch.sin(2 * math.pi * 2.5 * n).abs()
    wav = voiced * envelope + 0.01 * torch.randn(num_samples, generator=gen, dtype=torch.float64)
    return wav / wav.abs().max()


def white(num_samples, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(num_samples, generator=gen, dtype=torch.float64)


def test_identical_signals():
    x = speech_like()[None]
    (row,) = M.compute_metrics(x.clone(), x, SR, metrics=M.ALL_METRICS[:-1])
    assert row["mse"] == 0.0
    assert row["psnr"] == math.inf
    assert row["lsd"] < 1e-5
    assert row["si_snr"] > 100
    assert row["wasserstein"] == pytest.approx(0.0, abs=1e-12)
    assert row["pesq"] == pytest.approx(4.64, abs=0.01)  # wide-band PESQ maximum
    assert row["stoi"] == pytest.approx(1.0, abs=1e-6)


def test_mse_and_psnr_of_constant_offset():
    x = speech_like()[None]
    offset = 0.05
    (row,) = M.compute_metrics(
        predictions=x + offset, targets=x, sample_rate=SR, metrics=("mse", "psnr")
    )
    assert row["mse"] == pytest.approx(offset**2, rel=1e-9)
    data_range = float(x.max() - x.min())
    assert row["psnr"] == pytest.approx(10 * math.log10(data_range**2 / offset**2), rel=1e-9)


def test_psnr_is_per_clip():
    # clip 0: range 2, error 0.1 -> 10 log10(4 / 0.01); clip 1: range 1, error 0.5
    ref = torch.tensor([[-1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.5, 0.5]], dtype=torch.float64)
    est = ref + torch.tensor([[0.1], [0.5]], dtype=torch.float64)
    rows = M.compute_metrics(predictions=est, targets=ref, sample_rate=8000, metrics=("psnr",))
    assert rows[0]["psnr"] == pytest.approx(10 * math.log10(400.0))
    assert rows[1]["psnr"] == pytest.approx(10 * math.log10(4.0))


def test_si_snr_exact_with_orthogonal_noise():
    x = speech_like(8192)
    x = x - x.mean()
    noise = white(8192, seed=1)
    noise = noise - noise.mean()
    noise = noise - (noise @ x) / (x @ x) * x  # orthogonal to x
    noise = noise * torch.sqrt((x @ x) / (noise @ noise) / 10)  # 10 dB below x
    (row,) = M.compute_metrics(
        predictions=(x + noise)[None], targets=x[None], sample_rate=SR, metrics=("si_snr",)
    )
    assert row["si_snr"] == pytest.approx(10.0, abs=1e-9)
    # scale invariance and offset invariance
    (row,) = M.compute_metrics(
        predictions=(3 * (x + noise) + 0.2)[None], targets=x[None], sample_rate=SR,
        metrics=("si_snr",),
    )
    assert row["si_snr"] == pytest.approx(10.0, abs=1e-9)


def test_si_snr_white_noise_at_10_db():
    x = white(2**17, seed=2)
    noise = white(2**17, seed=3)
    noise = noise * torch.sqrt((x**2).mean() / (noise**2).mean() / 10)
    (row,) = M.compute_metrics((x + noise)[None], x[None], SR, metrics=("si_snr",))
    assert row["si_snr"] == pytest.approx(10.0, abs=0.1)


@pytest.mark.parametrize("gain", [0.5, 2.0, 10.0])
def test_lsd_of_gain_is_twice_log10_gain(gain):
    # white noise has no empty bin, so every frame gives |log10(1 / g^2)|
    x = white(8192)[None]
    (row,) = M.compute_metrics(gain * x, x, SR, metrics=("lsd",))
    assert row["lsd"] == pytest.approx(abs(2 * math.log10(gain)), rel=1e-6)


@pytest.mark.parametrize("sample_rate", [22050, 16000, 44100])
def test_lsd_matches_numpy_framing(sample_rate):
    """Re-derive the authors' LSD with numpy framing: n_fft, hop, Hann, zero pad."""
    x, y = white(6000, seed=4), white(6000, seed=5)
    n_fft, hop = int(2048 * sample_rate / 44100), int(sample_rate / 100)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann

    def magnitude(wav):
        padded = np.pad(wav.numpy(), n_fft // 2)
        frames = [padded[s : s + n_fft] * window for s in range(0, len(padded) - n_fft + 1, hop)]
        return np.abs(np.fft.rfft(np.array(frames), axis=-1))  # [N, F]

    ref, est = magnitude(x), magnitude(y)
    per_frame = np.sqrt(np.mean(np.log10(ref**2 / (est + 1e-12) ** 2 + 1e-12) ** 2, axis=-1))
    (row,) = M.compute_metrics(predictions=y, targets=x, sample_rate=sample_rate, metrics=("lsd",))
    assert row["lsd"] == pytest.approx(per_frame.mean(), rel=1e-9)


def cosine(bin_index, num_samples=32768):
    n = torch.arange(num_samples, dtype=torch.float64)
    return torch.cos(2 * math.pi * bin_index * n / num_samples)


def test_wasserstein_of_shifted_peak():
    # one rFFT peak at bin 100 vs bin 300: W1 = 300^2 - 100^2 on the squared-bin support
    ref, est = cosine(100), cosine(300)
    (row,) = M.compute_metrics(est, ref, SR, metrics=("wasserstein",))
    assert row["wasserstein"] == pytest.approx((300**2 - 100**2) / 32768, rel=1e-6)
    (back,) = M.compute_metrics(ref, est, SR, metrics=("wasserstein",))
    assert back["wasserstein"] == pytest.approx(row["wasserstein"], rel=1e-9)


def test_wasserstein_moves_half_the_mass():
    # two equal peaks (weight 1/2 each); only the one at bin 40 moves to bin 50
    ref = cosine(10, 4096) + cosine(40, 4096)
    est = cosine(10, 4096) + cosine(50, 4096)
    (row,) = M.compute_metrics(est, ref, SR, metrics=("wasserstein",), wasserstein_divisor=1.0)
    assert row["wasserstein"] == pytest.approx(0.5 * (50**2 - 40**2), rel=1e-6)


def test_pesq_and_stoi_degrade_with_noise():
    x = speech_like()
    noisy = x + 0.3 * white(x.numel(), seed=6)
    rows = M.compute_metrics(
        predictions=torch.stack([x, noisy]), targets=torch.stack([x, x]), sample_rate=SR,
        metrics=("pesq", "stoi"),
    )
    assert rows[1]["pesq"] < rows[0]["pesq"] - 1.0
    assert rows[1]["stoi"] < rows[0]["stoi"] - 0.05


def test_pesq_failure_is_nan_with_warning(caplog):
    silence = torch.zeros(1, SR)
    with caplog.at_level(logging.WARNING, logger="fewsound_sb.metrics"):
        (row,) = M.compute_metrics(silence, silence, SR, metrics=("pesq",))
    assert math.isnan(row["pesq"])
    assert "PESQ failed" in caplog.text


def test_cdpam_missing_logs_once(monkeypatch, caplog):
    monkeypatch.setattr(M, "_CDPAM_MODELS", {})
    monkeypatch.setattr(M, "_CDPAM_STATE", {"unavailable": None})
    monkeypatch.setitem(sys.modules, "cdpam", None)  # import cdpam -> ImportError
    x = white(4096)[None]
    with caplog.at_level(logging.WARNING, logger="fewsound_sb.metrics"):
        first = M.compute_metrics(x, x, SR, metrics=("mse", "cdpam"))
        second = M.compute_metrics(x, x, SR, metrics=("mse", "cdpam"))
    assert "cdpam" not in first[0] and "cdpam" not in second[0]
    notices = [r for r in caplog.records if "CDPAM not computed" in r.getMessage()]
    assert len(notices) == 1
    assert "\n" not in notices[0].getMessage()


def test_cdpam_identical_and_gain():
    pytest.importorskip("cdpam")
    pytest.importorskip("resampy")
    x = 0.5 * speech_like(SR)  # 1 s keeps the CPU run short
    rows = M.compute_metrics(
        predictions=torch.stack([x, 0.9 * x]), targets=torch.stack([x, x]), sample_rate=SR,
        metrics=("cdpam",),
    )
    assert rows[0]["cdpam"] == pytest.approx(0.0, abs=1e-6)
    assert 0.0 < rows[1]["cdpam"] < 0.2
    assert M.load_cdpam("cpu") is M.load_cdpam("cpu")  # cached
    assert torch.load.__name__ == "load"  # the weights_only patch did not leak
    assert torch.load.__module__ == "torch.serialization"


def test_input_layouts_and_errors():
    x = white(4096)
    rows_1d = M.compute_metrics(0.5 * x, x, SR, metrics=("mse",))
    rows_np = M.compute_metrics(0.5 * x.numpy()[None], x.numpy()[None], SR, metrics=("mse",))
    assert len(rows_1d) == 1 and rows_1d[0]["mse"] == pytest.approx(rows_np[0]["mse"])
    with pytest.raises(ValueError, match="same shape"):
        M.compute_metrics(x[:-1], x, SR, metrics=("mse",))
    with pytest.raises(ValueError, match="unknown metrics"):
        M.compute_metrics(x, x, SR, metrics=("snr",))


def test_summarize_ignores_nan():
    rows = [
        {"pesq": 2.0, "mse": 1.0},
        {"pesq": float("nan"), "mse": 3.0},
        {"pesq": 4.0, "mse": 5.0},
    ]
    summary = M.summarize(rows)
    assert summary["pesq"] == pytest.approx((3.0, 1.0))
    assert summary["mse"][0] == pytest.approx(3.0)
    assert summary["mse"][1] == pytest.approx(math.sqrt(8 / 3))
    all_nan = M.summarize([{"pesq": float("nan")}])
    assert all(math.isnan(v) for v in all_nan["pesq"])


def test_format_table_layout():
    summary = {"mse": (1e-4, 2e-5), "psnr": (30.0, 1.5), "pesq": (3.2, 0.1), "extra": (1.0, 0.0)}
    header, separator, row = M.format_table(summary, "SIREN").splitlines()
    names = [c.strip() for c in header.strip("|").split("|")]
    # only computed metrics, in the paper's order, extras last (no n/a columns)
    assert names == ["Model", "MSE ↓", "PSNR ↑", "PESQ ↑", "extra"]
    assert separator.count("---") == len(names)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["SIREN", "1.00e-04 ± 2.00e-05", "30.00 ± 1.50", "3.200 ± 0.100", "1.00 ± 0.00"]
    fixed = M.format_table(summary, "SIREN", columns=["mse", "lsd", "pesq"]).splitlines()
    assert [c.strip() for c in fixed[0].strip("|").split("|")] == ["Model", "MSE ↓", "LSD ↓", "PESQ ↑"]
    assert [c.strip() for c in fixed[2].strip("|").split("|")][2] == "n/a"
    plain = M.format_table(summary, "SIREN", arrows=False).splitlines()[0]
    assert "↑" not in plain and "↓" not in plain


# --- call convention: (predictions, targets, ..., length=None) ----------------


def test_argument_order_prediction_first():
    """PSNR takes its range from the target and STOI takes (clean, processed):
    both tell the order apart. SI-SNR (symmetric) equals SpeechBrain's
    cal_si_snr(source=target, estimate_source=prediction)."""
    import pystoi
    from speechbrain.nnet.losses import cal_si_snr

    target = speech_like(16384)[None]
    prediction = 0.3 * target + 0.05 * white(16384, seed=7)[None]
    names = ("psnr", "stoi", "si_snr")
    (row,) = M.compute_metrics(
        predictions=prediction, targets=target, sample_rate=SR, metrics=names
    )
    (swapped,) = M.compute_metrics(
        predictions=target, targets=prediction, sample_rate=SR, metrics=names
    )
    data_range = float(target.max() - target.min())
    error = float(((prediction - target) ** 2).mean())
    assert row["psnr"] == pytest.approx(10 * math.log10(data_range**2 / error), rel=1e-9)
    assert abs(swapped["psnr"] - row["psnr"]) > 1.0
    clean, processed = target[0].numpy(), prediction[0].numpy()
    assert row["stoi"] == pytest.approx(pystoi.stoi(clean, processed, SR), rel=1e-9)
    assert abs(swapped["stoi"] - row["stoi"]) > 1e-3
    speechbrain_si_snr = -float(cal_si_snr(target.T[..., None], prediction.T[..., None].clone()))
    assert row["si_snr"] == pytest.approx(speechbrain_si_snr, rel=1e-6)
    assert float(M.psnr(prediction, target)) == pytest.approx(row["psnr"], rel=1e-12)
    assert M.stoi(prediction, target, SR) == [row["stoi"]]


CHEAP = ("mse", "psnr", "lsd", "si_snr", "wasserstein", "stoi")


def padded_batch(valid=(32768, 20000, 11025)):
    """Speech-like targets zero past each valid length; predictions equal to
    the targets on the valid samples, noise in the tail."""
    target = torch.stack([speech_like(seed=i) for i in range(3)])
    keep = torch.arange(target.shape[-1])[None] < torch.tensor(valid)[:, None]
    target = target * keep
    prediction = torch.where(keep, target, white(target.numel(), seed=9).reshape(target.shape))
    return prediction, target, torch.tensor(valid) / target.shape[-1], keep


def test_padded_tail_is_not_scored():
    prediction, target, length, _ = padded_batch()
    rows = M.compute_metrics(
        predictions=prediction, targets=target, sample_rate=SR, length=length, metrics=CHEAP
    )
    perfect = M.compute_metrics(
        predictions=target, targets=target, sample_rate=SR, length=length, metrics=CHEAP
    )
    assert rows == perfect
    assert [row["mse"] for row in rows] == [0.0, 0.0, 0.0]
    assert all(row["stoi"] == pytest.approx(1.0, abs=1e-6) for row in rows)
    unmasked = M.compute_metrics(prediction, target, SR, metrics=CHEAP)
    assert unmasked[0] == rows[0]  # item 0 has no padding
    for row in unmasked[1:]:  # the noisy tail counted: every metric but STOI sees it
        assert row["mse"] > 0.1 and row["psnr"] < 20 and row["lsd"] > 1
        assert row["si_snr"] < 0 and row["wasserstein"] > 100


def test_each_item_is_cut_to_its_valid_samples():
    prediction, target, length, _ = padded_batch()
    estimate = target + 0.05 * white(target.numel(), seed=10).reshape(target.shape)
    rows = M.compute_metrics(
        predictions=estimate, targets=target, sample_rate=SR, length=length, metrics=CHEAP
    )
    for i, valid in enumerate((32768, 20000, 11025)):
        (alone,) = M.compute_metrics(
            predictions=estimate[i, :valid], targets=target[i, :valid], sample_rate=SR,
            metrics=CHEAP,
        )
        assert rows[i] == alone
    assert list(rows[0]) == [name for name in M.ALL_METRICS if name in CHEAP]  # fixed order


def test_length_of_ones_equals_none():
    x = torch.stack([speech_like(seed=i) for i in range(2)])
    estimate = 0.8 * x + 0.01
    with_ones = M.compute_metrics(estimate, x, SR, length=torch.ones(2), metrics=CHEAP)
    assert with_ones == M.compute_metrics(estimate, x, SR, metrics=CHEAP)


@pytest.mark.parametrize(
    "length, message",
    [
        ([1.0, 1.0, 1.0], r"shape \[2\].*Found shape \(3,\): \[1, 1, 1\]"),
        ([[1.0], [1.0]], r"shape \[2\]"),
        ([1.0, 0.0], r"\(0, 1\].*Found: \[1, 0\]"),
        ([1.2, 1.0], r"\(0, 1\].*Found: \[1.2, 1\]"),
    ],
)
def test_bad_length(length, message):
    x = white(4096)
    with pytest.raises(ValueError, match=message):
        M.compute_metrics(torch.stack([x, x]), torch.stack([x, x]), SR, length=length,
                          metrics=("mse",))
