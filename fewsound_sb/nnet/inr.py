"""The six target networks (audio INRs) as functional modules.

Every target network f(t) → amplitude is defined once, as a
:class:`FunctionalINR`:

* a parameter spec (ordered :class:`ParamSpec` entries) that maps a flat weight
  vector of length P to named blocks;
* a batched functional forward ``forward_params(t, params)`` where every block
  carries a leading batch dimension B (one weight set per clip).

The same definition then serves three callers: a plain module
holding its own weights (``forward(t)``), single-clip fitting of many clips at
once (``forward_flat(t, w)`` with ``w: [B, P]``), and the hypernetworks, which
emit flat weight vectors. Time coordinates span [-1, 1] over the clip
(:func:`time_grid`).

Defaults are the paper's Table 1 configurations; parameter counts:
kan 33,768 · nerf 33,261 · siren 31,191 · finer 31,191 · wire 31,191 · rff 39,201.
WIRE's complex weights count as one parameter each (as in the paper); its flat
vector stores real and imaginary parts, so its ``num_params`` (flat length) is
larger than its parameter count.
"""

import importlib
import math
from typing import NamedTuple

import torch

from fewsound_sb.nnet.encoding import PositionalEncoding, RandomFourierFeatures
from fewsound_sb.nnet.kan import (
    combine_weights, compiled_function, init_kan_weights, kan_layer, resolve_compile,
)


class ParamSpec(NamedTuple):
    """One named block of a target network's weights.

    Attributes
    ----------
    name : str
        Parameter name (also the module attribute).
    shape : tuple
        Shape of the block in the flat vector (complex blocks end in 2).
    kind : str
        One of "weight", "bias", "base", "spline", "scaler".
    fan_in : int
        Input width of the layer the block belongs to.
    """

    name: str
    shape: tuple
    kind: str
    fan_in: int

    @property
    def numel(self):
        """Number of reals the block takes in the flat vector."""
        return math.prod(self.shape)


def time_grid(num_samples, device=None, dtype=None):
    """Time coordinates of a clip: ``t_n = -1 + 2n / (N - 1)``.

    Arguments
    ---------
    num_samples : int
        Number of samples N.
    device, dtype
        Of the returned tensor.

    Returns
    -------
    torch.Tensor
        ``[N, 1]``.

    Example
    -------
    >>> time_grid(3).squeeze(-1)
    tensor([-1.,  0.,  1.])
    """
    if num_samples < 2:
        raise ValueError(f"a time grid needs at least 2 samples, got {num_samples}")
    return torch.linspace(-1.0, 1.0, num_samples, device=device, dtype=dtype).unsqueeze(-1)


INR_REGISTRY = {}
"""Target network classes by name (filled by :func:`register_inr`)."""


def register_inr(name):
    """Class decorator adding a target network class to :data:`INR_REGISTRY`.

    Registered classes are built by name with :func:`build_inr`, fitted by
    :mod:`fewsound_sb.fitting` and reloaded from :mod:`fewsound_sb.weights`
    files. A class defined outside this package registers the same way (its
    module must then be importable when a weights file of it is loaded; the
    file stores the class's import path too).

    Arguments
    ---------
    name : str
        Registry name (case-insensitive; stored lower-case).

    Returns
    -------
    callable
        The decorator; it returns the class unchanged.

    Example
    -------
    >>> @register_inr("tiny_line")
    ... class TinyLine(FunctionalINR):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self._register_spec([ParamSpec("w", (2,), "weight", 1)])
    ...     def forward_params(self, t, params):
    ...         return params["w"][:, None, :1] * t + params["w"][:, None, 1:]
    >>> build_inr("tiny_line").num_params
    2
    >>> del INR_REGISTRY["tiny_line"]
    """
    key = str(name).lower()

    def decorator(cls):
        if not (isinstance(cls, type) and issubclass(cls, FunctionalINR)):
            raise TypeError(f"register_inr('{key}'): {cls!r} is not a FunctionalINR subclass")
        known = INR_REGISTRY.get(key)
        if known is not None and inr_class_path(known) != inr_class_path(cls):
            raise ValueError(
                f"register_inr('{key}'): the name is taken by {inr_class_path(known)}; "
                f"choose another name for {inr_class_path(cls)}"
            )
        INR_REGISTRY[key] = cls
        return cls

    return decorator


class FunctionalINR(torch.nn.Module):
    """Base class of the target networks: one weight set held, many evaluated.

    Subclasses call :meth:`_register_spec` with their blocks and implement
    :meth:`forward_params`. Blocks whose spec shape ends in 2 and whose name is
    listed in ``_complex_blocks`` are held as complex parameters.

    Every target is pointwise in t, so on CPU :meth:`forward_flat` and
    :meth:`forward` evaluate the time axis in chunks (exact: the same values
    and gradients as one pass, up to float rounding): each activation tensor
    ``[B, chunk, width]`` then stays below glibc's mmap threshold (32 MiB at
    most) and is reused from the heap, instead of being a fresh mmap that
    page-faults on first touch on every call (with B = 4 clips of 32,768
    points a 90-wide activation is 47 MB). ``chunk_elements`` is the budget,
    ``B × chunk × width`` elements with ``width`` from :meth:`activation_width`
    (2**20 elements = 4 MiB of float32 by default, the fastest of the budgets
    measured for SIREN and KAN at B = 1, 4, 16, see ``bench/README.md``); set
    it on an instance or a subclass, 0 disables chunking. The time axis is
    split into near-equal pieces (one or two distinct chunk lengths, so that
    shape-specialised compiled kernels see few shapes). CUDA is never chunked.

    Targets built with ``compile`` (every registered one; see
    :meth:`_init_compile`) choose per call between their eager path and a
    ``torch.compile``'d one: SIREN and FINER compile their whole
    ``forward_params`` (``compile_graph``: the elementwise work of each layer
    fuses into one pass), WIRE compiles its whole forward in another form of
    the same arithmetic (Gauss's three-product complex layers, see
    :class:`WIRE`), the KAN compiles its own kernels (the layer's features).
    NeRF and RFF compile their whole
    ``forward_params`` too, but default to the eager path: compiled, their
    fitting steps were about 2x slower on CPU (``bench/results_targets.md``).
    """

    _complex_blocks = ()
    chunk_elements = 2**20
    """Element budget of one activation tensor ``[B, chunk, width]`` on CPU (0: no chunking)."""
    min_chunk = 256
    """Smallest time chunk (Python overhead per chunk stays negligible)."""
    compile_min_points = 32768
    """With ``compile="auto"``: smallest call (B × T clip-points) that uses the compiled path."""
    compile_graph = False
    """Whether the compiled path is ``torch.compile(forward_params)`` (else the target's own kernels)."""
    _compile_ok = False
    _compile_always = False
    _compiled_now = None

    def _init_compile(self, compile):
        """Resolve a ``compile`` setting ("auto", True or False) once, with one log line.

        "auto": the compiled path where a compiler works
        (:func:`~fewsound_sb.nnet.kan.compile_available`) for calls of at least
        ``compile_min_points`` clip-points (B × T): the first call per input
        shape compiles (10-100 s on CPU), which only long runs amortise.
        True: always compiled; False: always eager.
        """
        self.compile = compile
        self._compile_ok = resolve_compile(compile, who=type(self).__name__)
        self._compile_always = str(compile).lower() == "true"

    def _use_compiled(self, clip_points):
        """Whether a call over ``clip_points`` (B × T) takes the compiled path."""
        if not self._compile_ok:
            return False
        return self._compile_always or clip_points >= self.compile_min_points

    def _register_spec(self, spec):
        self._spec = tuple(spec)
        self._offsets = []
        offset = 0
        for block in self._spec:
            self._offsets.append(offset)
            offset += block.numel
            shape = block.shape
            dtype = torch.float32
            if block.name in self._complex_blocks:
                shape, dtype = shape[:-1], torch.complex64
            self.register_parameter(block.name, torch.nn.Parameter(torch.zeros(shape, dtype=dtype)))
        self._num_params = offset

    @property
    def spec(self):
        """Ordered tuple of :class:`ParamSpec` describing the flat vector."""
        return self._spec

    @property
    def num_params(self):
        """Length P of the flat weight vector."""
        return self._num_params

    def _block(self, name):
        param = getattr(self, name)
        return torch.view_as_real(param) if param.is_complex() else param

    def flat_weights(self):
        """This module's weights as one flat vector ``[P]`` (differentiable)."""
        return torch.cat([self._block(b.name).reshape(-1) for b in self._spec])

    @torch.no_grad()
    def load_flat_weights(self, weights):
        """Copy a flat vector ``[P]`` into this module's parameters."""
        if weights.shape != (self._num_params,):
            raise ValueError(f"expected flat weights [{self._num_params}], got {tuple(weights.shape)}")
        for block, offset in zip(self._spec, self._offsets):
            self._block(block.name).copy_(weights[offset: offset + block.numel].view(block.shape))

    def unflatten(self, weights):
        """Split flat weights ``[B, P]`` into named blocks ``[B, *shape]``."""
        if weights.dim() != 2 or weights.shape[1] != self._num_params:
            raise ValueError(
                f"expected flat weights [B, {self._num_params}], got {tuple(weights.shape)}"
            )
        params = {}
        for block, offset in zip(self._spec, self._offsets):
            value = weights[:, offset: offset + block.numel].reshape(-1, *block.shape)
            if block.name in self._complex_blocks:
                value = torch.view_as_complex(value.contiguous())
            params[block.name] = value
        return params

    def own_params(self):
        """This module's weights as a params dict with batch dimension 1."""
        return {b.name: getattr(self, b.name).unsqueeze(0) for b in self._spec}

    @staticmethod
    def _check_time(t):
        if t.dim() == 2 and t.shape[-1] == 1:
            return t.unsqueeze(0)
        if t.dim() == 3 and t.shape[-1] == 1:
            return t
        raise ValueError(f"expected time points [T, 1] or [B, T, 1], got {tuple(t.shape)}")

    def forward_flat(self, t, weights):
        """Evaluate B weight sets at once.

        Arguments
        ---------
        t : torch.Tensor
            Time points ``[B, T, 1]`` or ``[T, 1]`` (shared by all sets).
        weights : torch.Tensor
            Flat weights ``[B, P]``.

        Returns
        -------
        torch.Tensor
            ``[B, T, 1]``.
        """
        params = self.unflatten(weights)
        t = self._check_time(t)
        if t.shape[0] not in (1, weights.shape[0]):
            raise ValueError(
                f"time points have batch {t.shape[0]} but weights have batch {weights.shape[0]}"
            )
        return self._forward_chunked(t, params, weights.shape[0])

    def forward(self, t):
        """Evaluate this module's own weights at ``t`` (``[T, 1]`` or ``[B, T, 1]``)."""
        squeeze = t.dim() == 2
        t = self._check_time(t)
        batch = t.shape[0]
        params = self.own_params()
        if batch > 1:
            params = {k: v.expand(batch, *v.shape[1:]) for k, v in params.items()}
        y = self._forward_chunked(t, params, batch)
        return y[0] if squeeze else y

    def activation_width(self, compiled=False):
        """Widest activation per time point and clip, for :meth:`chunk_size`.

        The widest layer side in the spec; targets whose intermediate tensors
        are wider than their layers (WIRE's parts) override it. ``compiled``:
        the width on the compiled path (the same here).
        """
        return max(max(block.shape[0], block.fan_in) for block in self._spec)

    def chunk_size(self, batch, num_points, device, compiled=None):
        """Time points per chunk for ``batch`` clips (``num_points``: no chunking).

        Arguments
        ---------
        batch : int
            Number of weight sets B.
        num_points : int
            Time points T.
        device : torch.device or str
            CUDA is never chunked.
        compiled : bool, optional
            The path the call takes (its activation width may differ); by
            default the one a call of B × T clip-points takes.

        Returns
        -------
        int
            The longest chunk, ``max(min_chunk, chunk_elements // (B · width))``,
            at most T (:meth:`forward_flat` splits T into near-equal pieces).

        Example
        -------
        >>> net = build_inr("siren")  # width 90
        >>> net.chunk_size(4, 32768, "cpu"), net.chunk_size(1, 32768, "cpu")
        (2912, 11650)
        >>> net.chunk_size(4, 32768, "cuda")
        32768
        """
        if not self.chunk_elements or torch.device(device).type == "cuda":
            return num_points
        if compiled is None:
            compiled = self._use_compiled(batch * num_points)
        chunk = self.chunk_elements // (batch * self.activation_width(compiled))
        return min(num_points, max(self.min_chunk, chunk))

    def prepare_params(self, params):
        """The params dict with blocks derived from the weights alone added (default: unchanged).

        :meth:`forward` and :meth:`forward_flat` call it once per call and pass
        its result to :meth:`forward_params` for every time chunk, so work that
        does not depend on t (KAN's combined weights, WIRE's real block
        matrices) is done once per call (per clip group, see
        :meth:`clip_group`) instead of once per chunk, and its gradient flows
        back once. ``forward_params`` computes a derived block
        itself where the dict lacks it (a direct call).
        """
        return params

    def clip_group(self, batch, compiled):
        """Clips evaluated together per time chunk, for a call of ``batch`` clips (default: all).

        The time axis is chunked for all clips of a call at once, so that more
        clips mean shorter chunks (:meth:`chunk_size`). A target whose matrix
        products lose throughput on short chunks overrides this: the call then
        evaluates its clips in groups of at most this many, each group over
        its own, longer, chunks (same values and gradients; see :class:`WIRE`).
        ``compiled``: the path the call takes. Used only where the time axis is
        chunked (CPU, ``chunk_elements`` > 0): on CUDA every call is one pass.
        """
        return batch

    def _forward_chunked(self, t, params, batch):
        """``forward_params`` over clip groups and time chunks of ``t`` ``[Bt, T, 1]`` (see the class docstring)."""
        # the path is chosen once per call, for the whole B × T (not per chunk)
        self._compiled_now = self._use_compiled(batch * t.shape[1])
        try:
            chunked = self.chunk_elements and t.device.type != "cuda"  # clip groups tile the chunking
            group = max(1, min(batch, self.clip_group(batch, self._compiled_now))) if chunked else batch
            if group == batch:
                return self._forward_time_chunks(t, self.prepare_params(params), batch)
            n_groups = -(-batch // group)
            # split views: each group's gradient flows back through one concatenation
            blocks = {name: value.tensor_split(n_groups) for name, value in params.items()}
            times = t.tensor_split(n_groups) if t.shape[0] > 1 else [t] * n_groups
            outputs = []
            for i, t_group in enumerate(times):
                group_params = self.prepare_params({name: parts[i] for name, parts in blocks.items()})
                group_batch = next(iter(blocks.values()))[i].shape[0]
                outputs.append(self._forward_time_chunks(t_group, group_params, group_batch))
            return torch.cat(outputs)
        finally:
            self._compiled_now = None

    def _forward_time_chunks(self, t, params, batch):
        """``forward_params`` of ``batch`` clips over near-equal time chunks (:meth:`chunk_size`)."""
        num_points = t.shape[1]
        chunk = self.chunk_size(batch, num_points, t.device, compiled=self._compiled_now)
        if chunk >= num_points:
            return self._forward_piece(t, params)
        pieces = t.tensor_split(-(-num_points // chunk), dim=1)
        return torch.cat([self._forward_piece(piece, params) for piece in pieces], dim=1)

    def _forward_piece(self, t, params):
        if self._compiled_now and self.compile_graph:
            return compiled_function(type(self).forward_params)(self, t, params)
        return self.forward_params(t, params)

    def _compiled_call(self, t, params):
        """Whether this ``forward_params`` call takes the compiled path.

        Set by :meth:`forward` / :meth:`forward_flat` for the whole call;
        decided from the call's own size (B × T) when ``forward_params`` is
        called directly.
        """
        if self._compiled_now is not None:
            return self._compiled_now
        batch = max(t.shape[0], next(iter(params.values())).shape[0])
        return self._use_compiled(batch * t.shape[1])

    def forward_params(self, t, params):
        """Functional forward: ``t`` ``[Bt, T, 1]``, blocks ``[B, ...]`` → ``[B, T, 1]``."""
        raise NotImplementedError  # abstract: every target network defines it


def linear(x, weight, bias):
    """Batched affine map: ``x`` ``[Bx, T, in]``, ``weight`` ``[B, out, in]``, ``bias`` ``[B, out]``.

    Example
    -------
    >>> linear(torch.ones(1, 5, 2), torch.ones(3, 4, 2), torch.zeros(3, 4)).shape
    torch.Size([3, 5, 4])
    """
    return torch.matmul(x, weight.transpose(-1, -2)) + bias.unsqueeze(-2)


def _mlp_spec(sizes, complex_from=None):
    spec = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        extra = (2,) if complex_from is not None and i >= complex_from else ()
        spec.append(ParamSpec(f"w{i}", (fan_out, fan_in) + extra, "weight", fan_in))
        spec.append(ParamSpec(f"b{i}", (fan_out,) + extra, "bias", fan_in))
    return spec


class _MLPINR(FunctionalINR):
    """Shared plumbing of the MLP-based INRs (layer sizes, default init)."""

    def _build_mlp(self, in_features, hidden_sizes, complex_from=None):
        if not hidden_sizes:
            raise ValueError("hidden_sizes must name at least one layer")
        self.sizes = (in_features, *hidden_sizes, 1)
        self.n_layers = len(self.sizes) - 1
        self._register_spec(_mlp_spec(self.sizes, complex_from))
        for i in range(self.n_layers):
            self._default_linear_init(i)

    @torch.no_grad()
    def _sine_init(self, hidden_omega):
        """SIREN's initialisation: first layer U(±1/n), others U(±√(6/n)/ω_hidden).

        Complex weights get it on their real and imaginary parts alike.
        """
        for i in range(self.n_layers):
            weight = getattr(self, f"w{i}")
            fan_in = weight.shape[1]
            bound = 1 / fan_in if i == 0 else math.sqrt(6 / fan_in) / hidden_omega
            if weight.is_complex():
                weight = torch.view_as_real(weight)
            torch.nn.init.uniform_(weight, -bound, bound)

    @torch.no_grad()
    def _default_linear_init(self, i):
        """PyTorch's ``nn.Linear`` initialisation for layer i."""
        weight, bias = getattr(self, f"w{i}"), getattr(self, f"b{i}")
        bound = 1 / math.sqrt(weight.shape[1])
        if weight.is_complex():
            torch.nn.init.uniform_(torch.view_as_real(weight), -bound, bound)
            torch.nn.init.uniform_(torch.view_as_real(bias), -bound, bound)
        else:
            torch.nn.init.uniform_(weight, -bound, bound)
            torch.nn.init.uniform_(bias, -bound, bound)


@register_inr("nerf")
class NeRF(_MLPINR):
    """Positional encoding followed by a ReLU MLP (Mildenhall et al., 2020).

    Arguments
    ---------
    encoding_length : int
        Number of PE frequencies L (input width 2L). Table 1 uses 12
        (33,261 params); the authors' FewSound target uses 10 (32,901).
    hidden_sizes : tuple of int
        Hidden layer widths.
    compile : bool or str
        Compiled path (``torch.compile(forward_params)``, see
        :meth:`FunctionalINR._init_compile`). Default False: compiled, a
        fitting step of this ReLU MLP was about 2x slower than eager on CPU
        (0.51x as fast at B = 16, ``bench/results_targets.md``); "auto" or True to use it
        anyway (e.g. on CUDA).

    Example
    -------
    >>> net = NeRF(encoding_length=4, hidden_sizes=(8, 8))
    >>> net(torch.rand(16, 1)).shape
    torch.Size([16, 1])
    """

    compile_graph = True

    def __init__(self, encoding_length=12, hidden_sizes=(90, 90, 90, 90, 70), compile=False):
        super().__init__()
        self.encoding = PositionalEncoding(encoding_length)
        self._init_compile(compile)
        self._build_mlp(self.encoding.output_dim, hidden_sizes)

    def forward_params(self, t, params):
        x = self.encoding(t)  # [Bt, T, 2L]
        for i in range(self.n_layers):
            x = linear(x, params[f"w{i}"], params[f"b{i}"])
            if i < self.n_layers - 1:
                x = torch.relu(x)
        return x


@register_inr("rff")
class RFF(_MLPINR):
    """Random Fourier features followed by a ReLU MLP (Tancik et al., 2020).

    Arguments
    ---------
    num_features : int
        Width 2m of the feature vector.
    sigma : float
        Std of the random frequencies (cycles per unit of t; t spans 2 units
        per clip). Table 1's value is not published: chosen, see README.
    hidden_sizes : tuple of int
        Hidden layer widths.
    seed : int
        Seed of the random frequency draw.
    compile : bool or str
        As :class:`NeRF`'s (default False: compiled, the fitting step was
        0.47x as fast at B = 16 on CPU, ``bench/results_targets.md``).

    Example
    -------
    >>> net = RFF(num_features=8, hidden_sizes=(8,))
    >>> net(torch.rand(2, 16, 1)).shape
    torch.Size([2, 16, 1])
    """

    compile_graph = True

    def __init__(
        self, num_features=90, sigma=500.0, hidden_sizes=(90, 90, 90, 90, 70), seed=0, compile=False,
    ):
        super().__init__()
        self.encoding = RandomFourierFeatures(num_features, sigma, seed)
        self._init_compile(compile)
        self._build_mlp(self.encoding.output_dim, hidden_sizes)

    forward_params = NeRF.forward_params


@register_inr("siren")
class SIREN(_MLPINR):
    """MLP with sine activations, ``sin(ω·(W x) + b)`` (Sitzmann et al., 2020).

    Each layer scales its input by ω (ω_first for the first layer, ω_hidden
    after), so the bias is unscaled; the last (linear) layer's input is scaled
    by ω_hidden too, as in the authors' code. Hidden weights are initialised
    U(±√(6/n)/ω_hidden) as in SIREN (the authors' code divides by ω_first, a
    quirk we do not follow).

    Arguments
    ---------
    first_omega : float
        ω of the first layer.
    hidden_omega : float
        ω of the other layers.
    hidden_sizes : tuple of int
        Hidden layer widths.
    compile : bool or str
        Compiled path (see :meth:`FunctionalINR._init_compile`): "auto"
        (default), True or False. The compiled ``forward_params`` fuses each
        layer's scaling and sine into one pass.

    Example
    -------
    >>> net = SIREN(hidden_sizes=(8, 8))
    >>> net(torch.rand(16, 1)).shape
    torch.Size([16, 1])
    """

    compile_graph = True

    def __init__(
        self, first_omega=2000.0, hidden_omega=30.0, hidden_sizes=(90, 90, 90, 90, 70), compile="auto",
    ):
        super().__init__()
        self.first_omega = first_omega
        self.hidden_omega = hidden_omega
        self._init_compile(compile)
        self._build_mlp(1, hidden_sizes)
        self._sine_init(hidden_omega)

    def forward_params(self, t, params):
        x = t
        for i in range(self.n_layers):
            omega = self.first_omega if i == 0 else self.hidden_omega
            x = linear(omega * x, params[f"w{i}"], params[f"b{i}"])
            if i < self.n_layers - 1:
                x = torch.sin(x)
        return x


@register_inr("finer")
class FINER(_MLPINR):
    """MLP with variable-periodic activations ``sin(ω(|z| + 1) z)`` (Liu et al., 2024).

    Follows the paper: the scale (|z| + 1), computed without gradient as in
    FINER, multiplies the pre-activation z = W x + b (the authors' code scales
    the layer *input* instead, a quirk we do not follow).

    Arguments
    ---------
    first_omega : float
        ω of the first layer.
    hidden_omega : float
        ω of the other layers.
    first_bias_scale : float
        k: the first layer's bias is drawn from U(-k, k).
    hidden_sizes : tuple of int
        Hidden layer widths.
    compile : bool or str
        Compiled path (see :meth:`FunctionalINR._init_compile`): "auto"
        (default), True or False. The compiled ``forward_params`` fuses each
        layer's scale and sine into one pass.

    Example
    -------
    >>> net = FINER(hidden_sizes=(8, 8))
    >>> net(torch.rand(16, 1)).shape
    torch.Size([16, 1])
    """

    compile_graph = True

    def __init__(
        self, first_omega=2000.0, hidden_omega=30.0, first_bias_scale=1.0,
        hidden_sizes=(90, 90, 90, 90, 70), compile="auto",
    ):
        super().__init__()
        self.first_omega = first_omega
        self.hidden_omega = hidden_omega
        self._init_compile(compile)
        self._build_mlp(1, hidden_sizes)
        self._sine_init(hidden_omega)
        with torch.no_grad():
            torch.nn.init.uniform_(self.b0, -first_bias_scale, first_bias_scale)

    def forward_params(self, t, params):
        x = t
        for i in range(self.n_layers):
            z = linear(x, params[f"w{i}"], params[f"b{i}"])
            if i < self.n_layers - 1:
                omega = self.first_omega if i == 0 else self.hidden_omega
                x = torch.sin(omega * (z.detach().abs() + 1) * z)
            else:
                x = z
        return x


def complex_linear(x, weight, bias):
    """Complex affine map ``W x + b`` in real arithmetic, on concatenated parts (one real GEMM).

    With ``x = a + ib`` held as ``[a | b]`` and ``W = P + iQ``: ``Re = Pa − Qb +
    Re(bias)``, ``Im = Qa + Pb + Im(bias)``, computed as ``[a | b] @ [[Pᵀ, Qᵀ],
    [−Qᵀ, Pᵀ]]`` and returned as ``[Re | Im]``, the layout
    :func:`gabor_wavelet` takes, so no layer splits or joins its parts.

    Arguments
    ---------
    x : torch.Tensor
        ``[B, T, 2·in]``: real parts, then imaginary parts.
    weight : torch.Tensor
        ``[B, out, in, 2]`` (real, imaginary last) or complex ``[B, out, in]``.
    bias : torch.Tensor
        ``[B, out, 2]`` or complex ``[B, out]``.

    Returns
    -------
    torch.Tensor
        ``[B, T, 2·out]``: real parts, then imaginary parts.

    Example
    -------
    >>> w = torch.tensor([[[[1.0, 2.0]]]])  # 1 + 2i
    >>> b = torch.tensor([[[0.5, -0.5]]])  # 0.5 - 0.5i
    >>> complex_linear(torch.tensor([[[3.0, 4.0]]]), w, b)  # (1 + 2i)(3 + 4i) + 0.5 - 0.5i
    tensor([[[-4.5000,  9.5000]]])
    """
    return _block_linear(x, *complex_block(weight, bias))


def _block_linear(x, block, bias_row):
    """``bias_row + x @ block`` for :func:`complex_block`'s output (``x`` broadcast over B)."""
    if x.shape[0] != block.shape[0]:
        x = x.expand(block.shape[0], *x.shape[1:])
    return torch.baddbmm(bias_row, x, block)


def complex_block(weight, bias):
    """The real matrix and bias row of a complex affine map, for :func:`complex_linear`.

    Arguments
    ---------
    weight : torch.Tensor
        ``[B, out, in, 2]`` (real, imaginary last) or complex ``[B, out, in]``.
    bias : torch.Tensor
        ``[B, out, 2]`` or complex ``[B, out]``.

    Returns
    -------
    block : torch.Tensor
        ``[B, 2·in, 2·out]``, ``[[Pᵀ, Qᵀ], [−Qᵀ, Pᵀ]]``: ``[a | b] @ block`` is ``[Re | Im]``.
    bias_row : torch.Tensor
        ``[B, 1, 2·out]``: real parts, then imaginary parts.

    Example
    -------
    >>> block, bias_row = complex_block(torch.tensor([[[[1.0, 2.0]]]]), torch.zeros(1, 1, 2))
    >>> block  # 1 + 2i as a real 2 x 2 matrix acting on [a | b]
    tensor([[[ 1.,  2.],
             [-2.,  1.]]])
    """
    w_re, w_im, b_re, b_im = _real_parts(weight, bias)
    block = torch.cat(
        [torch.cat([w_re, -w_im], dim=-1), torch.cat([w_im, w_re], dim=-1)], dim=-2
    )  # [B, 2out, 2in]
    bias_row = torch.cat([b_re, b_im], dim=-1).unsqueeze(-2)  # [B, 1, 2out]
    return block.transpose(-1, -2), bias_row


def _real_parts(weight, bias):
    """Real and imaginary parts of a complex layer's weight and bias, from complex tensors or (re, im) pairs."""
    if weight.is_complex():
        weight, bias = torch.view_as_real(weight), torch.view_as_real(bias)
    return weight[..., 0], weight[..., 1], bias[..., 0], bias[..., 1]


# The eager path's Gabor wavelet: forward and backward written with addcmul and
# out= writes, which make fewer passes than the plain formula (forward / backward
# of a [16, 360, 180] tensor on one thread, ad hoc: 4.1 / 4.0 ms against 8.1 /
# 5.3 ms). The compiled path writes the plain formula (:func:`_gabor_parts`),
# which Inductor fuses into one kernel each way.
def _gabor_forward_eager(z, omega, s2):
    n = z.shape[-1] // 2
    a, b = z[..., :n], z[..., n:]
    magnitude = torch.exp(torch.addcmul(torch.addcmul(b * -omega, a, a, value=-s2), b, b, value=-s2))
    phase = a * omega
    out = torch.empty_like(z)
    torch.mul(torch.cos(phase), magnitude, out=out[..., :n])
    torch.mul(torch.sin(phase, out=phase), magnitude, out=out[..., n:])
    return out


def _gabor_backward_eager(z, out, grad, omega, s2):
    n = z.shape[-1] // 2
    a, b = z[..., :n], z[..., n:]
    u, v = out[..., :n], out[..., n:]
    g_u, g_v = grad[..., :n], grad[..., n:]
    p = torch.addcmul(g_u * u, g_v, v)
    q = torch.addcmul(g_v * u, g_u, v, value=-1.0)
    grad_z = torch.empty_like(z)
    torch.add(q * omega, a * p, alpha=-2.0 * s2, out=grad_z[..., :n])
    torch.mul(torch.add(b * (-2.0 * s2), -omega), p, out=grad_z[..., n:])
    return grad_z


def _first_wavelet(z, omega, s2):
    """Magnitude and phase of the first Gabor activation, of a real z (b = 0): exp(−s²a²) and ωa."""
    return torch.exp(z.square() * -s2), z * omega


def _gabor_first(z, omega, s2):
    """The first Gabor activation, exp(−s²a²)·(cos ωa + i sin ωa), as ``[re | im]`` (eager path)."""
    magnitude, phase = _first_wavelet(z, omega, s2)
    return torch.cat([magnitude * torch.cos(phase), magnitude * torch.sin(phase)], dim=-1)


class _GaborWavelet(torch.autograd.Function):
    """:func:`gabor_wavelet` with a hand-written backward.

    Autograd of the elementwise formula keeps about ten intermediate tensors
    per layer and makes as many passes; this saves the input and the output
    only. With ``z = a + ib``, output ``u + iv = m·(cos ωa + i sin ωa)``,
    ``m = exp(−ωb − s²(a² + b²))`` and incoming gradients ``(g_u, g_v)``:
    ``p = g_u u + g_v v``, ``q = g_v u − g_u v``, ``∂a = ωq − 2s²a·p``,
    ``∂b = −(ω + 2s²b)·p``.
    """

    @staticmethod
    def forward(ctx, z, omega, scale):
        s2 = scale * scale
        out = _gabor_forward_eager(z, omega, s2)
        ctx.save_for_backward(z, out)
        ctx.omega, ctx.s2 = omega, s2
        return out

    @staticmethod
    def backward(ctx, grad):
        z, out = ctx.saved_tensors
        return _gabor_backward_eager(z, out, grad, ctx.omega, ctx.s2), None, None


def gabor_wavelet(z, omega, scale):
    """WIRE's complex Gabor wavelet ``exp(iωz − |s z|²)`` in real arithmetic.

    With ``z = a + ib``: ``exp(−ωb − s²(a² + b²)) · (cos ωa + i sin ωa)``.
    Both ω and s multiply the pre-activation z itself (Saragadam et al.'s
    code): the wavelet oscillates at ω radians per unit of z under a Gaussian
    of width 1/s in z. The backward is hand-written (:class:`_GaborWavelet`):
    two saved tensors per layer instead of autograd's ten.

    Arguments
    ---------
    z : torch.Tensor
        ``[..., 2n]``: real parts, then imaginary parts of the pre-activation.
    omega : float
        Frequency ω.
    scale : float
        Gaussian width s.

    Returns
    -------
    torch.Tensor
        ``[..., 2n]``: real parts, then imaginary parts of the activation.

    Example
    -------
    >>> z = torch.tensor([0.1, 0.02])  # 0.1 + 0.02i
    >>> re, im = gabor_wavelet(z, omega=10.0, scale=2.0)
    >>> value = torch.exp(1j * 10.0 * torch.complex(*z) - (2.0 * torch.complex(*z)).abs() ** 2)
    >>> f"{float(re):.6f} {float(im):.6f} | {value.real.item():.6f} {value.imag.item():.6f}"
    '0.424337 0.660866 | 0.424337 0.660866'
    """
    return _GaborWavelet.apply(z, omega, scale)


GAUSS_ALIGN = 16
"""Widths of WIRE's compiled path are padded to a multiple of this (see :func:`gauss_block`)."""


def _aligned(n):
    return -(-n // GAUSS_ALIGN) * GAUSS_ALIGN


def gauss_block(weight, bias):
    """A complex affine map's real matrices for Gauss's three-product form, widths padded.

    ``(P + iQ)(a + ib) = (Pa − Qb) + i((P + Q)(a + b) − Pa − Qb)``: three real
    products of the layer's size instead of four (one batched GEMM over the
    stacked ``Pᵀ, Qᵀ, (P + Q)ᵀ`` and the activation's stacked parts ``a, b,
    a + b``). Both widths are zero-padded to a multiple of
    :data:`GAUSS_ALIGN`: on the AVX-512 CPU of ``bench/README.md`` one thread
    ran a 90-wide layer's three training products at 57 GFLOP/s and the same
    padded to 96 at 75 (``bench/results_gemm_widths.md``). A padded unit's
    pre-activation is 0 and its outgoing weights are 0, so it changes no
    value; its gradient is dropped by the padding's backward.

    Arguments
    ---------
    weight : torch.Tensor
        ``[B, out, in, 2]`` (real, imaginary last) or complex ``[B, out, in]``.
    bias : torch.Tensor
        ``[B, out, 2]`` or complex ``[B, out]``.

    Returns
    -------
    stack : torch.Tensor
        ``[3B, in_p, out_p]``: ``Pᵀ, Qᵀ, (P + Q)ᵀ`` of each weight set, padded.
    bias_re, bias_im : torch.Tensor
        ``[B, 1, out_p]`` each, padded.

    Example
    -------
    >>> stack, bias_re, bias_im = gauss_block(torch.ones(2, 90, 90, 2), torch.ones(2, 90, 2))
    >>> stack.shape, bias_re.shape, float(stack[2, 0, 0]), float(stack[0, 95, 95])
    (torch.Size([6, 96, 96]), torch.Size([2, 1, 96]), 2.0, 0.0)
    """
    w_re, w_im, b_re, b_im = _real_parts(weight, bias)  # weights [B, out, in]
    out_features, in_features = w_re.shape[-2:]
    pad_out = _aligned(out_features) - out_features
    stack = torch.nn.functional.pad(
        torch.stack([w_re, w_im, w_re + w_im], dim=1), (0, _aligned(in_features) - in_features, 0, pad_out)
    )  # [B, 3, out_p, in_p]
    stack = stack.transpose(-1, -2).reshape(-1, stack.shape[-1], stack.shape[-2])
    bias_re, bias_im = (torch.nn.functional.pad(part, (0, pad_out)).unsqueeze(1) for part in (b_re, b_im))
    return stack, bias_re, bias_im


def _gabor_parts(magnitude, phase):
    """``u + iv = magnitude·(cos + i sin)(phase)`` as the stacked parts ``[B, 3, T, n]``: u, v, u + v."""
    u, v = magnitude * torch.cos(phase), magnitude * torch.sin(phase)
    return torch.stack([u, v, u + v], dim=1)


def _wire_gauss_forward(t, first, hidden, last, first_omega: float, hidden_omega: float, s2: float):
    """WIRE's forward in Gauss's three-product form (the compiled path; :meth:`WIRE.gauss_params`).

    Each activation is held as its stacked parts ``[B, 3, T, n_p]`` (``a, b,
    a + b``), so a complex layer is one batched GEMM over ``3B`` matrices
    (:func:`gauss_block`) that gives ``Pa, Qb, (P + Q)(a + b)``; the Gabor
    wavelet takes these three products and the bias and returns the next
    stacked parts. Compiled whole, each layer's elementwise work is one kernel
    forward and one backward (autograd of this formula, which Inductor fuses).
    """
    w0, b0 = first
    z = linear(t, w0, b0)  # [B, T, n_p], real
    x = _gabor_parts(*_first_wavelet(z, first_omega, s2))
    batch = x.shape[0]
    for stack, bias_re, bias_im in hidden:
        products = torch.bmm(x.flatten(0, 1), stack).unflatten(0, (batch, 3))  # [B, 3, T, out_p]
        pa, qb, mixed = products.unbind(1)
        a = pa - qb + bias_re
        b = mixed - pa - qb + bias_im
        x = _gabor_parts(torch.exp(-hidden_omega * b - s2 * (a * a + b * b)), hidden_omega * a)
    rows_re, rows_im, bias = last  # Re(W x + b) = P a − Q b + Re(b)
    return torch.bmm(x[:, 0], rows_re) + torch.bmm(x[:, 1], rows_im) + bias


@register_inr("wire")
class WIRE(_MLPINR):
    """MLP with complex Gabor wavelet activations ``exp(iωz − |s z|²)`` (Saragadam et al., 2023).

    A real first layer, then complex layers; the output is the real part. The
    activation follows the WIRE code's convention: ω and s both multiply the
    pre-activation z = W x + b (see :func:`gabor_wavelet`). The complex
    arithmetic runs as real arithmetic, in one of two forms with the same
    values (tested against complex tensors; the flat vector stores (real,
    imaginary) pairs):

    * eager: a layer's real and imaginary parts side by side in one tensor,
      each complex layer one real GEMM with the block matrix ``[[P, −Q], [Q,
      P]]`` (:func:`complex_linear`, four real multiply-adds per complex
      weight), each activation one pass with a hand-written backward
      (:func:`gabor_wavelet`);
    * compiled (``torch.compile`` of :func:`_wire_gauss_forward`): Gauss's
      three-product form, three real multiply-adds per complex weight, with
      widths padded to a multiple of 16 for the GEMM kernels
      (:func:`gauss_block`); its elementwise work fuses, which the extra adds
      of this form need (eager, it measured no faster than the block form).

    The output layer computes the real part only. A WIRE step still does
    about 3x the matrix-product work of a KAN of the same size
    (``bench/results_targets.md``).

    Initialisation: SIREN's rule (the first layer U(±1), the complex hidden
    weights' real and imaginary parts U(±√(6/n)/ω_hidden)), biases PyTorch's
    default. With the WIRE code's default init (U(±1/√n)) every second hidden
    layer's pre-activations reach a median |z| of 1.5 (ω 2000/30, s 10, 90
    units), where the wavelet's factor exp(−ω Im z) is e^±25 and its Gaussian
    exp(−s²|z|²) below e^−200: those units are dead or blow up, the output
    hardly depends on t and the fit stays at the silence loss. Dividing by
    ω_hidden keeps |ω z| near 2-3 in every layer, as in SIREN.

    Arguments
    ---------
    first_omega : float
        ω of the first activation.
    hidden_omega : float
        ω of the later activations.
    scale : float
        Gaussian width s of every activation.
    hidden_sizes : tuple of int
        Hidden layer widths.
    compile : bool or str
        Compiled path (see :meth:`FunctionalINR._init_compile`): "auto"
        (default), True or False.

    Example
    -------
    >>> net = WIRE(hidden_sizes=(8, 8))
    >>> net(torch.rand(16, 1)).shape
    torch.Size([16, 1])
    >>> sum(p.numel() for p in net.parameters()), net.num_params  # complex counts once
    (97, 178)
    """

    def __init__(
        self, first_omega=2000.0, hidden_omega=30.0, scale=10.0, hidden_sizes=(90, 90, 90, 90, 70),
        compile="auto",
    ):
        super().__init__()
        self.first_omega = first_omega
        self.hidden_omega = hidden_omega
        self.scale = scale
        self._init_compile(compile)
        n_layers = len(hidden_sizes) + 1
        self._complex_blocks = tuple(n for i in range(1, n_layers) for n in (f"w{i}", f"b{i}"))
        self._build_mlp(1, hidden_sizes, complex_from=1)
        self._sine_init(hidden_omega)

    def clip_group(self, batch, compiled):
        """Compiled: one clip per group. Its three-part GEMMs over a short chunk of many
        clips (256 points at B = 16) ran 10 % slower per clip than over one clip's long
        chunks (``bench/results_gemm_widths.md``), and a fitting step at B = 16 took 1.07x
        the loop's time per clip with all clips per chunk against 1.02x one at a time
        (``bench/results_clip_groups_wire.md``). Eager (block form): all clips, one at a
        time was slower there (``bench/results_clip_groups.md``)."""
        return 1 if compiled else batch

    def activation_width(self, compiled=False):
        """Eager: real and imaginary parts side by side, twice the widest layer;
        compiled: the three stacked parts of the widest padded layer."""
        if compiled:
            return 3 * _aligned(max(self.sizes))
        return 2 * max(self.sizes)

    def prepare_params(self, params):
        """Adds the blocks of this call's path, built once per call instead of once per
        time chunk: compiled, :meth:`gauss_params` (``gauss``); eager, each complex layer's
        real block matrix (``block{i}``, ``bias_row{i}``, see :func:`complex_block`) and the
        output layer's real rows (``real_rows``, ``real_bias``)."""
        params = dict(params)
        if self._compiled_now:
            params["gauss"] = self.gauss_params(params)
            return params
        for i in range(1, self.n_layers - 1):
            params[f"block{i}"], params[f"bias_row{i}"] = complex_block(params[f"w{i}"], params[f"b{i}"])
        params["real_rows"], params["real_bias"] = self._real_rows(params)
        return params

    def gauss_params(self, params):
        """The compiled path's weights: ``(first, hidden, last)`` for :func:`_wire_gauss_forward`.

        ``first``: the real first layer padded, ``([B, n_p, 1], [B, n_p])``;
        ``hidden``: :func:`gauss_block` of each complex hidden layer;
        ``last``: the output layer's real part, ``Pᵀ`` and ``−Qᵀ`` padded
        (``[B, in_p, out]`` each) and ``Re(bias)`` ``[B, 1, out]``.
        """
        pad = torch.nn.functional.pad
        w0, b0 = params["w0"], params["b0"]
        extra = _aligned(w0.shape[1]) - w0.shape[1]
        first = (pad(w0, (0, 0, 0, extra)), pad(b0, (0, extra)))
        hidden = [gauss_block(params[f"w{i}"], params[f"b{i}"]) for i in range(1, self.n_layers - 1)]
        w_re, w_im, b_re, _ = _real_parts(params[f"w{self.n_layers - 1}"], params[f"b{self.n_layers - 1}"])
        extra = _aligned(w_re.shape[2]) - w_re.shape[2]
        rows_re, rows_im = (pad(part, (0, extra)).transpose(-1, -2) for part in (w_re, -w_im))
        return first, hidden, (rows_re, rows_im, b_re.unsqueeze(1))

    def _real_rows(self, params):
        """The output layer's real part, Re = P a − Q b + Re(bias): ``[B, out, 2in]`` and ``[B, out]``."""
        w_re, w_im, b_re, _ = _real_parts(params[f"w{self.n_layers - 1}"], params[f"b{self.n_layers - 1}"])
        return torch.cat([w_re, -w_im], dim=-1), b_re

    def forward_params(self, t, params):
        if self._compiled_call(t, params):
            gauss = params["gauss"] if "gauss" in params else self.gauss_params(params)
            return compiled_function(_wire_gauss_forward)(
                t, *gauss, self.first_omega, self.hidden_omega, self.scale**2
            )
        z = linear(t, params["w0"], params["b0"])  # [B, T, n], real
        x = _gabor_first(z, self.first_omega, self.scale**2)
        for i in range(1, self.n_layers - 1):
            if f"block{i}" in params:  # prepared once per call (prepare_params)
                z = _block_linear(x, params[f"block{i}"], params[f"bias_row{i}"])  # [B, T, 2n]
            else:
                z = complex_linear(x, params[f"w{i}"], params[f"b{i}"])
            x = gabor_wavelet(z, self.hidden_omega, self.scale)
        if "real_rows" in params:
            real_rows, real_bias = params["real_rows"], params["real_bias"]
        else:
            real_rows, real_bias = self._real_rows(params)
        return linear(x, real_rows, real_bias)


@register_inr("kan")
class KAN(FunctionalINR):
    """Positional encoding followed by KAN layers (the paper's headline INR).

    Each layer is φ(x) = w_b·SiLU(x) + w_s·spline(x) (see
    :mod:`fewsound_sb.nnet.kan`); the output layer is a KAN layer too. Every
    ablation knob of the paper is a constructor argument.

    Arguments
    ---------
    encoding_length : int
        PE frequencies L (input width 2L).
    hidden_sizes : tuple of int
        KAN layer widths.
    grid_size : int
        Grid intervals G.
    spline_order : int
        B-spline order k.
    grid_range : tuple of float
        Range of the uniform grid.
    enable_scale_spline : bool
        Keep the separate per-edge spline scaler (paper Table 17).
    scale_noise, scale_base, scale_spline : float
        Initialisation scales (efficient-kan's).
    compile : bool or str
        Layer path (orders k >= 2; ignored otherwise). "auto" (default): the
        ``torch.compile``'d path (``kan_layer(..., compiled=True)``, about
        1.6x faster per train step on CPU, see ``bench/results.md``) where a
        compiler works (:func:`~fewsound_sb.nnet.kan.compile_available`) and a
        call evaluates at least ``compile_min_points`` clip-points (B × T), the
        eager fused layer otherwise: the first call per input shape compiles
        (~100 s for the paper KAN on a busy 2-core CPU), which only long runs
        amortise. True: always compiled; False: always eager. One log line
        says which path was chosen.

    Example
    -------
    >>> net = KAN(encoding_length=2, hidden_sizes=(4,), grid_size=3)
    >>> net(torch.rand(16, 1)).shape
    torch.Size([16, 1])
    >>> net.num_params  # (4*4 + 4*1) * (3 + 2 + 1 + 1)
    140
    """

    def __init__(
        self,
        encoding_length=10,
        hidden_sizes=(48, 24, 12),
        grid_size=10,
        spline_order=2,
        grid_range=(-1.0, 1.0),
        enable_scale_spline=True,
        scale_noise=0.1,
        scale_base=1.0,
        scale_spline=1.0,
        compile="auto",
    ):
        super().__init__()
        self.encoding = PositionalEncoding(encoding_length)
        self._init_compile(compile)
        self.grid_size = grid_size
        self.spline_order = spline_order
        self.grid_range = tuple(grid_range)
        self.enable_scale_spline = enable_scale_spline
        self.sizes = (self.encoding.output_dim, *hidden_sizes, 1)
        self.n_layers = len(self.sizes) - 1
        n_coef = grid_size + spline_order
        spec = []
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes, self.sizes[1:])):
            spec.append(ParamSpec(f"base_weight{i}", (fan_out, fan_in), "base", fan_in))
            spec.append(ParamSpec(f"spline_weight{i}", (fan_out, fan_in, n_coef), "spline", fan_in))
            if enable_scale_spline:
                spec.append(ParamSpec(f"spline_scaler{i}", (fan_out, fan_in), "scaler", fan_in))
        self._register_spec(spec)
        for i in range(self.n_layers):
            init_kan_weights(
                getattr(self, f"base_weight{i}"), getattr(self, f"spline_weight{i}"),
                getattr(self, f"spline_scaler{i}", None), grid_size, spline_order,
                self.grid_range, scale_noise, scale_base, scale_spline,
            )

    def prepare_params(self, params):
        """Adds each layer's combined weights ``weight{i}`` ``[B, out, in, 1+G+k]``
        (:func:`~fewsound_sb.nnet.kan.combine_weights`), computed once per call instead of once per time chunk."""
        params = dict(params)
        for i in range(self.n_layers):
            params[f"weight{i}"] = self._combined_weight(params, i)
        return params

    def _combined_weight(self, params, i):
        return combine_weights(
            params[f"base_weight{i}"], params[f"spline_weight{i}"], params.get(f"spline_scaler{i}")
        )

    def forward_params(self, t, params):
        compiled = self._compiled_call(t, params)
        x = self.encoding(t)  # [Bt, T, 2L]
        for i in range(self.n_layers):
            weight = params.get(f"weight{i}")  # prepared once per call (prepare_params)
            if weight is None:
                weight = self._combined_weight(params, i)  # [B, out, in, 1+G+k]
            x = kan_layer(
                x, weight, self.grid_size, self.spline_order, self.grid_range, compiled=compiled
            )
        return x


def inr_class_path(cls):
    """Import path ``"module:QualName"`` of a target network class.

    Example
    -------
    >>> inr_class_path(KAN)
    'fewsound_sb.nnet.inr:KAN'
    """
    return f"{cls.__module__}:{cls.__qualname__}"


def registered_name(cls):
    """Registry name of a target network class, or None if it is not registered.

    Example
    -------
    >>> registered_name(SIREN), registered_name(FunctionalINR)
    ('siren', None)
    """
    for name, known in INR_REGISTRY.items():
        if known is cls:
            return name
    return None


def inr_class(name):
    """The target network class of a registry name or an import path.

    Arguments
    ---------
    name : str or type
        A registry name (``"kan"``, case-insensitive), an import path
        (``"my_pkg.targets:MyINR"`` or ``"my_pkg.targets.MyINR"``; the module
        is imported, which also runs its :func:`register_inr`), or a
        :class:`FunctionalINR` subclass (returned as is).

    Returns
    -------
    type
        A :class:`FunctionalINR` subclass.

    Example
    -------
    >>> inr_class("KAN") is KAN, inr_class("fewsound_sb.nnet.inr:NeRF") is NeRF
    (True, True)
    """
    if isinstance(name, type):
        if not issubclass(name, FunctionalINR):
            raise TypeError(f"{name!r} is not a FunctionalINR subclass")
        return name
    key = str(name).lower()
    if key in INR_REGISTRY:
        return INR_REGISTRY[key]
    text = str(name)
    if ":" not in text and "." not in text:
        raise ValueError(
            f"unknown target network '{name}': choose one of {', '.join(sorted(INR_REGISTRY))}, "
            "give a class import path ('package.module:ClassName'), or register your class "
            "with @fewsound_sb.nnet.inr.register_inr('name')"
        )
    module_name, _, qualname = text.partition(":") if ":" in text else text.rpartition(".")
    try:
        obj = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"cannot import the target network class '{text}' ({err}): install or put on "
            "sys.path the module that defines it, or use a registered name "
            f"({', '.join(sorted(INR_REGISTRY))})"
        ) from err
    if not (isinstance(obj, type) and issubclass(obj, FunctionalINR)):
        raise ValueError(f"'{text}' is not a FunctionalINR subclass: {obj!r}")
    return obj


def build_inr(name, **overrides):
    """Build a target network by name with the paper's Table 1 defaults.

    Arguments
    ---------
    name : str or type
        A registered name (kan, nerf, siren, rff, wire, finer, or any class
        added with :func:`register_inr`; case-insensitive), a class import
        path, or the class itself (see :func:`inr_class`).
    **overrides
        Constructor arguments that replace the defaults.

    Example
    -------
    >>> sum(p.numel() for p in build_inr("kan").parameters())
    33768
    >>> build_inr("kan", grid_size=5).num_params
    21708
    """
    return inr_class(name)(**overrides)
