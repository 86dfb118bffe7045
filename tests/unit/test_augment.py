"""The authors' training augmentation: phase-mangling all-pass and dequantisation noise."""

import math

import pytest
import torch

from fewsound_sb.dataio import AudioPipeline, augment, dequantize, phase_mangle


def _signal(n=4096, seed=0):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed))


def test_phase_mangle_is_allpass():
    """|H| = 1 at every frequency: the magnitude spectrum is kept (up to the
    filter's transient), the waveform is not."""
    x = _signal(16384)
    y = phase_mangle(x, 22050, generator=torch.Generator().manual_seed(1))
    mag = lambda s: torch.fft.rfft(s[4096:]).abs()  # past the transient
    ratio = mag(y).pow(2).sum() / mag(x).pow(2).sum()
    assert abs(float(ratio) - 1.0) < 0.05, float(ratio)
    assert float((y - x).abs().mean()) > 0.1


def test_phase_mangle_frequency_range_and_seed():
    """Same generator seed, same filter; the centre frequency is log-uniform in [20, 2000] Hz."""
    x = _signal()
    a = phase_mangle(x, 22050, generator=torch.Generator().manual_seed(3))
    b = phase_mangle(x, 22050, generator=torch.Generator().manual_seed(3))
    c = phase_mangle(x, 22050, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(ValueError, match="pole_radius"):
        phase_mangle(x, 22050, pole_radius=1.0)
    with pytest.raises(ValueError, match="max_freq"):
        phase_mangle(x, 22050, max_freq=20000.0)


def test_dequantize_noise_level():
    noise = dequantize(torch.zeros(100000), generator=torch.Generator().manual_seed(0))
    assert float(noise.abs().max()) <= 0.5 / 2**16
    # U(-1/2, 1/2) / 2^16 has std 1 / sqrt(12) / 2^16
    assert math.isclose(float(noise.std()), 1 / math.sqrt(12) / 2**16, rel_tol=0.02)


def test_augment_probability():
    """phase_mangle_p = 0.8: about 80% of the crops are filtered."""
    x = _signal(512)
    gen = torch.Generator().manual_seed(0)
    filtered = sum(not torch.equal(augment(x, 22050, gen, phase_mangle_p=0.8), x)
                   for _ in range(500))
    assert 360 < filtered < 440, filtered
    with pytest.raises(ValueError, match="phase_mangle_p"):
        augment(x, 22050, phase_mangle_p=1.5)


def test_pipeline_augments_training_crops_only_and_reproducibly():
    wav = _signal(20000)
    kwargs = dict(sample_rate=22050, crop_length=4096, seed=0, phase_mangle_p=1.0,
                  dequantize_noise=True)
    train = AudioPipeline(train=True, **kwargs)
    plain = AudioPipeline(train=True, sample_rate=22050, crop_length=4096, seed=0)
    a, _ = train.crop_with_length(wav, crop_seed=7)
    b, _ = train.crop_with_length(wav, crop_seed=7)
    ref, _ = plain.crop_with_length(wav, crop_seed=7)
    assert torch.equal(a, b)  # a pure function of the crop seed
    assert not torch.equal(a, ref)  # augmented
    assert math.isclose(float(a.abs().max()), 1.0, rel_tol=1e-6)  # peak-normalised after
    valid = AudioPipeline(train=False, **kwargs)
    v, _ = valid.crop_with_length(wav)
    expected = wav[:4096] / wav[:4096].abs().max()
    assert torch.allclose(v, expected)  # evaluation: first crop, no augmentation
