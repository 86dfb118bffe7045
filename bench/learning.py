"""Learning curves of FewSound and HyperSound on held-out speakers (CPU budget).

Trains one head (``--head fewsound|hypersound``) with the SoundStream-style
encoder on the training speakers of a VCTK-layout corpus (default: the embedded
``tests/samples/VCTK-mini``, last ``--valid_speakers`` speakers held out) and
evaluates every ``--eval_every`` steps on the held-out clips (their first
``--crop`` samples, no augmentation, as the authors' validation). Both heads
get the same encoder, H widths, steps, data order (batches and crops are a
function of ``(seed, step, slot)`` only) and seed.

Rows of the CSV (``<output>/<name>.csv``), per evaluation step:

* ``model``: the head's reconstructions;
* ``theta`` (FewSound): θ alone, Δθ = 0 — what the per-clip path adds;
* ``shuffled``: embeddings rolled by one across the held-out batch, i.e. a
  clip-blind decoder — what the clip's own embedding adds;
* ``silence``: output 0, the loss of learning nothing.

``--plot`` draws validation loss, MSE, SI-SNR and LSD against steps for
several runs (mean over seeds) with the silence and θ-alone references;
``--summary`` writes a Markdown table of the last evaluation, mean ± std over
seeds.

> python bench/learning.py --head fewsound --name fs_s0 --seed 0 --output bench/learning
> python bench/learning.py --plot bench/learning/curves.png --runs fs_s0,fs_s1 hs_s0,hs_s1 \
      --output bench/learning
"""

import argparse
import csv
import math
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fewsound_sb.dataio import augment, crop_or_pad, peak_normalize, read_audio  # noqa: E402
from fewsound_sb.lobes.encoders import SoundStreamEncoder  # noqa: E402
from fewsound_sb.losses import FewSoundLoss  # noqa: E402
from fewsound_sb.metrics import compute_metrics, summarize  # noqa: E402
from fewsound_sb.nnet.hyper import FewSoundHead, HyperSoundHead  # noqa: E402
from fewsound_sb.nnet.inr import KAN, time_grid  # noqa: E402
from fewsound_sb.schedules import SCHEDULES, lr_schedule  # noqa: E402

METRICS = ("mse", "si_snr", "lsd")
FIELDS = ("name", "head", "seed", "step", "variant", "loss", "mse", "si_snr", "lsd", "pesq",
          "train_loss", "lr", "seconds")


def load_corpus(data_folder, sample_rate, valid_speakers, mic="mic1"):
    """Clips of a VCTK-layout folder: ``(train, valid)`` lists of ``(id, wav)``.

    The last ``valid_speakers`` speakers (sorted) are held out, as the recipe.
    """
    root = Path(data_folder) / "wav48_silence_trimmed"
    speakers = sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(speakers) <= valid_speakers:
        raise ValueError(f"{root}: {len(speakers)} speakers, need more than {valid_speakers}")
    split = {}
    for i, speaker in enumerate(speakers):
        part = "valid" if i >= len(speakers) - valid_speakers else "train"
        for path in sorted((root / speaker).glob(f"*_{mic}.flac")):
            split.setdefault(part, []).append((path.stem, read_audio(path, sample_rate)))
    return split["train"], split["valid"]


def train_batch(clips, step, args):
    """Batch of ``args.batch`` augmented random crops, a function of (seed, step) only."""
    gen = torch.Generator().manual_seed(args.seed * 1_000_003 + step)
    picks = torch.randint(0, len(clips), (args.batch,), generator=gen).tolist()
    sigs = []
    for index in picks:
        sig, _ = crop_or_pad(clips[index][1], args.crop, mode="random", generator=gen)
        sig = augment(sig, args.sample_rate, gen, args.phase_mangle_p, args.dequantize)
        sigs.append(peak_normalize(sig))
    return torch.stack(sigs)  # [B, crop]


def build(args):
    """Encoder and head (models seeded by ``args.seed``)."""
    torch.manual_seed(args.seed)
    encoder = SoundStreamEncoder(input_length=args.crop, channels=args.enc_channels,
                                 output_channels=args.enc_output_channels, norm="channel",
                                 sample_rate=args.sample_rate)
    common = dict(hypernet_hidden=tuple(args.hidden), output_init=args.output_init,
                  output_row_scale=args.output_row_scale)
    if args.head == "fewsound":
        target = KAN()  # 33,768 params, the paper's FewSound-KAN target
        head = FewSoundHead(target, encoder.output_dim, g_output_dim=args.g_output_dim,
                            g_kernel_size=args.g_kernel_size, warmup_epochs=args.warmup_epochs,
                            theta_init=args.theta_init, **common)
    else:
        target = KAN(encoding_length=8, hidden_sizes=(48, 12, 6))  # the "19K" HyperSound-KAN
        head = HyperSoundHead(target, encoder.output_dim, **common)
    return encoder, head


@torch.no_grad()
def evaluate(encoder, head, wavs, loss_fn, args, final=False, pieces=None):
    """Rows ``{variant: {loss, mse, si_snr, lsd}}`` on the held-out clips (and
    the model's ``pesq`` on ``pieces`` when ``final``)."""
    encoder.eval()
    head.eval()
    t = time_grid(args.crop)
    embedding = encoder(wavs)
    outputs = {
        "model": head.reconstruct(embedding, t),
        "shuffled": head.reconstruct(embedding.roll(1, dims=0), t),
        "silence": torch.zeros_like(wavs),
    }
    if hasattr(head, "theta"):
        theta = head.theta.unsqueeze(0).expand(wavs.shape[0], -1)
        outputs["theta"] = head.target.forward_flat(t, theta)
    rows = {}
    for variant, x_hat in outputs.items():
        x_hat = x_hat.reshape(wavs.shape)
        row = {"loss": float(loss_fn(predictions=x_hat, targets=wavs))}
        per_clip = compute_metrics(predictions=x_hat, targets=wavs,
                                   sample_rate=args.sample_rate, metrics=METRICS)
        row.update({name: mean for name, (mean, _) in summarize(per_clip).items()})
        rows[variant] = row
    if final and pieces is not None:
        rows["model"]["pesq"] = pesq_of_pieces(encoder, head, pieces, args)
    encoder.train()
    head.train()
    return rows


@torch.no_grad()
def pesq_of_pieces(encoder, head, pieces, args):
    """Wide-band PESQ of the held-out clips, each reconstructed piece by piece.

    PESQ needs at least 0.25 s; a ``--crop`` piece is shorter, so each clip's
    first ``--pesq_pieces`` consecutive (peak-normalised) pieces are
    reconstructed one by one and concatenated, reference and estimate alike.
    ``pieces``: ``[V, n, crop]``.
    """
    n_clips, n_pieces, crop = pieces.shape
    flat = pieces.reshape(n_clips * n_pieces, crop)
    x_hat = head.reconstruct(encoder(flat), time_grid(crop)).reshape(n_clips, n_pieces * crop)
    rows = compute_metrics(predictions=x_hat, targets=pieces.reshape(n_clips, -1),
                           sample_rate=args.sample_rate, metrics=("pesq",))
    return summarize(rows)["pesq"][0]


def run(args):
    """Trains one head; writes ``<output>/<name>.csv``; returns the rows."""
    torch.set_num_threads(args.threads)
    train_clips, valid_clips = load_corpus(args.data_folder, args.sample_rate, args.valid_speakers)
    valid = torch.stack([peak_normalize(crop_or_pad(w, args.crop, mode="start")[0])
                         for _, w in valid_clips])  # [V, crop]
    pieces = torch.stack([
        peak_normalize(crop_or_pad(w, args.crop * args.pesq_pieces, mode="start")[0]
                       .reshape(args.pesq_pieces, args.crop))
        for _, w in valid_clips])  # [V, n, crop]
    encoder, head = build(args)
    params = [p for m in (encoder, head) for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    sched = lr_schedule(opt, args.steps, args.schedule, args.lr_max_factor, args.lr_pct_start)
    loss_fn = FewSoundLoss(sample_rate=args.sample_rate)
    t = time_grid(args.crop)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rows, window, start = [], [], time.time()

    def record(step, final=False):
        result = evaluate(encoder, head, valid, loss_fn, args, final=final, pieces=pieces)
        train_loss = sum(window) / len(window) if window else math.nan
        for variant, values in result.items():
            rows.append({"name": args.name, "head": args.head, "seed": args.seed, "step": step,
                         "variant": variant, "train_loss": train_loss,
                         "lr": opt.param_groups[0]["lr"], "seconds": time.time() - start,
                         **values})
        window.clear()
        write_csv(out / f"{args.name}.csv", rows)  # after every evaluation: a stopped run keeps its curve
        m = result["model"]
        print(f"{args.name} step {step}: valid loss {m['loss']:.4f} (silence "
              f"{result['silence']['loss']:.4f}, clip-blind {result['shuffled']['loss']:.4f}"
              + (f", theta {result['theta']['loss']:.4f}" if "theta" in result else "")
              + f") mse {m['mse']:.4g} si_snr {m['si_snr']:.2f} lsd {m['lsd']:.3f} "
              f"train {train_loss:.4f} [{time.time() - start:.0f} s]", flush=True)

    record(0)
    for step in range(1, args.steps + 1):
        if hasattr(head, "set_epoch"):
            head.set_epoch((step - 1) // args.steps_per_epoch)
        wavs = train_batch(train_clips, step, args)
        x_hat = head.reconstruct(encoder(wavs), t).reshape(wavs.shape)
        loss = loss_fn(predictions=x_hat, targets=wavs)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
        opt.step()
        sched.step()
        window.append(loss.item())
        if step % args.eval_every == 0 or step == args.steps:
            record(step, final=step == args.steps)
    return rows


def write_csv(path, rows):
    """Writes the rows (``FIELDS`` columns) to ``path``."""
    with open(path, "w", newline="", encoding="utf-8") as fout:
        writer = csv.DictWriter(fout, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


LOG_LINE = re.compile(
    r"^(?P<name>\S+) step (?P<step>\d+): valid loss (?P<loss>\S+) \(silence (?P<silence>[^,]+), "
    r"clip-blind (?P<shuffled>[^,)]+)(?:, theta (?P<theta>[^)]+))?\) mse (?P<mse>\S+) "
    r"si_snr (?P<si_snr>\S+) lsd (?P<lsd>\S+) train (?P<train_loss>\S+) \[(?P<seconds>\d+) s\]")


def rows_from_log(path, head, seed):
    """CSV rows from the progress lines a run printed (for a run stopped before
    it wrote its CSV): model metrics and the silence / clip-blind / θ losses."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        match = LOG_LINE.match(line.strip())
        if not match:
            continue
        g = match.groupdict()
        base = {"name": g["name"], "head": head, "seed": seed, "step": int(g["step"]),
                "train_loss": g["train_loss"], "seconds": g["seconds"]}
        rows.append({**base, "variant": "model", "loss": g["loss"], "mse": g["mse"],
                     "si_snr": g["si_snr"], "lsd": g["lsd"]})
        for variant in ("silence", "shuffled", "theta"):
            if g[variant] is not None:
                rows.append({**base, "variant": variant, "loss": g[variant]})
    return rows


def read_runs(output, names):
    """Rows of the CSVs ``<output>/<name>.csv`` (missing ones are skipped)."""
    rows = []
    for name in names:
        path = Path(output) / f"{name}.csv"
        if path.is_file():
            with open(path, encoding="utf-8") as fin:
                rows += list(csv.DictReader(fin))
    return rows


def _mean_std(vals):
    """Mean and sample standard deviation (n - 1; 0 for one value)."""
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))


def _curve(rows, variant, metric):
    """Mean and std over runs of ``metric`` per step for one variant: (steps, means, stds)."""
    by_step = {}
    for row in rows:
        if row["variant"] == variant and row[metric] not in ("", "nan"):
            by_step.setdefault(int(row["step"]), []).append(float(row[metric]))
    steps = sorted(by_step)
    stats = [_mean_std(by_step[s]) for s in steps]
    return steps, [m for m, _ in stats], [d for _, d in stats]


def plot(groups, output, path):
    """PNG of validation loss, MSE, SI-SNR and LSD against steps, one line per group
    (mean over its runs, ± std band), with silence (dotted), FewSound θ-alone (dashed) and
    clip-blind (dash-dot, loss panel) references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    drawn, silence_lsd = set(), None
    for i, group in enumerate(groups):
        names = group.split(",")
        rows = read_runs(output, names)
        if not rows:
            continue
        color = f"C{i}"
        label = names[0].rsplit("_s", 1)[0]
        for ax, metric in zip(axes, ("loss", "mse", "si_snr", "lsd")):
            steps, mean, std = _curve(rows, "model", metric)
            ax.plot(steps, mean, color=color, label=f"{label} ({len(names)} seeds)")
            ax.fill_between(steps, [m - d for m, d in zip(mean, std)],
                            [m + d for m, d in zip(mean, std)], color=color, alpha=0.2, lw=0)
            if rows[0]["head"] == "fewsound":
                ax.plot(*_curve(rows, "theta", metric)[:2], color=color, ls="--", lw=1,
                        label=f"{label}: θ alone")
            if metric == "loss":
                ax.plot(*_curve(rows, "shuffled", metric)[:2], color=color, ls="-.", lw=1,
                        label=f"{label}: clip-blind")
            silence = _curve(rows, "silence", metric)[:2]
            if metric == "lsd" and silence[1]:
                silence_lsd = silence[1][0]  # off the scale: in the title instead
            elif metric in ("loss", "mse") and silence[0] and metric not in drawn:
                drawn.add(metric)  # once per panel, from the first run that has it
                ax.plot(*silence, color="k", ls=":", label="silence")
    titles = ("validation loss", "MSE", "SI-SNR (dB)",
              "LSD" + (f" (silence: {silence_lsd:.1f})" if silence_lsd is not None else ""))
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel("step")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def summary(groups, output, path):
    """Markdown table: the last evaluation of each group, mean ± sample std over its runs."""
    lines = ["| run | seeds | loss | loss / silence | clip-blind / silence | MSE | SI-SNR (dB) | LSD "
             "| PESQ | s |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for group in groups:
        names = group.split(",")
        rows = read_runs(output, names)
        if not rows:
            continue
        last = max(int(r["step"]) for r in rows)
        pick = {v: [r for r in rows if int(r["step"]) == last and r["variant"] == v]
                for v in ("model", "silence", "shuffled")}

        def stat(variant, key, fmt):
            vals = [float(r[key]) for r in pick[variant] if r[key] not in ("", "nan")]
            return fmt_stat(vals, fmt)

        def fmt_stat(vals, fmt):
            if not vals:
                return "n/a"
            mean, std = _mean_std(vals)
            return f"{mean:{fmt}} ± {std:{fmt}}" if len(vals) > 1 else f"{mean:{fmt}}"

        def ratio(variant):  # per run: loss / that run's silence loss
            by_name = {r["name"]: float(r["loss"]) for r in pick["silence"]}
            return [float(r["loss"]) / by_name[r["name"]] for r in pick[variant]]

        seconds = sum(float(r["seconds"]) for r in pick["model"]) / len(pick["model"])
        lines.append(
            f"| {names[0].rsplit('_s', 1)[0]} (step {last}) | {len(pick['model'])} | "
            f"{stat('model', 'loss', '.4f')} | {fmt_stat(ratio('model'), '.3f')} | "
            f"{fmt_stat(ratio('shuffled'), '.3f')} | {stat('model', 'mse', '.2e')} | "
            f"{stat('model', 'si_snr', '.2f')} | {stat('model', 'lsd', '.3f')} | "
            f"{stat('model', 'pesq', '.2f')} | {seconds:.0f} |")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--head", choices=("fewsound", "hypersound"), default="fewsound")
    add("--name", default=None, help="run name (CSV file stem); default <head>_s<seed>")
    add("--output", default="bench/learning")
    add("--data_folder", default="tests/samples/VCTK-mini")
    add("--valid_speakers", type=int, default=4)
    add("--sample_rate", type=int, default=22050)
    add("--crop", type=int, default=4096)
    add("--batch", type=int, default=8)
    add("--steps", type=int, default=300)
    add("--eval_every", type=int, default=50)
    add("--seed", type=int, default=0)
    add("--threads", type=int, default=1)
    add("--enc_channels", type=int, default=8)
    add("--enc_output_channels", type=int, default=16)
    add("--hidden", type=int, nargs="+", default=[256, 256])
    add("--g_output_dim", type=int, default=256)
    add("--g_kernel_size", type=int, default=1001)
    add("--theta_init", choices=("authors", "target"), default="target")
    add("--output_init", choices=("hyperfan", "default", "target"), default="target")
    add("--output_row_scale", type=float, default=1.0)
    add("--warmup_epochs", type=int, default=0, help="f = epoch / warmup_epochs (0: f = 1)")
    add("--steps_per_epoch", type=int, default=25, help="steps of one 'epoch' for the warm-up")
    add("--lr", type=float, default=1e-4)
    add("--weight_decay", type=float, default=0.01)
    add("--schedule", choices=SCHEDULES, default="constant",
        help="fewsound_sb.schedules.lr_schedule: the recipe YAML's lr_schedule")
    add("--lr_max_factor", type=float, default=25.0)
    add("--lr_pct_start", type=float, default=0.05)
    add("--max_grad_norm", type=float, default=1000.0)
    add("--phase_mangle_p", type=float, default=0.0)
    add("--dequantize", action="store_true")
    add("--pesq_pieces", type=int, default=4, help="consecutive pieces per clip for PESQ")
    add("--from_log", default=None, help="write <output>/<name>.csv from this run log instead")
    add("--plot", default=None, help="write this PNG from --runs instead of training")
    add("--summary", default=None, help="write this Markdown table from --runs")
    add("--runs", nargs="+", default=[], help="groups of run names, comma-separated seeds")
    args = parser.parse_args(argv)
    if args.name is None:
        args.name = f"{args.head}_s{args.seed}"
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.from_log:
        write_csv(Path(args.output) / f"{args.name}.csv",
                  rows_from_log(args.from_log, args.head, args.seed))
        return
    if args.plot or args.summary:
        if args.plot:
            plot(args.runs, args.output, args.plot)
        if args.summary:
            print(summary(args.runs, args.output, args.summary))
        return
    run(args)


if __name__ == "__main__":
    main()
