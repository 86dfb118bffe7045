"""Frame-level acoustic features: A-weighted loudness, pitch and periodicity.

Fixed (untrained) features that the spectrogram encoder appends to its learned frame
embedding, after VoiceBlock (O'Reilly et al., 2022). The authors used pyworld's DIO for
pitch; here pitch and periodicity come from a YIN-style estimator written in torch
(de Cheveigne and Kawahara, 2002), so no extra dependency is needed and it runs batched
on the GPU. All functions frame the signal like ``torch.stft(center=True)``: frame ``n``
is centred on sample ``n * hop_length`` and there are ``T // hop_length + 1`` frames.
"""

import math

import torch

FEATURE_CHOICES = ("loudness", "pitch", "periodicity")


def a_weighting_db(frequencies):
    """IEC 61672 A-weighting curve in dB (0 dB at 1 kHz).

    Arguments
    ---------
    frequencies : torch.Tensor
        Frequencies in Hz, any shape.

    Returns
    -------
    torch.Tensor
        Gain in dB, same shape (``-inf`` at 0 Hz).

    Example
    -------
    >>> a_weighting_db(torch.tensor([100.0, 1000.0, 10000.0])).round(decimals=1)
    tensor([-19.1000,   0.0000,  -2.5000])
    """
    f2 = frequencies.double() ** 2
    response = (12194.0**2 * f2**2) / (
        (f2 + 20.6**2)
        * torch.sqrt((f2 + 107.7**2) * (f2 + 737.9**2))
        * (f2 + 12194.0**2)
    )
    # +2.0 dB normalises the curve to 0 dB at 1 kHz.
    return (20.0 * torch.log10(response) + 2.0).to(frequencies.dtype)


def a_weighted_loudness(power_spec, sample_rate, amin=1e-10):
    """Per-frame A-weighted loudness in dB from a power spectrogram.

    ``10 * log10(max(mean_f(|X_f|^2 * 10^(A(f_f) / 10)), amin))``: scaling the signal by
    ``g`` adds ``20 * log10(g)`` dB (above the floor).

    Arguments
    ---------
    power_spec : torch.Tensor
        One-sided power spectrogram ``[B, n_fft // 2 + 1, frames]``.
    sample_rate : int
        Sample rate in Hz (sets the bin frequencies).
    amin : float
        Floor on the weighted power, so silence gives ``10 * log10(amin)`` dB.

    Returns
    -------
    torch.Tensor
        Loudness ``[B, frames]`` in dB.

    Example
    -------
    >>> spec = torch.ones(2, 257, 5)
    >>> a_weighted_loudness(spec, 22050).shape
    torch.Size([2, 5])
    """
    n_freq = power_spec.shape[-2]
    freqs = torch.linspace(
        0, sample_rate / 2, n_freq, device=power_spec.device, dtype=power_spec.dtype
    )
    weights = 10.0 ** (a_weighting_db(freqs) / 10.0)  # [F]; 0 at DC
    weighted = (power_spec * weights[:, None]).mean(dim=-2)  # [B, frames]
    return 10.0 * torch.log10(weighted.clamp(min=amin))


def frame_signal(wavs, frame_length, hop_length):
    """Cuts ``[B, T]`` into centred frames ``[B, T // hop_length + 1, frame_length]``.

    The signal is zero-padded by ``frame_length // 2`` on both sides (``frame_length``
    must be even), matching ``torch.stft(center=True)`` frame positions.

    Arguments
    ---------
    wavs : torch.Tensor
        Waveforms ``[B, T]``.
    frame_length : int
        Samples per frame (even).
    hop_length : int
        Samples between frame centres.

    Returns
    -------
    torch.Tensor
        Frames ``[B, T // hop_length + 1, frame_length]``.

    Example
    -------
    >>> frame_signal(torch.rand(2, 1000), 64, 256).shape
    torch.Size([2, 4, 64])
    """
    if frame_length % 2:
        raise ValueError(f"frame_length must be even, got {frame_length}")
    half = frame_length // 2
    padded = torch.nn.functional.pad(wavs, (half, half))
    return padded.unfold(-1, frame_length, hop_length)


def yin_pitch(
    wavs,
    sample_rate,
    hop_length,
    fmin=50.0,
    fmax=550.0,
    threshold=0.15,
    frame_length=None,
    silence_db=-100.0,
):
    """YIN-style pitch and periodicity per frame (de Cheveigne and Kawahara, 2002).

    For each frame: the difference function ``d(tau)`` over an integration window of
    ``frame_length - tau_max`` samples (computed with FFTs), its cumulative-mean
    normalised form ``d'(tau)``, the first local minimum of ``d'`` below ``threshold``
    in ``[sr / fmax, sr / fmin]`` (else the global minimum there, marked unvoiced), and
    parabolic interpolation around it. Not differentiable by design: call it under
    ``torch.no_grad``.

    Arguments
    ---------
    wavs : torch.Tensor
        Waveforms ``[B, T]``.
    sample_rate : int
        Sample rate in Hz.
    hop_length : int
        Samples between frame centres.
    fmin : float
        Lowest detectable f0 in Hz (sets the longest lag).
    fmax : float
        Highest detectable f0 in Hz (sets the shortest lag).
    threshold : float
        Voicing threshold on ``d'``.
    frame_length : int, optional
        Samples per frame; default: the smallest even length holding two periods of
        ``fmin``.
    silence_db : float
        Frames whose mean power is below this (dB re full scale 1.0) are unvoiced.

    Returns
    -------
    f0 : torch.Tensor
        ``[B, frames]`` in Hz, 0 for unvoiced frames.
    periodicity : torch.Tensor
        ``[B, frames]`` in [0, 1]: ``1 - d'(tau*)``, 0 for unvoiced frames.

    Example
    -------
    >>> t = torch.arange(4096) / 16000
    >>> wav = torch.sin(2 * torch.pi * 220 * t)[None]
    >>> f0, periodicity = yin_pitch(wav, 16000, hop_length=512)
    >>> f0.shape
    torch.Size([1, 9])
    >>> round(f0[0, 4].item())
    220
    """
    tau_min = max(1, int(math.floor(sample_rate / fmax)))
    tau_max = int(math.ceil(sample_rate / fmin))
    if frame_length is None:
        frame_length = 2 * tau_max + 2
    length = frame_length - tau_max  # integration window
    if length <= 0:
        raise ValueError(
            f"frame_length ({frame_length}) must exceed the longest lag "
            f"sample_rate / fmin = {tau_max}"
        )
    frames = frame_signal(wavs, frame_length, hop_length)  # [B, N, W]

    # Difference function d(tau) = e1 + e2(tau) - 2 r(tau), tau = 0..tau_max.
    head = frames[..., :length]  # [B, N, L]
    n_fft = 2 ** math.ceil(math.log2(frame_length + length))
    cross = torch.fft.irfft(
        torch.fft.rfft(head, n_fft).conj() * torch.fft.rfft(frames, n_fft), n_fft
    )[..., : tau_max + 1]  # [B, N, tau_max + 1]
    energy = torch.nn.functional.pad(frames**2, (1, 0)).cumsum(dim=-1)  # [B, N, W + 1]
    lags = torch.arange(tau_max + 1, device=wavs.device)
    e1 = energy[..., length : length + 1]  # [B, N, 1]
    e2 = energy[..., lags + length] - energy[..., lags]  # [B, N, tau_max + 1]
    diff = (e1 + e2 - 2.0 * cross).clamp(min=0.0)

    # Cumulative-mean normalised difference, d'(0) = 1.
    running_mean = diff[..., 1:].cumsum(dim=-1) / lags[1:]
    cmnd = torch.cat(
        [torch.ones_like(diff[..., :1]), diff[..., 1:] / (running_mean + 1e-12)],
        dim=-1,
    )

    # First local minimum below threshold within [tau_min, tau_max].
    prev = torch.cat([cmnd[..., :1], cmnd[..., :-1]], dim=-1)
    nxt = torch.cat([cmnd[..., 1:], cmnd[..., -1:]], dim=-1)
    candidate = (cmnd < threshold) & (cmnd <= prev) & (cmnd <= nxt)
    candidate[..., :tau_min] = False
    voiced = candidate.any(dim=-1)
    first = candidate.int().argmax(dim=-1)
    fallback = cmnd[..., tau_min:].argmin(dim=-1) + tau_min
    tau = torch.where(voiced, first, fallback)  # [B, N]

    # Parabolic interpolation of d' around tau.
    left = cmnd.gather(-1, (tau - 1).clamp(min=0)[..., None])[..., 0]
    mid = cmnd.gather(-1, tau[..., None])[..., 0]
    right = cmnd.gather(-1, (tau + 1).clamp(max=tau_max)[..., None])[..., 0]
    curvature = left - 2.0 * mid + right
    shift = torch.where(
        curvature > 1e-12, 0.5 * (left - right) / curvature, torch.zeros_like(mid)
    ).clamp(-1.0, 1.0)

    loud = 10.0 * torch.log10(frames.pow(2).mean(dim=-1) + 1e-30) > silence_db
    voiced = voiced & loud
    f0 = torch.where(voiced, sample_rate / (tau + shift), torch.zeros_like(mid))
    periodicity = torch.where(
        voiced, (1.0 - mid).clamp(0.0, 1.0), torch.zeros_like(mid)
    )
    return f0, periodicity


class FrameFeatures(torch.nn.Module):
    """Fixed per-frame features (loudness, pitch, periodicity) as ``[B, frames, E]``.

    Computed under ``torch.no_grad``: they are inputs, not trained (as in VoiceBlock).
    Frames follow ``torch.stft(center=True)`` with ``hop_length``.

    Arguments
    ---------
    sample_rate : int
        Sample rate in Hz.
    n_fft : int
        FFT size (and Hann window length) of the loudness spectrogram.
    hop_length : int
        Samples between frames.
    features : tuple of str
        Any of ``"loudness"`` (A-weighted, dB), ``"pitch"`` (f0 in Hz, 0 if unvoiced)
        and ``"periodicity"``, in output order; ``num_features`` is its length.
    fmin : float
        Lowest f0 in Hz.
    fmax : float
        Highest f0 in Hz.

    Example
    -------
    >>> extractor = FrameFeatures(sample_rate=16000, n_fft=256, hop_length=128)
    >>> outputs = extractor(torch.rand(2, 2048))
    >>> outputs.shape
    torch.Size([2, 17, 3])
    """

    def __init__(
        self,
        sample_rate=22050,
        n_fft=512,
        hop_length=256,
        features=FEATURE_CHOICES,
        fmin=50.0,
        fmax=550.0,
    ):
        super().__init__()
        unknown = [name for name in features if name not in FEATURE_CHOICES]
        if unknown:
            raise ValueError(
                f"unknown features {unknown}; choose from {FEATURE_CHOICES}"
            )
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.features = tuple(features)
        self.fmin = fmin
        self.fmax = fmax
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    @property
    def num_features(self):
        """Number of features per frame E."""
        return len(self.features)

    @torch.no_grad()
    def forward(self, wavs, power=None):
        """Maps waveforms ``[B, T]`` to features ``[B, T // hop_length + 1, E]``.

        ``power`` is an optional precomputed power spectrogram
        ``[B, n_fft // 2 + 1, frames]`` (same n_fft, hop and window), so a caller
        that already has the STFT does not compute it twice.
        """
        computed = {}
        if "loudness" in self.features:
            if power is None:
                spec = torch.stft(
                    wavs,
                    self.n_fft,
                    hop_length=self.hop_length,
                    window=self.window,
                    center=True,
                    return_complex=True,
                )
                power = spec.abs() ** 2  # [B, n_fft // 2 + 1, frames]
            computed["loudness"] = a_weighted_loudness(power, self.sample_rate)
        if "pitch" in self.features or "periodicity" in self.features:
            f0, periodicity = yin_pitch(
                wavs, self.sample_rate, self.hop_length, self.fmin, self.fmax
            )
            computed["pitch"], computed["periodicity"] = f0, periodicity
        if not self.features:
            num_frames = wavs.shape[-1] // self.hop_length + 1
            return wavs.new_zeros(wavs.shape[0], num_frames, 0)
        return torch.stack([computed[name] for name in self.features], dim=-1)
