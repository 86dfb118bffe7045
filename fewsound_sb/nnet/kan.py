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

:func:`kan_layer` fuses the features and the matrix product into one autograd
function (``_KANLayer``) for orders k >= 2, with a layout that needs no mask:
inputs are clamped to the extended grid (every basis and its derivative vanish
at its ends for k >= 2), and each input's feature row has ``G + k + 3`` slots
(zero-weight slot, the bases, zero-weight slot, SiLU) so that the pieces of
bases outside ``[0, G + k)`` are clamped into a zero-weight slot. SiLU and the
k + 1 pieces are written with one scatter and read back in the backward with
one gather. On CPU the large buffers of a layer (features, their gradient, slot
indices) come from a small free list instead of fresh allocations: first-touch
page faults cost more than the work itself there (``clear_kan_workspace``
empties it). See ``bench/README.md`` for the measurements.

``kan_layer(..., compiled=True)`` (``KAN(compile=True)``) is an opt-in variant
(``_KANLayerCompiled``): the same fused structure, but the features are laid
out basis-major (``[..., 1 + G + k, in]``, no padding slots) and written by a
``torch.compile``'d dense kernel that selects each basis from the k + 1 local
pieces with ``where`` (Inductor turns it into one loop vectorised over the
inputs: no zero-fill, scatter or gather), and the input gradient is a
compiled dense reduction. It needs a working ``torch.compile`` (a C++
compiler on CPU) and compiles once per layer shape.
"""

import math
import os
import shutil
import threading

import torch
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)


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


# ---------------------------------------------------------------------------
# Fused layer (features + GEMM) for orders k >= 2
# ---------------------------------------------------------------------------
_FAST_MIN_ORDER = 2


class _Workspace:
    """Free list of large CPU buffers reused across calls (features, their gradient).

    Fresh multi-megabyte CPU tensors are page-faulted in on first touch, which
    costs several times the arithmetic done on them; reusing released buffers
    avoids that. Buffers are matched by element count, dtype, device and
    inference mode; at most ``max_buffers`` buffers and ``max_bytes`` bytes
    are kept (oldest dropped; default a quarter of the machine's memory). One
    fitting or training configuration uses two buffers per KAN layer (features
    and their gradient), so a process that alternates a few configurations
    (batch sizes, chunk lengths) keeps all of theirs. CUDA tensors bypass it
    (PyTorch's caching allocator already does this).
    """

    def __init__(self, max_buffers=32, max_bytes=None):
        self.max_buffers = max_buffers
        self.max_bytes = _quarter_of_memory() if max_bytes is None else max_bytes
        self._free = []
        self._lock = threading.Lock()

    @staticmethod
    def _key(numel, dtype, device):
        return numel, dtype, device, torch.is_inference_mode_enabled()

    def acquire(self, shape, like):
        """An uninitialised tensor of ``shape`` with ``like``'s dtype and device."""
        if like.device.type != "cpu":
            return like.new_empty(shape)
        key = self._key(math.prod(shape), like.dtype, like.device)
        with self._lock:
            for i, (k, buf) in enumerate(self._free):
                if k == key:
                    del self._free[i]
                    return buf.view(shape)
        return like.new_empty(shape)

    def release(self, buf):
        """Give ``buf`` back (the caller must not use it afterwards)."""
        if buf is None or buf.device.type != "cpu" or buf.is_inference() != torch.is_inference_mode_enabled():
            return
        key = self._key(buf.numel(), buf.dtype, buf.device)
        with self._lock:
            self._free.append((key, buf.reshape(-1)))
            kept = sum(b.numel() * b.element_size() for _, b in self._free)
            while self._free and (len(self._free) > self.max_buffers or kept > self.max_bytes):
                _, dropped = self._free.pop(0)
                kept -= dropped.numel() * dropped.element_size()

    def clear(self):
        """Drop every kept buffer."""
        with self._lock:
            self._free.clear()


def _quarter_of_memory():
    """A quarter of the physical memory in bytes (8 GiB where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


_WORKSPACE = _Workspace()


def clear_kan_workspace():
    """Free the CPU buffers :func:`kan_layer` keeps for reuse between calls.

    Example
    -------
    >>> clear_kan_workspace()
    """
    _WORKSPACE.clear()


def _cell_and_offset(u, grid_size, spline_order):
    """Cell (float, integral) and local coordinate f in [0, 1] of the clamped knot position u."""
    cell = u.floor().clamp_(max=grid_size + 2 * spline_order - 1)
    return cell, u - cell


def _knot_position(x, grid_size, spline_order, grid_range):
    """Position in knot units from the first extended knot, clamped to the extended grid.

    Inputs beyond the extended grid land on its ends (u = 0 or G + 2k), where
    every basis and its first derivative are 0 for k >= 2.
    """
    k = spline_order
    lo, hi = grid_range
    h = (hi - lo) / grid_size
    return torch.mul(x, 1.0 / h).add_(k - lo / h).clamp_(0.0, float(grid_size + 2 * k))


def _slots(cell, grid_size, spline_order):
    """Feature slots of the k + 1 pieces and of SiLU, slot-major: ``[k + 2, ..., in]`` int64.

    The feature row of one input has ``G + k + 3`` slots: a zero-weight slot,
    the ``G + k`` bases, a second zero-weight slot, then SiLU. Piece r of cell c
    (basis ``j = c - k + r``) goes to slot ``1 + j`` clamped to
    ``[0, G + k + 1]``, so the pieces of bases that do not exist (first and last
    k cells) land in a zero-weight slot without any mask. The buffer comes from
    the workspace (release it after use).
    """
    k, n_bases = spline_order, grid_size + spline_order
    cell = cell.to(torch.int64)
    slots = _WORKSPACE.acquire((k + 2, *cell.shape), cell)
    offsets = torch.arange(1 - k, 2, device=cell.device).view(-1, *([1] * cell.dim()))
    torch.add(cell.unsqueeze(0).expand(k + 1, *cell.shape), offsets, out=slots[: k + 1])
    slots[: k + 1].clamp_(0, n_bases + 1)
    slots[k + 1].fill_(n_bases + 2)
    return slots


def _last_dim(t):
    """View a slot-major ``[S, ...]`` tensor as ``[..., S]`` (no copy)."""
    return t.permute(*range(1, t.dim()), 0)


def _piece_values(f, k):
    """The k + 1 non-zero basis values of a cell, as a list of tensors shaped like f."""
    if k == 2:
        g = 1 - f
        v0 = g.square().mul_(0.5)
        v2 = f.square().mul_(0.5)
        return [v0, 1 - v0 - v2, v2]
    if k == 3:
        g = 1 - f
        f2 = f.square()
        v0 = g.square().mul_(g).div_(6)
        v3 = f2 * f
        v1 = v3.mul(0.5).sub_(f2).add_(2.0 / 3.0)
        v3.div_(6)
        return [v0, v1, 1 - v0 - v1 - v3, v3]
    return list(_cardinal_pieces(f, k)[0].unbind(-1))


def _piece_derivatives(f, k):
    """d/du of the k + 1 pieces (knot units), as a list of tensors shaped like f."""
    if k == 2:
        return [f - 1, 1 - 2 * f, f]
    if k == 3:
        g = 1 - f
        f2 = f.square()
        d0 = g.square().mul_(-0.5)
        d3 = f2 * 0.5
        d1 = f2.mul(1.5).sub_(2 * f)
        return [d0, d1, -(d0 + d1 + d3), d3]
    return list(_cardinal_pieces(f, k)[1].unbind(-1))


def _write_features(feats, x, u, grid_size, spline_order):
    """Fill ``feats`` ``[..., in, G + k + 3]`` (layout: :func:`_slots`) with one scatter."""
    cell, f = _cell_and_offset(u, grid_size, spline_order)
    slots = _slots(cell, grid_size, spline_order)
    values = _WORKSPACE.acquire(slots.shape, x)
    torch.stack(_piece_values(f, spline_order) + [torch.nn.functional.silu(x)], 0, out=values)
    feats.zero_()
    feats.scatter_(-1, _last_dim(slots), _last_dim(values))
    _WORKSPACE.release(values)
    _WORKSPACE.release(slots)
    return feats


def _pad_weight(weight, grid_size, spline_order):
    """``[B, out, in, 1 + G + k]`` → ``[B, out, in, G + k + 3]`` in the fused layout."""
    n_bases = grid_size + spline_order
    wz = weight.new_zeros(*weight.shape[:-1], n_bases + 3)
    wz[..., 1: n_bases + 1] = weight[..., 1:]
    wz[..., n_bases + 2] = weight[..., 0]
    return wz


def _weight_gemm_grad(grad_y, gy, flat, shared):
    """Gradient of the combined weight: ``[B, out, F]`` from the layer's features ``flat``."""
    return torch.mm(gy.t(), flat[0]) if shared else torch.bmm(grad_y.transpose(1, 2), flat)


def _feature_gemm_grad(grad_y, gy, weight, shared, out, n_points, n_feat):
    """Gradient of the features, written into ``out`` (``weight``: ``[B, out, F]``)."""
    if shared:
        batch_out = weight.shape[0] * weight.shape[1]
        torch.mm(gy, weight.reshape(batch_out, n_feat), out=out.view(n_points, n_feat))
    else:
        torch.bmm(grad_y, weight, out=out.view(grad_y.shape[0], n_points, n_feat))
    return out


class _KANLayer(torch.autograd.Function):
    """Features and GEMM of :func:`kan_layer` in one function, k >= 2.

    Saves the input, its clamped knot position and the feature tensor; the
    backward produces the weight gradient with one GEMM and the input gradient
    with one GEMM plus one gather of the k + 2 slots each input uses.
    """

    @staticmethod
    def forward(ctx, x, weight, grid_size, spline_order, grid_range):
        batch, out_features, in_features, width = weight.shape
        bx, n_points = x.shape[0], x.shape[1]
        padded = grid_size + spline_order + 3
        n_feat = in_features * padded
        wz = _pad_weight(weight, grid_size, spline_order).view(batch, out_features, n_feat)
        u = _knot_position(x, grid_size, spline_order, grid_range)
        feats = _WORKSPACE.acquire((bx, n_points, in_features, padded), x)
        _write_features(feats, x, u, grid_size, spline_order)
        flat = feats.view(bx, n_points, n_feat)
        if bx == 1 and batch > 1:
            # One GEMM for all weight sets: [N, F] @ [F, B*out].
            y = torch.mm(flat[0], wz.view(batch * out_features, n_feat).t())
            y = y.view(n_points, batch, out_features).transpose(0, 1)
        else:
            y = torch.bmm(flat, wz.transpose(1, 2))  # [B, N, out]
        if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
            _WORKSPACE.release(feats)
            return y
        ctx.config = (grid_size, spline_order, grid_range, width)
        ctx.feats = feats
        ctx.save_for_backward(x, wz, u)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, wz, u = ctx.saved_tensors
        grid_size, spline_order, grid_range, width = ctx.config
        batch, out_features, n_feat = wz.shape
        bx, n_points, in_features = x.shape
        n_bases = grid_size + spline_order
        padded = n_bases + 3
        feats = ctx.feats
        if feats is None:  # a second backward (retain_graph): rebuild the features
            feats = _write_features(x.new_empty(bx, n_points, in_features, padded), x, u, grid_size, spline_order)
        flat = feats.view(bx, n_points, n_feat)
        shared = bx == 1 and batch > 1
        if shared:
            gy = grad_y.transpose(0, 1).reshape(n_points, batch * out_features)  # [N, B*out]
        grad_x = grad_w = None
        if ctx.needs_input_grad[1]:
            gwz = _weight_gemm_grad(grad_y, gy if shared else None, flat, shared)
            gwz = gwz.view(batch, out_features, in_features, padded)
            grad_w = torch.cat([gwz[..., n_bases + 2:], gwz[..., 1: n_bases + 1]], dim=-1)
        if ctx.feats is not None:
            ctx.feats = None
            _WORKSPACE.release(feats)
        if ctx.needs_input_grad[0]:
            grad_feats = _WORKSPACE.acquire((bx, n_points, in_features, padded), x)
            _feature_gemm_grad(grad_y, gy if shared else None, wz, shared, grad_feats, n_points, n_feat)
            cell, f = _cell_and_offset(u, grid_size, spline_order)
            slots = _slots(cell, grid_size, spline_order)
            used = _WORKSPACE.acquire(slots.shape, x)  # [k+2, ..., in]: the gradient at each slot
            torch.gather(grad_feats, -1, _last_dim(slots), out=_last_dim(used))
            _WORKSPACE.release(slots)
            _WORKSPACE.release(grad_feats)
            inv_h = (grid_size / (grid_range[1] - grid_range[0]))
            grad_x = torch.ops.aten.silu_backward(used[-1], x)
            for r, deriv in enumerate(_piece_derivatives(f, spline_order)):
                grad_x.addcmul_(used[r], deriv, value=inv_h)
            _WORKSPACE.release(used)
        return grad_x, grad_w, None, None, None


# ---------------------------------------------------------------------------
# Opt-in compiled layer (torch.compile'd dense feature kernels), k >= 2
# ---------------------------------------------------------------------------
def _dense_select(f, cell, grid_size, spline_order, pieces):
    """``[..., G + k, in]``: basis j of each input takes piece ``k - (cell - j)``, else 0.

    Basis-major (the input index innermost) so that compiled loops vectorise
    over the inputs.
    """
    j = torch.arange(grid_size + spline_order, device=f.device, dtype=f.dtype).unsqueeze(-1)
    d = cell.unsqueeze(-2) - j
    out = torch.zeros_like(d)
    for r, piece in enumerate(pieces):
        out = torch.where(d == float(spline_order - r), piece.unsqueeze(-2), out)
    return out


def _dense_position(x, grid_size, spline_order, grid_range):
    """(cell, f) of the clamped knot position (as in ``_KANLayer``; k >= 2)."""
    k = spline_order
    lo, hi = grid_range
    h = (hi - lo) / grid_size
    u = torch.clamp(x * (1.0 / h) + (k - lo / h), 0.0, float(grid_size + 2 * k))
    cell = torch.clamp(torch.floor(u), max=float(grid_size + 2 * k - 1))
    return cell, u - cell


def _dense_features_into(out, x, grid_size, spline_order, grid_range):
    """Features of ``x`` ``[..., in]`` stored into ``out`` ``[..., 1 + G + k, in]`` (SiLU row first).

    Compiled, this is one fused loop writing the buffer (no zero-fill, scatter
    or temporary).
    """
    cell, f = _dense_position(x, grid_size, spline_order, grid_range)
    out[..., 0, :].copy_(torch.nn.functional.silu(x))
    out[..., 1:, :].copy_(_dense_select(f, cell, grid_size, spline_order, _piece_values(f, spline_order)))


def _dense_grad_x(x, grad_feats, grid_size, spline_order, grid_range):
    """dL/dx ``[..., in]`` from dL/dfeatures ``[..., 1 + G + k, in]`` (a dense reduction over the bases)."""
    cell, f = _dense_position(x, grid_size, spline_order, grid_range)
    derivs = _dense_select(f, cell, grid_size, spline_order, _piece_derivatives(f, spline_order))
    sig = torch.sigmoid(x)
    grad_x = grad_feats[..., 0, :] * (sig * (1 + x * (1 - sig)))
    inv_h = grid_size / (grid_range[1] - grid_range[0])
    return grad_x + (grad_feats[..., 1:, :] * derivs).sum(-2) * inv_h


class _KANLayerCompiled(torch.autograd.Function):
    """:func:`kan_layer` with ``compiled=True``: compiled feature and input-gradient kernels.

    Same structure as ``_KANLayer`` (features and GEMM in one function, one GEMM
    each for output, weight gradient and feature gradient, CPU buffers from the
    workspace), but the features are laid out basis-major, ``[..., 1 + G + k, in]``
    (no padding slots), and written by a ``torch.compile``'d dense kernel
    (:func:`_dense_features_into`); the input gradient is a compiled dense
    reduction (:func:`_dense_grad_x`) instead of a gather.
    """

    @staticmethod
    def forward(ctx, x, weight, grid_size, spline_order, grid_range):
        batch, out_features, in_features, width = weight.shape
        bx, n_points = x.shape[0], x.shape[1]
        n_feat = in_features * width
        wf = weight.transpose(-1, -2).reshape(batch, out_features, n_feat)  # basis-major
        feats = _WORKSPACE.acquire((bx, n_points, width, in_features), x)
        compiled_function(_dense_features_into)(feats, x, grid_size, spline_order, grid_range)
        flat = feats.view(bx, n_points, n_feat)
        if bx == 1 and batch > 1:
            y = torch.mm(flat[0], wf.view(batch * out_features, n_feat).t())
            y = y.view(n_points, batch, out_features).transpose(0, 1)
        else:
            y = torch.bmm(flat, wf.transpose(1, 2))
        if not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
            _WORKSPACE.release(feats)
            return y
        ctx.config = (grid_size, spline_order, grid_range)
        ctx.feats = feats
        ctx.save_for_backward(x, wf)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, wf = ctx.saved_tensors
        grid_size, spline_order, grid_range = ctx.config
        batch, out_features, n_feat = wf.shape
        bx, n_points, in_features = x.shape
        width = n_feat // in_features
        feats = ctx.feats
        if feats is None:  # a second backward (retain_graph): rebuild the features
            feats = x.new_empty(bx, n_points, width, in_features)
            _dense_features_into(feats, x, grid_size, spline_order, grid_range)
        flat = feats.view(bx, n_points, n_feat)
        shared = bx == 1 and batch > 1
        if shared:
            gy = grad_y.transpose(0, 1).reshape(n_points, batch * out_features)
        grad_x = grad_w = None
        if ctx.needs_input_grad[1]:
            gw = _weight_gemm_grad(grad_y, gy if shared else None, flat, shared)
            grad_w = gw.view(batch, out_features, width, in_features).transpose(-1, -2)
        if ctx.feats is not None:
            ctx.feats = None
            _WORKSPACE.release(feats)
        if ctx.needs_input_grad[0]:
            gf = _WORKSPACE.acquire((bx, n_points, width, in_features), x)
            _feature_gemm_grad(grad_y, gy if shared else None, wf, shared, gf, n_points, n_feat)
            grad_x = compiled_function(_dense_grad_x)(x, gf, grid_size, spline_order, grid_range)
            _WORKSPACE.release(gf)
        return grad_x, grad_w, None, None, None


# Each input shape and order is a separate specialisation (dynamic=False: static
# shapes vectorise best); dynamo's default recompile limit (8 per function) is
# too small for the layers of a few networks.
_RECOMPILE_LIMIT = 64
_COMPILED = {}


def compile_available(device="cpu"):
    """Whether the compiled KAN path can run: ``torch.compile`` exists and, on CPU, a C++ compiler.

    Inductor builds CPU kernels with the compiler named by ``$CXX`` (else
    ``g++``, ``c++`` or ``clang++`` on the PATH); CUDA kernels need only Triton,
    which comes with CUDA builds of torch.

    Arguments
    ---------
    device : str or torch.device
        Where the layers run.

    Returns
    -------
    bool

    Example
    -------
    >>> compile_available()
    True
    """
    if not (hasattr(torch, "compile") and hasattr(torch, "_dynamo")):
        return False
    if torch.device(device).type == "cuda":
        return True
    names = [os.environ.get("CXX"), "g++", "c++", "clang++"]
    return any(shutil.which(name) for name in names if name)


COMPILE_MODES = ("auto", True, False)


def resolve_compile(compile, device="cpu", who="KAN"):
    """The path to use (True: compiled, False: eager) for a ``compile`` setting, logged once.

    Arguments
    ---------
    compile : bool or str
        True / "true": the compiled path (for the KAN,
        ``kan_layer(..., compiled=True)``); False / "false": the eager path;
        "auto": compiled where :func:`compile_available` says a compiler
        works, eager otherwise.
    device : str or torch.device
        Where the layers run.
    who : str
        Name used in the log line.

    Returns
    -------
    bool
        Whether the compiled path is used.

    Example
    -------
    >>> resolve_compile("false"), resolve_compile(True)
    (False, True)
    >>> resolve_compile("auto") == compile_available()
    True
    """
    mode = compile.lower() if isinstance(compile, str) else bool(compile)
    mode = {"true": True, "false": False}.get(mode, mode)
    if mode not in COMPILE_MODES:
        raise ValueError(f"{who}: compile must be 'auto', true or false, got {compile!r}")
    use = compile_available(device) if mode == "auto" else mode
    key = (who, mode, use, torch.device(device).type)
    if key not in _LOGGED:
        _LOGGED.add(key)
        logger.info(
            "%s: %s path (compile=%s)", who,
            "torch.compile'd" if use else "eager", mode if mode != "auto" else "auto: "
            + ("a compiler works" if use else "no working compiler"),
        )
    return use


_LOGGED = set()


def compiled_function(fn):
    """``torch.compile(fn)`` (static shapes), built once per function, with a larger recompile limit.

    Arguments
    ---------
    fn : callable
        A plain function (or a class's unbound method).

    Returns
    -------
    callable
        The compiled function; the same object on every call for ``fn``.

    Example
    -------
    >>> compiled_function(torch.sin) is compiled_function(torch.sin)
    True
    """
    if fn not in _COMPILED:
        compiled = torch.compile(fn, dynamic=False)
        _COMPILED[fn] = torch._dynamo.config.patch(
            recompile_limit=max(_RECOMPILE_LIMIT, torch._dynamo.config.recompile_limit)
        )(compiled)
    return _COMPILED[fn]


def kan_layer(x, weight, grid_size=10, spline_order=2, grid_range=(-1.0, 1.0), compiled=False):
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
    compiled : bool
        Opt-in: for k >= 2, build the features and the input gradient with
        ``torch.compile``'d dense kernels (``_KANLayerCompiled``) instead of
        the scatter/gather of ``_KANLayer``. The first call per shape compiles
        (~10-30 s on CPU, which needs a C++ compiler); same outputs and
        gradients up to float rounding. Ignored for k < 2.

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
    if compiled and spline_order >= _FAST_MIN_ORDER:
        grid_range = tuple(float(v) for v in grid_range)
        return _KANLayerCompiled.apply(x, weight, int(grid_size), int(spline_order), grid_range)
    if spline_order >= _FAST_MIN_ORDER:
        return _KANLayer.apply(x, weight, int(grid_size), int(spline_order), tuple(grid_range))
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
