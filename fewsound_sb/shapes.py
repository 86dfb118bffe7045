"""Batch-shape helpers shared by the losses and the metrics: waveform layouts
and SpeechBrain's relative lengths.

A padded batch in SpeechBrain comes with one relative length per item
(``[B]``, in (0, 1]): the item's own length divided by the padded length.
Here item ``i`` of a batch padded to ``T`` samples holds
``round(length[i] * T)`` valid samples, followed by padding.
"""

import torch

from speechbrain.dataio.dataio import length_to_mask
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)


def as_batch(wav, name="wav"):
    """Brings a waveform batch to ``[B, T]``.

    Arguments
    ---------
    wav : torch.Tensor
        ``[T]``, ``[B, T]``, ``[B, T, 1]`` or ``[B, 1, T]``.
    name : str
        Name used in the error message.

    Returns
    -------
    torch.Tensor
        ``[B, T]`` (a view where possible).

    Example
    -------
    >>> as_batch(torch.zeros(2, 16, 1)).shape
    torch.Size([2, 16])
    >>> as_batch(torch.zeros(2, 1, 16)).shape
    torch.Size([2, 16])
    >>> as_batch(torch.zeros(16)).shape
    torch.Size([1, 16])
    """
    if wav.dim() == 1:
        return wav.unsqueeze(0)
    if wav.dim() == 2:
        return wav
    if wav.dim() == 3 and wav.shape[-1] == 1:
        return wav.squeeze(-1)
    if wav.dim() == 3 and wav.shape[1] == 1:
        return wav.squeeze(1)
    raise ValueError(
        f"{name}: expected [B, T], [B, T, 1] or [B, 1, T], got {tuple(wav.shape)}"
    )


def _show(length):
    """Relative lengths as a short string for error messages (6 significant digits)."""
    values = length.reshape(-1).tolist()
    shown = ", ".join(f"{v:.6g}" for v in values[:8]) + (", ..." if len(values) > 8 else "")
    return f"[{shown}]"


def valid_counts(length, num_samples, batch_size=None):
    """Number of valid samples of each item, from SpeechBrain relative lengths.

    Arguments
    ---------
    length : torch.Tensor or sequence of float
        Relative length of each item, ``[B]``, every value in (0, 1].
    num_samples : int
        Padded length ``T`` of the batch.
    batch_size : int, optional
        When given, ``length`` must hold exactly this many values.

    Returns
    -------
    torch.Tensor
        ``[B]`` int64, ``round(length * T)``, each in ``[1, T]``.

    Example
    -------
    >>> valid_counts(torch.tensor([1.0, 0.5, 0.26]), 10)
    tensor([10,  5,  3])
    >>> valid_counts([0.0, 1.0], 10)
    Traceback (most recent call last):
    ...
    ValueError: length must be relative lengths in (0, 1], one per item; Found: [0, 1]
    """
    if not torch.is_tensor(length):
        length = torch.as_tensor(length, dtype=torch.float64)
    if length.dim() != 1 or (batch_size is not None and length.shape[0] != batch_size):
        expected = "[B]" if batch_size is None else f"[{batch_size}]"
        raise ValueError(
            f"length must be a 1-D tensor of relative lengths, shape {expected}; "
            f"Found shape {tuple(length.shape)}: {_show(length)}"
        )
    if not length.is_floating_point():
        length = length.double()
    if not bool(((length > 0) & (length <= 1)).all()):
        raise ValueError(
            "length must be relative lengths in (0, 1], one per item; "
            f"Found: {_show(length)}"
        )
    counts = torch.round(length.double() * num_samples).long()
    if not bool((counts >= 1).all()):
        raise ValueError(
            f"length {_show(length)} leaves an item with no valid sample out of "
            f"{num_samples}; relative lengths must be at least 0.5 / {num_samples}"
        )
    return counts


def valid_mask(length, num_samples, batch_size=None, dtype=torch.bool, device=None):
    """Mask of the valid (non-padded) samples of a batch.

    Arguments
    ---------
    length : torch.Tensor or sequence of float
        Relative length of each item, ``[B]``, every value in (0, 1].
    num_samples : int
        Padded length ``T`` of the batch.
    batch_size : int, optional
        When given, ``length`` must hold exactly this many values.
    dtype : torch.dtype
        Type of the mask (bool by default; 1 marks a valid sample).
    device : torch.device or str, optional
        Device of the mask (default: that of ``length``).

    Returns
    -------
    torch.Tensor
        ``[B, T]``; item ``i`` is valid on its first ``round(length[i] * T)``
        samples (see :func:`valid_counts`).

    Example
    -------
    >>> valid_mask(torch.tensor([1.0, 0.5]), 4, dtype=torch.float32)
    tensor([[1., 1., 1., 1.],
            [1., 1., 0., 0.]])
    """
    counts = valid_counts(length, num_samples, batch_size)
    return length_to_mask(counts, max_len=num_samples, dtype=dtype, device=device)
