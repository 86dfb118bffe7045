"""Spectrogram sound encoder E (VoiceBlock-style), trained from scratch.

Log linear spectrogram -> GLU -> causal convs -> frame MLP, joined with fixed per-frame
features (A-weighted loudness, pitch, periodicity), then a projection and a GRU whose
last hidden state is the embedding. After the VoiceBlock encoder (O'Reilly et al., 2022,
https://arxiv.org/abs/2203.11352) as used by FewSound (paper Sec. 2 and Table 5,
authors' code github.com/gmum/fewsound,
``fewsound/models/encoders/spectrogram_encoder.py``).
"""

import torch

from fewsound_sb.lobes.features import FEATURE_CHOICES, FrameFeatures


class CausalConvBlock(torch.nn.Module):
    """Causal conv (left padding) over frames, optional BatchNorm, activation.

    Arguments
    ---------
    channels : int
        Input and output channels.
    kernel_size : int
        Kernel size (frame ``n`` sees frames ``n - kernel_size + 1 .. n``).
    batch_norm : bool
        Whether to apply ``BatchNorm1d`` after the convolution.
    activation : type
        Activation class.

    Example
    -------
    >>> block = CausalConvBlock(8)
    >>> outputs = block(torch.rand(2, 8, 10))
    >>> outputs.shape
    torch.Size([2, 8, 10])
    """

    def __init__(
        self, channels, kernel_size=2, batch_norm=True, activation=torch.nn.ReLU
    ):
        super().__init__()
        self.pad = kernel_size - 1
        self.conv = torch.nn.Conv1d(channels, channels, kernel_size)
        self.norm = (
            torch.nn.BatchNorm1d(channels) if batch_norm else torch.nn.Identity()
        )
        self.activation = activation()

    def forward(self, x):
        """Maps ``x`` [B, C, N] to [B, C, N]."""
        x = self.conv(torch.nn.functional.pad(x, (self.pad, 0)))
        return self.activation(self.norm(x))


class FrameMLP(torch.nn.Module):
    """Per-frame MLP: ``depth`` x (Linear -> LayerNorm), activation between layers.

    Arguments
    ---------
    in_features : int
        Input size.
    hidden : int
        Width of every layer.
    depth : int
        Number of Linear layers.
    activation : type
        Activation class (not applied after the last layer).

    Example
    -------
    >>> mlp = FrameMLP(8, hidden=16, depth=2)
    >>> outputs = mlp(torch.rand(2, 10, 8))
    >>> outputs.shape
    torch.Size([2, 10, 16])
    """

    def __init__(self, in_features, hidden=512, depth=2, activation=torch.nn.LeakyReLU):
        super().__init__()
        layers = []
        sizes = [in_features] + [hidden] * depth
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            layers += [torch.nn.Linear(n_in, n_out), torch.nn.LayerNorm(n_out)]
            if i < depth - 1:
                layers.append(activation())
        self.layers = torch.nn.Sequential(*layers)

    def forward(self, x):
        """Maps ``x`` [..., in_features] to [..., hidden]."""
        return self.layers(x)


class SpectrogramEncoder(torch.nn.Module):
    """VoiceBlock-style encoder E: waveform ``[B, T]`` -> ``[B, output_dim]``.

    Pipeline (frames follow ``torch.stft(center=True)``, ``N = T // hop_length + 1``)::

        |STFT|^2 (Hann, win = n_fft)  -> 10 log10(. + amin)           [B, n_fft/2+1, N]
        Conv1d(k1, -> 2 hidden) + GLU                                 [B, hidden, N]
        n_conv x causal Conv1d(k2) + BatchNorm + ReLU (no BN on the last)
        FrameMLP(depth mlp_depth)                                     [B, N, hidden]
        concat FrameFeatures (loudness, pitch, periodicity; no grad)  [B, N, hidden + E]
        BatchNorm -> Linear(-> hidden) -> ReLU -> GRU(-> output_dim)
        last hidden state                                             [B, output_dim]

    Differences from the authors' encoder (``spectrogram_encoder.py``): they also
    appended a 256-d phonetic posteriorgram (PPG) from a pretrained asset that is not
    available here, so the extras are the ``len(extra_features)`` = 3 features above
    instead of 259; pitch/periodicity come from a torch YIN-style estimator instead of
    pyworld DIO; and the sample rate is the real one (they assumed 16 kHz on 22.05 kHz
    audio), which only affects the loudness weighting and the pitch values in Hz.

    Arguments
    ---------
    sample_rate : int
        Sample rate of the input in Hz.
    n_fft : int
        FFT size and window length (Hann).
    hop_length : int
        Samples between frames.
    hidden : int
        Width of the GLU, convs, MLP and the GRU input.
    n_conv : int
        Number of causal k2 convolutions.
    mlp_depth : int
        Number of Linear layers of the frame MLP.
    output_dim : int
        GRU hidden size, i.e. the embedding size (3296 to match SoundStream's).
    extra_features : tuple of str
        Fixed per-frame features to append, any of ``("loudness", "pitch",
        "periodicity")``; empty for none.
    fmin : float
        Lowest f0 of the pitch estimator in Hz.
    fmax : float
        Highest f0 of the pitch estimator in Hz.
    amin : float
        Floor added to the power spectrogram before the log (the authors' effective
        floor is 1e-6).
    activation : type
        Activation of the conv blocks and the projection.
    mlp_activation : type
        Activation inside the frame MLP.

    Example
    -------
    >>> encoder = SpectrogramEncoder(
    ...     sample_rate=8000, n_fft=64, hop_length=32, hidden=8, n_conv=2,
    ...     output_dim=12,
    ... )
    >>> outputs = encoder(torch.rand(3, 1024))
    >>> outputs.shape
    torch.Size([3, 12])
    >>> encoder.output_dim, encoder.input_length, encoder.sample_rate
    (12, None, 8000)
    """

    def __init__(
        self,
        sample_rate=22050,
        n_fft=512,
        hop_length=256,
        hidden=512,
        n_conv=5,
        mlp_depth=2,
        output_dim=3296,
        extra_features=FEATURE_CHOICES,
        fmin=50.0,
        fmax=550.0,
        amin=1e-6,
        activation=torch.nn.ReLU,
        mlp_activation=torch.nn.LeakyReLU,
    ):
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.input_length = None  # any length >= n_fft
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.output_dim = int(output_dim)
        self.amin = amin
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

        n_freq = n_fft // 2 + 1
        # GLU: a learned gate on which frequency channels pass through.
        self.glu = torch.nn.Sequential(
            torch.nn.Conv1d(n_freq, 2 * hidden, kernel_size=1), torch.nn.GLU(dim=1)
        )
        self.convs = torch.nn.Sequential(
            *[
                CausalConvBlock(
                    hidden, batch_norm=i < n_conv - 1, activation=activation
                )
                for i in range(n_conv)
            ]
        )
        self.mlp = FrameMLP(hidden, hidden, mlp_depth, activation=mlp_activation)
        self.extras = FrameFeatures(
            sample_rate, n_fft, hop_length, extra_features, fmin, fmax
        )
        n_joint = hidden + self.extras.num_features
        # The extras are in dB / Hz / [0, 1]: BatchNorm puts them on the learned scale.
        self.joint_norm = torch.nn.BatchNorm1d(n_joint)
        self.project = torch.nn.Sequential(
            torch.nn.Linear(n_joint, hidden), activation()
        )
        self.gru = torch.nn.GRU(hidden, output_dim, batch_first=True)

    def forward(self, wavs):
        """Encodes ``wavs`` [B, T] (or [B, 1, T]) into ``[B, output_dim]``."""
        if wavs.dim() == 3 and wavs.shape[1] == 1:
            wavs = wavs[:, 0]
        if wavs.dim() != 2:
            raise ValueError(
                f"expected waveforms [B, T] or [B, 1, T], got {tuple(wavs.shape)}"
            )
        if wavs.shape[-1] < self.n_fft:
            raise ValueError(
                f"expected at least n_fft = {self.n_fft} samples, got "
                f"{wavs.shape[-1]} (input shape {tuple(wavs.shape)})"
            )
        spec = torch.stft(
            wavs,
            self.n_fft,
            hop_length=self.hop_length,
            window=self.window,
            center=True,
            return_complex=True,
        )
        power = spec.abs() ** 2  # [B, F, N]
        log_spec = 10.0 * torch.log10(power + self.amin)
        x = self.convs(self.glu(log_spec))  # [B, hidden, N]
        x = self.mlp(x.transpose(1, 2))  # [B, N, hidden]
        x = torch.cat([x, self.extras(wavs, power=power.detach())], dim=-1)  # [B, N, hidden + E]
        x = self.joint_norm(x.transpose(1, 2)).transpose(1, 2)
        _, last = self.gru(self.project(x))  # [1, B, output_dim]
        return last[-1]
