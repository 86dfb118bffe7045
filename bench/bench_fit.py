"""Fitting throughput of the KAN target: B clips per step, in clip-steps per second.

One step = ``forward_flat`` of the shared time grid with a ``[B, P]`` weight
tensor, per-clip L1 loss (mean over samples, summed over clips so that every
clip's gradient is its own), backward, AdamW step over the ``[B, P]`` tensor —
what the INR fitter does for B clips at once.
"""

import torch

from bench.common import interleaved_medians
from fewsound_sb.nnet.inr import build_inr, time_grid


def make_fit_step(net, batch, points, device, seed=0):
    """A closure running one fitting step of ``batch`` clips."""
    gen = torch.Generator().manual_seed(seed)
    base = net.flat_weights().detach()
    weights = (base + 0.01 * torch.randn(batch, base.numel(), generator=gen)).to(device).requires_grad_()
    target = (0.3 * torch.randn(batch, points, 1, generator=gen)).to(device)
    t = time_grid(points, device=device)
    opt = torch.optim.AdamW([weights], lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        out = net.forward_flat(t, weights)  # [B, T, 1]
        loss = (out - target).abs().mean(dim=(1, 2)).sum()
        loss.backward()
        opt.step()

    return step


def run(batches, points, repeats, warmup, device="cpu", target="kan"):
    """Median step time and clip-steps/s for each batch size (interleaved)."""
    torch.manual_seed(0)
    net = build_inr(target).to(device)
    for p in net.parameters():
        p.requires_grad_(False)
    steps = {f"B={b}": make_fit_step(net, b, points, device) for b in batches}
    times = interleaved_medians(steps, repeats, warmup, device)
    rows = {}
    for b in batches:
        entry = times[f"B={b}"]
        rows[str(b)] = {
            "step": entry,
            "clip_steps_per_s": 1000.0 * b / entry["median_ms"],
        }
    return {"target": target, "points": points, "rows": rows}
