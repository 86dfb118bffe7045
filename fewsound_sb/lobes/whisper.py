"""Whisper sound encoder E: a frozen pretrained Whisper encoder with LoRA adapters.

FewSound (paper Sec. 2 and Table 5) also uses the encoder of Whisper (Radford et al.,
2023, https://arxiv.org/abs/2212.04356), tiny.en and large-v2, pretrained and
fine-tuned with LoRA (Hu et al., 2022, https://arxiv.org/abs/2106.09685). Here:

- the backbone is ``transformers``' Whisper encoder, read only from a local folder
  (``config.json`` + weights + ``preprocessor_config.json``); nothing is downloaded;
- 22,050 Hz -> 16,000 Hz resampling and Whisper's log-mel front end run in torch
  (:class:`WhisperLogMel`, the same numbers as ``WhisperFeatureExtractor``);
- every backbone weight is frozen; ``peft`` LoRA adapters are added to the chosen
  projections; the frames that hold audio are pooled to a fixed-size embedding;
- checkpoints hold only what trains (LoRA adapters + pooling head); a resumed run
  reloads them on top of the local backbone.

The paper gives no LoRA settings; the YAMLs use rank 8, alpha 16, dropout 0.05 on
``q_proj`` and ``v_proj``: the LoRA paper's setting for a fixed budget (Hu et al.,
2022, Sec. 7.1-7.2: adapting W_q and W_v with r = 8 matches larger ranks) with the
common alpha = 2 r.
"""

import json
import logging
import math
import os

import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    mark_as_transfer,
    register_checkpoint_hooks,
)
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

WHISPER_SAMPLE_RATE = 16000
POOLING_CHOICES = ("gru", "mean")
# The checkpoints of WhisperModel ("encoder.") and WhisperForConditionalGeneration
# ("model.encoder.") both hold the encoder: keep only its weights, unprefixed.
ENCODER_KEY_MAPPING = {r"^(model\.)?encoder\.": ""}
HOW_TO_GET_WHISPER = (
    "Put the weights on a machine with a model hub, e.g. "
    "`hf download openai/whisper-tiny.en --local-dir DIR` (older huggingface_hub: "
    "`huggingface-cli download ...`), or in Python "
    "`WhisperModel.from_pretrained('openai/whisper-large-v2').save_pretrained(DIR)` and "
    "`WhisperFeatureExtractor.from_pretrained('openai/whisper-large-v2').save_pretrained(DIR)`; "
    "copy DIR here and pass it with --whisper_path DIR."
)


class WhisperLogMel(torch.nn.Module):
    """Whisper's log-mel spectrogram in torch (as ``WhisperFeatureExtractor``).

    ``|STFT|^2`` (periodic Hann, ``center=True``, reflect), the last frame dropped,
    mel filters, ``log10(max(., 1e-10))``, floored at the clip's maximum minus 8, then
    ``(x + 4) / 4``. The waveform is zero-padded to ``num_frames * hop_length`` samples
    first, as the extractor pads to 30 s (``num_frames = 3000``).

    Arguments
    ---------
    mel_filters : torch.Tensor
        ``[n_fft // 2 + 1, n_mels]`` filter bank (the extractor's ``mel_filters``).
    n_fft : int
        FFT size and window length.
    hop_length : int
        Samples between frames.

    Example
    -------
    >>> from transformers import WhisperFeatureExtractor
    >>> extractor = WhisperFeatureExtractor(feature_size=8)
    >>> log_mel = WhisperLogMel.from_feature_extractor(extractor)
    >>> log_mel(torch.rand(2, 1000) - 0.5, num_frames=10).shape
    torch.Size([2, 8, 10])
    """

    def __init__(self, mel_filters, n_fft=400, hop_length=160):
        super().__init__()
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        filters = torch.as_tensor(mel_filters, dtype=torch.float32)
        if filters.shape[0] != self.n_fft // 2 + 1:
            raise ValueError(
                f"mel_filters must be [n_fft // 2 + 1, n_mels] = [{self.n_fft // 2 + 1}, ...], "
                f"got {tuple(filters.shape)}"
            )
        self.n_mels = filters.shape[1]
        self.register_buffer("mel_filters", filters.T.contiguous(), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    @classmethod
    def from_feature_extractor(cls, extractor):
        """Builds the module from a ``transformers.WhisperFeatureExtractor``."""
        return cls(torch.from_numpy(extractor.mel_filters), extractor.n_fft, extractor.hop_length)

    def forward(self, wavs, num_frames):
        """Log-mel ``[B, n_mels, num_frames]`` of ``wavs`` ``[B, T]`` at 16 kHz,
        ``T <= num_frames * hop_length``."""
        length = num_frames * self.hop_length
        if wavs.shape[-1] > length:
            raise ValueError(
                f"{wavs.shape[-1]} samples do not fit in {num_frames} frames of "
                f"{self.hop_length} samples"
            )
        wavs = torch.nn.functional.pad(wavs.float(), (0, length - wavs.shape[-1]))
        spec = torch.stft(
            wavs, self.n_fft, self.hop_length, window=self.window, return_complex=True
        )  # [B, F, num_frames + 1]
        power = (spec[..., :-1].abs() ** 2).contiguous()
        log_spec = torch.clamp(self.mel_filters @ power, min=1e-10).log10()
        peak = log_spec.amax(dim=(1, 2), keepdim=True)  # per clip
        log_spec = torch.maximum(log_spec, peak - 8.0)
        return (log_spec + 4.0) / 4.0


# Encoder sizes of the released checkpoints (their config.json files), for
# random stand-ins of the same cost in tests and benchmarks.
WHISPER_SIZES = {
    "tiny.en": dict(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536),
    "large-v2": dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120),
}


def save_random_whisper(folder, num_mel_bins=80, **sizes):
    """Saves a randomly initialised Whisper model and its feature extractor.

    For tests and benchmarks without a model hub: the folder has the layout of a
    downloaded checkpoint. The decoder is one small layer (only the encoder is used).

    Arguments
    ---------
    folder : str
        Where to save (``config.json``, weights, ``preprocessor_config.json``).
    num_mel_bins : int
        Mel bins of the front end (80 for tiny.en and large-v2).
    **sizes
        ``d_model``, ``encoder_layers``, ``encoder_attention_heads``,
        ``encoder_ffn_dim`` (e.g. ``**WHISPER_SIZES["tiny.en"]``).

    Returns
    -------
    str
        ``folder``.

    Example
    -------
    >>> import tempfile
    >>> folder = save_random_whisper(
    ...     tempfile.mkdtemp(), d_model=8, encoder_layers=1,
    ...     encoder_attention_heads=2, encoder_ffn_dim=16,
    ... )
    >>> [name in os.listdir(folder) for name in ("config.json", "model.safetensors", "preprocessor_config.json")]
    [True, True, True]
    """
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    config = WhisperConfig(
        num_mel_bins=num_mel_bins,
        decoder_layers=1,
        decoder_attention_heads=sizes.get("encoder_attention_heads", 2),
        decoder_ffn_dim=8,
        vocab_size=8,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
        max_source_positions=1500,
        **sizes,
    )
    WhisperModel(config).save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=num_mel_bins).save_pretrained(folder)
    return folder


def check_whisper_folder(path):
    """Checks that ``path`` is a local folder holding a Whisper model.

    Arguments
    ---------
    path : str
        The folder.

    Returns
    -------
    dict
        The parsed ``config.json``.

    Raises
    ------
    FileNotFoundError
        If the folder, its ``config.json`` or its ``preprocessor_config.json`` is missing.
    ValueError
        If the config is not a Whisper config.

    Example
    -------
    >>> try:
    ...     check_whisper_folder("/no/such/whisper")
    ... except FileNotFoundError as err:
    ...     print(str(err).split(".")[0])
    Whisper model folder not found: '/no/such/whisper'
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"Whisper model folder not found: '{path}'. Nothing is downloaded at run "
            f"time. {HOW_TO_GET_WHISPER}"
        )
    config_path = os.path.join(path, "config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(
            f"'{path}' holds no model: config.json is missing. {HOW_TO_GET_WHISPER}"
        )
    with open(config_path, encoding="utf-8") as fin:
        config = json.load(fin)
    model_type = config.get("model_type")
    if model_type != "whisper":
        raise ValueError(
            f"'{config_path}' is not a Whisper config: expected model_type 'whisper', "
            f"found {model_type!r}. Point the path at a Whisper checkpoint "
            f"(tiny.en, large-v2, ...). {HOW_TO_GET_WHISPER}"
        )
    if not os.path.isfile(os.path.join(path, "preprocessor_config.json")):
        raise FileNotFoundError(
            f"'{path}' holds no preprocessor_config.json (Whisper's feature extractor "
            f"settings and mel filters). {HOW_TO_GET_WHISPER}"
        )
    return config


def load_whisper_encoder(path):
    """The Whisper encoder and feature extractor saved in a local folder.

    Only the encoder's weights are read (from a ``WhisperModel`` or
    ``WhisperForConditionalGeneration`` checkpoint); never downloads.

    Arguments
    ---------
    path : str
        Local folder (see :func:`check_whisper_folder`).

    Returns
    -------
    encoder : transformers.models.whisper.modeling_whisper.WhisperEncoder
    extractor : transformers.WhisperFeatureExtractor

    Raises
    ------
    FileNotFoundError, ValueError
        If the folder holds no Whisper model or its encoder weights are incomplete.
    """
    from transformers import WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

    config = check_whisper_folder(path)
    # The decoder's weights are "unexpected" by design: silence transformers'
    # load report (a warning-level table) and its tensor-parallel note while
    # loading; missing keys are checked below.
    hf_logger = logging.getLogger("transformers")
    level = hf_logger.level
    hf_logger.setLevel(logging.ERROR)
    try:
        encoder, info = HFWhisperEncoder.from_pretrained(
            path,
            key_mapping=ENCODER_KEY_MAPPING,
            local_files_only=True,
            output_loading_info=True,
        )
    except OSError as err:
        raise FileNotFoundError(
            f"'{path}' has a Whisper config.json but its weights could not be read "
            f"({err}). {HOW_TO_GET_WHISPER}"
        ) from None
    except RuntimeError as err:  # shapes that do not fit the config
        raise ValueError(f"The weights in '{path}' do not fit its config.json: {err}") from None
    finally:
        hf_logger.setLevel(level)
    if info["missing_keys"]:
        raise ValueError(
            f"The checkpoint in '{path}' misses Whisper encoder weights "
            f"{sorted(info['missing_keys'])[:5]}: expected a WhisperModel or "
            f"WhisperForConditionalGeneration checkpoint. {HOW_TO_GET_WHISPER}"
        )
    extractor = WhisperFeatureExtractor.from_pretrained(path, local_files_only=True)
    if extractor.feature_size != config.get("num_mel_bins", 80):
        raise ValueError(
            f"'{path}': the feature extractor has {extractor.feature_size} mel bins but the "
            f"model expects {config.get('num_mel_bins')}; save the extractor of the same model"
        )
    return encoder, extractor


@register_checkpoint_hooks
class WhisperLoRAEncoder(torch.nn.Module):
    """Frozen Whisper encoder + LoRA + pooling: waveform ``[B, T]`` -> ``[B, output_dim]``.

    Pipeline::

        resample sample_rate -> 16 kHz                       [B, T16]
        Whisper log-mel, zero-padded to 3000 frames (30 s)   [B, n_mels, 3000]
          (pad_to_30s=False: only to the frames that hold audio + 1, even)
        Whisper encoder (frozen) with LoRA adapters          [B, 1500, d_model]
        keep the frames that hold audio (75 for 32,768
          samples at 22.05 kHz)                              [B, F, d_model]
        pooling "gru": GRU(d_model -> output_dim), last state
                "mean": mean over frames -> Linear           [B, output_dim]

    ``pad_to_30s=True`` feeds the encoder what it was trained on (30 s windows; the
    clip's frames see the padding through attention), at the cost of encoding
    1,500 frames for a 1.49 s clip. ``pad_to_30s=False`` encodes only the clip's
    frames with the first positional embeddings (the mel frames are the same as in
    the padded input); about 20x less work, but an input length Whisper never saw.
    The "gru" head is the one the FewSound authors put on their other pretrained
    encoders (wav2vec2, HuBERT): last hidden state of a GRU to 3296.

    Checkpoints (SpeechBrain's checkpointer and pretrainer) hold only the LoRA
    adapters and the pooling head (see :meth:`trainable_state_dict`); the frozen
    backbone always comes from ``source``.

    Arguments
    ---------
    source : str
        Local folder with the Whisper model (``config.json``, weights) and its
        feature extractor (``preprocessor_config.json``).
    sample_rate : int
        Sample rate in Hz of the input (resampled to 16 kHz inside).
    output_dim : int
        Embedding size.
    lora_rank : int
        LoRA rank r.
    lora_alpha : float
        LoRA scaling alpha (the update is scaled by alpha / r).
    lora_dropout : float
        Dropout on the LoRA branch's input.
    lora_target_modules : tuple of str
        Names of the backbone's linear layers that get adapters (Whisper's
        attention: ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``; MLP: ``fc1``, ``fc2``).
    pooling : str
        ``"gru"`` or ``"mean"`` (see above).
    pad_to_30s : bool
        Pad the log-mel to Whisper's 3000 frames (True) or only to the clip (False).

    Example
    -------
    >>> import tempfile
    >>> folder = save_random_whisper(
    ...     tempfile.mkdtemp(), num_mel_bins=8, d_model=8, encoder_layers=1,
    ...     encoder_attention_heads=2, encoder_ffn_dim=16,
    ... )
    >>> encoder = WhisperLoRAEncoder(folder, output_dim=6, lora_rank=2, pad_to_30s=False)
    >>> encoder(torch.rand(3, 4410) - 0.5).shape
    torch.Size([3, 6])
    >>> encoder.output_dim, encoder.input_length, encoder.sample_rate
    (6, None, 22050)
    >>> encoder.num_frames(32768)  # encoder frames that hold a 1.49 s clip
    75
    """

    def __init__(
        self,
        source,
        sample_rate=22050,
        output_dim=3296,
        lora_rank=8,
        lora_alpha=16,
        lora_dropout=0.05,
        lora_target_modules=("q_proj", "v_proj"),
        pooling="gru",
        pad_to_30s=True,
    ):
        super().__init__()
        from peft import LoraConfig, inject_adapter_in_model
        from torchaudio.transforms import Resample

        if pooling not in POOLING_CHOICES:
            raise ValueError(f"pooling must be one of {POOLING_CHOICES}, got {pooling!r}")
        self.source = os.fspath(source)
        self.sample_rate = int(sample_rate)
        self.input_length = None  # any length up to 30 s
        self.output_dim = int(output_dim)
        self.pooling = pooling
        self.pad_to_30s = bool(pad_to_30s)

        backbone, extractor = load_whisper_encoder(self.source)
        backbone.requires_grad_(False)
        lora = LoraConfig(
            r=lora_rank,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=list(lora_target_modules),
        )
        try:
            self.backbone = inject_adapter_in_model(lora, backbone)
        except ValueError as err:  # no layer of that name
            raise ValueError(
                f"lora_target_modules {list(lora_target_modules)} name no layer of the "
                f"Whisper encoder ({err}); choose among q_proj, k_proj, v_proj, "
                "out_proj, fc1, fc2"
            ) from None
        for name, param in self.backbone.named_parameters():
            param.requires_grad_("lora_" in name)
        self.max_mel_frames = extractor.nb_max_frames  # 3000
        self.log_mel = WhisperLogMel.from_feature_extractor(extractor)
        self.resample = (
            Resample(self.sample_rate, WHISPER_SAMPLE_RATE)
            if self.sample_rate != WHISPER_SAMPLE_RATE
            else torch.nn.Identity()
        )
        d_model = backbone.config.d_model
        if pooling == "gru":
            self.pool = torch.nn.GRU(d_model, self.output_dim, batch_first=True)
        else:
            self.pool = torch.nn.Linear(d_model, self.output_dim)
        logger.info(
            "Whisper encoder from %s: d_model %d, %d layers; LoRA r=%d alpha=%s on %s",
            self.source,
            d_model,
            backbone.config.encoder_layers,
            lora_rank,
            lora_alpha,
            list(lora_target_modules),
        )

    # ------------------------------------------------------------ lengths --
    def _num_samples_16k(self, num_samples):
        """Samples after resampling (torchaudio's ``ceil(T * new / orig)``)."""
        return math.ceil(num_samples * WHISPER_SAMPLE_RATE / self.sample_rate)

    def num_mel_frames(self, num_samples):
        """Log-mel frames that hold audio for ``num_samples`` input samples."""
        return math.ceil(self._num_samples_16k(num_samples) / self.log_mel.hop_length)

    def num_frames(self, num_samples):
        """Encoder frames that hold audio (the stride-2 convolution halves the rate)."""
        return math.ceil(self.num_mel_frames(num_samples) / 2)

    # ------------------------------------------------------------ forward --
    def _encode(self, mel):
        """Whisper's encoder forward on ``mel`` ``[B, n_mels, N]``, N even and <= 3000.

        The same computation as ``transformers``' ``WhisperEncoder.forward`` (which
        only accepts N = 3000), with the first N / 2 positional embeddings.
        """
        encoder = self.backbone
        x = torch.nn.functional.gelu(encoder.conv1(mel))
        x = torch.nn.functional.gelu(encoder.conv2(x))
        x = x.transpose(1, 2)  # [B, N / 2, d_model]
        x = x + encoder.embed_positions.weight[: x.shape[1]]
        x = torch.nn.functional.dropout(x, p=encoder.dropout, training=self.training)
        for layer in encoder.layers:
            x = layer(x, None)
        return encoder.layer_norm(x)

    def features(self, wavs):
        """Encoder frames that hold audio.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms ``[B, T]`` or ``[B, 1, T]`` at ``sample_rate``, at most 30 s.

        Returns
        -------
        torch.Tensor
            ``[B, num_frames(T), d_model]``.
        """
        if wavs.dim() == 3 and wavs.shape[1] == 1:
            wavs = wavs[:, 0]
        if wavs.dim() != 2:
            raise ValueError(f"expected waveforms [B, T] or [B, 1, T], got {tuple(wavs.shape)}")
        num_mel = self.num_mel_frames(wavs.shape[-1])
        if num_mel > self.max_mel_frames:
            raise ValueError(
                f"{wavs.shape[-1]} samples at {self.sample_rate} Hz are longer than "
                f"Whisper's 30 s window ({self.max_mel_frames} frames)"
            )
        if self.pad_to_30s:
            mel_frames = self.max_mel_frames
        else:  # one frame past the audio (so the STFT padding is zeros, as at 30 s), even
            mel_frames = min(2 * math.ceil((num_mel + 1) / 2), self.max_mel_frames)
        with torch.no_grad():  # the front end has no trainable part
            mel = self.log_mel(self.resample(wavs.float()), mel_frames)
        hidden = self._encode(mel.to(self.backbone.conv1.weight.dtype))
        return hidden[:, : self.num_frames(wavs.shape[-1])]

    def forward(self, wavs):
        """Encodes ``wavs`` [B, T] (or [B, 1, T]) into ``[B, output_dim]``."""
        hidden = self.features(wavs)  # [B, F, d_model]
        if self.pooling == "gru":
            _, last = self.pool(hidden)  # [1, B, output_dim]
            return last[-1]
        return self.pool(hidden.mean(dim=1))

    # -------------------------------------------------------- checkpoints --
    @staticmethod
    def is_trainable_key(key):
        """Whether a ``state_dict`` key belongs to what trains (LoRA, pooling head)."""
        return key.startswith("pool.") or ".lora_" in key

    def trainable_state_dict(self):
        """The LoRA adapters and the pooling head (no frozen backbone weights)."""
        return {k: v for k, v in self.state_dict().items() if self.is_trainable_key(k)}

    def load_trainable_state_dict(self, state, origin="state dict"):
        """Loads :meth:`trainable_state_dict` output on top of the backbone.

        Arguments
        ---------
        state : dict
            LoRA and pooling-head tensors.
        origin : str
            Where ``state`` comes from, for error messages.
        """
        expected = set(self.trainable_state_dict())
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise ValueError(
                f"{origin} does not fit this Whisper encoder (LoRA settings, pooling or "
                f"model size differ): missing {sorted(missing)[:4]}, unexpected "
                f"{sorted(unexpected)[:4]}. Use the YAML the checkpoint was trained with."
            )
        try:
            self.load_state_dict(state, strict=False)
        except RuntimeError as err:
            raise ValueError(f"{origin} does not fit this Whisper encoder: {err}") from None

    @mark_as_saver
    def _save(self, path):
        torch.save(self.trainable_state_dict(), path)

    @mark_as_loader
    def _load(self, path, end_of_epoch=False):
        del end_of_epoch  # unused
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.load_trainable_state_dict(state, origin=f"'{path}'")

    @mark_as_transfer
    def _transfer(self, path):
        self._load(path)
