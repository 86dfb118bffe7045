#!/usr/bin/env python3
"""Cross-dataset evaluation of trained FewSound / HyperSound runs (paper Table 6).

Evaluates each training run (its output folder: hyperparams.yaml + save/CKPT+*,
the checkpoint of lowest validation loss) on the evaluation split of every
dataset given, and writes ``cross_dataset.md`` / ``.csv`` with one row per
(training set, evaluation set, target). An evaluation set is
``<Dataset>=<data folder>``, ``<Dataset>`` a recipe folder next to this file
(VCTK, NoisyVCTK, LibriSpeech, LJSpeech, GTZAN, UrbanSound8K), prepared with
that recipe's prepare script and ``<dataset>.yaml``; only the metrics that
apply to it are computed (PESQ, STOI, CDPAM for clean speech only).

> python recipes/evaluate.py --runs results/vctk_kan results/gtzan_kan \\
      --eval_sets VCTK=/data/VCTK-Corpus-0.92 GTZAN=/data/gtzan/Data \\
      --output_folder results/table6 --device cuda:0
"""

import argparse
import os
import sys

from fewsound_sb.evaluation import evaluate_runs

RECIPES = os.path.dirname(os.path.abspath(__file__))


def dataset_yaml(name):
    """``recipes/<name>/<name lowercased>.yaml``, or an error listing the recipes."""
    path = os.path.join(RECIPES, name, f"{name.lower()}.yaml")
    if not os.path.isfile(path):
        known = sorted(d for d in os.listdir(RECIPES)
                       if os.path.isfile(os.path.join(RECIPES, d, f"{d.lower()}.yaml")))
        raise SystemExit(f"No dataset recipe '{name}' ({path} not found). Known: {', '.join(known)}")
    return path


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", required=True, help="training output folders")
    parser.add_argument("--eval_sets", nargs="+", required=True, metavar="DATASET=FOLDER")
    parser.add_argument("--output_folder", required=True)
    parser.add_argument("--n_clips", type=int, default=None,
                        help="seeded subset of each evaluation split (default: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--noprogressbar", action="store_true")
    args = parser.parse_args(argv)
    eval_sets = []
    for spec in args.eval_sets:
        name, sep, folder = spec.partition("=")
        if not sep or not folder:
            parser.error(f"--eval_sets takes DATASET=FOLDER, got {spec!r}")
        eval_sets.append((dataset_yaml(name), folder))
    evaluate_runs(args.runs, eval_sets, args.output_folder, n_clips=args.n_clips,
                  device=args.device, batch_size=args.batch_size,
                  num_workers=args.num_workers, progress=not args.noprogressbar)


if __name__ == "__main__":
    main(sys.argv[1:])
