"""Unit tests for the sound encoders in fewsound_sb.lobes."""

import math
import tempfile

import pytest
import torch

from fewsound_sb.lobes import encoders
from fewsound_sb.lobes.encoders import (
    SNACEncoder,
    SoundStreamEncoder,
    SpectrogramEncoder,
    WhisperLoRAEncoder,
)
from fewsound_sb.lobes.features import (
    FrameFeatures,
    a_weighted_loudness,
    yin_pitch,
)
from fewsound_sb.lobes.soundstream import CausalConv1d
from fewsound_sb.lobes.whisper import save_random_whisper

SAMPLE_RATE = 22050

# Every encoder of fewsound_sb.lobes.encoders, tiny: (name, factory). A new encoder
# adds one line here; test_encoder_contract checks its output_dim / sample_rate /
# input_length and forward, and test_every_exported_encoder_is_listed that it is here.
ENCODERS = [
    ("SoundStreamEncoder", lambda: SoundStreamEncoder(
        input_length=2048, channels=2, output_channels=4, channel_mults=(2, 4),
        strides=(4, 8), sample_rate=16000)),
    ("SoundStreamEncoder", lambda: SoundStreamEncoder(
        input_length=1000, channels=2, output_channels=4, channel_mults=(2, 4),
        strides=(4, 8), norm="channel", sample_rate=16000)),
    ("SpectrogramEncoder", lambda: SpectrogramEncoder(
        sample_rate=16000, n_fft=64, hop_length=32, hidden=8, n_conv=2, output_dim=12)),
    ("SNACEncoder", lambda: SNACEncoder(
        input_length=2048, d_model=16, strides=(4, 8), attn_window_size=4, output_dim=10,
        sample_rate=16000)),
    ("WhisperLoRAEncoder", lambda: WhisperLoRAEncoder(
        save_random_whisper(tempfile.mkdtemp(), d_model=8, encoder_layers=1,
                            encoder_attention_heads=2, encoder_ffn_dim=16),
        sample_rate=16000, output_dim=12, lora_rank=2)),
]


def tiny_soundstream(**overrides):
    """A 2-block encoder small enough for gradient / causality checks on CPU."""
    kwargs = dict(
        input_length=2048,
        channels=2,
        output_channels=4,
        channel_mults=(2, 4),
        strides=(4, 8),
    )
    kwargs.update(overrides)
    return SoundStreamEncoder(**kwargs)


def harmonic(f0, num_samples=32768, sample_rate=SAMPLE_RATE, num_harmonics=5):
    """A 1/k-amplitude harmonic tone ``[1, T]`` with fundamental ``f0``."""
    t = torch.arange(num_samples) / sample_rate
    wav = sum(
        torch.sin(2 * math.pi * f0 * k * t + k) / k
        for k in range(1, num_harmonics + 1)
    )
    return (wav / wav.abs().max())[None]


def soundstream_param_count(
    input_length=32768,
    channels=16,
    output_channels=32,
    channel_mults=(2, 4, 8, 16),
    strides=(2, 4, 5, 8),
    num_units=3,
    kernel_size=7,
):
    """Parameters of the layer_ct SoundStream encoder, by formula.

    conv(c_in -> c_out, k): c_out * c_in * k + c_out;  LayerNorm([C, T]): 2 * C * T.
      stem:          conv(1 -> C, k) + LN(C, T)
      block (c -> c', s), T -> T' = ceil(T / s):
        num_units x [conv(c -> c, k) + LN(c, T) + conv(c -> c, 1) + LN(c, T)]
        + conv(c -> c', 2s) + LN(c', T')
      head:          conv(C_last -> D, 3)
    """

    def conv(c_in, c_out, k):
        return c_out * c_in * k + c_out

    total = conv(1, channels, kernel_size) + 2 * channels * input_length
    c, length = channels, input_length
    for mult, stride in zip(channel_mults, strides):
        c_out, out_length = channels * mult, math.ceil(length / stride)
        unit = conv(c, c, kernel_size) + conv(c, c, 1) + 2 * (2 * c * length)
        total += num_units * unit
        total += conv(c, c_out, 2 * stride) + 2 * c_out * out_length
        c, length = c_out, out_length
    return total + conv(c, output_channels, 3)


# ---------------------------------------------------------------- SoundStream


def test_soundstream_default_shape_and_param_count():
    encoder = SoundStreamEncoder()
    assert encoder.norm == "layer_ct"
    assert encoder.num_frames(32768) == 103  # 32768 -> 16384 -> 4096 -> 820 -> 103
    assert encoder.output_dim == 3296
    num_params = sum(p.numel() for p in encoder.parameters())
    assert num_params == soundstream_param_count() == 21_045_792
    with torch.no_grad():
        outputs = encoder(torch.rand(1, 32768) * 2 - 1)
    assert outputs.shape == (1, 3296)


def test_soundstream_accepts_channel_dim():
    encoder = tiny_soundstream()
    wavs = torch.rand(2, 2048)
    torch.testing.assert_close(encoder(wavs), encoder(wavs[:, None]))


def test_soundstream_output_is_channel_major():
    encoder = tiny_soundstream()
    wavs = torch.rand(2, 2048)
    feats = encoder.features(wavs)  # [B, D, frames]
    assert feats.shape == (2, 4, 64)
    torch.testing.assert_close(encoder(wavs)[:, :64], feats[:, 0])


@pytest.mark.parametrize("norm", ["layer_ct", "channel", "group", "none"])
def test_soundstream_gradients_reach_first_conv(norm):
    encoder = tiny_soundstream(norm=norm)
    encoder(torch.rand(2, 2048)).pow(2).sum().backward()
    first_conv = encoder.layers[0].conv
    assert first_conv.weight.grad is not None
    assert first_conv.weight.grad.abs().sum() > 0


def test_causal_conv_is_causal_and_ceil_length():
    conv = CausalConv1d(1, 3, kernel_size=10, stride=5, dilation=1)
    x = torch.randn(1, 1, 103)
    y = conv(x)
    assert y.shape[-1] == math.ceil(103 / 5)
    x2 = x.clone()
    x2[..., 50:] = torch.randn(53)
    y2 = conv(x2)
    # Output frame i covers input samples up to 5 * i: frames 0..9 end before 50.
    torch.testing.assert_close(y[..., :10], y2[..., :10])
    assert not torch.allclose(y[..., 10:], y2[..., 10:])


@pytest.mark.parametrize("norm", ["channel", "none"])
def test_soundstream_conv_stack_is_causal(norm):
    # layer_ct / group normalise over time, so only per-frame norms keep causality.
    encoder = tiny_soundstream(norm=norm).eval()
    wavs = torch.randn(1, 2048)
    changed = wavs.clone()
    changed[:, 1024:] = torch.randn(1, 1024)
    with torch.no_grad():
        before, after = encoder.features(wavs), encoder.features(changed)
    # Total stride 32: frame i depends on samples <= 32 * i, so frames < 32 are safe.
    torch.testing.assert_close(before[..., :32], after[..., :32])
    assert not torch.allclose(before[..., 33:], after[..., 33:])


def test_soundstream_length_agnostic_mode_accepts_other_lengths():
    # the conv stack (features) takes any length; forward's embedding needs input_length
    encoder = tiny_soundstream(norm="channel")
    for length in (2048, 1000, 4099):
        outputs = encoder.features(torch.rand(2, length)).flatten(start_dim=1)
        assert outputs.shape == (2, 4 * encoder.num_frames(length))
    assert encoder.num_frames(1000) == math.ceil(math.ceil(1000 / 4) / 8)


def test_soundstream_layer_ct_rejects_other_lengths():
    encoder = tiny_soundstream(norm="layer_ct")
    with pytest.raises(ValueError, match="expected 2048 samples, got 2000"):
        encoder(torch.rand(2, 2000))


def test_soundstream_rejects_bad_shapes_and_config():
    encoder = tiny_soundstream()
    with pytest.raises(ValueError, match=r"\(2, 3, 2048\)"):
        encoder(torch.rand(2, 3, 2048))
    with pytest.raises(ValueError, match="norm must be one of"):
        tiny_soundstream(norm="batch")
    with pytest.raises(ValueError, match="one entry per block"):
        tiny_soundstream(strides=(4,))


# ---------------------------------------------------------------- features


def test_pitch_of_harmonic_signal():
    f0, periodicity = yin_pitch(harmonic(200.0), SAMPLE_RATE, hop_length=256)
    assert f0.shape == (1, 32768 // 256 + 1)
    voiced = f0[0] > 0
    assert voiced.float().mean() > 0.9
    assert abs(f0[0, voiced].median().item() - 200.0) < 0.05 * 200.0
    assert periodicity[0, voiced].median() > 0.9


@pytest.mark.parametrize("f0_true", [60.0, 440.0])
def test_pitch_range_edges(f0_true):
    f0, _ = yin_pitch(harmonic(f0_true, 8192), SAMPLE_RATE, hop_length=256)
    assert abs(f0[0, 4:-4].median().item() - f0_true) < 0.05 * f0_true


def test_pitch_of_silence_and_noise_is_unvoiced():
    f0, periodicity = yin_pitch(torch.zeros(1, 4096), SAMPLE_RATE, 256)
    assert (f0 == 0).all() and (periodicity == 0).all()
    torch.manual_seed(0)
    _, periodicity = yin_pitch(torch.randn(1, 8192), SAMPLE_RATE, 256)
    assert periodicity.median() < 0.5


def test_loudness_increases_with_gain():
    extractor = FrameFeatures(SAMPLE_RATE, features=("loudness",))
    wav = harmonic(200.0, 8192) * 0.1
    loudness = [extractor(wav * gain)[0, :, 0].mean().item() for gain in (0.5, 1, 2)]
    assert loudness[0] < loudness[1] < loudness[2]
    # Power scales with gain^2: doubling the amplitude adds 20 log10(2) = 6.02 dB.
    assert abs(loudness[2] - loudness[1] - 20 * math.log10(2)) < 1e-3


def test_loudness_is_a_weighted():
    # Same power at 100 Hz and 1 kHz: A-weighting makes 100 Hz ~19 dB quieter.
    spec = torch.zeros(1, 257, 1)
    freqs = torch.linspace(0, SAMPLE_RATE / 2, 257)
    low, mid = (freqs - 100).abs().argmin(), (freqs - 1000).abs().argmin()
    spec_low, spec_mid = spec.clone(), spec.clone()
    spec_low[0, low], spec_mid[0, mid] = 1.0, 1.0
    diff = a_weighted_loudness(spec_mid, SAMPLE_RATE) - a_weighted_loudness(
        spec_low, SAMPLE_RATE
    )
    assert 15 < diff.item() < 25


def test_frame_features_count_is_derived():
    assert FrameFeatures(features=("pitch",)).num_features == 1
    assert FrameFeatures(features=()).num_features == 0
    with pytest.raises(ValueError, match="unknown features"):
        FrameFeatures(features=("ppg",))


# ---------------------------------------------------------------- Spectrogram


def tiny_spectrogram(**overrides):
    kwargs = dict(hidden=16, n_conv=2, output_dim=8)
    kwargs.update(overrides)
    return SpectrogramEncoder(**kwargs)


def test_spectrogram_default_shape():
    encoder = SpectrogramEncoder().eval()
    assert encoder.output_dim == 3296
    assert encoder.joint_norm.num_features == 512 + 3
    with torch.no_grad():
        outputs = encoder(torch.rand(1, 32768) * 2 - 1)
    assert outputs.shape == (1, 3296)


@pytest.mark.parametrize(
    "extra_features", [(), ("loudness",), ("loudness", "pitch", "periodicity")]
)
def test_spectrogram_extra_features(extra_features):
    encoder = tiny_spectrogram(extra_features=extra_features)
    assert encoder.joint_norm.num_features == 16 + len(extra_features)
    assert encoder(torch.rand(2, 1, 4096)).shape == (2, 8)


def test_spectrogram_gradients_reach_first_conv():
    encoder = tiny_spectrogram()
    encoder(harmonic(200.0, 4096).repeat(2, 1)).pow(2).sum().backward()
    grad = encoder.glu[0].weight.grad
    assert grad is not None and grad.abs().sum() > 0


def test_spectrogram_rejects_bad_shapes():
    encoder = tiny_spectrogram()
    with pytest.raises(ValueError, match="at least n_fft = 512 samples, got 100"):
        encoder(torch.rand(2, 100))
    with pytest.raises(ValueError, match=r"\(4096,\)"):
        encoder(torch.rand(4096))


# ---------------------------------------------------------- the contract
@pytest.mark.parametrize("name, factory", ENCODERS, ids=[n for n, _ in ENCODERS])
def test_encoder_contract(name, factory):
    """output_dim / sample_rate / input_length (fewsound_sb.lobes), forward's shape."""
    encoder = factory().eval()
    assert isinstance(encoder, getattr(encoders, name))
    assert type(encoder.output_dim) is int and encoder.output_dim > 0
    assert type(encoder.sample_rate) is int and encoder.sample_rate == 16000
    length = encoder.input_length
    assert length is None or (type(length) is int and length > 0)
    with torch.no_grad():
        for shape in ((3, length or 1500), (3, 1, length or 1500)):
            assert encoder(torch.rand(*shape) * 2 - 1).shape == (3, encoder.output_dim)
        if length is None:  # any length works
            assert encoder(torch.rand(2, 2100)).shape == (2, encoder.output_dim)
        else:
            for wrong in (length - 1, length + 7):
                with pytest.raises(ValueError, match=f"expected {length} samples"):
                    encoder(torch.rand(2, wrong))


def test_every_exported_encoder_is_listed():
    exported = {name for name in encoders.__all__ if name.endswith("Encoder")}
    assert exported == {name for name, _ in ENCODERS}
