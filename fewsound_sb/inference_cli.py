"""Console scripts of a trained model: reconstruct, encode, decode, export.

::

    fewsound-reconstruct IN.wav OUT.wav --model RUN/inference [--sample_rate R] [--refine_steps N]
    fewsound-encode IN.wav CLIP.safetensors --model RUN/inference [--dtype fp32|fp16|int8]
    fewsound-decode CLIP.safetensors OUT.wav [--sample_rate R]
    fewsound-export RUN  # RUN/inference from the run's best checkpoint

``fewsound-decode`` needs no model folder: a weights file names its target
network, so files of ``fewsound-fit`` decode too. Every command exits with
status 2 and a message naming the file and the fix on bad input (missing or
corrupt files, weights of another format version, a model folder without its
YAML or modules, an output path in a missing folder); no partial output file
is ever written (:mod:`fewsound_sb.files`).
"""

import argparse
import sys

from speechbrain.utils.logger import get_logger

from fewsound_sb.weights import STORAGE_DTYPES

logger = get_logger(__name__)

_ERRORS = (OSError, ValueError)


def _rate(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a sample rate is a positive number of Hz: {text}")
    return value


def _common(parser):
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--no_progress", action="store_true", help="no progress bars")


def _model_options(parser):
    from fewsound_sb.inference import PRECISIONS

    _common(parser)
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="the sound encoder's precision (default: the model's YAML, fp32)")


def _load_model(args, parser, name):
    from fewsound_sb.inference import Reconstructor

    run_opts = {"device": args.device}
    if args.precision:  # a run option: also for model folders exported without the key
        run_opts["precision"] = args.precision
    try:
        return Reconstructor.from_hparams(source=args.model, run_opts=run_opts,
                                          overrides={"progress": not args.no_progress})
    except _ERRORS as err:
        parser.exit(2, f"{name}: error: {err}\n")


def _bitrate_line(weights, path):
    seconds = weights.num_samples / weights.sample_rate
    return (f"{path}: {weights.n_pieces} piece(s) x {weights.num_params:,} weights at "
            f"{weights.dtype}, {weights.num_bits() / 8 / 1024:.1f} KiB for {seconds:.2f} s: "
            f"{weights.bitrate() / 1000:.1f} kbit/s\n")


def main_reconstruct(argv=None):
    """``fewsound-reconstruct IN OUT --model DIR``; returns the exit status.

    Example
    -------
    >>> import os, tempfile, torch
    >>> from fewsound_sb.dataio import write_audio
    >>> from fewsound_sb.inference import write_tiny_model
    >>> folder = tempfile.mkdtemp()
    >>> model = write_tiny_model(os.path.join(folder, "model"))
    >>> write_audio(os.path.join(folder, "in.wav"), 0.5 * torch.rand(2, 2500), 8000)
    >>> main_reconstruct([os.path.join(folder, "in.wav"), os.path.join(folder, "out.wav"),
    ...                   "--model", model, "--sample_rate", "16000", "--no_progress"])
    0
    >>> import soundfile
    >>> soundfile.info(os.path.join(folder, "out.wav")).frames
    5000
    """
    name = "fewsound-reconstruct"
    parser = argparse.ArgumentParser(prog=name, description=(
        "Reconstruct an audio file through a trained FewSound/HyperSound model "
        "(any length, channels mixed to mono, any input rate)."))
    parser.add_argument("input", help="audio file")
    parser.add_argument("output", help="output audio file (its folder must exist)")
    parser.add_argument("--model", required=True, help="model folder (<run>/inference)")
    parser.add_argument("--sample_rate", type=_rate, default=None,
                        help="output rate in Hz (default: the model's; another rate is "
                             "the INR's interpolation, not recovered bandwidth)")
    parser.add_argument("--refine_steps", type=int, default=None,
                        help="fitter steps from the hypernetwork's weights (default: the "
                             "model YAML's refine_steps)")
    parser.add_argument("--weights", default=None, help="also save the weights file here")
    parser.add_argument("--dtype", choices=STORAGE_DTYPES, default="fp32",
                        help="storage dtype of --weights (the audio is decoded from it)")
    _model_options(parser)
    args = parser.parse_args(argv)
    model = _load_model(args, parser, name)
    try:
        weights = model.reconstruct_file(args.input, args.output, sample_rate=args.sample_rate,
                                         refine_steps=args.refine_steps,
                                         weights_path=args.weights, dtype=args.dtype)
    except _ERRORS as err:
        parser.exit(2, f"{name}: error: {err}\n")
    logger.info("%s -> %s (%d pieces)", args.input, args.output, weights.n_pieces)
    return 0


def main_encode(argv=None):
    """``fewsound-encode IN WEIGHTS --model DIR [--dtype D]``; prints the bitrate.

    Returns
    -------
    int
        Exit status.
    """
    name = "fewsound-encode"
    parser = argparse.ArgumentParser(prog=name, description=(
        "Encode an audio file into one INR weights file with a trained model; prints "
        "the bitrate in kbit/s."))
    parser.add_argument("input", help="audio file")
    parser.add_argument("weights", help="output weights file (.safetensors; folder must exist)")
    parser.add_argument("--model", required=True, help="model folder (<run>/inference)")
    parser.add_argument("--dtype", choices=STORAGE_DTYPES, default="fp32",
                        help="storage dtype of the weights (int8: one scale per piece)")
    parser.add_argument("--refine_steps", type=int, default=None,
                        help="fitter steps from the hypernetwork's weights")
    _model_options(parser)
    args = parser.parse_args(argv)
    model = _load_model(args, parser, name)
    from fewsound_sb.dataio import read_audio
    from fewsound_sb.inference import check_output_path

    try:
        check_output_path(args.weights)
        wav = read_audio(args.input, sample_rate=model.hparams.sample_rate)
        weights = model.encode(wav, model.hparams.sample_rate, refine_steps=args.refine_steps)
        weights.dtype = args.dtype
        weights.metadata["source"] = args.input
        weights.save(args.weights)
    except _ERRORS as err:
        parser.exit(2, f"{name}: error: {err}\n")
    sys.stdout.write(_bitrate_line(weights, args.weights))
    return 0


def main_decode(argv=None):
    """``fewsound-decode WEIGHTS OUT [--sample_rate R]`` (no model folder needed).

    Example
    -------
    >>> import os, tempfile
    >>> from fewsound_sb.nnet.inr import build_inr
    >>> from fewsound_sb.weights import INRWeights
    >>> folder = tempfile.mkdtemp()
    >>> net = build_inr("siren", hidden_sizes=(8,))
    >>> INRWeights.from_network(net, {"hidden_sizes": [8]}, 8000, 400).save(
    ...     os.path.join(folder, "a.safetensors"))
    >>> main_decode([os.path.join(folder, "a.safetensors"), os.path.join(folder, "a.wav"),
    ...              "--sample_rate", "4000"])
    0
    """
    name = "fewsound-decode"
    parser = argparse.ArgumentParser(prog=name, description=(
        "Decode an INR weights file (from fewsound-encode, fewsound-fit, Reconstructor) "
        "to audio; no model folder needed."))
    parser.add_argument("weights", help="weights file (.safetensors)")
    parser.add_argument("output", help="output audio file (its folder must exist)")
    parser.add_argument("--sample_rate", type=_rate, default=None,
                        help="output rate in Hz (default: the clip's)")
    _common(parser)
    args = parser.parse_args(argv)
    from fewsound_sb.dataio import write_audio
    from fewsound_sb.inference import check_output_path, decode_weights
    from fewsound_sb.weights import INRWeights

    try:
        check_output_path(args.output)
        weights = INRWeights.load(args.weights)
        wav = decode_weights(weights, args.sample_rate, device=args.device,
                             progress=not args.no_progress and weights.n_pieces > 16)
        write_audio(args.output, wav.clamp(-1.0, 1.0), args.sample_rate or weights.sample_rate)
    except _ERRORS as err:
        parser.exit(2, f"{name}: error: {err}\n")
    return 0


def main_export(argv=None):
    """``fewsound-export RUN [--output DIR]``: a run's inference folder.

    Returns
    -------
    int
        Exit status.
    """
    name = "fewsound-export"
    parser = argparse.ArgumentParser(prog=name, description=(
        "Write <run>/inference (hyperparams.yaml, encoder.ckpt, head.ckpt) from a training "
        "run's checkpoint of lowest validation loss."))
    parser.add_argument("run_folder", help="the training run's output_folder")
    parser.add_argument("--output", default=None, help="default: <run_folder>/inference")
    args = parser.parse_args(argv)
    from fewsound_sb.inference import export_inference

    try:
        folder = export_inference(args.run_folder, args.output)
    except _ERRORS as err:
        parser.exit(2, f"{name}: error: {err}\n")
    sys.stdout.write(f"{folder}\n")
    return 0


def refinement_rows(model, wav, steps, metrics, ids=("clip",), start="hypernetwork",
                    dtypes=("fp32",)):
    """Metrics of the Reconstructor's output after each number of refinement steps.

    One continuous fit (AdamW state kept between the counts) of the clip's
    pieces is evaluated after each count of ``steps``: from the
    hypernetwork's weights (``start="hypernetwork"``; 0 steps = the
    hypernetwork's output) or from the INR's own initialisation
    (``start="scratch"``, seeds 0..n-1: the single-clip fitting baseline),
    with the model's ``refine_*`` settings either way.

    Arguments
    ---------
    model : fewsound_sb.inference.Reconstructor
        A loaded model.
    wav : torch.Tensor
        ``[T]`` at the model's rate.
    steps : list of int
        Increasing step counts, e.g. ``[0, 10, 100]``.
    metrics : list of str
        Metric names (:func:`fewsound_sb.metrics.compute_metrics`).
    ids : tuple of str
        Name of the clip (in the fitter's resumable state).
    start : str
        ``"hypernetwork"`` or ``"scratch"``.
    dtypes : tuple of str
        Storage dtypes the weights are evaluated at (fp16 / int8 rounding).

    Returns
    -------
    list of (int, str, dict, torch.Tensor, INRWeights)
        ``(steps, dtype, metric row, reconstruction, stored weights)`` per
        step count and dtype.
    """
    import torch

    from fewsound_sb.dataio import peak_normalize
    from fewsound_sb.inference import GAIN_EPS, split_pieces
    from fewsound_sb.metrics import compute_metrics

    if start not in ("hypernetwork", "scratch"):
        raise ValueError(f"start must be 'hypernetwork' or 'scratch'. Found: {start!r}")
    hp = model.hparams
    weights = model.encode(wav, hp.sample_rate, refine_steps=0)
    initial = weights.weights.clone() if start == "hypernetwork" else None
    pieces = peak_normalize(split_pieces(wav, hp.piece_length, weights.hop, weights.n_pieces),
                            eps=GAIN_EPS)
    fitter = model.refiner(0)
    out = []
    piece_ids = [f"{ids[0]}_{k}" for k in range(weights.n_pieces)]
    resume = None  # the previous count's weights and AdamW moments (fit_batch's start)
    for count in steps:
        if count > 0 or initial is None:
            fitter.n_steps = count
            with torch.enable_grad():
                result = fitter.fit_batch(pieces, seeds=list(range(weights.n_pieces)),
                                          ids=piece_ids, init_weights=initial, start=resume)
            weights.weights = result.weights
            moments = fitter.last_optimizer_state or {}
            zeros = torch.zeros_like(result.weights)
            resume = {"weights": result.weights, "step": result.steps,
                      "exp_avg": moments.get("exp_avg", zeros),
                      "exp_avg_sq": moments.get("exp_avg_sq", zeros),
                      "history": result.history, "seconds": result.seconds}
        for dtype in dtypes:
            weights.dtype = dtype
            stored = weights.as_stored()
            rec = model.decode(stored, progress=False)
            row = compute_metrics(predictions=rec[None], targets=wav[None],
                                  sample_rate=hp.sample_rate, metrics=metrics)[0]
            out.append((count, dtype, row, rec, stored))
    return out


def main_compare(argv=None):
    """``python -m fewsound_sb.inference_cli IN --model DIR --output DIR``: a heard demo.

    Reconstructs one file through the model without and with refinement,
    prints both metric rows and writes the wavs and the waveform/log-mel
    figure of each (:func:`fewsound_sb.reports.write_example`).

    Returns
    -------
    int
        Exit status.
    """
    import os

    from fewsound_sb.dataio import read_audio
    from fewsound_sb.metrics import format_table
    from fewsound_sb.reports import figure_title, write_example

    name = "fewsound-compare"
    parser = argparse.ArgumentParser(prog=name, description=(
        "Reconstruct one audio file without and with refinement; print the metrics and "
        "write wavs and figures."))
    parser.add_argument("input", nargs="?", help="audio file")
    parser.add_argument("--manifest", default=None,
                        help="or: the first clip of this JSON manifest (e.g. <run>/save/test.json)")
    parser.add_argument("--data_folder", default="", help="{data_root} of the manifest")
    parser.add_argument("--model", required=True, help="model folder (<run>/inference)")
    parser.add_argument("--output", required=True, help="folder for wavs and figures")
    parser.add_argument("--refine_steps", type=int, default=100)
    parser.add_argument("--max_seconds", type=float, default=3.0,
                        help="use at most this much of the file (from its start)")
    parser.add_argument("--metrics", default="mse,psnr,lsd,si_snr,pesq")
    _model_options(parser)
    args = parser.parse_args(argv)
    model = _load_model(args, parser, name)
    try:
        path = args.input
        if args.manifest:
            import json

            with open(args.manifest, encoding="utf-8") as fin:
                clip_id, entry = next(iter(json.load(fin).items()))
            path = entry["wav"].replace("{data_root}", args.data_folder)
        if not path:
            parser.error("give an audio file or --manifest")
        rate = model.hparams.sample_rate
        wav = read_audio(path, sample_rate=rate)[: int(args.max_seconds * rate)]
        rows = refinement_rows(model, wav, [0, args.refine_steps], args.metrics.split(","))
    except (_ERRORS + (KeyError, StopIteration)) as err:
        parser.exit(2, f"{name}: error: {err}\n")
    stem = os.path.splitext(os.path.basename(path))[0]
    lines = []
    for count, _, row, rec, _ in rows:
        label = "hypernetwork" if count == 0 else f"refined {count} steps"
        table = format_table({k: (v, 0.0) for k, v in row.items()}, title=label).splitlines()
        lines.extend(table if not lines else table[2:])
        tag = "hyper" if count == 0 else f"refined{count}"
        write_example(wav, rec, rate, os.path.join(args.output, f"{stem}_ref.wav"),
                      os.path.join(args.output, f"{stem}_{tag}.wav"),
                      os.path.join(args.output, f"{stem}_{tag}.png"),
                      title=figure_title(f"{stem} ({label})", row))
    sys.stdout.write(f"{stem} ({wav.shape[-1] / rate:.2f} s, {wav.shape[-1]} samples): "
                     f"reconstruction by the model in {args.model}\n" + "\n".join(lines)
                     + f"\nwavs and figures: {args.output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main_compare())
