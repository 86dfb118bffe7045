"""Activation functions with faster CPU kernels than torch's own.

:class:`ELU` computes the same function as ``torch.nn.ELU()`` (α = 1), the
activation of the SoundStream encoder (Zeghidour et al., 2021), through ``exp``
instead of ``expm1``. In the CPU builds of torch this project pins, ``expm1``
(and with it ``torch.nn.functional.elu``, eager or compiled) is not vectorised:
on one thread it takes about 10x as long as ``exp`` on the same tensor, and the
paper-size encoder spent more than half of its forward time in ELU
(``bench/README.md``, "Encoder activation"). ``exp(x) − 1`` loses relative
precision for x near 0, but not absolute precision, which is what the next
layer sees: its largest absolute error against a float64 reference is below
1e-7, as is torch's ELU's (``tests/unit/test_activations.py``).
"""

import torch


class _ELUFunction(torch.autograd.Function):
    """ELU with the backward written from the output: ``dy/dx = 1`` for ``y > 0``, else ``y + 1``."""

    @staticmethod
    def forward(ctx, x):
        # exp(min(x, 0)) − 1 + max(x, 0): x for x > 0, exp(x) − 1 otherwise
        y = torch.exp(torch.clamp(x, max=0.0)).sub_(1.0).add_(torch.relu(x))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * (torch.clamp(y, max=0.0) + 1.0)


def elu(x):
    """``x`` for ``x > 0``, ``exp(x) − 1`` otherwise (ELU with α = 1), computed through ``exp``.

    Arguments
    ---------
    x : torch.Tensor
        Any shape, floating point.

    Returns
    -------
    torch.Tensor
        Same shape and dtype; one saved tensor (the output) for the backward.

    Example
    -------
    >>> x = torch.tensor([-2.0, -0.5, 0.0, 1.5])
    >>> elu(x)
    tensor([-0.8647, -0.3935,  0.0000,  1.5000])
    >>> torch.allclose(elu(x), torch.nn.functional.elu(x))
    True
    """
    return _ELUFunction.apply(x)


class ELU(torch.nn.Module):
    """``torch.nn.ELU()`` (α = 1) through ``exp``: the same values, faster on CPU (see the module docstring).

    A drop-in replacement: no parameters, so checkpoints written with
    ``torch.nn.ELU`` load unchanged.

    Example
    -------
    >>> act = ELU()
    >>> x = torch.randn(2, 3, 5, requires_grad=True)
    >>> act(x).shape
    torch.Size([2, 3, 5])
    >>> act
    ELU(alpha=1.0)
    """

    def forward(self, x):
        """Applies :func:`elu` to ``x`` (any shape)."""
        return elu(x)

    def extra_repr(self):
        """Prints like ``torch.nn.ELU()``."""
        return "alpha=1.0"
