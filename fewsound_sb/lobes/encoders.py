"""Sound encoders E: raw audio ``[B, T]`` -> embedding ``[B, output_dim]``.

One import path for YAML (``!new:fewsound_sb.lobes.encoders.SoundStreamEncoder``); each
encoder lives in its own module:

- ``SoundStreamEncoder`` (``soundstream.py``): the FewSound default, causal convs.
- ``SpectrogramEncoder`` (``spectrogram.py``): VoiceBlock-style, spectrogram + GRU.

Example
-------
>>> encoder = SoundStreamEncoder(input_length=2048, channels=2, norm="channel")
>>> encoder(torch.rand(1, 2048)).shape
torch.Size([1, 224])
"""

import torch  # noqa: F401 (used by the module doctest)

from fewsound_sb.lobes.soundstream import SoundStreamEncoder
from fewsound_sb.lobes.spectrogram import SpectrogramEncoder

__all__ = ["SoundStreamEncoder", "SpectrogramEncoder"]
