"""FewSound vs HyperSound heads at an equal budget, in the memorisation regime.

The training recipe draws random crops, so on a CPU budget (hundreds of steps
against the paper's 1.56M) neither model leaves the trivial silent solution.
This script isolates the question the paper's Table 2 asks of the heads: with
the same encoder, the same clips, the same seed, optimiser and number of steps,
which parametrisation of the KAN target's weights — FewSound's θ + H(E(x), G(θ))
or HyperSound's H(E(x)) — reconstructs the clips better?

> python bench/compare_heads.py --steps 300 --clips 4 --crop 4096 --output bench/heads.md
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "recipes" / "VCTK"))

from fewsound_sb.dataio import crop_or_pad, peak_normalize, read_audio  # noqa: E402
from fewsound_sb.lobes.encoders import SoundStreamEncoder  # noqa: E402
from fewsound_sb.losses import FewSoundLoss  # noqa: E402
from fewsound_sb.metrics import compute_metrics, format_table, summarize  # noqa: E402
from fewsound_sb.nnet.hyper import FewSoundHead, HyperSoundHead, count_parameters  # noqa: E402
from fewsound_sb.nnet.inr import KAN, time_grid  # noqa: E402
from vctk_prepare import pick_one_per_speaker  # noqa: E402


def load_clips(data_folder, n_clips, crop, sample_rate, seed):
    picks = pick_one_per_speaker(data_folder, seed=seed)[:n_clips]
    clips = [peak_normalize(crop_or_pad(read_audio(p, sample_rate), crop, mode="center")[0]) for _, p in picks]
    return torch.stack(clips), [spk for spk, _ in picks]


def build(kind, crop, hidden, seed):
    torch.manual_seed(seed)
    encoder = SoundStreamEncoder(input_length=crop, channels=8, output_channels=16, norm="channel")
    if kind == "fewsound":
        target = KAN()  # 33,768 params, the paper's FewSound-KAN target
        head = FewSoundHead(target, encoder.output_dim, hypernet_hidden=hidden,
                            g_output_dim=256, g_kernel_size=1001, warmup_epochs=0)
    else:
        target = KAN(encoding_length=8, hidden_sizes=(48, 12, 6))  # the "19K" HyperSound-KAN
        head = HyperSoundHead(target, encoder.output_dim, hypernet_hidden=hidden)
    return encoder, head


def train(kind, wavs, args):
    encoder, head = build(kind, args.crop, args.hidden, args.seed)
    params = [p for m in (encoder, head) for p in m.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr)
    loss_fn = FewSoundLoss(sample_rate=args.sample_rate)
    t = time_grid(args.crop)
    history = []
    start = time.time()
    for _ in range(args.steps):
        opt.zero_grad()
        x_hat = head.reconstruct(encoder(wavs), t).squeeze(-1)
        loss = loss_fn(predictions=x_hat, targets=wavs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        history.append(loss.item())
    with torch.no_grad():
        x_hat = head.reconstruct(encoder(wavs), t).squeeze(-1)
    rows = compute_metrics(predictions=x_hat, targets=wavs, sample_rate=args.sample_rate,
                           metrics=("mse", "psnr", "lsd", "si_snr", "stoi"))
    sizes = {"E": count_parameters(encoder), "head": count_parameters(head), "P": head.target.num_params}
    return rows, history, time.time() - start, sizes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_folder", default="tests/samples/VCTK-mini")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--crop", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--sample_rate", type=int, default=22050)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="bench/heads.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    wavs, ids = load_clips(args.data_folder, args.clips, args.crop, args.sample_rate, args.seed)
    lines = [
        "# FewSound vs HyperSound heads: equal budget, memorisation regime", "",
        f"Command: `python bench/compare_heads.py --steps {args.steps} --clips {args.clips} "
        f"--crop {args.crop} --lr {args.lr} --hidden {' '.join(map(str, args.hidden))} --seed {args.seed}`",
        "",
        f"{args.clips} clips ({', '.join(ids)}), central {args.crop} samples at {args.sample_rate} Hz; same "
        f"encoder config, seed, AdamW lr {args.lr}, grad-norm clip 1, {args.steps} full-batch steps; "
        "metrics on the same clips after training.", "",
    ]
    tables = []
    for kind in ("fewsound", "hypersound"):
        rows, history, seconds, sizes = train(kind, wavs, args)
        name = "FewSound-KAN" if kind == "fewsound" else "HyperSound-KAN"
        lines.append(f"- {name}: loss {history[0]:.3f} → {history[-1]:.3f}, {seconds:.0f} s, "
                     f"E {sizes['E']:,} + head {sizes['head']:,} params, target P = {sizes['P']:,}")
        tables.append(format_table(summarize(rows), title=name).strip().splitlines())
    lines += ["", *tables[0], tables[1][-1], ""]  # one header, both model rows
    Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
