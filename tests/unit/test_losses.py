"""Tests for fewsound_sb.losses: the L1 + multi-resolution mel STFT loss."""

import auraloss
import librosa
import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from fewsound_sb.losses import FewSoundLoss, MultiResolutionMelSTFTLoss

# small configuration: 16 kHz, two resolutions, no empty mel band
SMALL = dict(
    sample_rate=16000,
    fft_sizes=(512, 256),
    hop_sizes=(128, 64),
    win_lengths=(512, 256),
    n_mels=16,
)


@pytest.fixture
def batch():
    torch.manual_seed(0)
    x = torch.randn(3, 4096)
    noise = torch.randn(3, 4096)
    return x, noise


def test_zero_for_identical(batch):
    x, _ = batch
    for reduction in ("mean", "sum", "none"):
        loss = FewSoundLoss(reduction=reduction)
        assert torch.all(loss(x, x.clone()) == 0)


def test_positive_and_decreasing(batch):
    x, noise = batch
    loss = FewSoundLoss()
    values = [float(loss(x, x + a * noise)) for a in (1.0, 0.5, 0.1, 0.01)]
    assert values[-1] > 0
    assert all(a > b for a, b in zip(values, values[1:]))


def test_parts_add_up(batch):
    x, noise = batch
    loss = FewSoundLoss(lambda_t=2.0, lambda_f=0.5)
    value, parts = loss(x, x + 0.1 * noise, return_parts=True)
    assert parts["l1"] == pytest.approx(float((0.1 * noise).abs().mean()), rel=1e-5)
    expected = 2.0 * float(parts["l1"]) + 0.5 * float(parts["stft"])
    assert float(value) == pytest.approx(expected, rel=1e-6)


def test_lambda_f_zero_is_plain_l1(batch):
    x, noise = batch
    value, parts = FewSoundLoss(lambda_f=0.0)(x, x + noise, return_parts=True)
    assert float(parts["stft"]) == 0.0
    assert float(value) == pytest.approx(float(noise.abs().mean()), rel=1e-6)


@pytest.mark.filterwarnings("ignore:Empty filters")
def test_mean_reduction_is_auraloss(batch):
    x, noise = batch
    x_hat = x + 0.3 * noise
    ours = FewSoundLoss(lambda_t=0.0)(x, x_hat)
    reference = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=[2048, 1024, 512, 256, 128],
        hop_sizes=[512, 256, 128, 64, 32],
        win_lengths=[2048, 1024, 512, 256, 128],
        w_sc=1.0, w_log_mag=0.0, w_lin_mag=1.0,
        sample_rate=22050, scale="mel", n_bins=128,
    )(x_hat[:, None], x[:, None])
    assert float(ours) == pytest.approx(float(reference), rel=1e-6)


def authors_terms(x, x_hat):
    """The authors' per-resolution terms, re-derived: L1 and RMSE on linear mel magnitudes."""
    l1, rmse, rms_target = [], [], []
    for fft, hop in zip((2048, 1024, 512, 256, 128), (512, 256, 128, 64, 32)):
        fb = torch.tensor(librosa.filters.mel(sr=22050, n_fft=fft, n_mels=128))
        window = torch.hann_window(fft)

        def mel(wav):
            spec = torch.stft(wav, fft, hop, window=window, center=True, return_complex=True)
            return fb @ torch.sqrt(torch.clamp(spec.abs() ** 2, min=1e-8))

        m, m_hat = mel(x), mel(x_hat)
        l1.append((m - m_hat).abs().mean())
        rmse.append(((m - m_hat) ** 2).mean().sqrt())
        rms_target.append((m**2).mean().sqrt())
    return torch.stack(l1), torch.stack(rmse), torch.stack(rms_target)


@pytest.mark.filterwarnings("ignore:Empty filters")
def test_relation_to_the_authors_term(batch):
    """w_lin_mag is the authors' L1 term; w_sc is their RMSE / RMS(target mel)."""
    x, noise = batch
    x, x_hat = x[:1], x[:1] + 0.3 * noise[:1]
    l1, rmse, rms_target = authors_terms(x, x_hat)
    lin_only = MultiResolutionMelSTFTLoss(w_sc=0.0, w_lin_mag=1.0)(x, x_hat)
    sc_only = MultiResolutionMelSTFTLoss(w_sc=1.0, w_lin_mag=0.0)(x, x_hat)
    assert float(lin_only) == pytest.approx(float(l1.mean()), rel=1e-4)
    assert float(sc_only) == pytest.approx(float((rmse / rms_target).mean()), rel=1e-4)


CONFIGS = [
    dict(),
    dict(SMALL, w_log_mag=1.0),
    dict(SMALL, mag_distance="L2"),
    dict(SMALL, w_phs=0.5),
    dict(SMALL, perceptual_weighting=True),
    dict(SMALL, scale_invariance=True),
]


@pytest.mark.parametrize("config", CONFIGS)
def test_per_item_equals_item_by_item(batch, config):
    x, noise = batch
    x_hat = x + 0.3 * noise
    per_item = FewSoundLoss(reduction="none", **config)(x, x_hat)
    assert per_item.shape == (3,)
    single = FewSoundLoss(reduction="mean", **config)
    expected = torch.stack([single(x[i : i + 1], x_hat[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(per_item, expected, rtol=1e-5, atol=1e-7)
    summed = FewSoundLoss(reduction="sum", **config)(x, x_hat)
    assert float(summed) == pytest.approx(float(expected.sum()), rel=1e-5)


def test_scale_invariance_batch_mean(batch):
    # auraloss 0.4.0 fails on batches with scale_invariance; ours is the per-item mean
    x, noise = batch
    x_hat = x + 0.3 * noise
    mean = FewSoundLoss(scale_invariance=True, **SMALL)(x, x_hat)
    per_item = FewSoundLoss(scale_invariance=True, reduction="none", **SMALL)(x, x_hat)
    assert float(mean) == pytest.approx(float(per_item.mean()), rel=1e-6)


def test_gradients_flow_and_sum_is_independent(batch):
    x, noise = batch
    x_hat = (x + 0.3 * noise).requires_grad_()
    FewSoundLoss(reduction="sum")(x, x_hat).backward()
    grad = x_hat.grad.clone()
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # the gradient of clip 1 in the batch equals that of clip 1 fitted alone
    alone = (x[1:2] + 0.3 * noise[1:2]).requires_grad_()
    FewSoundLoss(reduction="sum")(x[1:2], alone).backward()
    torch.testing.assert_close(grad[1:2], alone.grad, rtol=1e-4, atol=1e-9)


def test_layouts_accepted(batch):
    x, noise = batch
    x_hat = x + noise
    loss = FewSoundLoss(**SMALL)
    expected = loss(x, x_hat)
    assert float(loss(x[..., None], x_hat[..., None])) == pytest.approx(float(expected))
    assert float(loss(x[:, None], x_hat[:, None])) == pytest.approx(float(expected))
    assert float(loss(x, x_hat[..., None])) == pytest.approx(float(expected))


@pytest.mark.parametrize(
    "shapes",
    [
        ((2, 4096), (2, 4095)),
        ((2, 4096), (3, 4096)),
        ((2, 2, 4096), (2, 2, 4096)),
        ((1, 2, 3, 4096), (1, 2, 3, 4096)),
    ],
)
def test_shape_errors(shapes):
    loss = FewSoundLoss(**SMALL)
    with pytest.raises(ValueError):
        loss(torch.zeros(shapes[0]), torch.zeros(shapes[1]))


def test_too_short_for_fft():
    with pytest.raises(ValueError, match="too short"):
        FewSoundLoss()(torch.zeros(1, 1024), torch.zeros(1, 1024))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(reduction="avg"),
        dict(mag_distance="L3"),
        dict(n_mels=1024),
        dict(hop_sizes=(512, 256)),
        dict(window="no_window"),
        dict(win_lengths=(4096, 1024, 512, 256, 128)),
        dict(w_log_mag=1.0),  # 128 mels at FFT 256/128 leave empty bands
        dict(lambda_t=-1.0),
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        FewSoundLoss(**kwargs)


ALTERNATIVES = dict(
    lambda_t=0.5,
    lambda_f=2.0,
    sample_rate=22050,
    fft_sizes=(1024, 256),
    hop_sizes=(256, 32),
    win_lengths=(400, 200),
    window="hamming_window",
    n_mels=24,
    w_sc=0.0,
    w_log_mag=1.0,
    w_lin_mag=2.0,
    w_phs=1.0,
    mag_distance="L2",
    perceptual_weighting=True,
    scale_invariance=True,
    eps=1.0,
)


@pytest.mark.parametrize("name", sorted(ALTERNATIVES))
def test_every_argument_changes_the_result(batch, name):
    x, noise = batch
    x_hat = 0.5 * x + 0.1 * noise
    base = FewSoundLoss(**SMALL)(x, x_hat)
    changed = FewSoundLoss(**dict(SMALL, **{name: ALTERNATIVES[name]}))(x, x_hat)
    assert abs(float(changed) - float(base)) > 1e-6 * abs(float(base))


def test_reduction_changes_shape(batch):
    x, noise = batch
    assert FewSoundLoss(reduction="none", **SMALL)(x, x + noise).shape == (3,)
    assert FewSoundLoss(reduction="sum", **SMALL)(x, x + noise).shape == ()


def test_built_from_hyperpyyaml(batch):
    x, noise = batch
    hparams = load_hyperpyyaml(
        """
        loss: !new:fewsound_sb.losses.FewSoundLoss
            lambda_t: 1.0
            lambda_f: 1.0
            sample_rate: 16000
            fft_sizes: [512, 256]
            hop_sizes: [128, 64]
            win_lengths: [512, 256]
            n_mels: 16
            w_sc: 1.0
            w_lin_mag: 1.0
            reduction: none
        """
    )
    expected = FewSoundLoss(reduction="none", **SMALL)(x, x + noise)
    torch.testing.assert_close(hparams["loss"](x, x + noise), expected)
