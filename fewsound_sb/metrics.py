"""Reconstruction metrics for audio INRs, per clip: MSE, PSNR, LSD, SI-SNR,
PESQ, STOI, CDPAM and a spectral Wasserstein distance, plus the mean ± std
summary and the Markdown table of the paper's Table 1.

Every metric is computed per clip (one dict per item) and averaged later by
:func:`summarize`. Where that differs from the authors' code (torchmetrics,
per batch) it is said at the metric. CDPAM needs the optional ``cdpam``
package (with ``resampy`` and ``librosa``); without it a one-line notice is
logged once per process and the ``cdpam`` key is left out of the rows.

Every function takes ``(predictions, targets, ...)``, the prediction first,
like the losses (:mod:`fewsound_sb.losses`), torch and SpeechBrain; with
SpeechBrain relative lengths (``length``), :func:`compute_metrics` cuts each
item to its valid samples first, so padding is never scored.
"""

import contextlib
import math
import os

import numpy as np
import torch
import torchaudio

from fewsound_sb.shapes import as_batch, valid_counts
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

ALL_METRICS = ("mse", "psnr", "lsd", "si_snr", "pesq", "stoi", "wasserstein", "cdpam")

# Table 1 column order, display name and whether higher is better.
TABLE_COLUMNS = (
    ("mse", "MSE", False),
    ("psnr", "PSNR", True),
    ("lsd", "LSD", False),
    ("si_snr", "SI-SNR", True),
    ("pesq", "PESQ", True),
    ("stoi", "STOI", True),
    ("cdpam", "CDPAM", False),
    ("wasserstein", "Wasserstein", False),
)
METRIC_FORMATS = {"mse": ".2e", "wasserstein": ".3g", "pesq": ".3f", "stoi": ".3f", "cdpam": ".3f"}

PESQ_RATE = 16000  # wide-band PESQ runs at 16 kHz
CDPAM_RATE = 22050  # CDPAM was trained on 22.05 kHz audio

_CDPAM_MODELS = {}  # device -> loaded cdpam.CDPAM
_CDPAM_STATE = {"unavailable": None}  # reason string once loading has failed


def mse(predictions, targets):
    """Mean squared error per item.

    Arguments
    ---------
    predictions : torch.Tensor
        ``[B, T]`` estimates.
    targets : torch.Tensor
        ``[B, T]`` target waveforms.

    Returns
    -------
    torch.Tensor
        ``[B]``.

    Example
    -------
    >>> mse(predictions=torch.full((1, 4), 0.5), targets=torch.zeros(1, 4))
    tensor([0.2500])
    """
    return ((predictions - targets) ** 2).mean(dim=-1)


def psnr(predictions, targets):
    """Peak signal-to-noise ratio per item, in dB.

    ``10 log10(range^2 / MSE)`` with ``range = max(ref) - min(ref)`` of each
    clip. The authors (torchmetrics, ``data_range=None``) take the range and
    the MSE over the whole batch, once per batch; here each clip gets its own
    value and :func:`summarize` averages them. Identical signals give ``inf``.

    Arguments
    ---------
    predictions : torch.Tensor
        ``[B, T]``.
    targets : torch.Tensor
        ``[B, T]``.

    Returns
    -------
    torch.Tensor
        ``[B]``.

    Example
    -------
    >>> ref = torch.tensor([[-1.0, 1.0, 0.0, 0.0]])
    >>> psnr(predictions=ref + 0.1, targets=ref)  # 10 log10(2^2 / 0.01)
    tensor([26.0206])
    """
    data_range = targets.amax(dim=-1) - targets.amin(dim=-1)
    return 10 * torch.log10(data_range**2 / mse(predictions, targets))


def lsd(predictions, targets, sample_rate):
    """Log-spectral distance per item, as in the authors' code.

    STFT with ``n_fft = int(2048 * sr / 44100)`` (also the Hann window
    length), ``hop = int(sr / 100)``, ``center=True`` with zero padding;
    per frame ``sqrt(mean_f log10(|X|^2 / (|X_hat| + 1e-12)^2 + 1e-12)^2)``,
    then the mean over frames (log10, not 10 log10). A gain ``g`` on the
    prediction gives ``|2 log10 g|``.

    Arguments
    ---------
    predictions : torch.Tensor
        ``[B, T]``.
    targets : torch.Tensor
        ``[B, T]``.
    sample_rate : int
        Sample rate in Hz.

    Returns
    -------
    torch.Tensor
        ``[B]``.

    Example
    -------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> x = torch.randn(1, 4000, dtype=torch.float64)
    >>> lsd(predictions=10 * x, targets=x, sample_rate=8000).round(decimals=6)  # |2 log10 10|
    tensor([2.], dtype=torch.float64)
    """
    n_fft = int(2048 * sample_rate / 44100)
    hop = int(sample_rate / 100)
    window = torch.hann_window(n_fft, dtype=targets.dtype, device=targets.device)

    def magnitude(wav):
        spec = torch.stft(
            wav, n_fft, hop, window=window, center=True, pad_mode="constant",
            return_complex=True,
        )
        return spec.abs()  # [B, F, N]

    ref_mag, est_mag = magnitude(targets), magnitude(predictions)
    log_ratio = torch.log10(ref_mag**2 / (est_mag + 1e-12) ** 2 + 1e-12)
    return (log_ratio**2).mean(dim=-2).sqrt().mean(dim=-1)


def si_snr(predictions, targets):
    """Scale-invariant signal-to-noise ratio per item, in dB.

    Both signals are made zero-mean; the target part is the projection of
    the prediction on the target, the rest is noise (torchmetrics'
    definition, with its machine-epsilon guards).

    Arguments
    ---------
    predictions : torch.Tensor
        ``[B, T]``.
    targets : torch.Tensor
        ``[B, T]``.

    Returns
    -------
    torch.Tensor
        ``[B]``.

    Example
    -------
    >>> ref = torch.tensor([[1.0, -1.0, 1.0, -1.0]])
    >>> si_snr(predictions=0.5 * ref + torch.tensor([[0.5, 0.5, -0.5, -0.5]]), targets=ref)
    tensor([0.])
    """
    eps = torch.finfo(targets.dtype).eps
    targets = targets - targets.mean(dim=-1, keepdim=True)
    predictions = predictions - predictions.mean(dim=-1, keepdim=True)
    alpha = (predictions * targets).sum(-1, keepdim=True) / (
        (targets**2).sum(-1, keepdim=True) + eps
    )
    projection = alpha * targets
    noise = predictions - projection
    return 10 * torch.log10(((projection**2).sum(-1) + eps) / ((noise**2).sum(-1) + eps))


def spectral_wasserstein(predictions, targets, divisor=32768.0):
    """Wasserstein-1 distance between the two magnitude spectra, per item.

    Following the paper: the weights are ``|rFFT(x)|`` (the one-sided
    spectrum; the paper does not say full or one-sided FFT) normalised to
    sum 1, on the support ``k^2`` (squared bin index). The 1-D W1 distance
    is ``sum_k |CDF_ref(k) - CDF_est(k)| * ((k+1)^2 - k^2)``, divided by
    ``divisor`` (the paper reports it /32768). A silent clip gives NaN.

    Arguments
    ---------
    predictions : torch.Tensor
        ``[B, T]``.
    targets : torch.Tensor
        ``[B, T]``.
    divisor : float
        The distance is divided by this.

    Returns
    -------
    torch.Tensor
        ``[B]``.

    Example
    -------
    >>> n = torch.arange(64, dtype=torch.float64)
    >>> ref = torch.cos(2 * math.pi * 3 * n / 64)[None]  # bin 3
    >>> est = torch.cos(2 * math.pi * 5 * n / 64)[None]  # bin 5
    >>> w = spectral_wasserstein(predictions=est, targets=ref, divisor=1.0)
    >>> w.round(decimals=6)  # 5^2 - 3^2
    tensor([16.], dtype=torch.float64)
    """
    weights_ref = torch.fft.rfft(targets, dim=-1).abs()
    weights_est = torch.fft.rfft(predictions, dim=-1).abs()
    weights_ref = weights_ref / weights_ref.sum(-1, keepdim=True)
    weights_est = weights_est / weights_est.sum(-1, keepdim=True)
    cdf_gap = torch.cumsum(weights_ref - weights_est, dim=-1)[..., :-1]
    bins = torch.arange(weights_ref.shape[-1], dtype=targets.dtype, device=targets.device)
    steps = torch.diff(bins**2)  # (k+1)^2 - k^2
    return (cdf_gap.abs() * steps).sum(-1) / divisor


def pesq_wb(predictions, targets, sample_rate):
    """Wide-band PESQ per item (``pesq`` package), after resampling to 16 kHz.

    Items where PESQ fails (e.g. ``NoUtterancesError`` on silence) are NaN,
    with a logged warning; :func:`summarize` skips them, as the authors did.

    Arguments
    ---------
    predictions : torch.Tensor
        ``[B, T]``.
    targets : torch.Tensor
        ``[B, T]``.
    sample_rate : int
        Sample rate of the inputs in Hz.

    Returns
    -------
    list of float
        One score per item (at most 4.64).
    """
    import pesq

    if sample_rate != PESQ_RATE:
        targets = torchaudio.functional.resample(targets, sample_rate, PESQ_RATE)
        predictions = torchaudio.functional.resample(predictions, sample_rate, PESQ_RATE)
    scores = []
    for i, (ref, est) in enumerate(zip(targets.numpy(), predictions.numpy())):
        try:
            # pesq divides by the peak: silence warns before it raises
            with np.errstate(invalid="ignore", divide="ignore"):
                scores.append(float(pesq.pesq(PESQ_RATE, ref, est, "wb")))
        except Exception as err:  # pesq raises several error types
            logger.warning(f"PESQ failed on item {i} ({type(err).__name__}: {err}); NaN")
            scores.append(math.nan)
    return scores


def stoi(predictions, targets, sample_rate):
    """STOI per item (``pystoi``, not extended), at the input sample rate.

    Arguments
    ---------
    predictions : torch.Tensor
        ``[B, T]``.
    targets : torch.Tensor
        ``[B, T]``.
    sample_rate : int
        Sample rate of the inputs in Hz.

    Returns
    -------
    list of float
        One score per item.
    """
    import pystoi

    return [
        float(pystoi.stoi(ref, est, sample_rate, extended=False))
        for ref, est in zip(targets.numpy(), predictions.numpy())
    ]


@contextlib.contextmanager
def _full_pickle_load_for(folder):
    """Lets ``torch.load`` read full pickles from ``folder`` only, meanwhile.

    cdpam 0.0.6 calls ``torch.load(path)`` on weights stored as a full pickle
    inside its own wheel; torch >= 2.6 defaults to ``weights_only=True`` and
    refuses them. The file ships with the package (trusted), so only loads of
    files under ``folder`` get ``weights_only=False``, and only inside this block.
    """
    original = torch.load

    def load(f, *args, **kwargs):
        if isinstance(f, (str, os.PathLike)) and os.path.abspath(f).startswith(folder):
            kwargs.setdefault("weights_only", False)
        return original(f, *args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def load_cdpam(device="cpu"):
    """Returns the (cached) CDPAM model, or None when it cannot be loaded.

    The first failure logs a one-line notice (once per process) and later
    calls return None straight away.

    Arguments
    ---------
    device : str
        Torch device to run CDPAM on.

    Returns
    -------
    cdpam.CDPAM or None
        The model, or None when ``cdpam`` (with ``resampy`` and ``librosa``)
        is not installed or fails to load.
    """
    device = str(device)
    if device in _CDPAM_MODELS:
        return _CDPAM_MODELS[device]
    if _CDPAM_STATE["unavailable"] is not None:
        return None
    try:
        import cdpam

        folder = os.path.dirname(os.path.abspath(cdpam.__file__))
        with _full_pickle_load_for(folder):
            model = cdpam.CDPAM(dev=device)
    except Exception as err:  # ImportError, or cdpam failing to build
        reason = f"{type(err).__name__}: {err}".splitlines()[0]
        _CDPAM_STATE["unavailable"] = reason
        logger.warning(
            f"CDPAM not computed ({reason}); `pip install cdpam resampy librosa` "
            "to report it. The 'cdpam' key is left out of the metrics."
        )
        return None
    _CDPAM_MODELS[device] = model
    return model


def cdpam_distance(predictions, targets, sample_rate, device="cpu", chunk_size=8):
    """CDPAM distance per item, or None when CDPAM is not available.

    As the authors: audio at 22.05 kHz (resampled when needed), scaled by
    32768 and rounded (16-bit integer range), ``model.forward(targets, predictions)``.

    Arguments
    ---------
    predictions : torch.Tensor
        ``[B, T]``.
    targets : torch.Tensor
        ``[B, T]``.
    sample_rate : int
        Sample rate of the inputs in Hz.
    device : str
        Torch device to run CDPAM on.
    chunk_size : int
        Items per CDPAM forward (bounds memory).

    Returns
    -------
    list of float or None
        One distance per item (0 for identical inputs).
    """
    model = load_cdpam(device)
    if model is None:
        return None
    if sample_rate != CDPAM_RATE:
        targets = torchaudio.functional.resample(targets, sample_rate, CDPAM_RATE)
        predictions = torchaudio.functional.resample(predictions, sample_rate, CDPAM_RATE)
    distances = []
    with torch.no_grad():
        for start in range(0, targets.shape[0], chunk_size):
            ref = torch.round(targets[start : start + chunk_size] * 32768).float()
            est = torch.round(predictions[start : start + chunk_size] * 32768).float()
            dist = model.forward(ref.to(device), est.to(device))
            distances.extend(float(d) for d in dist.reshape(-1).cpu())
    return distances


def _metric_columns(predictions, targets, sample_rate, names, wasserstein_divisor,
                    cdpam_device):
    """``{metric: list of float}`` for a ``[B, T]`` float64 CPU batch."""
    columns = {}
    if "mse" in names:
        columns["mse"] = mse(predictions, targets).tolist()
    if "psnr" in names:
        columns["psnr"] = psnr(predictions, targets).tolist()
    if "lsd" in names:
        columns["lsd"] = lsd(predictions, targets, sample_rate).tolist()
    if "si_snr" in names:
        columns["si_snr"] = si_snr(predictions, targets).tolist()
    if "pesq" in names:
        columns["pesq"] = pesq_wb(predictions, targets, sample_rate)
    if "stoi" in names:
        columns["stoi"] = stoi(predictions, targets, sample_rate)
    if "wasserstein" in names:
        columns["wasserstein"] = spectral_wasserstein(
            predictions, targets, wasserstein_divisor
        ).tolist()
    if "cdpam" in names:
        distances = cdpam_distance(predictions, targets, sample_rate, device=cdpam_device)
        if distances is not None:
            columns["cdpam"] = distances
    return columns


def compute_metrics(
    predictions,
    targets,
    sample_rate,
    length=None,
    metrics=None,
    wasserstein_divisor=32768.0,
    cdpam_device="cpu",
):
    """Computes reconstruction metrics, one dict per item.

    Arguments
    ---------
    predictions : torch.Tensor or numpy.ndarray
        Estimates ``[B, T]`` or ``[T]`` (also ``[B, T, 1]``, ``[B, 1, T]``).
    targets : torch.Tensor or numpy.ndarray
        Target waveforms, the same shape as ``predictions``.
    sample_rate : int
        Sample rate of both, in Hz.
    length : torch.Tensor, optional
        SpeechBrain relative length of each item, ``[B]`` in (0, 1]: item
        ``i`` is cut to its first ``round(length[i] * T)`` samples (both
        signals) before its metrics, so padding counts in none of them.
        None: all ``T`` samples.
    metrics : sequence of str, optional
        Subset of ``ALL_METRICS`` (``mse, psnr, lsd, si_snr, pesq, stoi,
        wasserstein, cdpam``); None computes all of them. ``cdpam`` is left
        out of the rows (with a one-line notice, once) when the ``cdpam``
        package is missing.
    wasserstein_divisor : float
        Divisor of the spectral Wasserstein distance (the paper's 32768).
    cdpam_device : str
        Torch device for the CDPAM network.

    Returns
    -------
    list of dict
        One ``{metric: float}`` per item. Identical inputs give ``psnr = inf``.

    Example
    -------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> x = torch.randn(2, 800)
    >>> rows = compute_metrics(predictions=0.5 * x, targets=x, sample_rate=8000,
    ...                        metrics=("mse", "si_snr", "lsd"))
    >>> len(rows), sorted(rows[0])
    (2, ['lsd', 'mse', 'si_snr'])
    >>> round(rows[0]["lsd"], 3)  # |2 log10 0.5|
    0.602
    >>> tail = x.clone()
    >>> tail[1, 400:] = 0.0  # item 1: 400 samples of audio, then padding
    >>> rows = compute_metrics(predictions=x, targets=tail, sample_rate=8000,
    ...                        length=torch.tensor([1.0, 0.5]), metrics=("mse",))
    >>> [row["mse"] for row in rows]
    [0.0, 0.0]
    """
    names = ALL_METRICS if metrics is None else tuple(metrics)
    unknown = [name for name in names if name not in ALL_METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {ALL_METRICS}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    # float64 on CPU: exact values for the closed-form metrics, numpy for PESQ/STOI
    est = as_batch(torch.as_tensor(predictions), "predictions").detach().cpu().double()
    ref = as_batch(torch.as_tensor(targets), "targets").detach().cpu().double()
    if ref.shape != est.shape:
        raise ValueError(
            f"predictions and targets must have the same shape, got "
            f"{tuple(est.shape)} and {tuple(ref.shape)}"
        )
    args = (sample_rate, names, wasserstein_divisor, cdpam_device)
    batch_size, num_samples = ref.shape
    counts = [num_samples] * batch_size
    if length is not None:
        counts = valid_counts(torch.as_tensor(length).cpu(), num_samples, batch_size).tolist()
    rows = [{} for _ in range(batch_size)]
    # items of the same valid length are computed together, cut to that length
    for count in sorted(set(counts)):
        items = [i for i, c in enumerate(counts) if c == count]
        columns = _metric_columns(est[items, :count], ref[items, :count], *args)
        for name, values in columns.items():
            for i, value in zip(items, values):
                rows[i][name] = value
    return rows


def summarize(rows):
    """Mean and standard deviation of each metric over items, ignoring NaN.

    Arguments
    ---------
    rows : list of dict
        As returned by :func:`compute_metrics` (rows may be concatenated
        over batches).

    Returns
    -------
    dict
        ``metric -> (mean, std)``; population std (ddof=0), NaN when every
        value is NaN. An ``inf`` (PSNR of a perfect copy) makes the mean inf.

    Example
    -------
    >>> summarize([{"pesq": 2.0}, {"pesq": 4.0}, {"pesq": float("nan")}])
    {'pesq': (3.0, 1.0)}
    """
    names = []
    for row in rows:
        names.extend(name for name in row if name not in names)
    summary = {}
    for name in names:
        values = np.array([row[name] for row in rows if name in row], dtype=np.float64)
        values = values[~np.isnan(values)]
        if values.size == 0:
            summary[name] = (math.nan, math.nan)
        else:
            with np.errstate(invalid="ignore"):  # std of [inf, ...] is NaN
                summary[name] = (float(values.mean()), float(values.std()))
    return summary


def format_table(summary, title="", arrows=True, columns=None):
    """Markdown table of mean ± std, in the column order of the paper's Table 1.

    Columns: those of MSE, PSNR, LSD, SI-SNR, PESQ, STOI, CDPAM, Wasserstein
    that ``summary`` holds, in that order, then any other metric of
    ``summary``; metrics that were not computed (e.g. PESQ on music) are left
    out rather than printed as ``n/a``. Pass ``columns`` to fix the column set
    (a listed metric missing from ``summary`` then shows ``n/a``). The first
    column holds ``title`` (e.g. the INR's name), so rows of several runs with
    the same columns can be stacked into one table.

    Arguments
    ---------
    summary : dict
        ``metric -> (mean, std)`` from :func:`summarize`.
    title : str
        Row label.
    arrows : bool
        Append ↑ / ↓ (higher / lower is better) to the column names.
    columns : list of str or None
        Metric keys to show, in this order; None: the metrics of ``summary``.

    Returns
    -------
    str
        A Markdown table (header, separator, one row).

    Example
    -------
    >>> table = format_table({"mse": (1e-4, 2e-5), "psnr": (30.0, 1.5)}, "KAN")
    >>> print(table.splitlines()[0])
    | Model | MSE ↓ | PSNR ↑ |
    >>> print(table.splitlines()[2])
    | KAN | 1.00e-04 ± 2.00e-05 | 30.00 ± 1.50 |
    >>> print(format_table({"psnr": (30.0, 1.5)}, "KAN", columns=["mse", "psnr"]).splitlines()[2])
    | KAN | n/a | 30.00 ± 1.50 |
    """
    known = {key: (key, name, higher) for key, name, higher in TABLE_COLUMNS}
    if columns is None:
        keys = [key for key in known if key in summary] + [k for k in summary if k not in known]
    else:
        keys = list(columns)
    columns = [known.get(key, (key, key, None)) for key in keys]
    header, cells = ["Model"], [title]
    for key, name, higher in columns:
        if arrows and higher is not None:
            name = f"{name} {'↑' if higher else '↓'}"
        header.append(name)
        if key in summary:
            mean, std = summary[key]
            fmt = METRIC_FORMATS.get(key, ".2f")
            cells.append(f"{mean:{fmt}} ± {std:{fmt}}")
        else:
            cells.append("n/a")
    lines = [header, ["---"] + ["---:"] * (len(header) - 1), cells]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)
