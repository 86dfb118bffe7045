"""B-spline basis and the KAN layer, as pure functions plus a thin module.

A KAN layer (Liu et al., 2024) computes, for every output o,

    y_o = Σ_i  w_b[o, i] · SiLU(x_i)  +  Σ_i Σ_c  (w_s[o, i, c] · s[o, i]) · B_c(x_i)

with ``B_c`` the ``G + k`` B-spline bases of order ``k`` on a uniform grid of
``G`` intervals over ``grid_range``, extended by ``k`` knots on both sides, and
``s`` an optional per-edge scaler (``enable_scale_spline``).

Speed matters here: the target network is evaluated on 32,768 time points per
clip thousands of times. The basis is therefore evaluated in closed form on the
uniform grid: an input x lies in one knot interval ``c`` at local position
``f ∈ [0, 1)``, only ``k + 1`` bases are non-zero there, and their values are
the cardinal B-spline pieces in ``f`` (a local recursion over k + 1 numbers, not
Cox–de Boor over all knots). The SiLU branch and the bases are written into one
feature tensor ``[..., in, 1 + G + k]`` so that the whole layer is a single
matrix product with the combined weight ``[out, in, 1 + G + k]``. The backward
pass is written by hand: it saves only the layer input and recomputes the k + 1
local derivatives, instead of keeping autograd's intermediates.
"""

import math

import torch


def _cardinal_pieces(f, k):
    """Values and derivatives (in knot units) of the k + 1 non-zero bases.

    ``f`` is the local coordinate ``[...]`` in the knot interval; entry r
    belongs to basis ``cell - k + r``. Orders 1-3 use their closed-form
    polynomials; other orders the local cardinal recursion
    N^d_r = ((f + d - r) N^{d-1}_{r-1} + (r + 1 - f) N^{d-1}_r) / d.
    """
    g = 1 - f
    if k == 0:
        return torch.ones_like(f).unsqueeze(-1), torch.zeros_like(f).unsqueeze(-1)
    if k == 1:
        return torch.stack([g, f], -1), torch.stack([-torch.ones_like(f), torch.ones_like(f)], -1)
    if k == 2:
        v0, v2 = 0.5 * g * g, 0.5 * f * f
        return torch.stack([v0, 1 - v0 - v2, v2], -1), torch.stack([-g, g - f, f], -1)
    if k == 3:
        f2, g2 = f * f, g * g
        v0, v3 = g2 * g / 6, f2 * f / 6
        v1 = 0.5 * f2 * f - f2 + 2.0 / 3.0
        d0, d3 = -0.5 * g2, 0.5 * f2
        d1 = 1.5 * f2 - 2 * f
        return (
            torch.stack([v0, v1, 1 - v0 - v1 - v3, v3], -1),
            torch.stack([d0, d1, -d0 - d1 - d3, d3], -1),
        )
    f = f.unsqueeze(-1)
    vals = torch.ones_like(f)
    for d in range(1, k + 1):
        prev = vals
        r = torch.arange(d + 1, dtype=f.dtype, device=f.device)
        left = torch.nn.functional.pad(prev, (1, 0))  # N^{d-1}_{r-1}
        right = torch.nn.functional.pad(prev, (0, 1))  # N^{d-1}_r
        vals = ((f + d - r) * left + (r + 1 - f) * right) / d
    # dB_{j,k}/du = B_{j,k-1} - B_{j+1,k-1} on a uniform grid.
    derivs = torch.nn.functional.pad(prev, (1, 0)) - torch.nn.functional.pad(prev, (0, 1))
    return vals, derivs


def _local_bases(x, grid_size, spline_order, grid_range, with_derivs=False):
    """Feature slots, values and (optionally) dB/dx of the k + 1 non-zero bases.

    Returns ``(slot, values, derivs)``, each ``[..., k + 1]``: ``slot`` is the
    position of each value in the feature layout (1 + basis index; 0 for a
    basis outside the set or an input outside the extended grid, whose value
    is then 0), ``derivs`` is None unless asked for.
    """
    k = spline_order
    lo, hi = grid_range
    h = (hi - lo) / grid_size
    u = x * (1.0 / h) + (k - lo / h)  # position in knot units from the first extended knot
    cell = torch.floor(u)
    inside = (u >= 0) & (u < grid_size + 2 * k)
    f = u - cell
    vals, derivs = _cardinal_pieces(f, k)
    # Basis index j = cell - k + r; slot = j + 1 within [1, G + k], else 0.
    slot = (cell.to(torch.int64) + (1 - k)).unsqueeze(-1) + torch.arange(k + 1, device=x.device)
    valid = (slot >= 1) & (slot <= grid_size + k) & inside.unsqueeze(-1)
    slot = slot * valid
    vals = vals * valid
    if with_derivs:
        derivs = derivs * (valid * (1.0 / h))
    else:
        derivs = None
    return slot, vals, derivs


def _kan_features_impl(x, grid_size, spline_order, grid_range):
    """Features ``[..., in, 1 + G + k]`` (SiLU first, then the bases), no grad."""
    slot, vals, _ = _local_bases(x, grid_size, spline_order, grid_range)
    feats = x.new_zeros(*x.shape, 1 + grid_size + spline_order)
    # Invalid entries all point at slot 0 with value 0; slot 0 is overwritten.
    feats.scatter_(-1, slot, vals)
    feats[..., 0] = torch.nn.functional.silu(x)
    return feats


class _KANFeatures(torch.autograd.Function):
    """Autograd function for :func:`kan_features` with a hand-written backward."""

    @staticmethod
    def forward(ctx, x, grid_size, spline_order, grid_range):
        ctx.save_for_backward(x)
        ctx.config = (grid_size, spline_order, grid_range)
        return _kan_features_impl(x, grid_size, spline_order, grid_range)

    @staticmethod
    def backward(ctx, grad_feats):
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        (x,) = ctx.saved_tensors
        slot, _, derivs = _local_bases(x, *ctx.config, with_derivs=True)
        sig = torch.sigmoid(x)
        grad_x = grad_feats[..., 0] * (sig * (1 + x * (1 - sig)))
        grad_x = grad_x + (torch.gather(grad_feats, -1, slot) * derivs).sum(-1)
        return grad_x, None, None, None


def kan_features(x, grid_size=10, spline_order=2, grid_range=(-1.0, 1.0)):
    """Evaluate SiLU(x) and the uniform-grid B-spline bases of every input.

    Arguments
    ---------
    x : torch.Tensor
        Inputs ``[..., in]``.
    grid_size : int
        Number of grid intervals G over ``grid_range``.
    spline_order : int
        B-spline order k (2 = quadratic, 3 = cubic).
    grid_range : tuple of float
        ``(low, high)`` of the grid; the knots extend k intervals beyond it and
        inputs outside the extended grid get zero bases (SiLU branch only).

    Returns
    -------
    torch.Tensor
        ``[..., in, 1 + G + k]``: index 0 is SiLU(x), index 1 + j is B_j(x).

    Example
    -------
    >>> feats = kan_features(torch.tensor([[0.1, -0.5]]), grid_size=4, spline_order=2)
    >>> feats.shape
    torch.Size([1, 2, 7])
    >>> round(float(feats[0, 0, 1:].sum()), 4)  # partition of unity inside the grid
    1.0
    """
    return _KANFeatures.apply(x, int(grid_size), int(spline_order), tuple(grid_range))


def bspline_basis(x, grid_size=10, spline_order=2, grid_range=(-1.0, 1.0)):
    """The ``G + k`` B-spline bases of every input, in closed form.

    Arguments
    ---------
    x : torch.Tensor
        Inputs ``[..., in]``.
    grid_size : int
        Number of grid intervals G.
    spline_order : int
        B-spline order k.
    grid_range : tuple of float
        ``(low, high)`` of the grid.

    Returns
    -------
    torch.Tensor
        ``[..., in, G + k]``.

    Example
    -------
    >>> bspline_basis(torch.zeros(1, 1), grid_size=2, spline_order=1)
    tensor([[[0., 1., 0.]]])
    """
    return kan_features(x, grid_size, spline_order, grid_range)[..., 1:]


def uniform_knots(grid_size, spline_order, grid_range=(-1.0, 1.0)):
    """The extended uniform knot vector: ``G + 2k + 1`` knots.

    Example
    -------
    >>> uniform_knots(2, 1)
    tensor([-2., -1.,  0.,  1.,  2.])
    """
    lo, hi = grid_range
    h = (hi - lo) / grid_size
    steps = torch.arange(-spline_order, grid_size + spline_order + 1, dtype=torch.float64)
    return (lo + h * steps).to(torch.float32)


def combine_weights(base_weight, spline_weight, spline_scaler=None):
    """Stack the SiLU and spline weights into one ``[..., out, in, 1 + G + k]`` tensor.

    Arguments
    ---------
    base_weight : torch.Tensor
        ``[..., out, in]``.
    spline_weight : torch.Tensor
        ``[..., out, in, G + k]``.
    spline_scaler : torch.Tensor or None
        ``[..., out, in]`` per-edge scale of the spline, or None.

    Example
    -------
    >>> combine_weights(torch.ones(3, 2), torch.ones(3, 2, 5), 2 * torch.ones(3, 2))[0, 0]
    tensor([1., 2., 2., 2., 2., 2.])
    """
    if spline_scaler is not None:
        spline_weight = spline_weight * spline_scaler.unsqueeze(-1)
    return torch.cat([base_weight.unsqueeze(-1), spline_weight], dim=-1)


def kan_layer(x, weight, grid_size=10, spline_order=2, grid_range=(-1.0, 1.0)):
    """Apply a KAN layer with one weight set per batch item.

    Arguments
    ---------
    x : torch.Tensor
        Inputs ``[Bx, N, in]`` where ``Bx`` is 1 (shared inputs, e.g. the
        encoded time grid) or equals B.
    weight : torch.Tensor
        Combined weights ``[B, out, in, 1 + G + k]`` (see :func:`combine_weights`).
    grid_size, spline_order, grid_range
        As in :func:`kan_features`.

    Returns
    -------
    torch.Tensor
        ``[B, N, out]``.

    Example
    -------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> w = torch.randn(3, 4, 2, 1 + 5 + 2)
    >>> kan_layer(torch.rand(1, 16, 2), w, grid_size=5).shape
    torch.Size([3, 16, 4])
    """
    batch, out_features, in_features, width = weight.shape
    if x.dim() != 3 or x.shape[-1] != in_features or x.shape[0] not in (1, batch):
        raise ValueError(
            f"expected inputs [1 or {batch}, N, {in_features}], got {tuple(x.shape)}"
        )
    if width != 1 + grid_size + spline_order:
        raise ValueError(
            f"weight has {width} coefficients per edge, expected 1 + G + k = "
            f"{1 + grid_size + spline_order}"
        )
    feats = kan_features(x, grid_size, spline_order, grid_range)  # [Bx, N, in, 1+G+k]
    n_points = x.shape[1]
    feats = feats.reshape(x.shape[0], n_points, in_features * width)
    weight = weight.reshape(batch, out_features, in_features * width)
    if x.shape[0] == 1 and batch > 1:
        # One GEMM for all weight sets: [N, F] @ [F, B*out].
        y = feats[0] @ weight.reshape(batch * out_features, -1).transpose(0, 1)
        return y.view(n_points, batch, out_features).transpose(0, 1)
    return torch.matmul(feats, weight.transpose(1, 2))


def spline_fit_coefficients(x, y, grid_size, spline_order, grid_range=(-1.0, 1.0)):
    """Least-squares spline coefficients that interpolate ``y`` at ``x``.

    Arguments
    ---------
    x : torch.Tensor
        Sample points ``[n, in]``.
    y : torch.Tensor
        Target values ``[n, in, out]``.

    Returns
    -------
    torch.Tensor
        ``[out, in, G + k]``.

    Example
    -------
    >>> x = torch.linspace(-1, 1, 9).unsqueeze(-1)
    >>> coef = spline_fit_coefficients(x, torch.ones(9, 1, 1), 4, 2)
    >>> torch.allclose(bspline_basis(x, 4, 2)[:, 0] @ coef[0, 0], torch.ones(9), atol=1e-4)
    True
    """
    basis = bspline_basis(x, grid_size, spline_order, grid_range)  # [n, in, G+k]
    solution = torch.linalg.lstsq(basis.transpose(0, 1), y.transpose(0, 1)).solution
    return solution.permute(2, 0, 1).contiguous()  # [out, in, G+k]


class KANLayer(torch.nn.Module):
    """One KAN layer holding its own weights (efficient-kan's parametrisation).

    Arguments
    ---------
    in_features : int
        Input width.
    out_features : int
        Output width.
    grid_size : int
        Grid intervals G.
    spline_order : int
        B-spline order k.
    grid_range : tuple of float
        Grid range.
    enable_scale_spline : bool
        Keep a separate per-edge spline scaler (the paper's "scale spline" flag).
    scale_noise : float
        Amplitude of the noise the spline is initialised to fit.
    scale_base : float
        Scale of the SiLU-branch initialisation.
    scale_spline : float
        Scale of the spline scaler initialisation.

    Example
    -------
    >>> layer = KANLayer(3, 4, grid_size=5, spline_order=3)
    >>> layer(torch.rand(2, 7, 3)).shape
    torch.Size([2, 7, 4])
    """

    def __init__(
        self,
        in_features,
        out_features,
        grid_size=10,
        spline_order=2,
        grid_range=(-1.0, 1.0),
        enable_scale_spline=True,
        scale_noise=0.1,
        scale_base=1.0,
        scale_spline=1.0,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.grid_size = grid_size
        self.spline_order = spline_order
        self.grid_range = tuple(grid_range)
        self.base_weight = torch.nn.Parameter(torch.empty(out_features, in_features))
        self.spline_weight = torch.nn.Parameter(
            torch.empty(out_features, in_features, grid_size + spline_order)
        )
        self.spline_scaler = None
        if enable_scale_spline:
            self.spline_scaler = torch.nn.Parameter(torch.empty(out_features, in_features))
        init_kan_weights(
            self.base_weight, self.spline_weight, self.spline_scaler,
            grid_size, spline_order, self.grid_range, scale_noise, scale_base, scale_spline,
        )

    def forward(self, x):
        """Apply the layer to ``x`` ``[..., in]`` → ``[..., out]``."""
        lead = x.shape[:-1]
        weight = combine_weights(self.base_weight, self.spline_weight, self.spline_scaler)
        y = kan_layer(
            x.reshape(1, -1, self.in_features), weight.unsqueeze(0),
            self.grid_size, self.spline_order, self.grid_range,
        )
        return y.reshape(*lead, self.out_features)


@torch.no_grad()
def init_kan_weights(
    base_weight, spline_weight, spline_scaler, grid_size, spline_order,
    grid_range, scale_noise, scale_base, scale_spline,
):
    """Initialise one KAN layer's weights in place (efficient-kan's scheme).

    The SiLU weights and the scaler are Kaiming-uniform; the spline
    coefficients are a least-squares fit to small noise at the grid points.

    Example
    -------
    >>> bw, sw, ss = torch.empty(2, 3), torch.empty(2, 3, 6), torch.empty(2, 3)
    >>> init_kan_weights(bw, sw, ss, 4, 2, (-1.0, 1.0), 0.1, 1.0, 1.0)
    >>> bool(bw.abs().max() <= 1 / math.sqrt(3))
    True
    """
    out_features, in_features = base_weight.shape
    torch.nn.init.kaiming_uniform_(base_weight, a=math.sqrt(5) * scale_base)
    lo, hi = grid_range
    points = torch.linspace(lo, hi, grid_size + 1).unsqueeze(-1).expand(-1, in_features)
    noise = (torch.rand(grid_size + 1, in_features, out_features) - 0.5) * scale_noise / grid_size
    coef = spline_fit_coefficients(points, noise, grid_size, spline_order, grid_range)
    # Without a separate scaler the scale folds into the coefficients.
    spline_weight.copy_(coef * (1.0 if spline_scaler is not None else scale_spline))
    if spline_scaler is not None:
        torch.nn.init.kaiming_uniform_(spline_scaler, a=math.sqrt(5) * scale_spline)
