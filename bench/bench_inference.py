#!/usr/bin/env python3
"""Refinement and bitrate of a trained model's INR weights on held-out speakers.

Two tables (Markdown, ``--output``):

1. Refinement: PSNR / LSD / SI-SNR / PESQ after 0, 10, 100, 1000 fitter steps
   starting from the hypernetwork's weights vs from the INR's own
   initialisation (:func:`fewsound_sb.inference_cli.refinement_rows`, one
   continuous AdamW run per start, the model's ``refine_*`` settings for both).
2. Bitrate vs PSNR / PESQ with the weights stored as fp32, fp16 and int8
   (per-piece scale): the hypernetwork's weights (0 steps) and the fitted ones
   (the last step count, from the INR's own initialisation).

Clips: the first ``--n_clips`` of the test manifest of a training run (the
speakers held out from training), the first ``--seconds`` of each.

> python bench/bench_inference.py --model results/demo_fewsound_kan/inference \\
>     --manifest results/demo_fewsound_kan/save/test.json \\
>     --data_folder tests/samples/VCTK-mini --output bench/inference_results.md

``--jobs N`` runs the (clip, start) fits in N worker processes of one thread each.
"""

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import os
import sys
import time

import torch

from fewsound_sb.dataio import read_audio
from fewsound_sb.files import write_text
from fewsound_sb.inference import Reconstructor
from fewsound_sb.inference_cli import refinement_rows

METRICS = ["psnr", "lsd", "si_snr", "pesq"]
DTYPES = ("fp32", "fp16", "int8")


def _mean(rows, key):
    values = [r[key] for r in rows if isinstance(r.get(key), float) and math.isfinite(r[key])]
    return sum(values) / len(values) if values else float("nan")


_MODEL = {}  # one loaded model per worker process


def _run(task):
    """One clip from one start: ``(start, rows, seconds, weights_info)`` (a worker's job)."""
    model_dir, threads, clip_id, path, seconds, steps, start = task
    torch.set_num_threads(threads)
    if model_dir not in _MODEL:
        _MODEL[model_dir] = Reconstructor.from_hparams(source=model_dir,
                                                       overrides={"progress": False})
    model = _MODEL[model_dir]
    rate = model.hparams.sample_rate
    wav = read_audio(path, rate)[: int(seconds * rate)]
    started = time.time()
    rows = refinement_rows(model, wav, steps, METRICS, ids=(clip_id,), start=start,
                           dtypes=DTYPES)
    elapsed = time.time() - started
    out = [(count, dtype, dict(row, kbps=stored.bitrate() / 1000))
           for count, dtype, row, _, stored in rows]
    stored = rows[-1][4]
    sys.stderr.write(f"{clip_id} from {start}: {elapsed:.0f} s\n")
    return start, out, elapsed, (stored.num_params, stored.n_pieces, stored.piece_length)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--data_folder", required=True)
    parser.add_argument("--n_clips", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--steps", default="0,10,100,1000")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes over the (clip, start) runs, 1 thread each "
                             "(1: this process, OMP_NUM_THREADS threads)")
    parser.add_argument("--output", default="bench/inference_results.md")
    args = parser.parse_args(argv)
    steps = [int(s) for s in args.steps.split(",")]
    model = Reconstructor.from_hparams(source=args.model, overrides={"progress": False})
    rate = model.hparams.sample_rate
    with open(args.manifest, encoding="utf-8") as fin:
        entries = list(json.load(fin).items())[: args.n_clips]
    threads = 1 if args.jobs > 1 else torch.get_num_threads()
    tasks = [(args.model, threads, clip_id,
              entry["wav"].replace("{data_root}", args.data_folder), args.seconds, steps, start)
             for clip_id, entry in entries for start in ("hypernetwork", "scratch")]
    started = time.time()
    if args.jobs > 1:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            done = list(pool.map(_run, tasks))
    else:
        _MODEL[args.model] = model
        done = [_run(task) for task in tasks]
    wall = time.time() - started
    results = {"hypernetwork": {}, "scratch": {}}
    seconds = {"hypernetwork": 0.0, "scratch": 0.0}
    for start, rows, elapsed, weights_info in done:
        seconds[start] += elapsed
        for count, dtype, row in rows:
            results[start].setdefault((count, dtype), []).append(row)

    lines = [
        "# Inference: refinement and bitrate",
        "",
        f"Model `{args.model}` ({model.hparams.model_name}; target {weights_info[0]:,} "
        f"weights per piece of {weights_info[2]} samples at {rate} Hz, overlap "
        f"{model.hparams.overlap}); {len(entries)} held-out clips of `{args.manifest}` "
        f"(first {args.seconds:g} s each); refine_lr {model.hparams.refine_lr:g}, "
        f"weight decay {model.hparams.refine_weight_decay:g} for both starts. "
        f"Wall time {wall:.0f} s ({args.jobs} process(es)); summed over clips: hypernetwork "
        f"start {seconds['hypernetwork']:.0f} s, scratch {seconds['scratch']:.0f} s (all "
        f"step counts; CPU, {os.cpu_count()} cores shared with other jobs, load average "
        f"{os.getloadavg()[0]:.1f} at the end).",
        "",
        "## Refinement (fp32): mean over clips",
        "",
        "| start | steps | PSNR ↑ | LSD ↓ | SI-SNR ↑ | PESQ ↑ |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for start, table in results.items():
        label = "hypernetwork" if start == "hypernetwork" else "INR's own init"
        for count in steps:
            rows = table[(count, "fp32")]
            lines.append(f"| {label} | {count} | " + " | ".join(
                f"{_mean(rows, m):.2f}" for m in METRICS) + " |")
    lines += [
        "",
        "## Bitrate vs quality: mean over clips",
        "",
        "| weights | dtype | kbit/s | PSNR ↑ | PESQ ↑ |",
        "|---|---|---:|---:|---:|",
    ]
    for start, count, label in (("hypernetwork", 0, "hypernetwork"),
                                ("scratch", steps[-1], f"fitted ({steps[-1]} steps)")):
        for dtype in DTYPES:
            rows = results[start][(count, dtype)]
            lines.append(f"| {label} | {dtype} | {_mean(rows, 'kbps'):.1f} | "
                         f"{_mean(rows, 'psnr'):.2f} | {_mean(rows, 'pesq'):.2f} |")
    lines += ["", f"Command: `python bench/bench_inference.py {' '.join(argv or sys.argv[1:])}`",
              ""]
    write_text(args.output, "\n".join(lines))
    sys.stdout.write("\n".join(lines))
    return 0


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    sys.exit(main())
