"""SNAC sound encoder E: the encoder of the SNAC codec plus a projection head.

SNAC (Siuzdak et al., 2024, "SNAC: Multi-Scale Neural Audio Codec",
https://arxiv.org/abs/2410.14411) encodes audio with strided Snake convolutions and
a local-window attention block. FewSound (paper Sec. 2 and Table 5) uses only its
encoder, trained from scratch; its frames are flattened and projected to the
embedding size of the hypernetwork. The encoder layers are the ``snac`` package's
own (``snac.layers.Encoder``); a local SNAC checkpoint can initialise them.
"""

import json
import math
import os

import torch
from snac.layers import Encoder
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

# File names of a checkpoint folder in the ``snac`` package's format (what
# ``SNAC.from_pretrained`` reads from a local folder).
SNAC_CONFIG = "config.json"
SNAC_WEIGHTS = "pytorch_model.bin"


def _fix_waveform_shape(wavs):
    """``[B, T]`` or ``[B, 1, T]`` -> ``[B, T]``; anything else raises ValueError."""
    if wavs.dim() == 3 and wavs.shape[1] == 1:
        wavs = wavs[:, 0]
    if wavs.dim() != 2:
        raise ValueError(f"expected waveforms [B, T] or [B, 1, T], got {tuple(wavs.shape)}")
    return wavs


class SNACEncoder(torch.nn.Module):
    """SNAC encoder + projection: waveform ``[B, T]`` -> ``[B, output_dim]``.

    Pipeline (defaults: the FewSound authors' SNAC setting)::

        zero-pad T to a multiple of hop * window (the local attention needs
        whole windows; hop = prod(strides) = 1024, window 16)
        snac Encoder: WNConv(1 -> d) -> blocks (Snake residual units,
            strided WNConv, channels x2 each) -> LocalMHA -> WNConv
                                                        [B, d * 2^blocks, F]
        flatten channel-major                           [B, 1, C * F] (512 * 32)
        Conv1d(1, 1, k, stride k) -> LeakyReLU(0.2)     [B, 1, C * F / k] (4096)
        Linear(-> output_dim)                           [B, output_dim] (3296)

    The Linear layer fixes the number of frames, so the encoder takes clips of
    exactly ``input_length`` samples (as the authors' encoder); build it with
    another ``input_length`` for other clip lengths.

    Arguments
    ---------
    input_length : int
        Samples per clip (32768 = 1.486 s at 22.05 kHz).
    sample_rate : int
        Sample rate in Hz the input is expected at. The convolutions do not depend
        on it (trained from scratch at this rate); the encoder contract records it.
    d_model : int
        Channels of the first convolution; doubled by every block.
    strides : tuple of int
        Stride of every encoder block (their product is the hop).
    attn_window_size : int or None
        Frames per window of the local attention (None: no attention).
    depthwise : bool
        Depthwise (grouped) convolutions, as the released 24/32/44 kHz SNAC models.
    conv_kernel_size : int
        Kernel size and stride of the Conv1d over the flattened features.
    negative_slope : float
        Slope of the LeakyReLU after that convolution.
    output_dim : int
        Embedding size (3296, as the SoundStream encoder's).
    pretrained_path : str or None
        None: train from scratch (paper). Otherwise a SNAC checkpoint to initialise
        the encoder layers: a folder in the ``snac`` package's format
        (``config.json`` + ``pytorch_model.bin``) or a state-dict file of a whole
        ``snac.SNAC`` model; its encoder part must have the shapes set here.

    Example
    -------
    >>> _ = torch.manual_seed(0)
    >>> encoder = SNACEncoder(
    ...     input_length=1024, d_model=16, strides=(4, 8), attn_window_size=4,
    ...     output_dim=6,
    ... )
    >>> outputs = encoder(torch.rand(3, 1024))
    >>> outputs.shape
    torch.Size([3, 6])
    >>> encoder.num_frames, encoder.output_dim, encoder.input_length, encoder.sample_rate
    (32, 6, 1024, 22050)
    """

    def __init__(
        self,
        input_length=32768,
        sample_rate=22050,
        d_model=32,
        strides=(4, 4, 8, 8),
        attn_window_size=16,
        depthwise=False,
        conv_kernel_size=4,
        negative_slope=0.2,
        output_dim=3296,
        pretrained_path=None,
    ):
        super().__init__()
        self.input_length = int(input_length)
        self.sample_rate = int(sample_rate)
        self.output_dim = int(output_dim)
        self.d_model = int(d_model)
        self.strides = tuple(int(s) for s in strides)
        self.attn_window_size = attn_window_size
        self.depthwise = bool(depthwise)
        self.hop_length = math.prod(self.strides)
        self.channels = self.d_model * 2 ** len(self.strides)
        if attn_window_size is not None and self.channels % 64 != 0:
            raise ValueError(
                f"SNAC's local attention uses heads of 64 channels: d_model * 2^len(strides) "
                f"= {self.channels} must be a multiple of 64 (d_model={d_model}, "
                f"strides={self.strides}), or set attn_window_size to None"
            )
        # Whole attention windows of whole hops, as SNAC's own preprocess pads.
        self.pad_multiple = self.hop_length * (attn_window_size or 1)
        self.padded_length = math.ceil(self.input_length / self.pad_multiple) * self.pad_multiple
        self.num_frames = self.padded_length // self.hop_length

        self.encoder = Encoder(
            self.d_model,
            list(self.strides),
            depthwise=self.depthwise,
            attn_window_size=attn_window_size,
        )
        flat = self.channels * self.num_frames  # 512 * 32 = 16384
        self.squeeze = torch.nn.Sequential(
            torch.nn.Conv1d(1, 1, conv_kernel_size, stride=conv_kernel_size),
            torch.nn.LeakyReLU(negative_slope),
        )
        squeezed = (flat - conv_kernel_size) // conv_kernel_size + 1  # 4096
        self.proj = torch.nn.Linear(squeezed, self.output_dim)
        if pretrained_path is not None:
            self.load_snac_checkpoint(pretrained_path)

    def _expected(self):
        """The settings a checkpoint must match, for error messages."""
        return (
            f"d_model={self.d_model}, strides={list(self.strides)}, "
            f"attn_window_size={self.attn_window_size}, depthwise={self.depthwise}"
        )

    def load_snac_checkpoint(self, path):
        """Initialises the encoder layers from a local SNAC checkpoint.

        Arguments
        ---------
        path : str
            A folder holding ``config.json`` and ``pytorch_model.bin`` (the
            ``snac`` package's format) or a state-dict file of a ``snac.SNAC``
            model (keys ``encoder.*``; the quantizer and decoder are ignored).

        Raises
        ------
        FileNotFoundError
            If the path or the weights file does not exist.
        ValueError
            If the checkpoint's encoder has another shape or configuration.
        """
        how = (
            "A SNAC checkpoint folder holds config.json and pytorch_model.bin; save one "
            "with torch.save(snac.SNAC(...).state_dict(), 'pytorch_model.bin') next to "
            "its config, or set the pretrained path to null to train from scratch."
        )
        path = os.fspath(path)
        if os.path.isdir(path):
            config_path = os.path.join(path, SNAC_CONFIG)
            weights_path = os.path.join(path, SNAC_WEIGHTS)
            if os.path.isfile(config_path):
                self._check_config(config_path, how)
        else:
            weights_path = path
        if not os.path.isfile(weights_path):
            raise FileNotFoundError(f"SNAC checkpoint not found: '{weights_path}'. {how}")
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        if not state:
            raise ValueError(f"'{weights_path}' holds no SNAC encoder weights (no 'encoder.*' keys). {how}")
        try:
            result = self.encoder.load_state_dict(state, strict=False)
        except RuntimeError as err:  # size mismatches
            raise ValueError(
                f"The SNAC checkpoint '{weights_path}' does not fit the encoder configured "
                f"here ({self._expected()}): {err}. Set the encoder's settings to the "
                f"checkpoint's config.json, or use a checkpoint of this shape. {how}"
            ) from None
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"The SNAC checkpoint '{weights_path}' does not fit the encoder configured "
                f"here ({self._expected()}): missing {result.missing_keys[:5]}, unexpected "
                f"{result.unexpected_keys[:5]}. Set the encoder's settings to the "
                f"checkpoint's config.json. {how}"
            )
        logger.info("SNAC encoder initialised from %s", weights_path)

    def _check_config(self, config_path, how):
        """Compares a SNAC ``config.json`` with this encoder's settings."""
        with open(config_path, encoding="utf-8") as fin:
            config = json.load(fin)
        # Defaults of snac.SNAC for the keys a config may leave out.
        found = {
            "d_model": config.get("encoder_dim", 64),
            "strides": list(config.get("encoder_rates", [3, 3, 7, 7])),
            "attn_window_size": config.get("attn_window_size", 32),
            "depthwise": config.get("depthwise", True),
        }
        wanted = {
            "d_model": self.d_model,
            "strides": list(self.strides),
            "attn_window_size": self.attn_window_size,
            "depthwise": self.depthwise,
        }
        diff = {k: (wanted[k], found[k]) for k in wanted if wanted[k] != found[k]}
        if diff:
            details = ", ".join(f"{k}: expected {w}, checkpoint has {f}" for k, (w, f) in diff.items())
            raise ValueError(
                f"The SNAC checkpoint config '{config_path}' does not match the encoder "
                f"configured here ({details}). Set the encoder's settings to the "
                f"checkpoint's values. {how}"
            )

    def features(self, wavs):
        """SNAC encoder frames of ``input_length``-sample clips.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``[B, input_length]`` or ``[B, 1, input_length]``.

        Returns
        -------
        torch.Tensor
            ``[B, channels, num_frames]``.
        """
        wavs = _fix_waveform_shape(wavs)
        if wavs.shape[-1] != self.input_length:
            raise ValueError(
                f"expected {self.input_length} samples, got {wavs.shape[-1]} (input shape "
                f"{tuple(wavs.shape)}): the projection is sized for input_length samples; "
                "crop/pad the clips or build the encoder with another input_length"
            )
        wavs = torch.nn.functional.pad(wavs, (0, self.padded_length - self.input_length))
        return self.encoder(wavs.unsqueeze(1))  # [B, C, F]

    def forward(self, wavs):
        """Encodes ``wavs`` [B, T] (or [B, 1, T]), T = ``input_length``, into
        ``[B, output_dim]``."""
        x = self.features(wavs).flatten(1).unsqueeze(1)  # [B, 1, C * F]
        x = self.squeeze(x).squeeze(1)  # [B, C * F / k]
        return self.proj(x)
