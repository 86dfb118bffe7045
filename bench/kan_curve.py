"""Fidelity of a long batched KAN fit against steps: where the curve flattens.

B speech clips of the embedded corpus (or any folder of audio) are fitted
together by :class:`fewsound_sb.fitting.INRFitter` with the shipped KAN fit
YAML (``hparams/inr/kan.yaml``: knobs, FewSound loss, AdamW, lr), in one
``fit_batch`` call that saves its state every ``--every`` steps; the fitter's
``callback`` reads the weights of each save and scores the reconstructions
(MSE, PSNR, LSD, SI-SNR, PESQ: mean ± std over the clips). The evaluation does
not touch the fit: the curve is that of one uninterrupted fit.

Example::

    OMP_NUM_THREADS=1 python bench/kan_curve.py --clips 4 --crop 8192 --steps 4000 --every 100
    python bench/kan_curve.py --crop 32768 --steps 10000 --every 500 --max-minutes 120

writes ``<out>.csv`` (one row per evaluation) and ``<out>.png`` (PSNR, LSD and
PESQ against steps), both rewritten after every evaluation, so an interrupted
run keeps its curve; ``--max-minutes`` stops at the first evaluation past it.
"""

import argparse
import csv
import os
import sys
import tempfile
import time

import torch
from hyperpyyaml import load_hyperpyyaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from rank_inrs import CORPUS, SAMPLE_RATE, speech_clips  # noqa: E402

from fewsound_sb.fitting import INRFitter  # noqa: E402
from fewsound_sb.metrics import compute_metrics, summarize  # noqa: E402
from fewsound_sb.nnet.inr import time_grid  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = ("mse", "psnr", "lsd", "si_snr", "pesq")  # STOI needs longer clips than 8,192
PLOTTED = (("psnr", "PSNR (dB) ↑"), ("lsd", "LSD ↓"), ("pesq", "PESQ ↑"))


def build_fitter(hparams_file, seed):
    """The INRFitter of a fit YAML (target factory, loss, AdamW settings)."""
    with open(hparams_file) as f:
        hparams = load_hyperpyyaml(f)
    return INRFitter(
        hparams["target"], hparams["loss"], lr=hparams["lr"], n_steps=0,  # set by main
        weight_decay=hparams["weight_decay"], betas=hparams["betas"], eps=hparams["adam_eps"],
        save_every=0, seed=seed, progress=False,
    )


def plot(rows, title, path):
    """Mean ± std over clips of the PLOTTED metrics against steps, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(4.2 * len(PLOTTED), 3.4))
    for ax, (name, label) in zip(axes, PLOTTED):
        mean = [r[name] for r in rows]
        std = [r[name + "_std"] for r in rows]
        ax.plot(steps, mean, color="C0")
        ax.fill_between(steps, [m - s for m, s in zip(mean, std)],
                        [m + s for m, s in zip(mean, std)], color="C0", alpha=0.2)
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hparams", default=os.path.join(REPO, "hparams", "inr", "kan.yaml"))
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--crop", type=int, default=8192,
                        help="samples per clip (PESQ needs at least 5,513)")
    parser.add_argument("--offset", type=int, default=4000, help="samples skipped in each file")
    parser.add_argument("--folder", default=CORPUS, help="audio folder of the clips")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--every", type=int, default=100, help="steps between evaluations")
    parser.add_argument("--max-minutes", type=float, default=0.0,
                        help="stop at the first evaluation past this wall time (0: never)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "kan_curve"))
    args = parser.parse_args(argv)
    if args.every <= 0 or args.steps <= 0:
        parser.error("--steps and --every must be positive")

    wavs = speech_clips(args.folder, args.clips, args.crop, args.offset)
    fitter = build_fitter(args.hparams, args.seed)
    command = "python bench/kan_curve.py " + " ".join(sys.argv[1:] if argv is None else argv)
    title = (f"{fitter.display_name} ({fitter.num_params:,} params), {args.clips} clips × "
             f"{args.crop} samples fitted together, torch threads {torch.get_num_threads()}")
    rows = []
    started = time.perf_counter()
    t = time_grid(args.crop)  # the fitter's grid

    def evaluate(step, losses):
        if step % args.every:
            return
        weights = torch.load(state, map_location="cpu", weights_only=True)["weights"]
        with torch.no_grad():
            estimates = fitter.network.forward_flat(t, weights).squeeze(-1)
        summary = summarize(compute_metrics(predictions=estimates, targets=wavs,
                                            sample_rate=SAMPLE_RATE, metrics=METRICS))
        row = {"step": step, "wall_seconds": round(time.perf_counter() - started, 1),
               "loss": sum(losses) / len(losses)}  # mean loss of this step
        for m in METRICS:
            row[m], row[m + "_std"] = summary[m]
        rows.append(row)
        print(f"step {step}: loss {row['loss']:.4f} PSNR {row['psnr']:.2f} "
              f"LSD {row['lsd']:.3f} PESQ {row['pesq']:.3f} ({row['wall_seconds']:.0f} s)",
              flush=True)
        with open(args.out + ".csv", "w", newline="") as f:
            f.write(f"# {command}\n# {title}\n")
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        plot(rows, title, args.out + ".png")
        if args.max_minutes and time.perf_counter() - started > 60 * args.max_minutes:
            raise TimeoutError(f"--max-minutes {args.max_minutes} reached at step {step}")

    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "fit_state.pt")
        fitter.n_steps, fitter.save_every = args.steps, args.every
        try:
            fitter.fit_batch(wavs, seeds=list(range(args.clips)), state_path=state,
                             callback=evaluate)
        except TimeoutError as stop:
            print(stop, flush=True)

if __name__ == "__main__":
    main()
