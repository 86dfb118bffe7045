"""``fewsound-fit``: fit one INR per clip on any audio files or folders.

    fewsound-fit --hparams hparams/inr/kan.yaml song.flac my_folder/ --output_folder out/
    python -m fewsound_sb.fit --hparams hparams/inr/siren.yaml a.wav --n_steps 2000 --lr 1e-4

Reads every file soundfile can decode (wav, flac, ogg, mp3; any sample rate,
any channel count), mixes to mono, resamples to the YAML's ``sample_rate``,
and takes the first ``crop_length`` samples (deterministic), or, with
``--all_pieces``, every consecutive piece (ids ``<name>_piece003``). Shorter
files are zero-padded and the log and results.csv say so. Unreadable files
are reported by name (log and a CSV row with status ``unreadable``) and
skipped. Outputs are those of :mod:`fewsound_sb.fitting`; rerunning the same
command resumes.

Options: ``--hparams FILE`` (required), ``--output_folder DIR``,
``--all_pieces``, ``--device DEV``, and any YAML key as ``--key value``
(e.g. ``--grid_size 5 --hidden_sizes [96,48,24]``). Every other argument is
an input file or folder.
"""

import argparse
import sys

import speechbrain as sb
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.distributed import infer_device
from speechbrain.utils.logger import get_logger

from fewsound_sb.dataio import list_audio_files
from fewsound_sb.fitting import fit_from_hparams, prepare_clips, unique_ids

logger = get_logger(__name__)

_FLAGS = {"--all_pieces"}
_OPTIONS = {"--hparams", "--output_folder", "--device"}


def _parser():
    parser = argparse.ArgumentParser(
        prog="fewsound-fit",
        description="Fit one implicit neural representation (INR) per audio clip. "
        "Any other --key value pair overrides that key of the YAML.",
    )
    parser.add_argument("inputs", nargs="+", help="audio files and/or folders (searched recursively)")
    parser.add_argument("--hparams", required=True, help="an hparams/inr/<name>.yaml file")
    parser.add_argument("--output_folder", help="where results go (default: the YAML's)")
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
    >>> split_arguments(["--hparams", "k.yaml", "a.wav", "--n_steps", "5", "--lr=0.01", "b/"])
    (['--hparams', 'k.yaml', 'a.wav', 'b/'], [('n_steps', '5'), ('lr', '0.01')])
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
        missing/broken YAML, no audio found, or no readable audio.
    """
    parser = _parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        ours, pairs = split_arguments(argv)
    except ValueError as err:
        parser.error(str(err))
    args = parser.parse_args(ours)
    if args.output_folder:
        pairs.append(("output_folder", args.output_folder))
    if "data_folder" not in {key for key, _ in pairs}:
        pairs.append(("data_folder", "null"))  # only the VCTK recipe reads it
    overrides = "\n".join(f"{key}: {value}" for key, value in pairs)

    try:
        with open(args.hparams, encoding="utf-8") as fin:
            hparams = load_hyperpyyaml(fin, overrides)
        files = list_audio_files(args.inputs)
    except (OSError, ValueError, KeyError) as err:
        parser.exit(2, f"fewsound-fit: error: {err}\n")

    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=args.hparams,
        overrides=overrides,
    )
    logger.info("Found %d audio files in %s", len(files), ", ".join(args.inputs))
    clips = prepare_clips(
        list(zip(unique_ids(files), files)), hparams["sample_rate"], hparams["crop_length"],
        crop="start", all_pieces=args.all_pieces,
    )
    try:
        fit_from_hparams(clips, hparams, device=args.device or infer_device())
    except ValueError as err:
        parser.exit(2, f"fewsound-fit: error: {err}\n")
    logger.info("Results in %s", hparams["output_folder"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
