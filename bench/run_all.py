"""Run the whole benchmark suite and write bench/results.md + bench/results.json.

> python bench/run_all.py --output bench/results.md
> python bench/run_all.py --quick --output /tmp/bench/results.md   # tiny sizes, seconds

See bench/README.md for what is measured and how.
"""

import argparse
import json
import logging
import os
import sys
import time

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from bench import bench_encoders, bench_fewsound, bench_fit, bench_kan  # noqa: E402
from bench.common import logger, machine_info, probe_memory_subprocess  # noqa: E402

HEADLINE = "speed-up vs Cox-de Boor (train step): {:.1f}x"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="fewsound_sb benchmark suite")
    parser.add_argument("--output", default="bench/results.md", help="markdown report; JSON goes next to it")
    parser.add_argument("--points", type=int, default=32768, help="time points per clip")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--orders", type=int, nargs="+", default=[2, 3], help="B-spline orders to compare")
    parser.add_argument("--fit-batches", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--fit-repeats", type=int, default=3)
    parser.add_argument("--fit-targets", nargs="+", default=list(bench_fit.TARGETS),
                        choices=list(bench_fit.TARGETS), help="target networks of the fitting table")
    parser.add_argument("--fewsound-batches", type=int, nargs="+", default=[1, 8],
                        help="pieces of a long file decoded as one batch")
    parser.add_argument("--fewsound-compile", action="store_true",
                        help="FewSound's KAN target on the compiled path (the warm-up pays the compilation)")
    parser.add_argument("--pykan-repeats", type=int, default=2, help="timed rounds for pykan (slow)")
    parser.add_argument("--pykan-points", type=int, default=0, help="points for pykan (0: same as --points)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-implementation memory probes")
    parser.add_argument("--no-peer-compile", action="store_true",
                        help="run flashkan/inkan with their eager basis instead of torch.compile")
    parser.add_argument("--no-compiled", action="store_true",
                        help="leave out the ours-compiled row (KAN(compile=True), torch.compile'd kernels)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["kan", "fit", "fewsound", "encoders"])
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes for a smoke test: 256 points, 1 repeat, B=1,2, tiny FewSound, no memory")
    args = parser.parse_args(argv)
    if args.quick:
        args.points = min(args.points, 256)
        args.repeats, args.warmup, args.fit_repeats, args.pykan_repeats = 1, 1, 1, 1
        args.fit_batches = [1, 2]
        args.fit_targets = [row for row in args.fit_targets if not row.endswith("-compiled")]
        args.fewsound_batches = [1, 2]
        args.no_memory = True
        args.no_peer_compile = True
        args.no_compiled = True
    return args


def _fmt(value, digits=1):
    return "n/a" if value is None else f"{value:.{digits}f}"


def run(args):
    """Run the selected benchmarks; returns the results dict."""
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.time()
    results = {"machine": machine_info(args.device), "args": vars(args), "kan": {}, "checks": {}}
    if "kan" not in args.skip:
        logger.info("KAN against its peers, orders %s", args.orders)
        include = bench_kan.IMPL_ORDER if args.no_compiled else bench_kan.IMPL_ORDER_COMPILED
        for order in args.orders:
            results["checks"][str(order)] = bench_kan.check_outputs(
                order, min(args.points, 4096), args.device, peer_compile=not args.no_peer_compile,
                include=include,
            )
            res = bench_kan.run(
                order, args.points, args.repeats, args.warmup, args.device,
                peer_compile=not args.no_peer_compile, pykan_repeats=args.pykan_repeats,
                pykan_points=args.pykan_points or None, include=include,
            )
            if not args.no_memory:
                for name, row in res["rows"].items():
                    probe = ["--impl", name, "--order", order, "--points", row["points"], "--device", args.device]
                    if args.threads:
                        probe += ["--threads", args.threads]
                    if args.no_peer_compile:
                        probe.append("--no-peer-compile")
                    row["memory"] = probe_memory_subprocess(probe)
            results["kan"][str(order)] = res
    if "fit" not in args.skip:
        logger.info("fitting throughput: %s at B = %s", " ".join(args.fit_targets), args.fit_batches)
        results["fit"] = bench_fit.run(
            args.fit_batches, args.points, args.fit_repeats, args.warmup, args.device, targets=args.fit_targets
        )
        if not args.no_memory:
            logger.info("fitting peak memory, a fresh process per cell")
            for target, entry in results["fit"]["rows"].items():
                for b, row in entry["batches"].items():
                    probe = ["--fit-batch", b, "--fit-target", target, "--points", args.points,
                             "--device", args.device]
                    if args.threads:
                        probe += ["--threads", args.threads]
                    row["memory"] = probe_memory_subprocess(probe)
    if "fewsound" not in args.skip:
        logger.info("FewSound inference, pieces %s", args.fewsound_batches)
        results["fewsound"] = bench_fewsound.run(
            args.repeats, args.warmup, args.device, quick=args.quick, batches=args.fewsound_batches,
            compile=args.fewsound_compile,
        )
    if "encoders" not in args.skip:  # E side by side: batch 16 crops, forward + backward
        logger.info("sound encoders")
        results["encoders"] = bench_encoders.run(
            args.repeats, args.warmup, quick=args.quick, memory=not args.no_memory, threads=args.threads
        )
    results["elapsed_s"] = time.time() - started
    return results


def headline_ratio(results):
    """Cox-de Boor train time / ours at the paper config (k=2, else the first order run)."""
    kan = results.get("kan", {})
    key = "2" if "2" in kan else next(iter(kan), None)
    if key is None:
        return None
    rows = kan[key]["rows"]
    if "ours" not in rows or "cox-de-boor" not in rows:
        return None
    return rows["cox-de-boor"]["train"]["median_ms"] / rows["ours"]["train"]["median_ms"]


def render_markdown(results, command):
    """The markdown report."""
    lines = ["# fewsound_sb benchmark results", ""]
    ratio = headline_ratio(results)
    lines.append(HEADLINE.format(ratio) if ratio is not None else "speed-up vs Cox-de Boor (train step): n/a")
    lines.append("")
    machine = results["machine"]
    lines += [
        "Machine: " + f"{machine['cpu']}, {machine['cores']} cores, torch {machine['torch']}, "
        f"{machine['threads']} threads, device {machine['device']}"
        + (f" ({machine['gpu']})" if "gpu" in machine else "")
        + (f", load average at start {machine['load_average']}" if "load_average" in machine else ""),
        "",
        f"Command: `{command}`",
        "",
    ]
    if results.get("note"):
        lines += [results["note"], ""]
    for order, res in results.get("kan", {}).items():
        cfg = res["config"]
        rows = res["rows"]
        ours = rows.get("ours")
        lines += [
            f"## KAN INR, k={order} (PE {cfg['encoding_length']}, hidden {cfg['hidden_sizes']}, "
            f"grid {cfg['grid_size']}, {cfg['points']} points, one clip)",
            "",
            "| implementation | params | train step ms (median) | forward ms (median) | peak MB (train) "
            "| train ratio to ours | forward ratio to ours | notes |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, row in rows.items():
            mem = row.get("memory", {})
            peak = mem.get("peak_mib") if isinstance(mem, dict) else None
            tr = row["train"]["median_ms"]
            fw = row["forward"]["median_ms"]
            r_tr = tr / ours["train"]["median_ms"] if ours else None
            r_fw = fw / ours["forward"]["median_ms"] if ours else None
            note = row["note"]
            if name == "pykan" and len(row["train"]["samples_ms"]) < results["args"]["repeats"]:
                note += f"; {len(row['train']['samples_ms'])} timed rounds (slow)"
            if isinstance(mem, dict) and "error" in mem:
                note += f"; memory probe failed: {mem['error']}"
            lines.append(
                f"| {name} | {row['params']:,} | {_fmt(tr)} | {_fmt(fw)} | {_fmt(peak, 0)} | "
                f"{_fmt(r_tr, 2)} | {_fmt(r_fw, 2)} | {note} |"
            )
        for name, reason in res["skipped"].items():
            lines.append(f"| {name} | | | | | | | {reason} |")
        if ours:
            train_s = ours["train"]["median_ms"] / 1000.0
            gemm_flops = 3 * 2 * cfg["macs_per_point_fused_layout"] * cfg["points"]
            lines += [
                "",
                f"GEMM work per point (forward): {cfg['macs_per_point']:,} MACs in the nominal "
                f"Σ n_in·(1+G+k)·n_out, {cfg['macs_per_point_fused_layout']:,} in our fused layout "
                f"(G+k+3 slots per input); SIREN (94,94,94,94,70): {cfg['siren_macs_per_point']:,} MACs. "
                f"A train step is ≈3 such GEMMs (forward, input grad, weight grad): "
                f"{gemm_flops / 1e9:.2f} GFLOP, i.e. {gemm_flops / train_s / 1e9:.1f} GFLOP/s achieved by ours "
                "including all elementwise work.",
            ]
        lines.append("")
    checks = results.get("checks", {})
    if checks:
        lines += ["## Same weights, same outputs (max |output − ours|)", "",
                  "| k | implementation | max abs diff | max abs output | finite |", "|---|---|---|---|---|"]
        for order, report in checks.items():
            for name, entry in report.items():
                if name in ("ours", "siren"):
                    continue
                lines.append(
                    f"| {order} | {name} | {entry.get('max_abs_diff', float('nan')):.2e} | "
                    f"{entry.get('max_abs_ours', float('nan')):.3f} | {entry['finite']} |"
                )
        lines += ["", "Weights: our seeded initialisation ×3 (so hidden activations also leave the extended grid), "
                  "copied into each implementation (flashkan/inkan: scaler folded into the spline coefficients). "
                  "SIREN has its own weights and is not compared.", ""]
    lines += render_fit(results.get("fit"))
    lines += render_fewsound(results.get("fewsound"))
    if results.get("encoders"):
        lines += bench_encoders.render_markdown(results["encoders"])
    lines += [f"Total bench time: {results.get('elapsed_s', 0):.0f} s.", ""]
    return "\n".join(lines)


def render_fit(fit):
    """Markdown lines of the fitting throughput table (all targets side by side)."""
    if not fit:
        return []
    batches = [str(b) for b in fit["batches"]]
    ref = fit["rows"].get("kan")
    ref_compiled = fit["rows"].get("kan-compiled")
    lines = [
        f"## Fitting throughput, all targets (forward_flat on [B, P], {fit['points']} points, "
        "FewSoundLoss L1 + MR mel STFT, AdamW)",
        "",
        "clip-steps/s (higher is better); B = 1 is what fitting the clips one by one costs. "
        "Peak MB: RSS high-water mark a fitting step adds, fresh process per cell. "
        "Loss share: loss forward + backward alone / whole step. GFLOP / clip-step: forward + backward "
        "of one clip (torch.utils.flop_counter: matrix products, of a compiled row's own code run "
        "uncompiled; kan-compiled counted on kan's path, the same arithmetic); GFLOP/s: that times "
        "the clip-steps/s at the largest B.",
        "",
        "| target | P | " + " | ".join(f"clip-steps/s B={b}" for b in batches)
        + f" | B={batches[-1]} vs B=1 | step vs KAN (B={batches[-1]}) | "
        + (f"step vs compiled KAN (B={batches[-1]}) | " if ref_compiled else "")
        + " | ".join(f"peak MB B={b}" for b in batches) + " | "
        + " | ".join(f"loss share B={b}" for b in batches)
        + f" | GFLOP / clip-step | GFLOP/s B={batches[-1]} |",
        "|---|---|" + "---|" * (3 * len(batches) + 4 + bool(ref_compiled)),
    ]
    for name, entry in fit["rows"].items():
        cells = entry["batches"]
        speed = [cells[b]["clip_steps_per_s"] for b in batches]
        gain = speed[-1] / speed[0]
        vs_kan = (ref["batches"][batches[-1]]["clip_steps_per_s"] / speed[-1]) if ref else None
        vs_compiled = (ref_compiled["batches"][batches[-1]]["clip_steps_per_s"] / speed[-1]
                       if ref_compiled else None)
        peaks = []
        for b in batches:
            mem = cells[b].get("memory", {})
            peaks.append(_fmt(mem.get("peak_mib") if isinstance(mem, dict) else None, 0))
        shares = [f"{100 * cells[b]['loss_share']:.0f}%" for b in batches]
        lines.append(
            f"| {name} | {entry['num_params']:,} | " + " | ".join(_fmt(v, 2) for v in speed)
            + f" | {gain:.2f}x | {_fmt(vs_kan, 2)} | "
            + (f"{_fmt(vs_compiled, 2)} | " if ref_compiled else "") + " | ".join(peaks)
            + " | " + " | ".join(shares) + f" | {_fmt(entry.get('gflop_per_clip_step'), 2)} | "
            + f"{_fmt(entry.get('gflop_per_clip_step', 0) * speed[-1] or None, 1)} |"
        )
    def tiles(entry):
        cells = [entry["batches"][b] for b in batches]
        text = "/".join(str(c["chunk"]) for c in cells)
        if any(c.get("clips_per_chunk", int(b)) != int(b) for c, b in zip(cells, batches)):
            text += " (" + "/".join(str(c["clips_per_chunk"]) for c in cells) + " clips per chunk)"
        return text

    lines += ["", "Time chunks per call (CPU; `FunctionalINR.chunk_size`, all clips of a call per chunk "
              "unless said; `FunctionalINR.clip_group`): " + "; ".join(
                  f"{name} {tiles(entry)}" for name, entry in fit["rows"].items()
              ) + f" points at B = {'/'.join(batches)}.", ""]
    return lines


def render_fewsound(few):
    """Markdown lines of the FewSound inference tables (encode / decode, RTF per stage)."""
    if not few:
        return []
    p = few["params"]
    lines = [
        f"## FewSound inference, pieces of {few['num_samples']} samples ({few['duration_s']:.3f} s) batched",
        "",
        f"E {p['E'] / 1e6:.2f}M, G {p['G'] / 1e6:.2f}M, H {p['H'] / 1e6:.2f}M parameters; KAN target "
        f"P = {p['theta']:,} (compile={few.get('target_compile', 'False')}). G(θ) is computed once per model "
        f"({_fmt(few['g_once_ms'])} ms) and cached. RTF = compute time / audio duration; x real time = 1 / RTF.",
        "",
        "| pieces n | audio s | encode E ms | decode H ms | decode target ms | RTF encode | RTF decode "
        "| RTF total | x real time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, st in few["stages"].items():
        lines.append(
            f"| {n} | {st['audio_s']:.2f} | {_fmt(st['encode_ms'])} | {_fmt(st['decode_h_ms'])} | "
            f"{_fmt(st['decode_target_ms'])} | {st['rtf_encode']:.3f} | {st['rtf_decode']:.3f} | "
            f"{st['rtf_total']:.3f} | {1 / st['rtf_total']:.1f} |"
        )
    with_torch_elu = [(n, st) for n, st in few["stages"].items() if "encode_torch_elu_ms" in st]
    if with_torch_elu:
        lines += ["", "Encode E with torch.nn.ELU (expm1) instead of ours (exp), same weights: " + "; ".join(
            f"n = {n}: {_fmt(st['encode_torch_elu_ms'])} ms ({st['encode_torch_elu_ms'] / st['encode_ms']:.2f}x ours)"
            for n, st in with_torch_elu) + "."]
    with_bf16 = [(n, st) for n, st in few["stages"].items() if "encode_bf16_ms" in st]
    if with_bf16:
        lines += ["", "Encode E in bfloat16 (autocast; the inference YAML's `precision: bf16`; head and target "
                  "in float32): " + "; ".join(
                      f"n = {n}: {_fmt(st['encode_bf16_ms'])} ms ({st['encode_ms'] / st['encode_bf16_ms']:.2f}x "
                      f"faster than fp32), {1 / st['rtf_total_bf16']:.1f}x real time in all"
                      for n, st in with_bf16)
                  + f". The embedding E(x) is {100 * few['bf16_embedding_deviation']:.2f} % (relative L2) "
                  "away from float32's."]
    if "flops_per_piece" in few:
        ops = few["flops_per_piece"]
        n0 = next(iter(few["stages"]))
        st = few["stages"][n0]
        floor = few["floor_ms_per_piece"]
        lines += [
            "",
            f"Roofline: one piece is {ops['encode'] / 1e9:.2f} GFLOP to encode and "
            f"{ops['decode'] / 1e9:.2f} GFLOP to decode (torch.utils.flop_counter); at n = {n0} the "
            f"stages run at {ops['encode'] / st['encode_ms'] / 1e6:.1f} and "
            f"{ops['decode'] / st['decode_ms'] / 1e6:.1f} GFLOP/s. A large fp32 matrix product runs at "
            f"{few['gemm_gflops']:.1f} GFLOP/s on the same threads, so no fp32 implementation of these "
            f"models can take less than {floor:.1f} ms per piece here: at most "
            f"{few['duration_s'] * 1000 / floor:.0f}x real time.",
        ]
    lines.append("")
    return lines


def main(argv=None):
    args = parse_args(argv)
    results = run(args)
    command = "python bench/run_all.py " + " ".join(argv if argv is not None else sys.argv[1:])
    results["command"] = command.strip()
    load = results["machine"].get("load_average")
    if load and load[0] > 0.75 * (results["machine"]["cores"] or 1):
        results["note"] = (
            f"Note: the machine was shared while this ran (load average {load[0]} on "
            f"{results['machine']['cores']} cores at the start): absolute times are noisy; the "
            "ratios come from interleaved runs in one process and are the numbers to read."
        )
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as fout:
        fout.write(render_markdown(results, results["command"]))
    json_path = os.path.splitext(args.output)[0] + ".json"
    with open(json_path, "w", encoding="utf-8") as fout:
        json.dump(results, fout, indent=1)
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main()
