"""The input encodings against their definitions (evaluated away from t = 0)."""

import math

import pytest
import torch

from fewsound_sb.nnet.encoding import PositionalEncoding, RandomFourierFeatures


def test_positional_encoding_frequencies_and_layout():
    pe = PositionalEncoding(length=6)
    expected_freqs = [math.pi * 2**j for j in range(6)]
    assert pe.freqs.tolist() == pytest.approx(expected_freqs, rel=1e-7)
    t = torch.tensor([[0.3], [-0.71], [1 / 3]])
    out = pe(t)
    assert out.shape == (3, 12)
    for row, tv in zip(out.tolist(), t.flatten().tolist()):
        sines = [math.sin(f * tv) for f in expected_freqs]
        cosines = [math.cos(f * tv) for f in expected_freqs]
        assert row == pytest.approx(sines + cosines, abs=2e-5)  # all sines, then all cosines
    assert pe.output_dim == 12 and not list(pe.parameters())  # a buffer, not trained


def test_random_fourier_features_sigma_and_projection():
    rff = RandomFourierFeatures(num_features=40000, sigma=250.0, seed=3)
    projection = rff.projection.flatten()
    assert projection.shape == (20000,)
    assert projection.std().item() == pytest.approx(250.0, rel=0.02)
    assert abs(projection.mean().item()) < 5.0
    # Same seed, same draw; another seed, another one.
    assert torch.equal(RandomFourierFeatures(40000, 250.0, seed=3).projection, rff.projection)
    assert not torch.equal(RandomFourierFeatures(40000, 250.0, seed=4).projection, rff.projection)
    # The definition [cos(2πBt), sin(2πBt)], B in cycles per unit t.
    small = RandomFourierFeatures(num_features=6, sigma=7.0, seed=0)
    t = torch.tensor([[0.37], [-0.81]])
    out = small(t)
    b = small.projection.flatten().tolist()
    for row, tv in zip(out.tolist(), t.flatten().tolist()):
        expected = [math.cos(2 * math.pi * f * tv) for f in b] + [
            math.sin(2 * math.pi * f * tv) for f in b]
        assert row == pytest.approx(expected, abs=1e-4)
    assert small.output_dim == 6 and not list(small.parameters())


def test_batched_inputs_and_errors():
    pe = PositionalEncoding(3)
    t = torch.rand(2, 5, 1)
    assert torch.equal(pe(t)[1], pe(t[1]))
    with pytest.raises(ValueError, match="encoding length"):
        PositionalEncoding(0)
    with pytest.raises(ValueError, match="num_features must be even"):
        RandomFourierFeatures(num_features=5)
