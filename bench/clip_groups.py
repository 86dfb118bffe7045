"""Clips per time chunk: a batch evaluated all at once, in groups, or one clip at a time.

> python bench/clip_groups.py --threads 1 --output bench/results_clip_groups.md

A fitting step of B clips (:func:`bench.bench_fit.make_fit_step`: ``forward_flat``,
the fitter's loss, backward, AdamW) with the target's
:meth:`~fewsound_sb.nnet.inr.FunctionalINR.clip_group` forced to g: the call
evaluates its clips in groups of g, each group over its own time chunks
(``chunk_size`` for g clips, so fewer clips per chunk mean longer chunks).
g = B is one group (every target's default but compiled WIRE's), g = 1 one
clip at a time. B = 1 is timed in the same rounds: what fitting the clips one
by one costs. Reported: ms per clip-step (median of interleaved rounds) and
the ratio to B = 1 (below 1: faster than a loop).
"""

import argparse
import logging
import os
import sys

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from bench.bench_fit import TARGETS, build_target, make_fit_step  # noqa: E402
from bench.common import interleaved_medians, script_report, write_report  # noqa: E402

logger = logging.getLogger("bench")


def forced_group(net, group):
    """``net`` with its clip_group fixed to ``group`` (None: the target's own choice)."""
    if group is not None:
        net.clip_group = lambda batch, compiled: group
    return net


def run(rows, batch, groups, points, repeats, warmup):
    """Per row: ms per clip-step at B = 1 and at ``batch`` for every group size."""
    results = []
    for row in rows:
        logger.info("%s: B = 1 and B = %d with %s clips per chunk", row, batch, groups)
        fns = {"B=1": make_fit_step(build_target(row), 1, points, "cpu")}
        for group in groups:
            fns[f"g={group}"] = make_fit_step(forced_group(build_target(row), group), batch, points, "cpu")
        times = interleaved_medians(fns, repeats, warmup)
        loop = times["B=1"]["median_ms"]
        default = build_target(row)
        own = min(batch, default.clip_group(batch, default._use_compiled(batch * points)))
        for group in groups:
            per_clip = times[f"g={group}"]["median_ms"] / batch
            results.append({"row": row, "batch": batch, "group": group, "default": group == own,
                            "ms_per_clip": per_clip, "loop_ms_per_clip": loop,
                            "vs_loop": per_clip / loop})
    return results


def render(results, info, command):
    lines = [
        "# Clips per time chunk",
        "",
        f"Machine: {info['cpu']}, torch {info['torch']}, {info['threads']} threads.",
        "",
        f"Command: `{command}`",
        "",
        "One fitting step of B clips, the call's clips evaluated g at a time (each group over its "
        "own time chunks), ms per clip-step (median of interleaved rounds); B = 1 (a loop over "
        "clips) timed in the same rounds; ratio below 1: faster than the loop. **Bold**: the "
        "target's own choice (`FunctionalINR.clip_group`).",
        "",
        "| target | B | clips per chunk g | ms / clip-step | B = 1 ms / clip-step | vs B = 1 |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for r in results:
        g = f"**{r['group']}**" if r["default"] else str(r["group"])
        lines.append(f"| {r['row']} | {r['batch']} | {g} | {r['ms_per_clip']:.1f} | "
                     f"{r['loop_ms_per_clip']:.1f} | {r['vs_loop']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="bench/results_clip_groups.md")
    parser.add_argument("--targets", nargs="+", choices=sorted(TARGETS),
                        default=["wire-compiled", "wire", "kan-compiled", "siren-compiled", "nerf"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--groups", type=int, nargs="+", default=[16, 4, 1])
    parser.add_argument("--points", type=int, default=32768)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = run(args.targets, args.batch, args.groups, args.points, args.repeats, args.warmup)
    text, payload = script_report("clip_groups.py", argv, render, "results", results)
    write_report(args.output, text, payload)
    print(text)
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    main()
