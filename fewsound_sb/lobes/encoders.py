"""Sound encoders E: raw audio ``[B, T]`` -> embedding ``[B, output_dim]``.

One import path for YAML (``!new:fewsound_sb.lobes.encoders.SoundStreamEncoder``); each
encoder lives in its own module and follows the encoder contract of
:mod:`fewsound_sb.lobes` (``output_dim``, ``sample_rate``, ``input_length``):

- ``SoundStreamEncoder`` (``soundstream.py``): the FewSound default, causal convs.
- ``SpectrogramEncoder`` (``spectrogram.py``): VoiceBlock-style, spectrogram + GRU.
- ``SNACEncoder`` (``snac.py``): the SNAC codec's encoder + projection, from scratch.
- ``WhisperLoRAEncoder`` (``whisper.py``): frozen local Whisper encoder + LoRA + pooling.

Example
-------
>>> encoder = SoundStreamEncoder(input_length=2048, channels=2, norm="channel")
>>> encoder(torch.rand(1, 2048)).shape
torch.Size([1, 224])
"""

import torch  # noqa: F401 (used by the module doctest)

from fewsound_sb.lobes.soundstream import SoundStreamEncoder
from fewsound_sb.lobes.snac import SNACEncoder
from fewsound_sb.lobes.spectrogram import SpectrogramEncoder
from fewsound_sb.lobes.whisper import WhisperLoRAEncoder

__all__ = ["SoundStreamEncoder", "SpectrogramEncoder", "SNACEncoder", "WhisperLoRAEncoder"]
