"""``fewsound-fit``: fit one INR per clip on any audio files or folders.

    fewsound-fit --inr kan song.flac my_folder/ --output_folder out/
    fewsound-fit --inr siren a.wav --n_steps 2000 --lr 1e-4
    fewsound-fit --hparams my_fit.yaml a.wav          # any YAML of the same keys
    python -m fewsound_sb.fit --inr nerf a.wav

``--inr NAME`` uses the packaged settings ``hparams/inr/<NAME>.yaml`` (the
paper's Table 1 configuration of that target; they ship inside the package,
so this works after ``pip install`` from any folder); ``--hparams FILE``
takes any YAML instead. Every top-level key of the YAML is a command-line
override (``--grid_size 5 --hidden_sizes [96,48,24]``); unknown keys fail
with close matches (:func:`fewsound_sb.config.check_overrides`) before
anything is built.

Reads every file soundfile can decode (wav, flac, ogg, mp3; any sample rate,
any channel count), mixes to mono, resamples to the YAML's ``sample_rate``,
and takes the first ``crop_length`` samples (deterministic), or, with
``--all_pieces``, every consecutive piece (ids ``<name>_piece003``)
(:func:`fewsound_sb.dataio.prepare_clips`). Shorter files are zero-padded,
longer ones cropped, and the log (a warning per file, pointing to
``--all_pieces`` and to a trained model's ``fewsound-reconstruct``, which
encodes whole files) and results.csv say so. Unreadable files are reported by name (log
and a CSV row with status ``unreadable``) and skipped. Outputs are those of
:mod:`fewsound_sb.fitting`; rerunning the same command resumes, and reuses a
finished clip only if its file's content and every fit setting are the same
(a larger ``--n_steps`` continues the saved fits). ``log.txt`` holds our log
(third-party DEBUG left out, the mean loss every ``log_every`` steps) and
``env.log`` the running interpreter and its packages (:mod:`fewsound_sb.logs`).
"""

import argparse
import os
import sys
from importlib import resources

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import infer_device
from speechbrain.utils.logger import get_logger

from fewsound_sb.config import check_overrides, yaml_top_level_keys
from fewsound_sb.dataio import list_audio_files, prepare_clips, unique_ids
from fewsound_sb.fitting import fit_from_hparams
from fewsound_sb.logs import setup_experiment_logs

logger = get_logger(__name__)

# Options that take a value; the knobs (last four) are YAML overrides listed in --help.
_OPTIONS = {"--inr", "--hparams", "--output_folder", "--device",
            "--lr", "--n_steps", "--batch_clips", "--crop_length"}
_KNOBS = ("lr", "n_steps", "batch_clips", "crop_length", "output_folder")
_FLAGS = {"--all_pieces"}


def packaged_inr_yamls():
    """Names of the INR fit YAMLs shipped in the package (``--inr`` choices).

    Example
    -------
    >>> packaged_inr_yamls()
    ['finer', 'kan', 'nerf', 'rff', 'siren', 'wire']
    """
    folder = resources.files("fewsound_sb").joinpath("hparams", "inr")
    if not folder.is_dir():
        return []
    return sorted(os.path.splitext(f.name)[0] for f in folder.iterdir()
                  if f.name.endswith(".yaml"))


def packaged_inr_yaml(name):
    """Path of the packaged fit YAML of target ``name`` (``hparams/inr/<name>.yaml``).

    Arguments
    ---------
    name : str
        A target name (``packaged_inr_yamls()``), case-insensitive.

    Returns
    -------
    str

    Example
    -------
    >>> os.path.basename(packaged_inr_yaml("KAN"))
    'kan.yaml'
    """
    path = resources.files("fewsound_sb").joinpath("hparams", "inr", f"{str(name).lower()}.yaml")
    if not path.is_file():
        available = packaged_inr_yamls()
        raise ValueError(
            f"no packaged settings for --inr {name}: choose one of {', '.join(available)}"
            if available else
            "the packaged YAMLs (fewsound_sb/hparams/inr) are missing from this install: "
            "reinstall fewsound-sb, or pass --hparams FILE"
        )
    return os.fspath(path)


def _parser():
    parser = argparse.ArgumentParser(
        prog="fewsound-fit",
        description="Fit one implicit neural representation (INR) per audio clip "
        "(the paper's single-clip fits) and write metrics, weights, wavs and figures.",
        epilog="Every top-level key of the YAML is also an option: --key value "
        "(e.g. --grid_size 5 --hidden_sizes [96,48,24] --metrics [mse,psnr]); an unknown "
        "key fails with close matches. Rerunning the same command resumes.",
    )
    parser.add_argument("inputs", nargs="+", help="audio files and/or folders (searched recursively)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--inr", help="target network, with its packaged Table 1 settings: "
                        + ", ".join(packaged_inr_yamls()))
    source.add_argument("--hparams", help="a fit YAML of your own (same keys as hparams/inr/)")
    knobs = parser.add_argument_group("main settings (YAML overrides; default: the YAML's)")
    knobs.add_argument("--lr", type=float, help="AdamW learning rate")
    knobs.add_argument("--n_steps", type=int, help="optimisation steps per clip")
    knobs.add_argument("--batch_clips", type=int, help="clips fitted together per step")
    knobs.add_argument("--crop_length", type=int, help="clip length in samples")
    knobs.add_argument("--output_folder", help="where results go")
    parser.add_argument("--all_pieces", action="store_true",
                        help="fit every consecutive crop_length piece, not only the first")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda:0 (default: a GPU if any)")
    return parser


def split_arguments(argv):
    """Separates our options, YAML overrides (``--key value``) and inputs.

    Arguments
    ---------
    argv : list of str
        Command-line arguments (without the program name).

    Returns
    -------
    (list of str, list of (str, str))
        Arguments for the argparse parser, and ``(key, value)`` overrides.

    Example
    -------
    >>> split_arguments(["--inr", "kan", "a.wav", "--n_steps", "5", "--grid_size=3", "b/"])
    (['--inr', 'kan', 'a.wav', '--n_steps', '5', 'b/'], [('grid_size', '3')])
    """
    ours, overrides, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        name = arg.split("=", 1)[0]
        if arg in ("-h", "--help") or name in _FLAGS:
            ours.append(arg)
        elif name in _OPTIONS:
            ours.append(arg)
            if "=" not in arg and i + 1 < len(argv):
                ours.append(argv[i + 1])
                i += 1
        elif arg.startswith("--"):
            if "=" in arg:
                overrides.append(tuple(arg[2:].split("=", 1)))
            elif i + 1 < len(argv):
                overrides.append((arg[2:], argv[i + 1]))
                i += 1
            else:
                raise ValueError(f"option {arg} needs a value (--key value)")
        else:
            ours.append(arg)
        i += 1
    return ours, overrides


def main(argv=None):
    """Runs ``fewsound-fit``; returns the exit status (0 if any clip was fitted).

    Arguments
    ---------
    argv : list of str or None
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; 2 (after a message on stderr) for bad arguments, a
        missing/broken YAML, an unknown override, no audio found, or no
        readable audio.
    """
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        ours, pairs = split_arguments(argv)
    except ValueError as err:
        parser.error(str(err))
    args = parser.parse_args(ours)
    pairs += [(key, getattr(args, key)) for key in _KNOBS if getattr(args, key) is not None]

    try:
        hparams_file = args.hparams or packaged_inr_yaml(args.inr)
        with open(hparams_file, encoding="utf-8") as fin:
            keys = yaml_top_level_keys(fin.read())
        if "data_folder" in keys and "data_folder" not in {key for key, _ in pairs}:
            pairs.append(("data_folder", "null"))  # a recipe key; the inputs are the data here
        overrides = check_overrides(hparams_file, "\n".join(f"{k}: {v}" for k, v in pairs))
        with open(hparams_file, encoding="utf-8") as fin:
            hparams = load_hyperpyyaml(fin, overrides)
        files = list_audio_files(args.inputs)
    except (OSError, ValueError, KeyError) as err:
        parser.exit(2, f"fewsound-fit: error: {err}\n")

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=hparams_file,
        overrides=overrides,
    )
    setup_experiment_logs(hparams["output_folder"])
    logger.info("Fitting with %s; found %d audio files in %s", hparams_file, len(files),
                ", ".join(args.inputs))
    clips = prepare_clips(
        list(zip(unique_ids(files), files)), hparams["sample_rate"], hparams["crop_length"],
        crop="start", all_pieces=args.all_pieces,
    )
    for clip in clips:
        if clip.cropped:
            logger.warning(
                "%s is longer than crop_length (%d samples): only its start is fitted (%s). "
                "--all_pieces fits every %d-sample piece of the file; a trained model's "
                "Reconstructor (fewsound-reconstruct) encodes whole files of any length",
                clip.path, hparams["crop_length"], clip.note, hparams["crop_length"])
    try:
        fit_from_hparams(clips, hparams, device=args.device or infer_device())
    except ValueError as err:
        parser.exit(2, f"fewsound-fit: error: {err}\n")
    logger.info("Results in %s", hparams["output_folder"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
