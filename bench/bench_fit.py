"""Fitting throughput of all six target networks: B clips per step, in clip-steps per second.

One step = ``forward_flat`` of the shared time grid with a ``[B, P]`` weight
tensor, the fitter's loss (:class:`~fewsound_sb.losses.FewSoundLoss`, L1 +
multi-resolution mel STFT, one value per clip, summed so that every clip's
gradient is its own), backward, AdamW step over the ``[B, P]`` tensor — what
the INR fitter does for B clips at once. Every target has the paper's Table 1
configuration; every target appears twice, eager (``compile=False``) and
compiled (``compile=True``; the default of KAN, SIREN, FINER and WIRE
wherever a compiler works, opt-in for NeRF and RFF).

Per-clip cost at B = 1 is what fitting the clips one by one (a loop) costs, so
``clip-steps/s`` at B > 1 against B = 1 says whether batching pays. The loss's
share is the time of the loss forward + backward alone (on a leaf tensor of
the step's output shape), measured in the same rounds, over the step time.
"""

import torch

from bench.common import interleaved_medians
from fewsound_sb.losses import FewSoundLoss
from fewsound_sb.nnet import kan
from fewsound_sb.nnet.inr import build_inr, time_grid

SAMPLE_RATE = 22050
# row name -> (registry name, constructor overrides)
TARGETS = {
    "kan": ("kan", {"compile": False}),
    "kan-compiled": ("kan", {"compile": True}),
    "nerf": ("nerf", {}),
    "nerf-compiled": ("nerf", {"compile": True}),
    "siren": ("siren", {"compile": False}),
    "siren-compiled": ("siren", {"compile": True}),
    "finer": ("finer", {"compile": False}),
    "finer-compiled": ("finer", {"compile": True}),
    "rff": ("rff", {}),
    "rff-compiled": ("rff", {"compile": True}),
    "wire": ("wire", {"compile": False}),
    "wire-compiled": ("wire", {"compile": True}),
}


def fit_loss(points, device="cpu"):
    """The fitter's loss, one value per clip; L1 only when the clip is too short for the 2048-point STFT."""
    lambda_f = 1.0 if points > 1024 else 0.0  # --quick runs 256 points
    return FewSoundLoss(sample_rate=SAMPLE_RATE, lambda_f=lambda_f, reduction="none").to(device)


def build_target(row):
    """The frozen target network of a row of :data:`TARGETS`."""
    name, overrides = TARGETS[row]
    torch.manual_seed(0)
    net = build_inr(name, **overrides)
    net.requires_grad_(False)
    return net


def make_fit_step(net, batch, points, device, seed=0, loss=None):
    """A closure running one fitting step of ``batch`` clips."""
    gen = torch.Generator().manual_seed(seed)
    base = net.flat_weights().detach()
    weights = (base + 0.01 * torch.randn(batch, base.numel(), generator=gen)).to(device).requires_grad_()
    target = (0.3 * torch.randn(batch, points, generator=gen)).to(device)
    t = time_grid(points, device=device)
    opt = torch.optim.AdamW([weights], lr=1e-4)
    loss = loss if loss is not None else fit_loss(points, device)

    def step():
        opt.zero_grad(set_to_none=True)
        out = net.forward_flat(t, weights)[..., 0]  # [B, T]
        loss(predictions=out, targets=target).sum().backward()
        opt.step()

    return step


def make_loss_step(batch, points, device, seed=0):
    """A closure running the loss forward + backward alone on ``[B, T]``."""
    gen = torch.Generator().manual_seed(seed)
    pred = (0.3 * torch.randn(batch, points, generator=gen)).to(device).requires_grad_()
    target = (0.3 * torch.randn(batch, points, generator=gen)).to(device)
    loss = fit_loss(points, device)

    def step():
        pred.grad = None
        loss(predictions=pred, targets=target).sum().backward()

    return step


def step_gflop(row, points, device="cpu"):
    """GFLOP of one clip-step (forward + backward of one clip, ``torch.utils.flop_counter``).

    A compiled graph is invisible to the counter, so a ``-compiled`` row is
    counted with its compiled path's own code run uncompiled (WIRE's compiled
    form does less matrix-product work than its eager one); the KAN, whose
    compiled kernels do its eager path's arithmetic, is counted on that path.
    """
    from unittest import mock

    from torch.utils.flop_counter import FlopCounterMode

    from fewsound_sb.nnet import inr

    name, overrides = TARGETS[row]
    uncompiled = mock.patch.object(inr, "compiled_function", lambda fn: fn)
    if name == "kan" and overrides.get("compile"):
        row = next(r for r, (n, o) in TARGETS.items() if n == name and not o.get("compile"))
    step = make_fit_step(build_target(row), 1, points, device)
    with uncompiled, FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / 1e9


def chunking(net, batch, points, device="cpu"):
    """How a call of ``batch`` clips is tiled: clips evaluated together and their time chunk.

    Example
    -------
    >>> chunking(build_target("siren"), 4, 32768)
    {'clips_per_chunk': 4, 'chunk': 2912}
    """
    compiled = net._use_compiled(batch * points)
    group = min(batch, net.clip_group(batch, compiled))
    return {"clips_per_chunk": group, "chunk": net.chunk_size(group, points, device, compiled=compiled)}


def run(batches, points, repeats, warmup, device="cpu", targets=None):
    """Median step time, clip-steps/s and the loss's share, per target and batch size (all interleaved)."""
    targets = list(targets or TARGETS)
    nets = {row: build_target(row) for row in targets}
    fns = {}
    for b in batches:
        for row in targets:
            fns[f"{row} B={b}"] = make_fit_step(nets[row], b, points, device)
        fns[f"loss B={b}"] = make_loss_step(b, points, device)
    # The interleaved rounds cycle through every (target, B) cell, which no fitting run does.
    # With the KAN's free list of feature buffers at its default limits, each KAN cell's
    # buffers were evicted before its next round and page-faulted in again, which made the
    # compiled KAN at B = 16 look 2-3x slower than in a process of its own (bench/README.md).
    # Keep every cell's buffers, as a process that fits one configuration does.
    workspace = kan._WORKSPACE
    limits = workspace.max_buffers, workspace.max_bytes
    workspace.max_buffers, workspace.max_bytes = 1024, float("inf")
    try:
        times = interleaved_medians(fns, repeats, warmup, device)
    finally:
        workspace.max_buffers, workspace.max_bytes = limits
        workspace.clear()
    rows = {}
    for row in targets:
        name, overrides = TARGETS[row]
        entry = {"target": name, "overrides": {k: str(v) for k, v in overrides.items()},
                 "num_params": nets[row].num_params, "batches": {},
                 "gflop_per_clip_step": step_gflop(row, points, device)}
        for b in batches:
            step = times[f"{row} B={b}"]
            loss = times[f"loss B={b}"]
            entry["batches"][str(b)] = {
                "step": step,
                "clip_steps_per_s": 1000.0 * b / step["median_ms"],
                "loss_ms": loss["median_ms"],
                "loss_share": loss["median_ms"] / step["median_ms"],
                **chunking(nets[row], b, points, device),
            }
        rows[row] = entry
    return {"points": points, "rows": rows, "batches": [int(b) for b in batches]}
