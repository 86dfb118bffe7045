"""Learning-rate schedules of hypernetwork training, chosen by name in the YAML.

The paper trains with OneCycleLR (Smith and Topin, 2018); a constant rate
and a cosine decay are the usual alternatives, and the ones
``bench/learning.py`` compares at a CPU budget. Every schedule is stepped once
per optimizer step and is checkpointable (a ``torch.optim.lr_scheduler``).
"""

import torch

SCHEDULES = ("onecycle", "cosine", "constant")


def lr_schedule(optimizer, total_steps, name="onecycle", max_factor=25.0, pct_start=0.05):
    """The LR schedule ``name`` for ``total_steps`` optimizer steps.

    Arguments
    ---------
    optimizer : torch.optim.Optimizer
        Its ``lr`` is the starting rate of every schedule.
    total_steps : int
        Optimizer steps of the whole run.
    name : str
        ``"onecycle"``: OneCycleLR from ``lr`` up to ``lr × max_factor`` over
        the first ``pct_start`` of the steps, then a cosine down to
        ``lr / 1e4`` (PyTorch's defaults otherwise, including the momentum
        cycling; the paper's schedule with the authors' ``max_factor`` 25 and
        ``pct_start`` 0.05). ``"cosine"``: cosine decay from ``lr`` to 0.
        ``"constant"``: ``lr`` throughout.
    max_factor : float
        Peak / starting rate of ``"onecycle"`` (>= 1; unused otherwise).
    pct_start : float
        Share of the steps spent rising, for ``"onecycle"`` (unused otherwise).

    Returns
    -------
    torch.optim.lr_scheduler.LRScheduler

    Example
    -------
    >>> opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    >>> sched = lr_schedule(opt, total_steps=100, name="onecycle", max_factor=25)
    >>> rates = []
    >>> for _ in range(100):
    ...     rates.append(opt.param_groups[0]["lr"])
    ...     opt.step()
    ...     sched.step()
    >>> f"{rates[0]:.1e} {max(rates):.1e} {rates[-1]:.1e}"
    '1.0e-04 2.5e-03 1.0e-08'
    >>> opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    >>> sched = lr_schedule(opt, total_steps=100, name="constant")
    >>> for _ in range(50):
    ...     opt.step()
    ...     sched.step()
    >>> opt.param_groups[0]["lr"]
    0.0001
    """
    if name not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES)}; found: {name!r}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1; found: {total_steps}")
    if name == "onecycle":
        if max_factor < 1:
            raise ValueError(f"lr_max_factor must be >= 1 (peak / starting lr); found: {max_factor}")
        base = optimizer.param_groups[0]["lr"]
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=base * max_factor, total_steps=total_steps,
            div_factor=max_factor, pct_start=pct_start,
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
