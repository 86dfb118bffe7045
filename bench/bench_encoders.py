"""Sound encoders E side by side: forward + backward for a batch of 16 crops.

> python bench/bench_encoders.py --threads 2 --output bench/results.md
> python -m bench.bench_encoders --probe snac   # peak memory of one, fresh process

Per encoder (the FewSound YAMLs' settings; Whisper with random weights of the
released sizes, which cost the same as the real ones): median time of
``encoder(wavs).square().mean().backward()`` on ``[16, 32768]`` crops, measured
round-robin in one process; peak memory of two such steps in a fresh process
(:func:`bench.common.measure_peak_memory`); trainable and frozen parameters.
Whisper large-v2 is counted (built on the meta device) but only timed with
``--large`` (about 1.6 GB of weights and tens of GB of activations at 30 s).
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from bench.common import REPO_ROOT, interleaved_medians, machine_info, measure_peak_memory  # noqa: E402
from fewsound_sb.lobes.encoders import (  # noqa: E402
    SNACEncoder,
    SoundStreamEncoder,
    SpectrogramEncoder,
    WhisperLoRAEncoder,
)
from fewsound_sb.lobes.whisper import WHISPER_SIZES, save_random_whisper  # noqa: E402

SAMPLE_RATE = 22050
BATCH = 16
CROP = 32768
SECTION = "## Sound encoders"
# LoRA and pooling of hparams/fewsound_kan_whisper_*.yaml
LORA = dict(lora_rank=8, lora_alpha=16, lora_dropout=0.05, lora_target_modules=("q_proj", "v_proj"))
NOTES = {
    "soundstream": "paper default, layer_ct LayerNorm, fixed length",
    "soundstream-torch-elu": "the same with torch.nn.ELU (expm1) instead of our exp-based ELU",
    "spectrogram": "VoiceBlock-style, GRU to 3296, any length",
    "snac": "snac encoder (32 frames x 512) + Conv1d/Linear to 3296",
    "whisper-tiny.en-30s": "frozen encoder + LoRA r8 q,v + GRU; padded to 30 s (1500 frames)",
    "whisper-tiny.en-clip": "as above, only the clip's 75 frames encoded",
    "whisper-large-v2-30s": "frozen encoder + LoRA r8 q,v + GRU; padded to 30 s",
    "whisper-large-v2-clip": "as above, only the clip's 75 frames encoded",
}


def whisper_folder(size, quick=False):
    """A random Whisper of a released size, saved once per process."""
    key = ("quick", size) if quick else size
    if key not in _FOLDERS:
        sizes = dict(d_model=16, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=32) if quick \
            else WHISPER_SIZES[size]
        torch.manual_seed(0)
        _FOLDERS[key] = save_random_whisper(tempfile.mkdtemp(prefix="whisper-"), **sizes)
    return _FOLDERS[key]


_FOLDERS = {}


def build(name, quick=False):
    """The encoder ``name`` (a key of NOTES); tiny sizes with ``quick``."""
    torch.manual_seed(0)
    length = 2048 if quick else CROP
    if name.startswith("soundstream"):
        kwargs = {"activation": torch.nn.ELU} if name == "soundstream-torch-elu" else {}
        if quick:
            return SoundStreamEncoder(input_length=length, channels=2, output_channels=4,
                                      channel_mults=(2, 4), strides=(4, 8), **kwargs)
        return SoundStreamEncoder(input_length=length, **kwargs)
    if name == "spectrogram":
        return SpectrogramEncoder(hidden=8, n_conv=2, output_dim=8) if quick else SpectrogramEncoder()
    if name == "snac":
        if quick:
            return SNACEncoder(input_length=length, d_model=16, strides=(4, 8), attn_window_size=4, output_dim=8)
        return SNACEncoder(input_length=length)
    size = name[len("whisper-"):name.rindex("-")]
    kwargs = dict(LORA, output_dim=8) if quick else dict(LORA)
    return WhisperLoRAEncoder(whisper_folder(size, quick), pad_to_30s=name.endswith("30s"), **kwargs)


def count(module):
    """(trainable, frozen) parameter counts."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in module.parameters()) - trainable


def count_whisper_on_meta(size):
    """(trainable, frozen) of the Whisper encoder of ``size`` + LoRA + GRU, without weights."""
    from peft import LoraConfig, inject_adapter_in_model
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    with torch.device("meta"):
        backbone = WhisperEncoder(WhisperConfig(num_mel_bins=80, max_source_positions=1500, **WHISPER_SIZES[size]))
        backbone.requires_grad_(False)
        config = LoraConfig(r=LORA["lora_rank"], lora_alpha=LORA["lora_alpha"], lora_dropout=LORA["lora_dropout"],
                            target_modules=list(LORA["lora_target_modules"]))
        backbone = inject_adapter_in_model(config, backbone)
        gru = torch.nn.GRU(backbone.config.d_model, 3296, batch_first=True)
    lora_params = sum(p.numel() for n, p in backbone.named_parameters() if "lora_" in n)
    frozen = sum(p.numel() for n, p in backbone.named_parameters() if "lora_" not in n)
    return lora_params + sum(p.numel() for p in gru.parameters()), frozen


def make_step(encoder, batch, length):
    """One forward + backward of ``encoder`` on a fixed random batch."""
    torch.manual_seed(1)
    wavs = 0.1 * torch.randn(batch, length)

    def step():
        encoder.zero_grad(set_to_none=True)
        encoder(wavs).square().mean().backward()

    return step


def names_for(large=False):
    names = ["soundstream", "soundstream-torch-elu", "spectrogram", "snac", "whisper-tiny.en-30s",
             "whisper-tiny.en-clip"]
    return names + (["whisper-large-v2-clip", "whisper-large-v2-30s"] if large else [])


def run(repeats=3, warmup=1, quick=False, memory=True, large=False, threads=0, only=None):
    """Times, peak memory and parameter counts of every encoder (or of those in ``only``); returns a dict."""
    batch, length = (2, 2048) if quick else (BATCH, CROP)
    names = [n for n in names_for(large and not quick) if not only or n in only]
    encoders = {name: build(name, quick).train() for name in names}
    steps = {name: make_step(enc, batch, length) for name, enc in encoders.items()}
    times = interleaved_medians(steps, repeats, warmup)
    rows = {}
    for name, encoder in encoders.items():
        trainable, frozen = count(encoder)
        rows[name] = {"trainable": trainable, "frozen": frozen, "step": times[name], "note": NOTES[name]}
        if memory:
            probe = ["--probe", name] + (["--quick"] if quick else []) + (["--threads", threads] if threads else [])
            rows[name]["memory"] = _probe(probe)
    if not large and not quick and not only:
        for window in ("clip", "30s"):
            trainable, frozen = count_whisper_on_meta("large-v2")
            rows[f"whisper-large-v2-{window}"] = {
                "trainable": trainable, "frozen": frozen, "step": None,
                "note": NOTES[f"whisper-large-v2-{window}"] + "; not timed here (run with --large)",
            }
    return {"batch": batch, "length": length, "rows": rows}


def _probe(args):
    """Peak memory of one encoder in a fresh process (``--probe``)."""
    env = dict(os.environ, PYTHONPATH=REPO_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-m", "bench.bench_encoders", *[str(a) for a in args]], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr or "no output").strip().splitlines()[-1:]}
    return json.loads(lines[-1])


def render_markdown(results):
    """The markdown section (a list of lines)."""
    lines = [
        f"{SECTION}: forward + backward, batch {results['batch']} x {results['length']} samples, CPU",
        "",
        "| encoder | trainable params | frozen params | step ms (median) | peak MB | notes |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in results["rows"].items():
        step = row["step"]["median_ms"] if row["step"] else None
        mem = row.get("memory") or {}
        peak = mem.get("peak_mib")
        lines.append(
            f"| {name} | {row['trainable']:,} | {row['frozen']:,} | "
            f"{'n/a' if step is None else f'{step:.0f}'} | {'n/a' if peak is None else f'{peak:.0f}'} | {row['note']} |"
        )
    lines.append("")
    return lines


def write_section(path, lines):
    """Replaces (or appends) the encoder section of an existing report."""
    text = open(path, encoding="utf-8").read() if os.path.isfile(path) else ""
    start = text.find(SECTION)
    if start >= 0:
        end = text.find("\n## ", start + 1)
        tail = text[end + 1:] if end >= 0 else ""
        text = text[:start] + "\n".join(lines) + "\n" + tail
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    with open(path, "w", encoding="utf-8") as fout:
        fout.write(text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", default=None, help="markdown report to add the section to")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--large", action="store_true", help="also time Whisper large-v2 (heavy)")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--probe", default=None, help="measure the peak memory of one encoder and exit")
    parser.add_argument("--encoders", nargs="*", default=None, choices=list(NOTES),
                        help="time only these encoders (default: all)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.probe:
        batch, length = (2, 2048) if args.quick else (BATCH, CROP)
        step = make_step(build(args.probe, args.quick).train(), batch, length)
        peak, method = measure_peak_memory(step, "cpu", steps=2)
        result = {"encoder": args.probe, "peak_mib": peak, "method": method}
        print(json.dumps(result))
        return result
    results = run(args.repeats, args.warmup, args.quick, not args.no_memory, args.large, args.threads,
                  args.encoders)
    results["machine"] = machine_info("cpu")
    command = "python bench/bench_encoders.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = render_markdown(results)
    lines.insert(2, f"Command: `{command.strip()}`; machine: {results['machine']['cpu']}, "
                    f"{results['machine']['threads']} threads, load average at start "
                    f"{results['machine'].get('load_average')}.")
    lines.insert(3, "")
    if args.output:
        write_section(args.output, lines)
        with open(os.path.splitext(args.output)[0] + "_encoders.json", "w", encoding="utf-8") as fout:
            json.dump(results, fout, indent=1)
    else:
        print("\n".join(lines))
    return results


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main()
