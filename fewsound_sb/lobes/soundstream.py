"""SoundStream-style convolutional sound encoder E (the FewSound default).

A stack of causal 1-D convolutions that turns a raw waveform ``[B, T]`` into a flat
embedding ``[B, output_dim]`` (3296 for a 32768-sample clip), as in the encoder of
SoundStream (Zeghidour et al., 2021, https://arxiv.org/abs/2107.03312) used by FewSound
(paper Section 2 "Audio encoders"; authors' code github.com/gmum/fewsound,
``fewsound/models/encoders/default_encoder.py``).

Layout (defaults: C = 16, C_out = 32/64/128/256, s = 2/4/5/8, d = 1/3/9, D = 32)::

    CausalConv1d(1 -> C, k7) -> norm -> ELU
    4 x EncoderBlock(C_in -> C_out, stride s):
        3 x ResidualUnit(C_in, dilation d)
        CausalConv1d(C_in -> C_out, k=2s, stride s) -> norm -> ELU
    CausalConv1d(C_last -> D, k3)
    flatten channel-major -> [B, D * frames]                   (32 * 103 = 3296)

ELU is :class:`fewsound_sb.nnet.activations.ELU`: torch's ELU function computed
through ``exp`` (the same values, several times faster on CPU); pass
``activation=torch.nn.ELU`` for torch's own kernel.
"""

import math

import torch

from fewsound_sb.nnet.activations import ELU

NORM_CHOICES = ("layer_ct", "channel", "group", "none")


class CausalConv1d(torch.nn.Module):
    """1-D convolution that only looks at the past (left zero padding).

    The input is padded by ``(kernel_size - 1) * dilation`` zeros on the left, so output
    frame ``i`` depends only on input samples ``<= i * stride``, and the output has
    ``ceil(T / stride)`` frames.

    Arguments
    ---------
    in_channels : int
        Number of input channels.
    out_channels : int
        Number of output channels.
    kernel_size : int
        Kernel size.
    stride : int
        Stride (downsampling factor).
    dilation : int
        Dilation.

    Example
    -------
    >>> conv = CausalConv1d(2, 4, kernel_size=4, stride=2)
    >>> outputs = conv(torch.rand(3, 2, 11))
    >>> outputs.shape
    torch.Size([3, 4, 6])
    >>> conv.output_length(11)
    6
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, dilation=1):
        super().__init__()
        self.stride = stride
        self.pad = (kernel_size - 1) * dilation
        self.conv = torch.nn.Conv1d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            dilation=dilation,
        )

    def output_length(self, length):
        """Output frames for ``length`` input frames: ``ceil(length / stride)``."""
        return math.ceil(length / self.stride)

    def forward(self, x):
        """Convolves ``x`` [B, C_in, T] into [B, C_out, ceil(T / stride)]."""
        return self.conv(torch.nn.functional.pad(x, (self.pad, 0)))


class ChannelLayerNorm(torch.nn.Module):
    """LayerNorm over the channels of each frame of a ``[B, C, T]`` tensor.

    Statistics are per sample and per frame, so the normalisation is causal and works
    for any number of frames.

    Arguments
    ---------
    channels : int
        Number of channels C.

    Example
    -------
    >>> norm = ChannelLayerNorm(4)
    >>> outputs = norm(torch.rand(2, 4, 10))
    >>> outputs.shape
    torch.Size([2, 4, 10])
    """

    def __init__(self, channels):
        super().__init__()
        self.norm = torch.nn.LayerNorm(channels)

    def forward(self, x):
        """Normalises ``x`` [B, C, T] over C."""
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def make_norm(norm, channels, length):
    """Builds the normalisation layer of the SoundStream encoder.

    Arguments
    ---------
    norm : str
        ``"layer_ct"``: ``LayerNorm([C, T])`` (the authors' choice: statistics and an
        affine weight per channel *and* time step, so the layer only accepts ``length``
        frames and is not causal); ``"channel"``: LayerNorm over C per frame (causal,
        any length); ``"group"``: ``GroupNorm(1, C)`` (statistics over [C, T] like
        ``layer_ct`` but a per-channel affine, any length, not causal); ``"none"``:
        identity.
    channels : int
        Number of channels C.
    length : int
        Number of frames T at this layer (used by ``"layer_ct"`` only).

    Returns
    -------
    torch.nn.Module
        A module mapping ``[B, C, T]`` to ``[B, C, T]``.

    Example
    -------
    >>> make_norm("layer_ct", 4, 10).normalized_shape
    (4, 10)
    >>> make_norm("channel", 4, 10)(torch.rand(2, 4, 7)).shape
    torch.Size([2, 4, 7])
    """
    if norm == "layer_ct":
        return torch.nn.LayerNorm([channels, length])
    if norm == "channel":
        return ChannelLayerNorm(channels)
    if norm == "group":
        return torch.nn.GroupNorm(1, channels)
    if norm == "none":
        return torch.nn.Identity()
    raise ValueError(f"norm must be one of {NORM_CHOICES}, got {norm!r}")


class ResidualUnit(torch.nn.Module):
    """SoundStream residual unit: dilated causal conv, norm, act, 1x1 conv, norm, act.

    The input is added back to the result (skip connection).

    Arguments
    ---------
    channels : int
        Number of channels (kept unchanged).
    dilation : int
        Dilation of the first convolution.
    kernel_size : int
        Kernel size of the first convolution.
    length : int
        Number of frames at this resolution (only needed by ``norm="layer_ct"``).
    norm : str
        Normalisation, see ``make_norm``.
    activation : type
        Activation class, instantiated twice.

    Example
    -------
    >>> unit = ResidualUnit(4, dilation=3, length=10, norm="layer_ct")
    >>> outputs = unit(torch.rand(2, 4, 10))
    >>> outputs.shape
    torch.Size([2, 4, 10])
    """

    def __init__(
        self,
        channels,
        dilation,
        kernel_size=7,
        length=None,
        norm="channel",
        activation=ELU,
    ):
        super().__init__()
        self.layers = torch.nn.Sequential(
            CausalConv1d(channels, channels, kernel_size, dilation=dilation),
            make_norm(norm, channels, length),
            activation(),
            torch.nn.Conv1d(channels, channels, kernel_size=1),
            make_norm(norm, channels, length),
            activation(),
        )

    def forward(self, x):
        """Maps ``x`` [B, C, T] to [B, C, T]."""
        return x + self.layers(x)


class EncoderBlock(torch.nn.Module):
    """Residual units at the input resolution, then a strided causal conv (k = 2s).

    Arguments
    ---------
    in_channels : int
        Channels of the input and of the residual units.
    out_channels : int
        Channels after downsampling.
    stride : int
        Downsampling factor; the output has ``ceil(T / stride)`` frames.
    dilations : tuple of int
        One residual unit per dilation.
    kernel_size : int
        Kernel size of the residual units' dilated convolutions.
    length : int
        Number of input frames (only needed by ``norm="layer_ct"``).
    norm : str
        Normalisation, see ``make_norm``.
    activation : type
        Activation class.

    Example
    -------
    >>> block = EncoderBlock(2, 4, stride=5, length=23, norm="layer_ct")
    >>> outputs = block(torch.rand(3, 2, 23))
    >>> outputs.shape
    torch.Size([3, 4, 5])
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        stride,
        dilations=(1, 3, 9),
        kernel_size=7,
        length=None,
        norm="channel",
        activation=ELU,
    ):
        super().__init__()
        self.downsample = CausalConv1d(
            in_channels, out_channels, 2 * stride, stride=stride
        )
        out_length = None if length is None else self.downsample.output_length(length)
        self.output_length = out_length
        units = [
            ResidualUnit(
                in_channels, d, kernel_size, length, norm=norm, activation=activation
            )
            for d in dilations
        ]
        self.layers = torch.nn.Sequential(
            *units,
            self.downsample,
            make_norm(norm, out_channels, out_length),
            activation(),
        )

    def forward(self, x):
        """Maps ``x`` [B, C_in, T] to [B, C_out, ceil(T / stride)]."""
        return self.layers(x)


class SoundStreamEncoder(torch.nn.Module):
    """SoundStream-style encoder E: waveform ``[B, T]`` -> ``[B, output_dim]``.

    FewSound's default sound encoder (paper Sec. 2 and Sec. 4, "FewSound uses a
    SoundStream based encoder"; authors' ``default_encoder.py``), trained from scratch.
    SoundStream: Zeghidour et al., 2021, https://arxiv.org/abs/2107.03312.

    Normalisation. The authors normalise every layer with ``LayerNorm([C, T])`` whose
    time lengths are fixed for 32768-sample input: it has an affine weight per channel
    *and* time step (most of the 21,045,792 parameters of the default config), it only
    accepts that one length, and because its statistics span the whole clip the encoder
    is not causal even though every convolution is. ``norm="layer_ct"`` (the default)
    reproduces this, with the lengths derived from ``input_length``; the paper's
    FewSound numbers (e.g. Table 5, SoundStream row) correspond to this setting.
    ``norm="channel"`` normalises each frame over its channels only: the encoder
    becomes causal end to end, its conv stack accepts any length and it has
    1,177,408 parameters; ``"group"`` (``GroupNorm(1, C)``) keeps statistics over
    [C, T] with a per-channel affine; ``"none"`` drops the normalisation. In the
    length-agnostic modes :meth:`features` gives ``num_frames(T)`` frames for any T
    (``num_frames`` applies ``ceil(. / s)`` per stride); the embedding
    (:meth:`forward`) has ``output_dim`` values only for ``T = input_length``, so
    ``forward`` takes exactly ``input_length`` samples in every mode (the encoder
    contract of :mod:`fewsound_sb.lobes`).

    Arguments
    ---------
    input_length : int
        Number of samples per clip T (32768 = 1.486 s at 22.05 kHz). Sets ``output_dim``;
        the only length :meth:`forward` accepts.
    channels : int
        Channels C of the first convolution.
    output_channels : int
        Channels D of the final convolution (the embedding is D x frames).
    channel_mults : tuple of int
        Output channels of block i are ``channels * channel_mults[i]``.
    strides : tuple of int
        Downsampling factor of each block (same length as ``channel_mults``).
    dilations : tuple of int
        Dilations of the residual units in every block.
    kernel_size : int
        Kernel size of the first convolution and of the residual units.
    activation : type
        Activation class (instantiated per use).
    norm : str
        ``"layer_ct"`` (authors', fixed length), ``"channel"``, ``"group"``, ``"none"``.
    sample_rate : int
        Sample rate in Hz the input is expected at (the YAML's ``sample_rate``); the
        convolutions do not depend on it, the encoder contract records it.

    Example
    -------
    >>> encoder = SoundStreamEncoder(
    ...     input_length=2048, channels=2, output_channels=4,
    ...     channel_mults=(2, 4), strides=(4, 8),
    ... )
    >>> outputs = encoder(torch.rand(3, 2048))
    >>> outputs.shape
    torch.Size([3, 256])
    >>> encoder.output_dim, encoder.input_length, encoder.sample_rate
    (256, 2048, 22050)
    """

    def __init__(
        self,
        input_length=32768,
        channels=16,
        output_channels=32,
        channel_mults=(2, 4, 8, 16),
        strides=(2, 4, 5, 8),
        dilations=(1, 3, 9),
        kernel_size=7,
        activation=ELU,
        norm="layer_ct",
        sample_rate=22050,
    ):
        super().__init__()
        if len(channel_mults) != len(strides):
            raise ValueError(
                "channel_mults and strides need one entry per block, got "
                f"{tuple(channel_mults)} and {tuple(strides)}"
            )
        if norm not in NORM_CHOICES:
            raise ValueError(f"norm must be one of {NORM_CHOICES}, got {norm!r}")
        self.input_length = int(input_length)
        self.sample_rate = int(sample_rate)
        self.output_channels = output_channels
        self.strides = tuple(strides)
        self.norm = norm

        layers = [
            CausalConv1d(1, channels, kernel_size),
            make_norm(norm, channels, input_length),
            activation(),
        ]
        in_channels, length = channels, input_length
        for mult, stride in zip(channel_mults, strides):
            block = EncoderBlock(
                in_channels,
                channels * mult,
                stride,
                dilations=dilations,
                kernel_size=kernel_size,
                length=length,
                norm=norm,
                activation=activation,
            )
            layers.append(block)
            in_channels, length = channels * mult, block.output_length
        # Final projection to D channels, no norm or activation (authors' layout).
        layers.append(CausalConv1d(in_channels, output_channels, 3))
        self.layers = torch.nn.Sequential(*layers)

    def num_frames(self, num_samples):
        """Frames after the conv stack: ``ceil`` of the length through every stride."""
        for stride in self.strides:
            num_samples = math.ceil(num_samples / stride)
        return num_samples

    @property
    def output_dim(self):
        """Embedding size for ``input_length`` samples: D * ``num_frames``."""
        return self.output_channels * self.num_frames(self.input_length)

    def features(self, wavs):
        """Runs the conv stack without flattening.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``[B, T]`` or ``[B, 1, T]``.

        Returns
        -------
        torch.Tensor
            ``[B, output_channels, num_frames(T)]``.
        """
        if wavs.dim() == 3 and wavs.shape[1] == 1:
            wavs = wavs[:, 0]
        if wavs.dim() != 2:
            raise ValueError(
                f"expected waveforms [B, T] or [B, 1, T], got {tuple(wavs.shape)}"
            )
        if self.norm == "layer_ct" and wavs.shape[-1] != self.input_length:
            raise ValueError(
                f"expected {self.input_length} samples, got {wavs.shape[-1]} "
                f"(input shape {tuple(wavs.shape)}): norm='layer_ct' has fixed "
                "time lengths; crop/pad the clips or use norm='channel'"
            )
        return self.layers(wavs.unsqueeze(1))  # [B, D, frames]

    def forward(self, wavs):
        """Encodes [B, T] or [B, 1, T], T = ``input_length``, into ``[B, output_dim]``
        (D x frames, channel-major); other lengths raise ValueError."""
        if wavs.shape[-1] != self.input_length:
            raise ValueError(
                f"expected {self.input_length} samples, got {wavs.shape[-1]} "
                f"(input shape {tuple(wavs.shape)}): the embedding has output_dim = "
                f"{self.output_dim} values only for input_length samples; crop/pad the "
                "clips (use features() for other lengths)"
            )
        return self.features(wavs).flatten(start_dim=1)
