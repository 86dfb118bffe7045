"""Side by side: ours (default), ours-compiled, flashkan, inkan — KAN INR train step and forward.

``PYTHONPATH=. python bench/compare_compiled.py [--threads 1] [--points 32768] [--repeats 7]``

Same machinery as ``bench_kan.run`` (one process, interleaved rounds, median
after one warm-up round that pays every torch.compile), restricted to the four
implementations, at k = 2 and k = 3. Prints markdown rows.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import bench_kan  # noqa: E402

NAMES = ("ours", "ours-compiled", "flashkan", "inkan")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--points", type=int, default=32768)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--orders", type=int, nargs="+", default=[2, 3])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"load average at start {os.getloadavg()}, threads {args.threads}, points {args.points}")
    print("| k | implementation | train ms | train ratio to ours | forward ms | forward ratio to ours |")
    print("|---|---|---|---|---|---|")
    for k in args.orders:
        res = bench_kan.run(k, args.points, args.repeats, 1, "cpu", include=NAMES)
        ours_t = res["rows"]["ours"]["train"]["median_ms"]
        ours_f = res["rows"]["ours"]["forward"]["median_ms"]
        for name, row in res["rows"].items():
            t, f = row["train"]["median_ms"], row["forward"]["median_ms"]
            print(f"| {k} | {name} | {t:.1f} | {t / ours_t:.2f} | {f:.1f} | {f / ours_f:.2f} |", flush=True)
        for name, why in res["skipped"].items():
            print(f"| {k} | {name} | | | | | {why} |")


if __name__ == "__main__":
    main()
