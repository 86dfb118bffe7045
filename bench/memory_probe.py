"""Peak memory of one implementation, measured in a fresh process.

``python -m bench.memory_probe --impl ours --order 2 --points 32768`` builds the
model and inputs, records the RSS, runs ``--steps`` train steps (or fitting
steps with ``--fit-batch B``), and prints one JSON line with the peak memory the
steps added (see :func:`bench.common.measure_peak_memory`). A fresh process per
implementation keeps the allocator state of one from hiding the peak of another.
"""

import argparse
import json

import torch

from bench import bench_fit, bench_kan
from bench.common import measure_peak_memory
from fewsound_sb.nnet.inr import time_grid


def main(argv=None):
    """Entry point; returns the result dict (also printed as JSON)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--impl", default="ours")
    parser.add_argument("--order", type=int, default=2)
    parser.add_argument("--points", type=int, default=32768)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--fit-batch", type=int, default=0, help="measure a fitting step of B clips instead")
    parser.add_argument("--fit-target", default="kan", choices=sorted(bench_fit.TARGETS),
                        help="target network of the fitting step (a row of bench_fit.TARGETS)")
    parser.add_argument("--no-peer-compile", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.fit_batch:
        net = bench_fit.build_target(args.fit_target).to(args.device)
        step = bench_fit.make_fit_step(net, args.fit_batch, args.points, args.device)
    else:
        module = bench_kan.build_all(args.order, [args.impl], args.device, peer_compile=not args.no_peer_compile)
        module = module[args.impl]
        t = time_grid(args.points, device=args.device)
        target = 0.3 * torch.randn(args.points, 1, device=args.device)
        step, _ = bench_kan.make_step_fns(module, t, target)
    peak, method = measure_peak_memory(step, args.device, steps=args.steps)
    result = {"impl": args.impl, "order": args.order, "fit_batch": args.fit_batch, "peak_mib": peak, "method": method}
    if args.fit_batch:
        result["fit_target"] = args.fit_target
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
