"""Input encodings of the time coordinate for audio INRs.

Two encodings lift the scalar time ``t`` (in [-1, 1]) to a feature vector before
the first layer of a target network:

* :class:`PositionalEncoding` — NeRF's fixed sinusoids at octave frequencies,
  also used in front of the KAN target (the paper, Sec. 3).
* :class:`RandomFourierFeatures` — Tancik et al.'s random Gaussian frequencies.

Both hold their frequencies as buffers (not trained, not counted as parameters,
shared between all weight sets when a hypernetwork evaluates many clips), and
both accept ``[T, 1]`` or ``[B, T, 1]`` inputs.
"""

import math

import torch


def positional_encoding(t, freqs):
    """Evaluate the NeRF positional encoding.

    Arguments
    ---------
    t : torch.Tensor
        Time points ``[..., 1]``.
    freqs : torch.Tensor
        Angular frequencies ``[L]``.

    Returns
    -------
    torch.Tensor
        ``[..., 2L]``: all sines first, then all cosines (the authors' layout,
        not interleaved).

    Example
    -------
    >>> freqs = math.pi * 2.0 ** torch.arange(3)  # π, 2π, 4π
    >>> [f"{v:.4f}" for v in positional_encoding(torch.full((1, 1), 0.125), freqs)[0].tolist()]
    ['0.3827', '0.7071', '1.0000', '0.9239', '0.7071', '0.0000']
    """
    angles = t * freqs  # [..., L]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


class PositionalEncoding(torch.nn.Module):
    """NeRF positional encoding γ(t) with frequencies 2^j·π, j = 0..L-1.

    Arguments
    ---------
    length : int
        Number of frequencies L; the output has 2L features.

    Example
    -------
    >>> pe = PositionalEncoding(length=4)
    >>> pe(torch.rand(2, 16, 1)).shape
    torch.Size([2, 16, 8])
    >>> [f"{f / math.pi:.1f}" for f in pe.freqs.tolist()]  # in units of π
    ['1.0', '2.0', '4.0', '8.0']
    """

    def __init__(self, length=10):
        super().__init__()
        if length < 1:
            raise ValueError(f"encoding length must be >= 1, got {length}")
        self.length = length
        self.register_buffer(
            "freqs", math.pi * 2.0 ** torch.arange(length, dtype=torch.float32)
        )

    @property
    def output_dim(self):
        """Number of output features (2L)."""
        return 2 * self.length

    def forward(self, t):
        """Encode ``t`` ``[..., 1]`` to ``[..., 2L]``."""
        return positional_encoding(t, self.freqs)


def random_fourier_features(t, projection):
    """Evaluate random Fourier features ``[cos(2πBt), sin(2πBt)]``.

    Arguments
    ---------
    t : torch.Tensor
        Time points ``[..., 1]``.
    projection : torch.Tensor
        The random matrix B, ``[m, 1]``.

    Returns
    -------
    torch.Tensor
        ``[..., 2m]``, cosines first.

    Example
    -------
    >>> projection = torch.tensor([[1.0], [3.0]])  # 1 and 3 cycles per unit t
    >>> [f"{v:.4f}" for v in random_fourier_features(torch.full((1, 1), 0.125), projection)[0].tolist()]
    ['0.7071', '-0.7071', '0.7071', '0.7071']
    """
    angles = 2 * math.pi * t @ projection.transpose(0, 1)  # [..., m]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class RandomFourierFeatures(torch.nn.Module):
    """Random Fourier features with B ~ N(0, σ²) drawn once at construction.

    Arguments
    ---------
    num_features : int
        Output width 2m (must be even).
    sigma : float
        Standard deviation of the frequencies, in cycles per unit of t.
    seed : int or None
        Seed of the draw of B; ``None`` uses the global RNG.

    Example
    -------
    >>> rff = RandomFourierFeatures(num_features=8, sigma=10.0, seed=0)
    >>> rff(torch.rand(16, 1)).shape
    torch.Size([16, 8])
    >>> wide = RandomFourierFeatures(num_features=40000, sigma=10.0, seed=0)
    >>> f"{wide.projection.std().item():.1f}"  # σ, in cycles per unit t
    '10.0'
    """

    def __init__(self, num_features=90, sigma=1.0, seed=None):
        super().__init__()
        if num_features % 2 or num_features < 2:
            raise ValueError(f"num_features must be even and >= 2, got {num_features}")
        generator = None
        if seed is not None:
            generator = torch.Generator().manual_seed(seed)
        projection = torch.randn(num_features // 2, 1, generator=generator) * sigma
        self.register_buffer("projection", projection)

    @property
    def output_dim(self):
        """Number of output features (2m)."""
        return 2 * self.projection.shape[0]

    def forward(self, t):
        """Encode ``t`` ``[..., 1]`` to ``[..., 2m]``."""
        return random_fourier_features(t, self.projection)
