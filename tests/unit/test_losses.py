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
        assert torch.all(loss(x.clone(), x) == 0)


def test_positive_and_decreasing(batch):
    x, noise = batch
    loss = FewSoundLoss()
    values = [float(loss(x + a * noise, x)) for a in (1.0, 0.5, 0.1, 0.01)]
    assert values[-1] > 0
    assert all(a > b for a, b in zip(values, values[1:]))


def test_parts_add_up(batch):
    x, noise = batch
    loss = FewSoundLoss(lambda_t=2.0, lambda_f=0.5)
    value, parts = loss(x + 0.1 * noise, x, return_parts=True)
    assert parts["l1"] == pytest.approx(float((0.1 * noise).abs().mean()), rel=1e-5)
    expected = 2.0 * float(parts["l1"]) + 0.5 * float(parts["stft"])
    assert float(value) == pytest.approx(expected, rel=1e-6)


def test_lambda_f_zero_is_plain_l1(batch):
    x, noise = batch
    value, parts = FewSoundLoss(lambda_f=0.0)(x + noise, x, return_parts=True)
    assert float(parts["stft"]) == 0.0
    assert float(value) == pytest.approx(float(noise.abs().mean()), rel=1e-6)


@pytest.mark.filterwarnings("ignore:Empty filters")
def test_mean_reduction_is_auraloss(batch):
    x, noise = batch
    x_hat = x + 0.3 * noise
    ours = FewSoundLoss(lambda_t=0.0)(x_hat, x)
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
    lin_only = MultiResolutionMelSTFTLoss(w_sc=0.0, w_lin_mag=1.0)(x_hat, x)
    sc_only = MultiResolutionMelSTFTLoss(w_sc=1.0, w_lin_mag=0.0)(x_hat, x)
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
    per_item = FewSoundLoss(reduction="none", **config)(x_hat, x)
    assert per_item.shape == (3,)
    single = FewSoundLoss(reduction="mean", **config)
    expected = torch.stack([single(x_hat[i : i + 1], x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(per_item, expected, rtol=1e-5, atol=1e-7)
    summed = FewSoundLoss(reduction="sum", **config)(x_hat, x)
    assert float(summed) == pytest.approx(float(expected.sum()), rel=1e-5)


def test_scale_invariance_batch_mean(batch):
    # auraloss 0.4.0 fails on batches with scale_invariance; ours is the per-item mean
    x, noise = batch
    x_hat = x + 0.3 * noise
    mean = FewSoundLoss(scale_invariance=True, **SMALL)(x_hat, x)
    per_item = FewSoundLoss(scale_invariance=True, reduction="none", **SMALL)(x_hat, x)
    assert float(mean) == pytest.approx(float(per_item.mean()), rel=1e-6)


def test_gradients_flow_and_sum_is_independent(batch):
    x, noise = batch
    x_hat = (x + 0.3 * noise).requires_grad_()
    FewSoundLoss(reduction="sum")(x_hat, x).backward()
    grad = x_hat.grad.clone()
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # the gradient of clip 1 in the batch equals that of clip 1 fitted alone
    alone = (x[1:2] + 0.3 * noise[1:2]).requires_grad_()
    FewSoundLoss(reduction="sum")(alone, x[1:2]).backward()
    torch.testing.assert_close(grad[1:2], alone.grad, rtol=1e-4, atol=1e-9)


def test_layouts_accepted(batch):
    x, noise = batch
    x_hat = x + noise
    loss = FewSoundLoss(**SMALL)
    expected = loss(x_hat, x)
    assert float(loss(x_hat[..., None], x[..., None])) == pytest.approx(float(expected))
    assert float(loss(x_hat[:, None], x[:, None])) == pytest.approx(float(expected))
    assert float(loss(x_hat[..., None], x)) == pytest.approx(float(expected))


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
    base = FewSoundLoss(**SMALL)(x_hat, x)
    changed = FewSoundLoss(**dict(SMALL, **{name: ALTERNATIVES[name]}))(x_hat, x)
    assert abs(float(changed) - float(base)) > 1e-6 * abs(float(base))


def test_reduction_changes_shape(batch):
    x, noise = batch
    assert FewSoundLoss(reduction="none", **SMALL)(x + noise, x).shape == (3,)
    assert FewSoundLoss(reduction="sum", **SMALL)(x + noise, x).shape == ()


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
    expected = FewSoundLoss(reduction="none", **SMALL)(x + noise, x)
    torch.testing.assert_close(hparams["loss"](x + noise, x), expected)


# --- call convention: (predictions, targets, length=None) ---------------------


@pytest.mark.filterwarnings("ignore:Empty filters")
def test_argument_order_is_auraloss_order(batch):
    """Prediction first, like auraloss's forward(input, target): spectral
    convergence divides by the target's norm, so swapping changes the value."""
    x, noise = batch
    prediction, target = 0.3 * x + 0.5 * noise, x  # asymmetric: different norms
    ours = MultiResolutionMelSTFTLoss(**SMALL)
    reference = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=[512, 256], hop_sizes=[128, 64], win_lengths=[512, 256],
        w_sc=1.0, w_log_mag=0.0, w_lin_mag=1.0,
        sample_rate=16000, scale="mel", n_bins=16,
    )
    expected = float(reference(prediction[:, None], target[:, None]))
    swapped = float(reference(target[:, None], prediction[:, None]))
    assert abs(expected - swapped) > 0.1 * expected  # the case is asymmetric
    assert float(ours(prediction, target)) == pytest.approx(expected, rel=1e-6)
    assert float(ours(predictions=prediction, targets=target)) == pytest.approx(expected, rel=1e-6)
    full = FewSoundLoss(lambda_t=0.0, **SMALL)(predictions=prediction, targets=target)
    assert float(full) == pytest.approx(expected, rel=1e-6)


def test_unchanged_values_for_length_none(batch):
    """Regression values of the loss before ``length`` existed (prediction first)."""
    x, noise = batch
    x_hat = 0.5 * x + 0.1 * noise
    value = FewSoundLoss(**SMALL)(x_hat, x)
    per_item = FewSoundLoss(reduction="none", **SMALL)(x_hat, x)
    assert float(value) == pytest.approx(1.0301240, rel=1e-6)
    torch.testing.assert_close(
        per_item, torch.tensor([1.0238374, 1.0381109, 1.0284200]), rtol=1e-6, atol=0
    )


def padded_pair(batch, valid=(4096, 2500, 1024)):
    """Targets zero past each item's valid length; predictions that match the
    targets on the valid samples and hold loud noise in the padded tail."""
    x, noise = batch
    num_samples = x.shape[-1]
    keep = torch.arange(num_samples)[None] < torch.tensor(valid)[:, None]
    target = x * keep
    prediction = torch.where(keep, target, 3.0 * noise)
    length = torch.tensor(valid, dtype=torch.float32) / num_samples
    return prediction, target, length, keep


PADDING_CONFIGS = [
    dict(SMALL),
    dict(SMALL, w_log_mag=1.0, w_phs=0.5),
    dict(SMALL, mag_distance="L2", perceptual_weighting=True),
    dict(SMALL, scale_invariance=True),
    dict(),  # the paper's five resolutions
]


@pytest.mark.parametrize("config", PADDING_CONFIGS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_padded_tail_is_ignored(batch, config, reduction):
    prediction, target, length, _ = padded_pair(batch)
    loss = FewSoundLoss(reduction=reduction, **config)
    value = loss(predictions=prediction, targets=target, length=length)
    perfect = loss(predictions=target, targets=target, length=length)
    assert torch.all(value == 0) and torch.all(perfect == 0)
    unmasked = loss(predictions=prediction, targets=target)  # the tail counts
    assert torch.all(unmasked.reshape(-1)[1:] > 0.1 if reduction == "none" else unmasked > 0.1)
    assert reduction != "none" or float(unmasked[0]) == 0.0  # item 0 has no padding


@pytest.mark.parametrize("config", PADDING_CONFIGS[:4])
def test_tail_changes_nothing_value_or_gradient(batch, config):
    x, noise = batch
    _, target, length, keep = padded_pair(batch)
    estimate = target + 0.2 * noise * keep  # wrong on the valid samples too
    loss = FewSoundLoss(reduction="none", **config)
    base = loss(predictions=estimate, targets=target, length=length)
    other = estimate + 5.0 * torch.randn(3, 4096) * ~keep
    other.requires_grad_()
    changed = loss(predictions=other, targets=target, length=length)
    torch.testing.assert_close(changed, base, rtol=1e-5, atol=1e-7)
    assert torch.all(base > 0.01)
    changed.sum().backward()
    assert torch.all(other.grad[~keep] == 0)
    assert other.grad[keep].abs().sum() > 0


def test_nan_in_the_tail_changes_nothing(batch):
    prediction, target, length, keep = padded_pair(batch)
    prediction = torch.where(keep, target + 0.1, torch.tensor(float("nan")))
    prediction.requires_grad_()
    loss = FewSoundLoss(reduction="none", **SMALL)
    value = loss(predictions=prediction, targets=target, length=length)
    expected = loss(predictions=(target + 0.1) * keep, targets=target, length=length)
    torch.testing.assert_close(value, expected)
    value.sum().backward()
    assert torch.isfinite(prediction.grad).all() and torch.all(prediction.grad[~keep] == 0)


def test_l1_is_the_mean_over_valid_samples(batch):
    x, noise = batch
    _, target, length, keep = padded_pair(batch)
    estimate = target + noise  # error on every sample, the tail included
    loss = FewSoundLoss(lambda_f=0.0, reduction="none", **SMALL)
    value = loss(predictions=estimate, targets=target, length=length)
    expected = torch.stack([noise[i, : int(keep[i].sum())].abs().mean() for i in range(3)])
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=0)
    _, parts = FewSoundLoss(lambda_f=0.0, **SMALL)(
        predictions=estimate, targets=target, length=length, return_parts=True
    )
    assert float(parts["l1"]) == pytest.approx(float(expected.mean()), rel=1e-6)


def masked_terms(prediction, target, n_valid, fft, hop, n_mels=16, sample_rate=16000):
    """Re-derived STFT terms of one item with padding: both signals zero from
    ``n_valid`` on, mel magnitudes on the frames whose window starts before
    ``n_valid`` only (window = fft, centred on frame * hop)."""
    keep = torch.arange(prediction.numel()) < n_valid
    fb = torch.tensor(librosa.filters.mel(sr=sample_rate, n_fft=fft, n_mels=n_mels))
    window = torch.hann_window(fft)

    def mel(wav):
        spec = torch.stft(wav * keep, fft, hop, window=window, center=True, return_complex=True)
        return fb @ torch.sqrt(torch.clamp(spec.abs() ** 2, min=1e-8))

    m_hat, m = mel(prediction), mel(target)
    frames = [k for k in range(m.shape[-1]) if k * hop - fft // 2 < n_valid]
    m_hat, m = m_hat[:, frames], m[:, frames]
    lin = (m_hat - m).abs().mean()
    sc = torch.linalg.vector_norm(m - m_hat) / torch.linalg.vector_norm(m)
    return float(lin), float(sc), len(frames)


def test_stft_terms_are_normalised_by_valid_frames(batch):
    x, noise = batch
    _, target, length, keep = padded_pair(batch)
    estimate = target + 0.2 * noise
    lin = MultiResolutionMelSTFTLoss(w_sc=0.0, w_lin_mag=1.0, reduction="none", **SMALL)
    sc = MultiResolutionMelSTFTLoss(w_sc=1.0, w_lin_mag=0.0, reduction="none", **SMALL)
    lin_value = lin(predictions=estimate, targets=target, length=length)
    sc_value = sc(predictions=estimate, targets=target, length=length)
    for i in range(3):
        terms = [masked_terms(estimate[i], target[i], int(keep[i].sum()), fft, hop)
                 for fft, hop in ((512, 128), (256, 64))]
        assert float(lin_value[i]) == pytest.approx(sum(t[0] for t in terms) / 2, rel=1e-5)
        assert float(sc_value[i]) == pytest.approx(sum(t[1] for t in terms) / 2, rel=1e-5)
    # item 2: 1024 valid samples of 4096; at FFT 512, hop 128 frame k starts at
    # 128 k - 256, so frames 0..9 of 33 see audio
    assert masked_terms(estimate[2], target[2], 1024, 512, 128)[2] == 10


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("config", [dict(SMALL), dict(SMALL, scale_invariance=True)])
def test_length_of_ones_equals_none(batch, reduction, config):
    x, noise = batch
    loss = FewSoundLoss(reduction=reduction, **config)
    x_hat = 0.5 * x + 0.2 * noise
    expected, parts = loss(x_hat, x, return_parts=True)
    value, parts_ones = loss(x_hat, x, torch.ones(3), return_parts=True)
    assert torch.equal(value, expected)
    assert torch.equal(parts_ones["stft"], parts["stft"])
    stft = MultiResolutionMelSTFTLoss(reduction=reduction, **SMALL)
    assert torch.equal(stft(x_hat, x, length=torch.ones(3)), stft(x_hat, x))


def test_padded_mean_is_the_mean_of_items(batch):
    x, noise = batch
    _, target, length, _ = padded_pair(batch)
    estimate = target + 0.2 * noise
    per_item = FewSoundLoss(reduction="none", **SMALL)(estimate, target, length)
    mean = FewSoundLoss(reduction="mean", **SMALL)(estimate, target, length)
    summed = FewSoundLoss(reduction="sum", **SMALL)(estimate, target, length)
    assert float(mean) == pytest.approx(float(per_item.mean()), rel=1e-6)
    assert float(summed) == pytest.approx(float(per_item.sum()), rel=1e-6)


@pytest.mark.parametrize(
    "length, message",
    [
        (torch.ones(2), r"shape \[3\].*Found shape \(2,\): \[1, 1\]"),
        (torch.ones(3, 1), r"shape \[3\].*Found shape \(3, 1\): \[1, 1, 1\]"),
        (torch.tensor([1.0, 0.0, 0.5]), r"\(0, 1\].*Found: \[1, 0, 0.5\]"),
        (torch.tensor([1.0, 1.5, 0.5]), r"\(0, 1\].*Found: \[1, 1.5, 0.5\]"),
        (torch.tensor([1.0, -0.5, 0.5]), r"\(0, 1\].*Found: \[1, -0.5, 0.5\]"),
        (
            torch.tensor([1.0, 1e-5, 0.5]),
            r"\[1, 1e-05, 0.5\] leaves an item with no valid sample out of 4096",
        ),
    ],
)
@pytest.mark.parametrize("cls", [FewSoundLoss, MultiResolutionMelSTFTLoss])
def test_bad_length(batch, length, message, cls):
    x, noise = batch
    with pytest.raises(ValueError, match=message):
        cls(**SMALL)(x + noise, x, length)


def test_l1_part_equals_speechbrain_l1_loss(batch):
    """Same names, order and relative lengths as speechbrain.nnet.losses.l1_loss:
    per item (its reduction="batch") the L1 term is its value exactly."""
    from speechbrain.nnet.losses import l1_loss

    x, noise = batch
    target, length = x, torch.tensor([1.0, 2500 / 4096, 0.25])
    prediction = 0.5 * x + noise
    ours = FewSoundLoss(lambda_f=0.0, reduction="none")(
        predictions=prediction, targets=target, length=length
    )
    theirs = l1_loss(predictions=prediction, targets=target, length=length, reduction="batch")
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)
