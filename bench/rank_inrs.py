"""Ranking of the six target networks at a reduced budget (the paper's Table 1).

Every target is built, optimised and scored with its shipped fit YAML
(``hparams/inr/<name>.yaml``: knobs, loss, AdamW settings, learning rate) on
the same clips, all clips of a signal fitted together (one weight set per
clip). Three signals: speech (the embedded VCTK-mini corpus, or any folder
of audio), generated music-like clips (harmonic notes with vibrato, a note
change per quarter clip) and noise-like clips (band-pass filtered noise).

The clips lie at the start of the time grid of a ``--grid``-sample clip
(32,768, the paper's), so a target sees the frequencies, in units of t, that
it sees in a full-length fit; ``--grid 0`` gives each crop its own [-1, 1].

Example::

    OMP_NUM_THREADS=2 python bench/rank_inrs.py --steps 1000 --clips 4 --crop 8192
    python bench/rank_inrs.py --steps 300 --clips 1 --crop 6144 --metrics mse,psnr,lsd,si_snr,pesq
    python bench/rank_inrs.py --steps 3000 --folder my_audio/ --signals speech

writes ``<out>.md`` (one table per signal) and ``<out>.csv``.
"""

import argparse
import csv
import math
import os
import sys
import time

import torch
from hyperpyyaml import load_hyperpyyaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from fewsound_sb.dataio import list_audio_files, read_audio  # noqa: E402
from fewsound_sb.metrics import compute_metrics, summarize  # noqa: E402
from fewsound_sb.nnet.inr import time_grid  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGETS = ("nerf", "siren", "finer", "wire", "rff", "kan")  # Table 1's row order
METRICS = ("mse", "psnr", "lsd", "si_snr", "pesq", "stoi")
SIGNALS = ("speech", "music", "noise")
SAMPLE_RATE = 22050
CORPUS = os.path.join(REPO, "tests", "samples", "VCTK-mini")


def speech_clips(folder, count, crop, offset):
    """``[count, crop]`` peak-normalised crops starting ``offset`` samples into files."""
    files = list_audio_files(folder)
    if len(files) < count:
        raise FileNotFoundError(f"{folder}: found {len(files)} audio files, need {count}; "
                                "lower --clips or give another --folder")
    step = max(1, len(files) // count)  # spread over speakers
    clips = []
    for path in files[::step][:count]:
        wav = read_audio(path, sample_rate=SAMPLE_RATE).reshape(-1)
        if wav.numel() < offset + crop:
            wav = torch.nn.functional.pad(wav, (0, offset + crop - wav.numel()))
        piece = wav[offset: offset + crop]
        clips.append(piece / piece.abs().max().clamp_min(1e-8))
    return torch.stack(clips)


def music_clips(count, crop, seed=0):
    """Harmonic notes (5 partials, 1/k amplitudes) with 5 Hz vibrato, 4 notes per clip."""
    gen = torch.Generator().manual_seed(seed)
    s = torch.arange(crop) / SAMPLE_RATE
    clips = []
    for _ in range(count):
        notes = 110 * 2 ** (torch.randint(0, 36, (4,), generator=gen) / 12)  # A2..G#5
        f0 = notes.repeat_interleave(math.ceil(crop / 4))[:crop]
        f0 = f0 * (1 + 0.01 * torch.sin(2 * math.pi * 5 * s))
        phase = 2 * math.pi * torch.cumsum(f0, 0) / SAMPLE_RATE
        wav = sum(torch.sin(k * phase) / k for k in range(1, 6))
        clips.append(wav / wav.abs().max())
    return torch.stack(clips)


def noise_clips(count, crop, seed=0):
    """White noise band-passed to a random octave band between 200 Hz and 6.4 kHz."""
    gen = torch.Generator().manual_seed(seed + 1)
    freqs = torch.fft.rfftfreq(crop, 1 / SAMPLE_RATE)
    clips = []
    for _ in range(count):
        low = 200 * 2 ** float(torch.randint(0, 5, (1,), generator=gen))
        spectrum = torch.fft.rfft(torch.randn(crop, generator=gen))
        spectrum[(freqs < low) | (freqs > 2 * low)] = 0
        wav = torch.fft.irfft(spectrum, n=crop)
        clips.append(wav / wav.abs().max())
    return torch.stack(clips)


def fit_target(name, wavs, steps, grid, seed=0, overrides=None):
    """Fits every clip of ``wavs`` ``[B, N]`` with the target of ``hparams/inr/<name>.yaml``.

    ``overrides`` (dict) changes keys of that YAML, e.g. ``{"first_omega": 1000.0}``.

    Returns
    -------
    tuple
        (estimates ``[B, N]``, parameter count, wall seconds, final loss per clip)
    """
    with open(os.path.join(REPO, "hparams", "inr", f"{name}.yaml")) as f:
        hparams = load_hyperpyyaml(f, overrides or {})
    torch.manual_seed(seed)
    nets = [hparams["target"]() for _ in range(wavs.shape[0])]  # a fresh init per clip
    net = nets[0]
    weights = torch.nn.Parameter(torch.stack([n.flat_weights().detach() for n in nets]))
    optimizer = torch.optim.AdamW(
        [weights], lr=hparams["lr"], betas=hparams["betas"], eps=hparams["adam_eps"],
        weight_decay=hparams["weight_decay"],
    )
    num_samples = wavs.shape[1]
    t = time_grid(grid)[:num_samples] if grid else time_grid(num_samples)
    loss = hparams["loss"]
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        estimates = net.forward_flat(t, weights).squeeze(-1)
        loss(predictions=estimates, targets=wavs).sum().backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        estimates = net.forward_flat(t, weights).squeeze(-1)
        final = loss(predictions=estimates, targets=wavs)
    params = sum(p.numel() for p in net.parameters())
    return estimates, params, seconds, final.tolist()


def markdown_table(signal, rows, args):
    """One Table-1 style table (mean ± std over clips) for one signal."""
    head = ["INR (# params)"] + [m.upper().replace("_", "-") for m in args.metrics] + ["wall s"]
    clips = f"{args.clips} clip" + ("s" if args.clips > 1 else "")
    lines = [f"**{signal}** ({clips} of {args.crop} samples, {args.steps} steps)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [f"{row['inr'].upper()} ({row['params']:,})"]
        for m in args.metrics:
            mean, std = row[m], row[m + "_std"]
            fmt = "{:.1e} ± {:.1e}" if m == "mse" else "{:.2f} ± {:.2f}"
            cells.append(fmt.format(mean, std))
        cells.append(f"{row['seconds']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--clips", type=int, default=4, help="clips per signal")
    parser.add_argument("--crop", type=int, default=8192, help="samples per clip")
    parser.add_argument("--grid", type=int, default=32768,
                        help="the clips are the start of a clip of this length (0: own grid)")
    parser.add_argument("--offset", type=int, default=4000, help="samples skipped in each file")
    parser.add_argument("--folder", default=CORPUS, help="audio folder of the speech clips")
    parser.add_argument("--signals", default=",".join(SIGNALS))
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--metrics", default=",".join(METRICS),
                        help="STOI needs about 9,000 samples (30 frames at 10 kHz) after "
                             "pystoi drops silent frames, PESQ 5,513")
    parser.add_argument("--out", default=os.path.join(REPO, "bench", "rank_inrs"))
    args = parser.parse_args(argv)
    args.metrics = tuple(args.metrics.split(","))
    if args.grid and args.grid < args.crop:
        parser.error(f"--grid {args.grid} is shorter than --crop {args.crop}")
    makers = {
        "speech": lambda: speech_clips(args.folder, args.clips, args.crop, args.offset),
        "music": lambda: music_clips(args.clips, args.crop),
        "noise": lambda: noise_clips(args.clips, args.crop),
    }
    tables, csv_rows = [], []
    for signal in args.signals.split(","):
        wavs = makers[signal]()
        rows = []
        for name in args.targets.split(","):
            estimates, params, seconds, _ = fit_target(name, wavs, args.steps, args.grid)
            summary = summarize(compute_metrics(predictions=estimates, targets=wavs,
                                                sample_rate=SAMPLE_RATE, metrics=args.metrics))
            row = {"signal": signal, "inr": name, "params": params, "seconds": seconds,
                   "steps": args.steps, "clips": args.clips, "crop": args.crop}
            for m in args.metrics:
                row[m], row[m + "_std"] = summary[m]
            rows.append(row)
            scores = " ".join(f"{m.upper()} {row[m]:.3g}" for m in args.metrics)
            print(f"{signal} {name}: {scores} ({seconds:.0f} s)", flush=True)
            # Written after every target: an interrupted run keeps what it measured.
            write_results(args, tables + [markdown_table(signal, rows, args)], csv_rows + rows,
                          argv)
        tables.append(markdown_table(signal, rows, args))
        csv_rows.extend(rows)


def write_results(args, tables, csv_rows, argv):
    """Writes ``<out>.md`` (the tables so far) and ``<out>.csv`` (one row per fit)."""
    command = "python bench/rank_inrs.py " + " ".join(sys.argv[1:] if argv is None else argv)
    with open(args.out + ".md", "w") as f:
        f.write(f"# Target networks at a reduced budget\n\n`{command}`\n\n"
                f"Time grid: the first {args.crop} points of a {args.grid or args.crop}-sample "
                f"clip; wall s: the whole fit of all clips of a signal, "
                f"torch threads {torch.get_num_threads()}.\n\n" + "\n\n".join(tables) + "\n")
    with open(args.out + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(csv_rows[0]))
        writer.writeheader()
        writer.writerows(csv_rows)


if __name__ == "__main__":
    main()
