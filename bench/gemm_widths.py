"""GEMM throughput at the widths of WIRE's complex layers: why the compiled path pads to 16.

> python bench/gemm_widths.py --threads 1 --output bench/results_gemm_widths.md

One complex layer of WIRE over 32,768 time points of one clip, its three
matrix products of a training step (forward ``x @ W``, input gradient
``g @ Wᵀ``, weight gradient ``xᵀ @ g``) with ``torch.bmm`` over time chunks,
in the two real forms of :mod:`fewsound_sb.nnet.inr`:

* block: ``[a | b] @ [[Pᵀ, Qᵀ], [−Qᵀ, Pᵀ]]``, one ``2n``-wide product per clip
  (the eager path, :func:`~fewsound_sb.nnet.inr.complex_block`);
* gauss: ``Pa, Qb, (P + Q)(a + b)``, three ``n``-wide products per clip
  (the compiled path, :func:`~fewsound_sb.nnet.inr.gauss_block`),

each at the layer's width n = 90 and padded to 96. Chunk lengths are those
of B clips per chunk (:meth:`~fewsound_sb.nnet.inr.FunctionalINR.chunk_size`
for B clips). The Gauss rows at B = 16 (short chunks of 16 clips) are why
compiled WIRE evaluates a batch one clip per chunk
(:meth:`~fewsound_sb.nnet.inr.WIRE.clip_group`): its products then run as at B = 1.
Reported: ms per clip for the layer (median of interleaved rounds) and the
GFLOP/s it reaches, counting the padded products' own work.
"""

import argparse
import logging
import os
import sys

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from bench.common import interleaved_medians, script_report, write_report  # noqa: E402

POINTS = 32768
CHUNK_ELEMENTS = 2**20  # FunctionalINR.chunk_elements
MIN_CHUNK = 256  # FunctionalINR.min_chunk
# form -> (products per clip, operand width from the layer width n)
FORMS = {"block": (1, lambda n: 2 * n), "gauss": (3, lambda n: n)}


def chunk_length(batch, width):
    """The fitter's chunk length for ``batch`` clips whose widest activation is ``width``."""
    return min(POINTS, max(MIN_CHUNK, CHUNK_ELEMENTS // (batch * width)))


def make_layer(form, width, batch, seed=0):
    """A closure running one layer's three products for ``batch`` clips; returns (fn, GFLOP per clip, chunk)."""
    stacked, side = FORMS[form][0], FORMS[form][1](width)
    activation = side * (3 if form == "gauss" else 1)  # the activation tensor's width per point
    n_chunks = -(-POINTS // chunk_length(batch, activation))
    chunk = -(-POINTS // n_chunks)  # near-equal pieces, as FunctionalINR.forward_flat splits
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(stacked * batch, chunk, side, generator=gen)
    g = torch.randn(stacked * batch, chunk, side, generator=gen)
    w = torch.randn(stacked * batch, side, side, generator=gen) / side**0.5

    def run():
        for _ in range(n_chunks):
            torch.bmm(x, w)
            torch.bmm(g, w.transpose(1, 2))
            torch.bmm(x.transpose(1, 2), g)

    gflop = 3 * 2 * stacked * n_chunks * chunk * side * side / 1e9
    return run, gflop, chunk


def run(widths, batches, repeats, warmup):
    fns, meta = {}, {}
    for batch in batches:
        for form in FORMS:
            for width in widths:
                name = f"{form} n={width} B={batch}"
                fns[name], gflop, chunk = make_layer(form, width, batch)
                meta[name] = {"form": form, "width": width, "batch": batch, "gflop_per_clip": gflop,
                              "chunk": chunk}
    times = interleaved_medians(fns, repeats, warmup)
    rows = []
    for name, entry in meta.items():
        per_clip = times[name]["median_ms"] / entry["batch"]
        rows.append({**entry, "ms_per_clip": per_clip,
                     "gflop_per_s": entry["gflop_per_clip"] / per_clip * 1e3})
    return rows


def render(rows, info, command):
    lines = [
        "# GEMM throughput at WIRE's layer widths",
        "",
        f"Machine: {info['cpu']}, torch {info['torch']}, {info['threads']} threads.",
        "",
        f"Command: `{command}`",
        "",
        "One complex 90 → 90 layer of one clip over 32,768 points: forward, input-gradient and "
        "weight-gradient products (`torch.bmm`, the fitter's time chunks). block: one 2n-wide "
        "product; gauss: three n-wide ones. GFLOP/s counts the products' own work (padding included).",
        "",
        "| form | n | B | chunk | GFLOP / clip | ms / clip | GFLOP/s |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        lines.append(f"| {r['form']} | {r['width']} | {r['batch']} | {r['chunk']} | "
                     f"{r['gflop_per_clip']:.2f} | {r['ms_per_clip']:.1f} | {r['gflop_per_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="bench/results_gemm_widths.md")
    parser.add_argument("--widths", type=int, nargs="+", default=[90, 96])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = run(args.widths, args.batches, args.repeats, args.warmup)
    text, payload = script_report("gemm_widths.py", argv, render, "rows", rows)
    write_report(args.output, text, payload)
    print(text)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    main()
