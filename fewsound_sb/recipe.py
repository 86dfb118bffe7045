"""The body of every dataset recipe: training, single-clip fitting, preparation.

A dataset recipe is a folder ``recipes/<Dataset>/`` holding a
``<dataset>_prepare.py``, one dataset YAML and two short scripts::

    # recipes/GTZAN/train.py
    run_training(sys.argv[1:], os.path.join(HERE, "gtzan.yaml"))
    # recipes/GTZAN/fit_inr.py
    run_fitting(sys.argv[1:], os.path.join(HERE, "gtzan.yaml"))

The dataset YAML is loaded together with a model YAML (``hparams/*.yaml``
for training, ``hparams/inr/*.yaml`` for fitting) by
:func:`fewsound_sb.config.load_recipe_hparams`, so its keys may only
``!ref`` keys both model YAMLs have (``output_folder``, ``seed``). It holds:

* ``dataset_name``: the name in logs and in the cross-dataset table;
* ``prepare``: ``"<module>.<function>"`` of the prepare script, imported from
  the YAML's folder; its arguments are taken from the hparams by name
  (:func:`prepare_kwargs`);
* ``data_folder``, ``manifest_folder`` (``<output_folder>/save``), the
  manifests ``train_annotation``, ``valid_annotation``, ``test_annotation``
  in it, ``skip_prep`` and the prepare script's own options;
* ``applicable_metrics``: the metrics that mean something for this data
  (the paper computes PESQ, STOI and CDPAM for clean speech only); the
  model YAML's ``eval_metrics`` / the INR YAML's ``metrics`` are restricted
  to them (:func:`restrict_metrics`), so tables leave the others out;
* for single-clip fitting: ``group_key`` and ``clips_per_group`` (the paper's
  Tables 18-19: 10 clips per GTZAN genre, 10 per UrbanSound8K fold).
"""

import importlib
import inspect
import os
import sys

import speechbrain as sb
import torch
from speechbrain.utils.distributed import infer_device, run_on_main
from speechbrain.utils.logger import get_logger

from fewsound_sb.brains import FewSoundBrain
from fewsound_sb.config import load_recipe_hparams
from fewsound_sb.dataio import prepare_clips
from fewsound_sb.datasets import make_datasets
from fewsound_sb.fitting import fit_from_hparams
from fewsound_sb.preparation import SPLITS, pick_per_group

logger = get_logger(__name__)


def load_prepare(dotted, dataset_yaml):
    """Imports a recipe's prepare function ``"<module>.<function>"``.

    Arguments
    ---------
    dotted : str
        ``"gtzan_prepare.prepare_gtzan"``: a module of the dataset YAML's
        folder and a function in it.
    dataset_yaml : str
        The recipe's dataset YAML; its folder is put on ``sys.path``.

    Returns
    -------
    callable

    Example
    -------
    >>> load_prepare("os.path.join", "any.yaml") is os.path.join
    True
    """
    module_name, _, function_name = dotted.rpartition(".")
    if not module_name:
        raise ValueError(
            f"'prepare' in '{dataset_yaml}' must be '<module>.<function>'. Found: {dotted!r}"
        )
    folder = os.path.dirname(os.path.abspath(dataset_yaml))
    if folder not in sys.path:
        sys.path.append(folder)
    return getattr(importlib.import_module(module_name), function_name)


def prepare_kwargs(function, hparams, progress):
    """Arguments of a prepare function, taken from the hparams by name.

    Arguments
    ---------
    function : callable
        A ``prepare_<dataset>`` function.
    hparams : dict
        The loaded hparams (model + dataset YAML).
    progress : bool
        Used for a ``progress`` argument the hparams do not define.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        A required argument is not a key of the hparams.

    Example
    -------
    >>> def prepare(data_folder, save_folder, valid_ratio=0.1, progress=True):
    ...     pass
    >>> prepare_kwargs(prepare, {"data_folder": "d", "save_folder": "s", "lr": 1}, False)
    {'data_folder': 'd', 'save_folder': 's', 'progress': False}
    """
    kwargs = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if name in hparams:
            kwargs[name] = hparams[name]
        elif name == "progress":
            kwargs[name] = progress
        elif parameter.default is inspect.Parameter.empty:
            raise ValueError(
                f"{function.__name__} needs '{name}', which is not a key of the "
                "recipe's YAMLs: add it to the dataset YAML."
            )
    return kwargs


def run_prepare(hparams, dataset_yaml, progress=True):
    """Runs the recipe's prepare function on the main process (manifests once).

    Arguments
    ---------
    hparams : dict
        The loaded hparams; ``prepare`` names the function.
    dataset_yaml : str
        The recipe's dataset YAML (its folder holds the prepare module).
    progress : bool
        Progress bar, unless the hparams set ``progress``.
    """
    function = load_prepare(hparams["prepare"], dataset_yaml)
    run_on_main(function, kwargs=prepare_kwargs(function, hparams, progress))


def restrict_metrics(hparams, key):
    """Keeps in ``hparams[key]`` only the dataset's ``applicable_metrics``.

    Arguments
    ---------
    hparams : dict
        Loaded hparams with ``key`` and ``applicable_metrics``.
    key : str
        ``"eval_metrics"`` (training) or ``"metrics"`` (fitting).

    Returns
    -------
    list of str
        The metrics kept (also stored in ``hparams[key]``).

    Example
    -------
    >>> hparams = {"metrics": ["mse", "pesq", "lsd"], "applicable_metrics": ["mse", "lsd"],
    ...            "dataset_name": "GTZAN"}
    >>> restrict_metrics(hparams, "metrics")
    ['mse', 'lsd']
    """
    applicable = hparams["applicable_metrics"]
    kept = [name for name in hparams[key] if name in applicable]
    left_out = [name for name in hparams[key] if name not in applicable]
    if left_out:
        logger.info("%s: metrics %s left out (not applicable to this data)",
                    hparams["dataset_name"], ", ".join(left_out))
    hparams[key] = kept
    return kept


def run_training(argv, dataset_yaml):
    """A FewSound / HyperSound training recipe: prepare, train, evaluate.

    ``python recipes/<Dataset>/train.py hparams/fewsound_kan.yaml
    --data_folder ... [--key value ...]``: loads the model YAML with the
    dataset YAML, writes the manifests once, trains with
    :class:`fewsound_sb.brains.FewSoundBrain` and evaluates the checkpoint of
    lowest validation loss on the test manifest.

    Arguments
    ---------
    argv : list of str
        The command line after the script name.
    dataset_yaml : str
        The recipe's dataset YAML.

    Returns
    -------
    fewsound_sb.brains.FewSoundBrain
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    hparams, hparams_to_save = load_recipe_hparams(hparams_file, overrides, dataset_yaml)
    sb.utils.distributed.ddp_init_group(run_opts)
    # Before the experiment folder: a wrong data folder fails on the console
    # (SpeechBrain's exception hook would send it to log.txt only)
    run_prepare(hparams, dataset_yaml, progress=not run_opts.get("noprogressbar"))
    datasets, train_sampler = make_datasets(hparams)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"], hyperparams_to_save=hparams_to_save,
    )
    restrict_metrics(hparams, "eval_metrics")
    brain = FewSoundBrain(
        modules=hparams["modules"], opt_class=hparams["opt_class"], hparams=hparams,
        run_opts=run_opts, checkpointer=hparams["checkpointer"],
    )
    brain.fit(
        brain.hparams.epoch_counter, datasets["train"], datasets["valid"],
        train_loader_kwargs={**hparams["train_dataloader_opts"], "sampler": train_sampler},
        valid_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    brain.evaluate(
        datasets["test"], min_key="loss", test_loader_kwargs=hparams["valid_dataloader_opts"],
    )
    # Under DDP, leave the process group before the interpreter exits: gloo's
    # threads torn down at exit can abort a rank ("terminate called without an
    # active exception") after a run that finished correctly.
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return brain


def run_fitting(argv, dataset_yaml):
    """A single-clip fitting recipe: ``clips_per_group`` seeded clips per group.

    ``python recipes/<Dataset>/fit_inr.py hparams/inr/kan.yaml --data_folder
    ...``: writes the manifests once, draws ``clips_per_group`` clips from
    every ``group_key`` group of the three splits together
    (:func:`fewsound_sb.preparation.pick_per_group`, seeded by ``seed``),
    crops each at a seeded random start and fits one INR per clip
    (:func:`fewsound_sb.fitting.fit_from_hparams`: results.csv, summary.md,
    weights, wavs, figures; rerunning resumes).

    Arguments
    ---------
    argv : list of str
        The command line after the script name.
    dataset_yaml : str
        The recipe's dataset YAML.

    Returns
    -------
    (list of dict, dict)
        The per-clip rows and the summary, as ``fit_from_hparams``.
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    hparams, hparams_to_save = load_recipe_hparams(hparams_file, overrides, dataset_yaml)
    run_prepare(hparams, dataset_yaml)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"], hyperparams_to_save=hparams_to_save,
    )
    picks = pick_per_group(
        [hparams[f"{split}_annotation"] for split in SPLITS], hparams["group_key"],
        hparams["clips_per_group"], hparams["seed"], hparams["data_folder"],
    )
    logger.info("%s: fitting %d clips (%d per %s, seed %d)", hparams["dataset_name"],
                len(picks), hparams["clips_per_group"], hparams["group_key"], hparams["seed"])
    restrict_metrics(hparams, "metrics")
    clips = prepare_clips(picks, hparams["sample_rate"], hparams["crop_length"],
                          crop="random", seed=hparams["seed"])
    return fit_from_hparams(clips, hparams, device=run_opts["device"] or infer_device())
