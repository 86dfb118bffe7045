"""The KAN INR implementations the benchmark compares, all with one weight set.

Every implementation is the same network: NeRF positional encoding of t
(``encoding_length`` frequencies, from :mod:`fewsound_sb.nnet.encoding`), then
KAN layers ``[2L, *hidden, 1]`` with a SiLU branch and a B-spline branch, and
can be loaded with the weights of ours (:class:`fewsound_sb.nnet.inr.KAN`), so
that the benchmark also checks they compute the same function:

* ``ours`` — ``build_inr("kan", compile=False)``: closed-form uniform-grid basis (k + 1 local
  pieces), fused SiLU + basis feature tensor, hand-written backward, one GEMM
  per layer.
* ``ours-compiled`` — ``build_inr("kan", compile=True)``: the same fused layer
  with the opt-in ``torch.compile``'d dense feature and input-gradient kernels
  (``kan_layer(..., compiled=True)``); the first call per shape compiles.
* ``ours-unfused`` — the previous ``kan_layer`` (before the bench work):
  :func:`fewsound_sb.nnet.kan.kan_features` (same closed-form basis and
  hand-written backward) followed by an autograd ``matmul``; kept to show what
  the fused layer gained.
* ``cox-de-boor`` — :class:`CoxDeBoorKANLayer`, efficient-kan's formulation written
  here: a knot buffer per input feature, the Cox–de Boor recursion over the whole
  extended knot vector (all G + k bases, k passes), ``F.linear`` on SiLU(x) plus
  ``F.linear`` on the flattened bases with the scaled spline weight. Autograd
  does the backward.
* ``flashkan`` / ``inkan`` — the PyPI packages' ``KANLayer`` (cubic only), stacked
  behind the same encoding. Neither has a per-edge spline scaler: the scaler is
  folded into their spline coefficients (``w_s * s``), which gives the same
  function with 2,412 fewer trainable parameters.
* ``pykan`` — pykan's ``KANLayer`` (not ``MultKAN``: its symbolic branch and node
  affines are identities at init and only add overhead), whose ``scale_base`` /
  ``scale_sp`` / ``coef`` map one to one onto ours.
* ``siren`` — the MLP floor: ``build_inr("siren", hidden_sizes=(94, 94, 94, 94, 70))``,
  33,699 parameters against KAN's 33,768 (Table 1's SIREN has 31,191).

Peer packages are optional: :func:`peer_available` says whether one imports.
"""

import importlib

import torch
import torch.nn.functional as F

from fewsound_sb.nnet.encoding import PositionalEncoding
from fewsound_sb.nnet.inr import KAN, build_inr
from fewsound_sb.nnet.kan import combine_weights, kan_features

PEERS = ("flashkan", "inkan", "pykan")
CUBIC_ONLY = ("flashkan", "inkan")
SIREN_HIDDEN = (94, 94, 94, 94, 70)


def peer_available(name):
    """Whether the peer package ``name`` (flashkan, inkan, pykan) imports."""
    module = {"pykan": "kan.KANLayer"}.get(name, name)
    try:
        importlib.import_module(module)
    except Exception:  # any import failure means "not installed" for the bench
        return False
    return True


def paper_kan(spline_order=2, **overrides):
    """Ours (eager layer path) at the paper's configuration (L=10, [48, 24, 12], G=10) and order k."""
    overrides.setdefault("compile", False)
    return build_inr("kan", spline_order=spline_order, **overrides)


def equal_size_siren():
    """The SIREN the bench uses as the MLP floor (33,699 parameters)."""
    return build_inr("siren", hidden_sizes=SIREN_HIDDEN)


def num_trainable(module):
    """Trainable parameter count (shared tensors counted once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------
# Cox–de Boor baseline (efficient-kan's formulation)
# ---------------------------------------------------------------------------
class CoxDeBoorKANLayer(torch.nn.Module):
    """One KAN layer evaluating all G + k bases by the Cox–de Boor recursion.

    Arguments
    ---------
    in_features, out_features : int
        Layer widths.
    grid_size : int
        Grid intervals G.
    spline_order : int
        B-spline order k.
    grid_range : tuple of float
        Range of the uniform grid (extended by k knots on both sides).
    """

    def __init__(self, in_features, out_features, grid_size=10, spline_order=2, grid_range=(-1.0, 1.0)):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.grid_size = grid_size
        self.spline_order = spline_order
        h = (grid_range[1] - grid_range[0]) / grid_size
        knots = torch.arange(-spline_order, grid_size + spline_order + 1, dtype=torch.float64) * h + grid_range[0]
        self.register_buffer("grid", knots.float().expand(in_features, -1).contiguous())  # (in, G+2k+1)
        self.base_weight = torch.nn.Parameter(torch.zeros(out_features, in_features))
        self.spline_weight = torch.nn.Parameter(torch.zeros(out_features, in_features, grid_size + spline_order))
        self.spline_scaler = torch.nn.Parameter(torch.ones(out_features, in_features))

    def b_splines(self, x):
        """Bases ``(batch, in, G + k)`` of ``x`` ``(batch, in)``."""
        grid = self.grid  # (in, G+2k+1)
        x = x.unsqueeze(-1)  # (batch, in, 1)
        bases = ((x >= grid[:, :-1]) & (x < grid[:, 1:])).to(x.dtype)  # (batch, in, G+2k)
        for k in range(1, self.spline_order + 1):
            bases = (x - grid[:, : -(k + 1)]) / (grid[:, k:-1] - grid[:, : -(k + 1)]) * bases[:, :, :-1] + (
                grid[:, k + 1:] - x
            ) / (grid[:, k + 1:] - grid[:, 1:(-k)]) * bases[:, :, 1:]  # (batch, in, G+2k-k)
        return bases.contiguous()  # (batch, in, G+k)

    def forward(self, x):
        """``(batch, in)`` → ``(batch, out)``."""
        base = F.linear(F.silu(x), self.base_weight)  # (batch, out)
        scaled = self.spline_weight * self.spline_scaler.unsqueeze(-1)  # (out, in, G+k)
        spline = F.linear(self.b_splines(x).view(x.shape[0], -1), scaled.view(self.out_features, -1))
        return base + spline


class LayeredKANINR(torch.nn.Module):
    """Positional encoding followed by a stack of KAN layers (any implementation).

    Arguments
    ---------
    encoding_length : int
        PE frequencies L.
    layers : list of torch.nn.Module
        Layers mapping ``(batch, in)`` to ``(batch, out)`` (or a tuple whose
        first entry is that, as pykan's).
    """

    def __init__(self, encoding_length, layers):
        super().__init__()
        self.encoding = PositionalEncoding(encoding_length)
        self.layers = torch.nn.ModuleList(layers)

    def forward(self, t):
        """``t`` ``[N, 1]`` → ``[N, 1]``."""
        x = self.encoding(t)  # (N, 2L)
        for layer in self.layers:
            x = layer(x)
            if isinstance(x, tuple):  # pykan returns (y, preacts, postacts, postspline)
                x = x[0]
        return x


def _layer_weights(ours, i):
    """(base_weight, spline_weight * scaler, scaler) of our layer i (detached)."""
    bw = getattr(ours, f"base_weight{i}").detach()
    sw = getattr(ours, f"spline_weight{i}").detach()
    ss = getattr(ours, f"spline_scaler{i}", None)
    ss = torch.ones_like(bw) if ss is None else ss.detach()
    return bw, sw, ss


class UnfusedKAN(KAN):
    """Ours with the previous layer: ``kan_features`` then ``matmul`` (autograd)."""

    def forward_params(self, t, params):
        x = self.encoding(t)  # [Bt, T, 2L]
        for i in range(self.n_layers):
            weight = combine_weights(
                params[f"base_weight{i}"], params[f"spline_weight{i}"], params.get(f"spline_scaler{i}")
            )  # [B, out, in, 1+G+k]
            feats = kan_features(x, self.grid_size, self.spline_order, self.grid_range)  # [Bx, N, in, 1+G+k]
            feats = feats.reshape(x.shape[0], x.shape[1], -1)
            x = torch.matmul(feats, weight.reshape(weight.shape[0], weight.shape[1], -1).transpose(1, 2))
        return x


def unfused_from(ours):
    """:class:`UnfusedKAN` with the weights and config of ``ours``."""
    net = UnfusedKAN(
        encoding_length=ours.encoding.length, hidden_sizes=ours.sizes[1:-1], grid_size=ours.grid_size,
        spline_order=ours.spline_order, grid_range=ours.grid_range, enable_scale_spline=ours.enable_scale_spline,
    )
    net.load_state_dict(ours.state_dict())
    return net


def compiled_from(ours):
    """Ours with ``compile=True`` (torch.compile'd feature kernels), same weights and config."""
    net = KAN(
        encoding_length=ours.encoding.length, hidden_sizes=ours.sizes[1:-1], grid_size=ours.grid_size,
        spline_order=ours.spline_order, grid_range=ours.grid_range, enable_scale_spline=ours.enable_scale_spline,
        compile=True,
    )
    net.load_state_dict(ours.state_dict())
    return net


def cox_de_boor_from(ours):
    """A :class:`CoxDeBoorKAN` INR with the weights (and config) of ``ours``."""
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(ours.sizes, ours.sizes[1:])):
        layer = CoxDeBoorKANLayer(fan_in, fan_out, ours.grid_size, ours.spline_order, ours.grid_range)
        bw, sw, ss = _layer_weights(ours, i)
        with torch.no_grad():
            layer.base_weight.copy_(bw)
            layer.spline_weight.copy_(sw)
            layer.spline_scaler.copy_(ss)
        layers.append(layer)
    return LayeredKANINR(ours.encoding.length, layers)


def flashkan_from(ours, compile_basis=True):
    """flashkan layers with the weights of ``ours`` (scaler folded in; cubic only)."""
    import flashkan.basis
    import flashkan.layer

    # flashkan always calls its torch.compile'd basis; the eager one is its own
    # "unfused version for testing" (used for tiny test runs, where compiling costs more).
    flashkan.layer.bspline_basis = flashkan.basis.bspline_basis if compile_basis else flashkan.basis.bspline_basis_eager
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(ours.sizes, ours.sizes[1:])):
        layer = flashkan.layer.KANLayer(
            fan_in, fan_out, grid_size=ours.grid_size, spline_order=ours.spline_order, grid_range=ours.grid_range
        )
        bw, sw, ss = _layer_weights(ours, i)
        with torch.no_grad():
            layer.base_weight.copy_(bw)
            layer.spline_weight.copy_(sw * ss.unsqueeze(-1))
        layers.append(layer)
    return LayeredKANINR(ours.encoding.length, layers)


def inkan_from(ours, compile_basis=True):
    """inkan layers with the weights of ``ours`` (scaler folded in; cubic only)."""
    import inkan.layer

    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(ours.sizes, ours.sizes[1:])):
        layer = inkan.layer.KANLayer(
            fan_in, fan_out, grid_size=ours.grid_size, spline_order=ours.spline_order,
            grid_range=ours.grid_range, compile_basis=compile_basis,
        )
        bw, sw, ss = _layer_weights(ours, i)
        with torch.no_grad():
            # Packed weight (out, in*(G+k) + in): [spline bases flattened | SiLU].
            layer.weight.copy_(torch.cat([(sw * ss.unsqueeze(-1)).reshape(fan_out, -1), bw], dim=1))
        layers.append(layer)
    return LayeredKANINR(ours.encoding.length, layers)


def pykan_from(ours):
    """pykan ``KANLayer`` stack with the weights of ``ours`` (exact mapping)."""
    from kan.KANLayer import KANLayer

    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(ours.sizes, ours.sizes[1:])):
        layer = KANLayer(
            in_dim=fan_in, out_dim=fan_out, num=ours.grid_size, k=ours.spline_order,
            grid_range=list(ours.grid_range), save_plot_data=False,
        )
        bw, sw, ss = _layer_weights(ours, i)
        with torch.no_grad():
            layer.coef.copy_(sw.permute(1, 0, 2))  # (in, out, G+k)
            layer.scale_base.copy_(bw.t())  # (in, out)
            layer.scale_sp.copy_(ss.t())  # (in, out)
            layer.mask.fill_(1.0)
        layers.append(layer)
    return LayeredKANINR(ours.encoding.length, layers)


IMPLEMENTATION_NOTES = {
    "ours": "fewsound_sb KAN: closed-form local basis, fused features, custom backward",
    "ours-compiled": "ours with compile=True: torch.compile'd dense feature / input-grad kernels, same GEMMs",
    "ours-unfused": "previous kan_layer: kan_features (closed form, custom backward) + autograd matmul",
    "cox-de-boor": "efficient-kan formulation (Cox-de Boor over all knots, autograd backward)",
    "flashkan": "flashkan.KANLayer (truncated-power basis, torch.compile), scaler folded in",
    "inkan": "inkan.KANLayer (local piecewise basis, torch.compile, packed weight), scaler folded in",
    "pykan": "pykan KANLayer (Cox-de Boor, per-edge [N,in,out] tensors)",
    "siren": "SIREN (94,94,94,94,70), equal-size MLP floor",
}


def build(name, ours, peer_compile=True):
    """Build implementation ``name`` holding the weights of ``ours`` (a KAN INR).

    Returns the module; ``name`` is one of ``ours``, ``ours-compiled``, ``ours-unfused``, ``cox-de-boor``,
    ``flashkan``, ``inkan``, ``pykan``, ``siren`` (the SIREN has its own weights).
    """
    if name == "ours":
        return ours
    if name == "ours-compiled":
        return compiled_from(ours)
    if name == "ours-unfused":
        return unfused_from(ours)
    if name == "cox-de-boor":
        return cox_de_boor_from(ours)
    if name == "flashkan":
        return flashkan_from(ours, compile_basis=peer_compile)
    if name == "inkan":
        return inkan_from(ours, compile_basis=peer_compile)
    if name == "pykan":
        return pykan_from(ours)
    if name == "siren":
        return equal_size_siren()
    raise ValueError(f"unknown implementation {name!r}")


def supports(name, spline_order):
    """Whether implementation ``name`` supports B-spline order ``spline_order``."""
    return not (name in CUBIC_ONLY and spline_order != 3)


def macs_per_point(sizes, grid_size, spline_order):
    """GEMM multiply-adds per time point of one forward: Σ n_in·(1 + G + k)·n_out."""
    width = 1 + grid_size + spline_order
    return sum(a * width * b for a, b in zip(sizes, sizes[1:]))


def mlp_macs_per_point(sizes):
    """Multiply-adds per point of an MLP forward: Σ n_in·n_out."""
    return sum(a * b for a, b in zip(sizes, sizes[1:]))

