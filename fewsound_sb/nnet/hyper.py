"""Hypernetwork heads that turn a sound embedding into INR weights.

Two heads share one fully connected hypernetwork ``H`` (:class:`MLPHypernetwork`):

* :class:`HyperSoundHead` (Szatkowski et al., 2023): ``H(e_s)`` is the whole flat
  weight vector of the target INR, ``[B, P]``.
* :class:`FewSoundHead` (the paper, Sec. 3): trained universal weights ``theta``
  ``[P]`` are encoded by the universal weight encoder ``G``
  (:class:`UniversalWeightEncoder`), ``H(concat(e_s, G(theta)))`` gives a per-clip
  update ``delta`` ``[B, P]`` and the clip's weights are ``theta + f * delta``,
  with a warm-up factor ``f``.

Both only ever produce flat weight vectors and call ``target.forward_flat``
(see ``fewsound_sb.nnet.inr``): there is no second copy of a target network here.
The target's own parameters are frozen; its buffers (positional-encoding
frequencies, KAN grid, RFF matrix) are used as they are, shared by every clip.

Paper: https://arxiv.org/abs/2503.02585 (FewSound); HyperSound:
https://arxiv.org/abs/2306.17316
"""

import math
from typing import Optional, Sequence

import torch

# Spec kinds (``ParamSpec.kind``) that θ initialises with U(±sqrt(6 / numel)).
# The authors' code applies that init to every block whose *name* contains "w"
# (MLP w{i}, KAN base bw{i}, KAN spline sw{i}) and zeros to the rest (MLP b{i},
# KAN scaler ss{i}); in this package's kinds that is:
THETA_KAIMING_KINDS = ("weight", "base", "spline")
THETA_ZERO_KINDS = ("bias", "scaler")

# Initialisation modes of H's output layer (YAML flag ``output_init``):
# "hyperfan" (the authors'), "default" (PyTorch's) and "target" (around the
# target network's own initialisation; see MLPHypernetwork.init_output_like_target).
OUTPUT_INIT_MODES = ("hyperfan", "default", "target")

# Initialisation modes of θ (YAML flag ``theta_init``).
THETA_INIT_MODES = ("authors", "target")


def mlp_num_params(sizes: Sequence[int]) -> int:
    """Number of parameters of a fully connected stack with biases.

    Arguments
    ---------
    sizes : sequence of int
        Layer widths ``[in, hidden..., out]``.

    Returns
    -------
    int
        ``sum(a * b + b)`` over consecutive pairs ``(a, b)``.

    Example
    -------
    >>> mlp_num_params([6592, 400, 768, 768, 768, 768, 400, 31191])
    17532135
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(f"need at least [in, out] sizes, got {sizes}")
    return sum(a * b + b for a, b in zip(sizes, sizes[1:]))


def count_parameters(module: torch.nn.Module) -> int:
    """Number of trainable parameters of a module, as the paper counts them.

    The one parameter count of the package (hypernetwork parts, target INRs,
    single-clip fits, benchmarks). It counts:

    * trainable parameters only (``requires_grad``): frozen ones (e.g. the
      target INR inside a head) and buffers are not counted;
    * shared parameters once;
    * a complex weight as one parameter (WIRE's complex layers, as in the
      paper's Table 1), although its flat weight vector stores two reals
      (``FunctionalINR.num_params`` is that flat length).

    Arguments
    ---------
    module : torch.nn.Module
        Any module.

    Returns
    -------
    int
        Count of trainable scalars (complex ones count once).

    Example
    -------
    >>> count_parameters(torch.nn.Linear(3, 2))
    8
    >>> layer = torch.nn.Linear(3, 2)
    >>> _ = layer.bias.requires_grad_(False)
    >>> count_parameters(layer)
    6
    >>> count_parameters(torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(4, dtype=torch.cfloat))]))
    4
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _block_offsets(spec):
    """Start offsets of each spec block in the flat vector, and the total P."""
    offsets, total = [], 0
    for entry in spec:
        offsets.append(total)
        total += math.prod(entry.shape)
    return offsets, total


def _layer_has_bias(spec, index: int) -> bool:
    """Whether the weight block ``spec[index]`` belongs to a layer with a bias.

    The bias of a layer is the spec entry right after its weight, of kind
    "bias" with the same number of outputs (the order ``fewsound_sb.nnet.inr``
    uses: w{i}, b{i}; complex blocks end in a real/imaginary axis of 2).
    """
    weight = spec[index]
    if index + 1 >= len(spec):
        return False
    nxt = spec[index + 1]
    return nxt.kind == "bias" and nxt.shape[0] == weight.shape[0]


class MLPHypernetwork(torch.nn.Module):
    """Fully connected hypernetwork ``H``: embedding -> flat weight vector.

    ``Linear -> activation`` for every hidden width, then a linear output layer.
    Hidden layers: kaiming-uniform (ReLU gain) weights and zero biases. The output
    layer keeps PyTorch's default ``Linear`` init until
    :meth:`init_output_for_target` sets a per-target-block init.

    Arguments
    ---------
    input_dim : int
        Input width (FewSound: encoder dim + G's output dim, e.g. 6592).
    output_dim : int
        Output width (the target's P).
    hidden_sizes : tuple of int
        Hidden widths; the paper's 17.5M H uses ``(400, 768, 768, 768, 768, 400)``.
    activation : type
        Activation class applied after each hidden layer.

    Example
    -------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> h = MLPHypernetwork(input_dim=6, output_dim=10, hidden_sizes=(8, 8))
    >>> h(torch.rand(2, 6)).shape
    torch.Size([2, 10])
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        hidden_sizes: Sequence[int] = (400, 768, 768, 768, 768, 400),
        activation: type = torch.nn.ELU,
    ):
        super().__init__()
        hidden_sizes = tuple(int(h) for h in hidden_sizes)
        if input_dim < 1 or output_dim < 1 or any(h < 1 for h in hidden_sizes):
            raise ValueError(
                "MLPHypernetwork sizes must be positive. Found: "
                f"input_dim={input_dim}, hidden_sizes={hidden_sizes}, "
                f"output_dim={output_dim}"
            )
        self.input_dim = int(input_dim)
        self.output_dim = int(output_dim)
        self.hidden_sizes = hidden_sizes
        sizes = (self.input_dim,) + hidden_sizes
        layers = []
        for n_in, n_out in zip(sizes, sizes[1:]):
            linear = torch.nn.Linear(n_in, n_out)
            # authors' H init (fewsound/models/meta/hyper.py): kaiming_uniform(relu), zero bias
            torch.nn.init.kaiming_uniform_(linear.weight, nonlinearity="relu")
            torch.nn.init.zeros_(linear.bias)
            layers += [linear, activation()]
        self.hidden = torch.nn.Sequential(*layers)
        self.output = torch.nn.Linear(sizes[-1], self.output_dim)

    @property
    def sizes(self):
        """Layer widths ``(input, hidden..., output)``."""
        return (self.input_dim,) + self.hidden_sizes + (self.output_dim,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``x`` ``[B, input_dim]`` to ``[B, output_dim]``.

        Arguments
        ---------
        x : torch.Tensor
            ``[B, input_dim]``.

        Returns
        -------
        torch.Tensor
            ``[B, output_dim]``.
        """
        if x.dim() != 2 or x.shape[1] != self.input_dim:
            raise ValueError(
                f"MLPHypernetwork expected [B, {self.input_dim}], "
                f"got {tuple(x.shape)}"
            )
        return self.output(self.hidden(x))  # [B, output_dim]

    @torch.no_grad()
    def init_output_for_target(
        self,
        spec,
        row_scale: float = 1.0,
        bias_omega: Optional[float] = None,
    ):
        """Per-target-block init of the output layer (hypnettorch style).

        For the rows of the output layer that produce one target block
        (``n = last hidden width``; authors' ``fewsound/models/meta/hyper.py``):

        * kind "bias": ``U(±sqrt(3 var))``, ``var = 1 / n``;
        * kind "weight": ``U(±sqrt(3 var))``,
          ``var = 2 / (c_b * fan_in * n)`` with ``c_b = 2`` when the target
          layer has a bias (the next spec entry, of kind "bias"), else 1;
        * other kinds (KAN "base", "spline", "scaler"): PyTorch's default
          ``Linear`` init is kept, as in the authors' code.

        The output-layer bias is set to 0. The SIREN variant of the authors' code
        is ``row_scale=1e-3, bias_omega=omega_i``: all covered rows are multiplied
        by ``row_scale`` and the output bias of each "weight" block is drawn like
        SIREN's own init, ``U(±sqrt(6 / fan_in) / omega_i)`` (``U(±1)`` when
        ``fan_in == 1``), so H starts near a SIREN-initialised target.

        Arguments
        ---------
        spec : sequence of ParamSpec
            The target's ``.spec``; its total size must equal ``output_dim``.
        row_scale : float
            Factor on the covered rows (1.0 = plain hypnettorch init).
        bias_omega : float or None
            If given, SIREN-style output bias for "weight" blocks (see above).

        Example
        -------
        >>> from collections import namedtuple
        >>> PS = namedtuple("PS", "name shape kind fan_in")
        >>> spec = (PS("w0", (4, 1), "weight", 1), PS("b0", (4,), "bias", 1))
        >>> h = MLPHypernetwork(3, 8, hidden_sizes=(16,))
        >>> h.init_output_for_target(spec)
        >>> bool((h.output.bias == 0).all())
        True
        """
        offsets, total = _block_offsets(spec)
        if total != self.output_dim:
            raise ValueError(
                f"target spec has {total} parameters but H outputs "
                f"{self.output_dim}; build H with output_dim={total}"
            )
        n_last = self.output.in_features
        weight, bias = self.output.weight, self.output.bias  # [P, n], [P]
        bias.zero_()
        for index, (entry, start) in enumerate(zip(spec, offsets)):
            stop = start + math.prod(entry.shape)
            if entry.kind == "bias":
                var = 1.0 / n_last
            elif entry.kind == "weight":
                c_b = 2.0 if _layer_has_bias(spec, index) else 1.0
                var = 2.0 / (c_b * entry.fan_in * n_last)
            else:
                continue  # KAN blocks keep the default Linear init
            bound = math.sqrt(3.0 * var) * row_scale
            weight[start:stop].uniform_(-bound, bound)
            if bias_omega is not None and entry.kind == "weight":
                if entry.fan_in == 1:
                    b_bound = 1.0
                else:
                    b_bound = math.sqrt(6.0 / entry.fan_in) / bias_omega
                bias[start:stop].uniform_(-b_bound, b_bound)


    @torch.no_grad()
    def init_output_like_target(self, spec, reference, row_scale=1.0, bias_to_reference=True):
        """Init of the output layer around a target's own initial weights.

        Every target block (every kind, KAN's included) gets output rows
        ``U(±row_scale * sqrt(3 / n) * s)``, ``n`` = last hidden width, ``s``
        = the standard deviation of that block in ``reference`` (its absolute
        mean for a one-element block; 1 / sqrt(fan_in) for an all-zero block),
        so each output deviates from the bias by about ``row_scale`` times the
        spread of the target's own init. The output bias is ``reference``
        (HyperSound: every clip starts near the target's own, quiet,
        initialisation) or 0 (FewSound, where θ holds the initial weights and
        H gives the update).

        Arguments
        ---------
        spec : sequence of ParamSpec
            The target's ``.spec``; its total size must equal ``output_dim``.
        reference : torch.Tensor
            ``[P]`` flat initial weights of the target (``flat_weights()``).
        row_scale : float
            Factor on the rows (the spread of the per-clip weights).
        bias_to_reference : bool
            Output bias = ``reference`` if True, else 0.

        Example
        -------
        >>> from collections import namedtuple
        >>> PS = namedtuple("PS", "name shape kind fan_in")
        >>> spec = (PS("w0", (4, 1), "weight", 1), PS("b0", (4,), "bias", 1))
        >>> h = MLPHypernetwork(3, 8, hidden_sizes=(16,))
        >>> reference = torch.arange(8.0)
        >>> h.init_output_like_target(spec, reference, row_scale=0.5)
        >>> h.output.bias.tolist()
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
        >>> bound = 0.5 * math.sqrt(3 / 16) * float(reference[:4].std())
        >>> bool(h.output.weight[:4].abs().max() <= bound)
        True
        """
        offsets, total = _block_offsets(spec)
        if total != self.output_dim or reference.numel() != total:
            raise ValueError(
                f"target spec has {total} parameters and the reference "
                f"{reference.numel()}, but H outputs {self.output_dim}"
            )
        reference = reference.detach().reshape(-1).to(self.output.weight)
        n_last = self.output.in_features
        for entry, start in zip(spec, offsets):
            stop = start + math.prod(entry.shape)
            block = reference[start:stop]
            spread = float(block.std()) if block.numel() > 1 else float(block.abs().mean())
            if spread == 0.0:
                spread = 1.0 / math.sqrt(max(int(entry.fan_in), 1))
            bound = row_scale * math.sqrt(3.0 / n_last) * spread
            self.output.weight[start:stop].uniform_(-bound, bound)
        if bias_to_reference:
            self.output.bias.copy_(reference)
        else:
            self.output.bias.zero_()


class UniversalWeightEncoder(torch.nn.Module):
    """Universal weight encoder ``G``: θ ``[P]`` as a 1-D signal -> ``[1, d]``.

    ``[Conv1d(1, 1, kernel_size) -> activation] x n_conv -> Linear(P - n_conv (k - 1), d)``
    (no padding, stride 1; authors' ``fewsound/models/meta/hyper.py``). With the paper's NeRF target
    (P = 32,901, k = 8101, d = 3296) this is about 55.07M parameters.

    Arguments
    ---------
    num_params : int
        P, the length of θ.
    output_dim : int
        d, the output width (3296 in the paper, equal to the encoder's).
    kernel_size : int
        Kernel size k of each convolution.
    n_conv : int
        Number of convolution + activation blocks.
    activation : type
        Activation class after each convolution.

    Example
    -------
    >>> g = UniversalWeightEncoder(num_params=40, output_dim=6, kernel_size=5)
    >>> g(torch.rand(40)).shape
    torch.Size([1, 6])
    """

    def __init__(
        self,
        num_params: int,
        output_dim: int = 3296,
        kernel_size: int = 8101,
        n_conv: int = 2,
        activation: type = torch.nn.ELU,
    ):
        super().__init__()
        if kernel_size < 1 or n_conv < 0 or output_dim < 1:
            raise ValueError(
                "UniversalWeightEncoder needs kernel_size >= 1, n_conv >= 0, "
                f"output_dim >= 1. Found: kernel_size={kernel_size}, "
                f"n_conv={n_conv}, output_dim={output_dim}"
            )
        shrink = n_conv * (kernel_size - 1)
        if num_params <= shrink:
            raise ValueError(
                f"UniversalWeightEncoder: the target has P={num_params} "
                f"parameters, but {n_conv} convolutions with kernel_size="
                f"{kernel_size} need P > n_conv * (kernel_size - 1) = {shrink}. "
                "Lower g_kernel_size / g_num_conv or use a larger target."
            )
        self.num_params = int(num_params)
        layers = []
        for _ in range(n_conv):
            layers += [torch.nn.Conv1d(1, 1, kernel_size), activation()]
        self.convs = torch.nn.Sequential(*layers)
        self.linear = torch.nn.Linear(num_params - shrink, output_dim)

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        """Encode θ.

        Arguments
        ---------
        theta : torch.Tensor
            ``[P]`` or ``[1, P]``.

        Returns
        -------
        torch.Tensor
            ``[1, output_dim]``.
        """
        if theta.shape[-1] != self.num_params or theta.numel() != self.num_params:
            raise ValueError(
                f"UniversalWeightEncoder expected [{self.num_params}] or "
                f"[1, {self.num_params}], got {tuple(theta.shape)}"
            )
        x = theta.reshape(1, 1, self.num_params)  # [1, 1, P]
        x = self.convs(x)  # [1, 1, P - n_conv (k - 1)]
        return self.linear(x.squeeze(1))  # [1, d]


def _freeze_target(target: torch.nn.Module):
    """Frozen target: its own parameters are never trained by a head."""
    for attr in ("spec", "num_params", "forward_flat"):
        if not hasattr(target, attr):
            raise ValueError(
                f"target must be a FunctionalINR (fewsound_sb.nnet.inr); "
                f"{type(target).__name__} has no '{attr}'"
            )
    target.requires_grad_(False)


def _check_embedding(embedding: torch.Tensor, dim: int, who: str):
    if embedding.dim() != 2 or embedding.shape[1] != dim:
        raise ValueError(
            f"{who} expected embedding [B, {dim}], got {tuple(embedding.shape)}"
        )


class _HeadBase(torch.nn.Module):
    """Shared part of the heads: the target INR and H."""

    # output_init "target": H's output bias is the target's initial weights
    # (True: H gives the weights) or 0 (False: H gives an update to θ)
    output_bias_is_target_init = True

    def __init__(
        self,
        target,
        input_dim: int,
        hypernet_hidden: Sequence[int],
        activation: type,
        output_init: str,
        output_row_scale: float,
        output_bias_omega: Optional[float],
    ):
        super().__init__()
        if output_init not in OUTPUT_INIT_MODES:
            raise ValueError(
                f"output_init must be one of {OUTPUT_INIT_MODES}. "
                f"Found: {output_init!r}"
            )
        _freeze_target(target)
        # Registered as a submodule so its buffers (PE frequencies, KAN grid,
        # RFF matrix) follow .to(device) and are checkpointed with the head;
        # the same object can be !ref'd elsewhere in the YAML.
        self.target = target
        self.num_params = int(target.num_params)
        self.hypernet = MLPHypernetwork(
            input_dim=input_dim,
            output_dim=self.num_params,
            hidden_sizes=hypernet_hidden,
            activation=activation,
        )
        if output_init == "hyperfan":
            self.hypernet.init_output_for_target(
                target.spec,
                row_scale=output_row_scale,
                bias_omega=output_bias_omega,
            )
        elif output_init == "target":
            # HyperSound: H's bias is the target's init; FewSound: θ holds it, H adds to it
            self.hypernet.init_output_like_target(
                target.spec,
                target.flat_weights(),
                row_scale=output_row_scale,
                bias_to_reference=self.output_bias_is_target_init,
            )

    def reconstruct(self, embedding: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Decode an embedding into samples at times ``t``.

        Arguments
        ---------
        embedding : torch.Tensor
            ``[B, encoder_dim]``.
        t : torch.Tensor
            ``[T, 1]`` or ``[B, T, 1]``, time in [-1, 1].

        Returns
        -------
        torch.Tensor
            ``[B, T, 1]``.
        """
        weights = self(embedding)  # [B, P]
        return self.target.forward_flat(t, weights)  # [B, T, 1]


class HyperSoundHead(_HeadBase):
    """HyperSound head: ``weights = H(e_s)``, the whole target vector ``[B, P]``.

    Arguments
    ---------
    target : FunctionalINR
        Target INR (``fewsound_sb.nnet.inr``); its parameters are frozen.
    encoder_dim : int
        Width of the sound embedding ``e_s``.
    hypernet_hidden : tuple of int
        Hidden widths of H.
    activation : type
        Activation class of H.
    output_init : str
        "hyperfan": per-target-block init of H's last layer, the authors'
        (:meth:`MLPHypernetwork.init_output_for_target`; KAN blocks keep
        PyTorch's init, so a KAN target starts several times louder than the
        clips); "target": rows around the target's own init, with the
        target's initial weights as H's output bias
        (:meth:`MLPHypernetwork.init_output_like_target`); "default": PyTorch's.
    output_row_scale : float
        Factor on the last-layer rows (SIREN in the authors' code: 1e-3).
    output_bias_omega : float or None
        SIREN's omega_i for a SIREN-style last-layer bias; None for 0.

    Example
    -------
    >>> from fewsound_sb.nnet.inr import build_inr, time_grid
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> target = build_inr("nerf", encoding_length=2, hidden_sizes=(8, 8))
    >>> head = HyperSoundHead(target, encoder_dim=6, hypernet_hidden=(16, 16))
    >>> head(torch.rand(3, 6)).shape == (3, target.num_params)
    True
    >>> head.reconstruct(torch.rand(3, 6), time_grid(16)).shape
    torch.Size([3, 16, 1])
    """

    def __init__(
        self,
        target,
        encoder_dim: int,
        hypernet_hidden: Sequence[int] = (400, 768, 768, 768, 768, 400),
        activation: type = torch.nn.ELU,
        output_init: str = "hyperfan",
        output_row_scale: float = 1.0,
        output_bias_omega: Optional[float] = None,
    ):
        super().__init__(
            target,
            input_dim=encoder_dim,
            hypernet_hidden=hypernet_hidden,
            activation=activation,
            output_init=output_init,
            output_row_scale=output_row_scale,
            output_bias_omega=output_bias_omega,
        )
        self.encoder_dim = int(encoder_dim)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """Target weights for each clip.

        Arguments
        ---------
        embedding : torch.Tensor
            ``[B, encoder_dim]``.

        Returns
        -------
        torch.Tensor
            ``[B, P]``.
        """
        _check_embedding(embedding, self.encoder_dim, "HyperSoundHead")
        return self.hypernet(embedding)  # [B, P]


class FewSoundHead(_HeadBase):
    """FewSound head: ``weights = theta + f * H(concat(e_s, G(theta)))``.

    ``theta`` (universal weights, ``[P]``), G and H are trained; the target's own
    parameters are frozen. ``f`` is the warm-up factor set by :meth:`set_epoch`:
    ``epoch / warmup_epochs`` below ``warmup_epochs``, else 1 (0 disables the
    warm-up), used in training and validation alike; it is a buffer, so it is
    checkpointed.

    θ init (``theta_init``):

    * "authors": blocks of kind "weight", "base", "spline" (the authors' names
      with a "w": w{i}, bw{i}, sw{i}) get ``U(±sqrt(6 / numel))`` over the
      flattened block; kinds "bias" and "scaler" start at 0 (so KAN's scaler,
      and with it KAN's spline branch, starts switched off, as in their code);
    * "target": a copy of the target's own initial weights (``flat_weights()``).

    Arguments
    ---------
    target : FunctionalINR
        Target INR (``fewsound_sb.nnet.inr``); its parameters are frozen.
    encoder_dim : int
        Width of the sound embedding ``e_s`` (3296 in the paper).
    hypernet_hidden : tuple of int
        Hidden widths of H (17.5M: ``(400, 768, 768, 768, 768, 400)``).
    g_output_dim : int
        Output width of G (3296 in the paper).
    g_kernel_size : int
        Kernel size of G's convolutions (8101 in the paper).
    g_num_conv : int
        Number of G's convolutions (2 in the paper).
    activation : type
        Activation class of G and H.
    warmup_epochs : int
        Epochs over which ``f`` ramps from 0 to 1 (50 in the authors' code).
    theta_init : str
        "authors" or "target" (see above).
    output_init : str
        "hyperfan", "default" or "target" (see :class:`HyperSoundHead`;
        "target" leaves H's output bias at 0 here: θ holds the initial weights).
    output_row_scale : float
        Factor on the last-layer rows of H.
    output_bias_omega : float or None
        SIREN's omega_i for a SIREN-style last-layer bias of H; None for 0.

    Example
    -------
    >>> from fewsound_sb.nnet.inr import build_inr, time_grid
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> target = build_inr("nerf", encoding_length=2, hidden_sizes=(8, 8))
    >>> head = FewSoundHead(target, encoder_dim=6, hypernet_hidden=(16, 16),
    ...                     g_output_dim=4, g_kernel_size=5, warmup_epochs=10)
    >>> head.set_epoch(5)
    >>> float(head.warmup_factor)
    0.5
    >>> head(torch.rand(3, 6)).shape == (3, target.num_params)
    True
    >>> head.reconstruct(torch.rand(3, 6), time_grid(16)).shape
    torch.Size([3, 16, 1])
    """

    output_bias_is_target_init = False  # θ holds the initial weights

    def __init__(
        self,
        target,
        encoder_dim: int,
        hypernet_hidden: Sequence[int] = (400, 768, 768, 768, 768, 400),
        g_output_dim: int = 3296,
        g_kernel_size: int = 8101,
        g_num_conv: int = 2,
        activation: type = torch.nn.ELU,
        warmup_epochs: int = 50,
        theta_init: str = "authors",
        output_init: str = "hyperfan",
        output_row_scale: float = 1.0,
        output_bias_omega: Optional[float] = None,
    ):
        super().__init__(
            target,
            input_dim=encoder_dim + g_output_dim,
            hypernet_hidden=hypernet_hidden,
            activation=activation,
            output_init=output_init,
            output_row_scale=output_row_scale,
            output_bias_omega=output_bias_omega,
        )
        if theta_init not in THETA_INIT_MODES:
            raise ValueError(
                f"theta_init must be one of {THETA_INIT_MODES}. "
                f"Found: {theta_init!r}"
            )
        if warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0. Found: {warmup_epochs}")
        self.encoder_dim = int(encoder_dim)
        self.warmup_epochs = int(warmup_epochs)
        self.theta = torch.nn.Parameter(self._initial_theta(theta_init))  # [P]
        self.weight_encoder = UniversalWeightEncoder(
            num_params=self.num_params,
            output_dim=g_output_dim,
            kernel_size=g_kernel_size,
            n_conv=g_num_conv,
            activation=activation,
        )
        self.register_buffer("warmup_factor", torch.tensor(1.0))
        self.set_epoch(0)

    def _initial_theta(self, theta_init: str) -> torch.Tensor:
        if theta_init == "target":
            return self.target.flat_weights().detach().clone()  # [P]
        blocks = []
        for entry in self.target.spec:
            numel = math.prod(entry.shape)
            if entry.kind in THETA_KAIMING_KINDS:
                bound = math.sqrt(6.0 / numel)
                blocks.append(torch.empty(numel).uniform_(-bound, bound))
            else:
                blocks.append(torch.zeros(numel))
        return torch.cat(blocks)  # [P]

    def set_epoch(self, epoch: int):
        """Set the warm-up factor for a 0-based epoch index.

        ``f = epoch / warmup_epochs`` while ``epoch < warmup_epochs``, else 1;
        ``warmup_epochs = 0`` gives ``f = 1`` always. The authors count epochs
        from 0 (``f = 0`` in the first epoch); SpeechBrain's ``on_stage_start``
        receives 1-based epochs, so call ``set_epoch(epoch - 1)`` there.

        Arguments
        ---------
        epoch : int
            Number of completed epochs (0 for the first one).
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0. Found: {epoch}")
        if self.warmup_epochs == 0 or epoch >= self.warmup_epochs:
            value = 1.0
        else:
            value = epoch / self.warmup_epochs
        self.warmup_factor.fill_(value)

    def _universal_key(self):
        """What G(θ) depends on: θ and G's parameters (identity, device, in-place version)."""
        tensors = (self.theta, *self.weight_encoder.parameters())
        return tuple((t.data_ptr(), t.device, t.dtype, t._version) for t in tensors)

    def universal_embedding(self) -> torch.Tensor:
        """``G(θ)`` ``[1, g_output_dim]``: computed once, reused while nothing changes.

        G(θ) does not depend on the clip. In training, or whenever autograd
        records (``torch.is_grad_enabled()``), it is computed afresh every call
        (gradients must reach θ and G). Otherwise (``eval()`` under
        ``torch.no_grad`` / ``torch.inference_mode``: validation, inference) the
        value is cached, keyed on θ and G's parameters (storage, device, dtype
        and in-place version counter), so an optimiser step, ``load_state_dict``
        or ``.to(device)`` recomputes it; :meth:`clear_cache` drops it.

        Returns
        -------
        torch.Tensor
            ``[1, g_output_dim]``.

        Example
        -------
        >>> from fewsound_sb.nnet.inr import build_inr
        >>> head = FewSoundHead(build_inr("nerf", encoding_length=2, hidden_sizes=(8,)),
        ...                     encoder_dim=6, hypernet_hidden=(16,), g_output_dim=4,
        ...                     g_kernel_size=5).eval()
        >>> with torch.no_grad():
        ...     first = head.universal_embedding()
        ...     again = head.universal_embedding()
        >>> again is first  # cached
        True
        >>> with torch.no_grad():
        ...     _ = head.theta.add_(1.0)  # θ changed in place: recomputed
        ...     bool((head.universal_embedding() != first).any())
        True
        """
        if self.training or torch.is_grad_enabled():
            self._universal_cache = None
            return self.weight_encoder(self.theta)  # [1, g_output_dim]
        key = self._universal_key()
        cache = getattr(self, "_universal_cache", None)
        if cache is None or cache[0] != key:
            cache = (key, self.weight_encoder(self.theta))
            self._universal_cache = cache
        return cache[1]

    def clear_cache(self):
        """Drop the cached G(θ) (see :meth:`universal_embedding`)."""
        self._universal_cache = None

    def compute_delta(self, embedding: torch.Tensor) -> torch.Tensor:
        """Per-clip update Δθ (before the warm-up factor).

        Arguments
        ---------
        embedding : torch.Tensor
            ``[B, encoder_dim]``.

        Returns
        -------
        torch.Tensor
            ``[B, P]``.
        """
        _check_embedding(embedding, self.encoder_dim, "FewSoundHead")
        e_theta = self.universal_embedding()  # [1, g_output_dim]
        e_theta = e_theta.expand(embedding.shape[0], -1)  # [B, g_output_dim]
        h_in = torch.cat([embedding, e_theta], dim=1)  # [B, encoder + g]
        return self.hypernet(h_in)  # [B, P]

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        """Target weights ``theta + f * delta`` for each clip.

        Arguments
        ---------
        embedding : torch.Tensor
            ``[B, encoder_dim]``.

        Returns
        -------
        torch.Tensor
            ``[B, P]``.
        """
        delta = self.compute_delta(embedding)  # [B, P]
        return self.theta.unsqueeze(0) + self.warmup_factor * delta  # [B, P]
