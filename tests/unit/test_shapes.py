"""Tests for fewsound_sb.shapes: waveform layouts and SpeechBrain relative lengths."""

import pytest
import torch
from speechbrain.dataio.batch import PaddedBatch

from fewsound_sb.shapes import as_batch, valid_counts, valid_mask


@pytest.mark.parametrize(
    "shape, expected",
    [((16,), (1, 16)), ((2, 16), (2, 16)), ((2, 16, 1), (2, 16)), ((2, 1, 16), (2, 16))],
)
def test_as_batch_layouts(shape, expected):
    wav = torch.arange(float(torch.Size(shape).numel())).reshape(shape)
    out = as_batch(wav)
    assert out.shape == expected
    assert torch.equal(out.reshape(-1), wav.reshape(-1))  # same samples, same order


@pytest.mark.parametrize("shape", [(2, 2, 16), (1, 2, 3, 16), ()])
def test_as_batch_errors_name_the_tensor(shape):
    with pytest.raises(ValueError, match=r"predictions: expected \[B, T\]"):
        as_batch(torch.zeros(shape), "predictions")


def test_valid_counts_round_relative_lengths():
    # round, not floor (25.6 -> 26) nor ceil (24.4 -> 24)
    counts = valid_counts(torch.tensor([1.0, 0.5, 0.256, 0.244, 0.01]), 100)
    assert counts.dtype == torch.int64
    assert counts.tolist() == [100, 50, 26, 24, 1]


def test_valid_mask_values():
    mask = valid_mask(torch.tensor([1.0, 0.5, 0.25]), 8)
    assert mask.dtype == torch.bool
    assert mask.int().tolist() == [
        [1, 1, 1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0, 0],
    ]
    as_float = valid_mask([1.0, 0.5], 4, dtype=torch.float64)
    assert as_float.dtype == torch.float64
    assert as_float.tolist() == [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]]


def test_valid_mask_matches_speechbrain_padding():
    """The lengths of a SpeechBrain PaddedBatch mark exactly the real samples."""
    sizes = (16000, 12345, 7, 9999)
    items = [{"id": str(i), "sig": torch.ones(n)} for i, n in enumerate(sizes)]
    wavs, lens = PaddedBatch(items).sig
    mask = valid_mask(lens, wavs.shape[-1], batch_size=len(sizes))
    assert mask.sum(dim=-1).tolist() == list(sizes)
    assert torch.equal(mask, wavs.bool())  # ones where audio, zeros where padding


@pytest.mark.parametrize(
    "length, batch_size, message",
    [
        (torch.ones(2), 3, r"shape \[3\]; Found shape \(2,\): \[1, 1\]"),
        (torch.ones(2, 1), None, r"shape \[B\]; Found shape \(2, 1\): \[1, 1\]"),
        (torch.tensor(1.0), None, r"Found shape \(\): \[1\]"),
        ([1.0, 0.0], None, r"\(0, 1\], one per item; Found: \[1, 0\]"),
        ([1.0, 1.25], None, r"Found: \[1, 1.25\]"),
        ([-0.5, 1.0], None, r"Found: \[-0.5, 1\]"),
        ([float("nan"), 1.0], None, r"Found: \[nan, 1\]"),
        ([0.04, 1.0], None, r"\[0.04, 1\] leaves an item with no valid sample out of 10"),
    ],
)
def test_bad_length(length, batch_size, message):
    with pytest.raises(ValueError, match=message):
        valid_counts(length, 10, batch_size)
    with pytest.raises(ValueError, match=message):
        valid_mask(length, 10, batch_size)


def test_integer_length_is_relative_too():
    # an int tensor of ones is "all valid", not "one sample"
    assert valid_counts(torch.tensor([1, 1]), 10).tolist() == [10, 10]
