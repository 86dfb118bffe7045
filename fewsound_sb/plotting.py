"""Figures for INR fits: reference vs reconstruction, and loss curves.

Uses matplotlib's non-interactive Agg backend (no display needed, safe in
worker processes and on clusters). Figures are written atomically
(:func:`fewsound_sb.files.atomic_write`). The reports that use them (metric
tables, example reconstructions) are in :mod:`fewsound_sb.reports`.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchaudio  # noqa: E402

from fewsound_sb.files import atomic_write  # noqa: E402

# Log-mel settings for display only (the authors' logging spectrogram).
MEL_N_FFT = 1024
MEL_HOP = 256
MEL_BANDS = 128
MEL_TOP_DB = 80.0


def _as_mono(wav, name):
    wav = torch.as_tensor(wav).detach().to("cpu", torch.float32).reshape(-1)
    if wav.numel() == 0:
        raise ValueError(f"{name} is empty")
    return wav


def log_mel(wav, sample_rate, n_fft=MEL_N_FFT, hop_length=MEL_HOP, n_mels=MEL_BANDS):
    """Log-mel spectrogram in dB for display, ``[n_mels, frames]``.

    Arguments
    ---------
    wav : torch.Tensor
        ``[T]`` waveform.
    sample_rate : int
        Sample rate in Hz.
    n_fft, hop_length, n_mels : int
        STFT size, hop and number of mel bands (shortened for very short clips).

    Returns
    -------
    numpy.ndarray
        ``[n_mels, frames]`` in dB, floored 80 dB below the clip's maximum.

    Example
    -------
    >>> log_mel(torch.randn(4096), 16000).shape
    (128, 17)
    """
    wav = _as_mono(wav, "wav")
    n_fft = min(n_fft, max(16, wav.numel()))
    hop_length = min(hop_length, max(1, n_fft // 4))
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels
    )(wav)
    db = torchaudio.functional.amplitude_to_DB(
        mel, multiplier=10.0, amin=1e-10, db_multiplier=0.0, top_db=MEL_TOP_DB
    )
    return db.numpy()


def _save(fig, path):
    """Writes ``fig`` as a PNG to ``path`` atomically and closes it."""
    try:
        atomic_write(os.fspath(path), lambda tmp_path: fig.savefig(tmp_path, format="png", dpi=100))
    finally:
        plt.close(fig)


def plot_reconstruction(reference, estimate, sample_rate, path, title=""):
    """Saves a PNG: waveform and log-mel spectrogram, original above reconstruction.

    Arguments
    ---------
    reference : torch.Tensor or numpy.ndarray
        Original waveform ``[T]`` (any shape with T elements).
    estimate : torch.Tensor or numpy.ndarray
        Reconstruction, same number of samples.
    sample_rate : int
        Sample rate in Hz (time axis and mel scale).
    path : str or os.PathLike
        Output PNG file (folders are created).
    title : str
        Figure title, e.g. the clip id and its metrics.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "fig.png")
    >>> x = torch.randn(2048)
    >>> plot_reconstruction(x, 0.9 * x, 8000, path, title="demo")
    >>> os.path.getsize(path) > 0
    True
    """
    ref = _as_mono(reference, "reference")
    est = _as_mono(estimate, "estimate")
    if ref.numel() != est.numel():
        raise ValueError(
            f"reference and estimate differ in length: {ref.numel()} vs {est.numel()}"
        )
    seconds = np.arange(ref.numel()) / sample_rate
    mels = [log_mel(ref, sample_rate), log_mel(est, sample_rate)]
    vmin = min(m.min() for m in mels)
    vmax = max(m.max() for m in mels)
    limit = max(1.0, float(max(ref.abs().max(), est.abs().max())))

    fig, axes = plt.subplots(2, 2, figsize=(12, 6), gridspec_kw={"width_ratios": [1, 1.2]})
    for row, (name, wav, mel) in enumerate(
        (("original", ref, mels[0]), ("reconstruction", est, mels[1]))
    ):
        ax_wave, ax_mel = axes[row]
        ax_wave.plot(seconds, wav.numpy(), linewidth=0.4)
        ax_wave.set_xlim(0, seconds[-1] if seconds[-1] > 0 else 1)
        ax_wave.set_ylim(-limit, limit)
        ax_wave.set_ylabel(name)
        image = ax_mel.imshow(
            mel, origin="lower", aspect="auto", vmin=vmin, vmax=vmax, cmap="magma",
            extent=(0, ref.numel() / sample_rate, 0, mel.shape[0]),
        )
        ax_mel.set_ylabel("mel band")
        fig.colorbar(image, ax=ax_mel, label="dB")
    axes[1, 0].set_xlabel("time (s)")
    axes[1, 1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def plot_loss_curve(histories, path, title=""):
    """Saves a PNG of loss curves (log scale), one line per clip.

    Arguments
    ---------
    histories : dict
        ``name -> list of float`` (loss per step). Non-finite values are not
        drawn. A legend is shown for up to 10 curves.
    path : str or os.PathLike
        Output PNG file (folders are created).
    title : str
        Figure title.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "loss.png")
    >>> plot_loss_curve({"a": [1.0, 0.5, 0.25], "b": [2.0, float("nan")]}, path)
    >>> os.path.getsize(path) > 0
    True
    """
    if not histories:
        raise ValueError("no loss history to plot")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    drawn = 0
    for name, values in histories.items():
        values = np.asarray(values, dtype=np.float64)
        steps = np.arange(1, values.size + 1)
        keep = np.isfinite(values) & (values > 0)
        if keep.any():
            ax.plot(steps[keep], values[keep], linewidth=0.8, label=str(name))
            drawn += 1
    if drawn:
        ax.set_yscale("log")
    if 0 < drawn <= 10:
        ax.legend(fontsize=7)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
