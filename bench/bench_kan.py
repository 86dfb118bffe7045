"""KAN INR train step and forward: ours against the baseline, the peers and SIREN.

One train step = forward on ``points`` time points of one clip, L1 loss to a
fixed target, backward, AdamW step over the module's own parameters. Forward =
the same forward under ``torch.no_grad``. All implementations hold the same
weights (copied from ours; SIREN has its own) and are timed interleaved.
"""

import torch

from bench import kan_impls
from bench.common import interleaved_medians
from fewsound_sb.nnet.inr import time_grid

IMPL_ORDER = ("ours", "ours-unfused", "cox-de-boor", "flashkan", "inkan", "pykan", "siren")
# With ours-compiled (opt-in torch.compile path; run_all adds it unless --no-compiled).
IMPL_ORDER_COMPILED = ("ours", "ours-compiled", *IMPL_ORDER[1:])


def implementations_for(spline_order, include=IMPL_ORDER):
    """``(runnable, skipped)``: names to run at this order, and ``{name: reason}`` for the rest."""
    run, skipped = [], {}
    for name in include:
        if name in kan_impls.PEERS and not kan_impls.peer_available(name):
            skipped[name] = "skipped: not installed"
        elif not kan_impls.supports(name, spline_order):
            skipped[name] = f"skipped: cubic only (k=3), config has k={spline_order}"
        else:
            run.append(name)
    return run, skipped


def build_all(spline_order, names, device, peer_compile=True, seed=0, weight_scale=1.0):
    """``{name: module}`` on ``device``, all with the weights of one seeded KAN of ours.

    ``weight_scale`` multiplies our initial weights first (the output check uses
    3 so that hidden activations also fall beyond the extended grid).
    """
    torch.manual_seed(seed)
    ours = kan_impls.paper_kan(spline_order)
    if weight_scale != 1.0:
        with torch.no_grad():
            for param in ours.parameters():
                param.mul_(weight_scale)
    modules = {}
    for name in names:
        module = kan_impls.build(name, ours, peer_compile=peer_compile)
        if name == "ours":  # ours is trained by the bench: give it its own copy too
            module = kan_impls.paper_kan(spline_order)
            module.load_state_dict(ours.state_dict())
        modules[name] = module.to(device)
    return modules


def check_outputs(spline_order, points, device="cpu", names=None, peer_compile=False, weight_scale=3.0,
                  include=IMPL_ORDER):
    """Max |output - ours| of every KAN implementation on the same weights and inputs.

    Returns ``{name: {"max_abs_diff", "max_abs_ours", "shape", "finite"}}``.
    """
    names = names or implementations_for(spline_order, include)[0]
    modules = build_all(spline_order, names, device, peer_compile=peer_compile, weight_scale=weight_scale)
    t = time_grid(points, device=device)
    with torch.no_grad():
        ref = modules["ours"](t) if "ours" in modules else None
        report = {}
        for name, module in modules.items():
            out = module(t)
            entry = {"shape": list(out.shape), "finite": bool(torch.isfinite(out).all())}
            if ref is not None and name != "siren":
                entry["max_abs_diff"] = float((out - ref).abs().max())
                entry["max_abs_ours"] = float(ref.abs().max())
            report[name] = entry
    return report


def make_step_fns(module, t, target):
    """(train_step, forward) closures for one INR module."""
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = (module(t) - target).abs().mean()
        loss.backward()
        opt.step()

    def forward():
        with torch.no_grad():
            module(t)

    return train_step, forward


def run(spline_order, points, repeats, warmup, device="cpu", peer_compile=True,
        pykan_repeats=None, pykan_points=None, include=IMPL_ORDER):
    """Time every available implementation at ``spline_order``.

    Returns ``{"config", "rows": {name: {...}}, "skipped": {name: reason}}``.
    """
    names, skipped = implementations_for(spline_order, include)
    modules = build_all(spline_order, names, device, peer_compile=peer_compile)
    torch.manual_seed(1)
    t = time_grid(points, device=device)
    target = 0.3 * torch.randn(points, 1, device=device)
    pykan_points = pykan_points or points
    train, fwd, notes = {}, {}, {}
    for name, module in modules.items():
        if name == "pykan" and pykan_points != points:
            tp = time_grid(pykan_points, device=device)
            train[name], fwd[name] = make_step_fns(module, tp, target[:pykan_points])
            notes[name] = f"measured on {pykan_points} points (too slow for {points})"
        else:
            train[name], fwd[name] = make_step_fns(module, t, target)
    repeats_for = {"pykan": pykan_repeats} if pykan_repeats else None
    train_ms = interleaved_medians(train, repeats, warmup, device, repeats_for)
    fwd_ms = interleaved_medians(fwd, repeats, warmup, device, repeats_for)
    ours = kan_impls.paper_kan(spline_order)
    rows = {}
    for name, module in modules.items():
        rows[name] = {
            "params": kan_impls.num_trainable(module),
            "train": train_ms[name],
            "forward": fwd_ms[name],
            "note": notes.get(name, kan_impls.IMPLEMENTATION_NOTES.get(name, "")),
            "points": pykan_points if name == "pykan" else points,
        }
    return {
        "config": {
            "encoding_length": ours.encoding.length,
            "hidden_sizes": list(ours.sizes[1:-1]),
            "grid_size": ours.grid_size,
            "spline_order": spline_order,
            "points": points,
            "macs_per_point": kan_impls.macs_per_point(ours.sizes, ours.grid_size, spline_order),
            "macs_per_point_fused_layout": sum(
                a * (ours.grid_size + spline_order + 3) * b for a, b in zip(ours.sizes, ours.sizes[1:])
            ),
            "siren_macs_per_point": kan_impls.mlp_macs_per_point((1, *kan_impls.SIREN_HIDDEN, 1)),
        },
        "rows": rows,
        "skipped": skipped,
    }
