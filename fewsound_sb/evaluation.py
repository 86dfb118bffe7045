"""Cross-dataset evaluation of trained hypernetworks (the paper's Table 6).

A trained run is its output folder: the ``hyperparams.yaml`` SpeechBrain's
``create_experiment_directory`` saved (model YAML + the recipe's dataset YAML,
overrides applied) and the ``save/CKPT+*`` checkpoints. :func:`evaluate_runs`
loads each run, recovers its checkpoint of lowest validation loss, and
evaluates it on the evaluation split (``test_annotation``) of any dataset
recipe, prepared with that recipe's own prepare script and dataset YAML
(``recipes/<Dataset>/<dataset>.yaml``). Only the metrics that apply to the
*evaluation* data are computed (its ``applicable_metrics``: PESQ, STOI and
CDPAM for clean speech only, as in the paper); the table shows ``-`` where a
metric does not apply, and leaves out a metric no row has.

Outputs in ``output_folder``::

    cross_dataset.md / .csv    one row per (training set, evaluation set, target)
    <train>__<eval>__<target>/ the per-pair metric table and example reconstructions
    manifests/<eval set>/      the evaluation sets' manifests (written once)
    eval_log.txt               one line per evaluation
"""

import csv
import io
import math
import os
import re

from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.logger import get_logger
from speechbrain.utils.train_logger import FileTrainLogger

from fewsound_sb.brains import CompleteCheckpointer, FewSoundBrain
from fewsound_sb.datasets import make_datasets
from fewsound_sb.files import write_text
from fewsound_sb.metrics import METRIC_FORMATS, TABLE_COLUMNS, summarize
from fewsound_sb.recipe import load_prepare, prepare_kwargs, restrict_metrics

logger = get_logger(__name__)

# Keys of the run's model YAML that an evaluation dataset YAML may !ref.
SHARED_KEYS = ("output_folder", "save_folder", "sample_rate", "crop_length", "seed")
NOT_APPLICABLE = "-"


def load_run(run_folder):
    """Loads a trained run's ``hyperparams.yaml`` (builds the model, loads no weights).

    Arguments
    ---------
    run_folder : str
        The run's output folder.

    Returns
    -------
    dict
        The run's hparams.

    Raises
    ------
    FileNotFoundError
        No ``hyperparams.yaml`` or no ``save/CKPT+*`` checkpoint in the folder.
    """
    path = os.path.join(run_folder, "hyperparams.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"'{path}' not found: pass the output folder of a training run "
            "(it holds hyperparams.yaml and save/CKPT+*)."
        )
    save = os.path.join(run_folder, "save")
    if not os.path.isdir(save) or not any(n.startswith("CKPT+") for n in os.listdir(save)):
        raise FileNotFoundError(
            f"No checkpoint in '{save}' (expected save/CKPT+*): the run has not "
            "finished an epoch yet."
        )
    with open(path, encoding="utf-8") as fin:
        return load_hyperpyyaml(fin)


def load_eval_set(dataset_yaml, data_folder, work_folder, run_hparams):
    """Loads an evaluation dataset's YAML with the run's shared keys.

    Arguments
    ---------
    dataset_yaml : str
        The dataset recipe's YAML (``recipes/GTZAN/gtzan.yaml``, ...).
    data_folder : str
        The dataset's folder.
    work_folder : str
        Stands for ``output_folder`` (and ``save_folder``): the manifests go here.
    run_hparams : dict
        The run's hparams (``sample_rate``, ``crop_length``, ``seed``).

    Returns
    -------
    dict
        The dataset YAML's keys.
    """
    shared = {"output_folder": work_folder, "save_folder": work_folder,
              "sample_rate": run_hparams["sample_rate"],
              "crop_length": run_hparams["crop_length"], "seed": run_hparams["seed"]}
    with open(dataset_yaml, encoding="utf-8") as fin:
        text = fin.read()
    header = "".join(f"{key}: {shared[key]!r}\n" for key in SHARED_KEYS)
    hparams = load_hyperpyyaml(header + text, {"data_folder": data_folder})
    return {key: value for key, value in hparams.items() if key not in SHARED_KEYS}


def evaluate_runs(runs, eval_sets, output_folder, n_clips=None, device="cpu",
                  batch_size=16, num_workers=0, progress=True):
    """Evaluates every run on every evaluation set; writes the cross-dataset table.

    Arguments
    ---------
    runs : list of str
        Output folders of training runs.
    eval_sets : list of (str, str)
        ``(dataset_yaml, data_folder)`` per evaluation set.
    output_folder : str
        Where the table, the per-pair folders and the manifests go.
    n_clips : int or None
        A seeded subset of the evaluation split (None: all clips).
    device : str
        Torch device.
    batch_size : int
        Clips per evaluation batch.
    num_workers : int
        DataLoader workers.
    progress : bool
        Progress bars.

    Returns
    -------
    list of dict
        One row per (run, evaluation set): ``training_set``,
        ``evaluation_set``, ``target``, ``run``, ``n_clips``, ``summary``
        (``metric -> (mean, std)``), ``metrics`` (those computed).
    """
    os.makedirs(output_folder, exist_ok=True)
    eval_logger = FileTrainLogger(os.path.join(output_folder, "eval_log.txt"))
    rows = []
    for run in runs:
        run_hparams = load_run(run)
        target = type(run_hparams["target"]).__name__
        training_set = run_hparams.get("dataset_name", os.path.basename(os.path.normpath(run)))
        for dataset_yaml, data_folder in eval_sets:
            work = os.path.join(output_folder, "manifests",
                                os.path.splitext(os.path.basename(dataset_yaml))[0])
            data_hparams = load_eval_set(dataset_yaml, data_folder, work, run_hparams)
            prepare = load_prepare(data_hparams["prepare"], dataset_yaml)
            prepare(**prepare_kwargs(prepare, {**run_hparams, **data_hparams,
                                               "save_folder": work}, progress))
            hparams = {**run_hparams, **data_hparams, "n_test": n_clips}
            test_set = make_datasets(hparams)[0]["test"]
            pair = _slug(f"{training_set}__{data_hparams['dataset_name']}__{target}")
            hparams["eval_folder"] = os.path.join(output_folder, pair)
            hparams["train_logger"] = eval_logger
            restrict_metrics(hparams, "eval_metrics")
            # the run's recoverables, read from the folder given (the run may have moved)
            checkpointer = CompleteCheckpointer(
                os.path.join(run, "save"), recoverables=run_hparams["checkpointer"].recoverables
            )
            brain = FewSoundBrain(
                modules=run_hparams["modules"], hparams=hparams,
                run_opts={"device": device, "noprogressbar": not progress},
                checkpointer=checkpointer,
            )
            brain.evaluate(test_set, min_key="loss", test_loader_kwargs={
                "batch_size": batch_size, "num_workers": num_workers})
            rows.append({
                "training_set": training_set, "evaluation_set": data_hparams["dataset_name"],
                "target": target, "run": os.path.abspath(run), "n_clips": len(test_set),
                "summary": summarize(brain.metric_rows), "metrics": list(hparams["eval_metrics"]),
            })
            logger.info("%s (%s) on %s: %d clips", training_set, target,
                        data_hparams["dataset_name"], len(test_set))
    write_cross_dataset_table(rows, output_folder)
    return rows


def write_cross_dataset_table(rows, output_folder, name="cross_dataset"):
    """Writes the Table-6-style Markdown and CSV of :func:`evaluate_runs`' rows.

    Metric columns in the paper's order; ``-`` where a metric does not apply
    to the evaluation set (it was not computed); a metric no row has is left
    out. The CSV has ``<metric>_mean`` / ``<metric>_std`` columns, empty
    where the metric does not apply.

    Arguments
    ---------
    rows : list of dict
        As returned by :func:`evaluate_runs`.
    output_folder : str
        Where ``<name>.md`` and ``<name>.csv`` are written.
    name : str
        File stem.

    Returns
    -------
    (str, str)
        The Markdown and CSV paths.

    Example
    -------
    >>> import tempfile
    >>> rows = [
    ...     {"training_set": "VCTK", "evaluation_set": "VCTK", "target": "KAN", "run": "r",
    ...      "n_clips": 2, "metrics": ["mse", "pesq"], "summary": {"mse": (0.006, 0.001),
    ...      "pesq": (1.45, 0.1)}},
    ...     {"training_set": "VCTK", "evaluation_set": "GTZAN", "target": "KAN", "run": "r",
    ...      "n_clips": 2, "metrics": ["mse"], "summary": {"mse": (0.028, 0.002)}}]
    >>> md, _ = write_cross_dataset_table(rows, tempfile.mkdtemp())
    >>> print(open(md).read().splitlines()[-1])
    | VCTK | GTZAN | KAN | 2 | 2.80e-02 ± 2.00e-03 | - |
    """
    used = [column for column in TABLE_COLUMNS
            if any(column[0] in row["metrics"] for row in rows)]
    header = ["Training set", "Evaluation set", "Target", "Clips"] + [
        f"{label} {'↑' if higher else '↓'}" for _, label, higher in used]
    lines = [header, ["---"] * 3 + ["---:"] * (len(header) - 3)]
    fields = ["training_set", "evaluation_set", "target", "run", "n_clips"]
    fields += [f"{key}_{stat}" for key, _, _ in used for stat in ("mean", "std")]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        cells = [row["training_set"], row["evaluation_set"], row["target"], str(row["n_clips"])]
        record = {key: row[key] for key in fields[:5]}
        for key, _, _ in used:
            mean, std = row["summary"].get(key, (math.nan, math.nan))
            if key not in row["metrics"]:
                cells.append(NOT_APPLICABLE)
                continue
            fmt = METRIC_FORMATS.get(key, ".2f")
            cells.append(f"{mean:{fmt}} ± {std:{fmt}}")
            record[f"{key}_mean"], record[f"{key}_std"] = mean, std
        lines.append(cells)
        writer.writerow(record)
    md_path = os.path.join(output_folder, f"{name}.md")
    csv_path = os.path.join(output_folder, f"{name}.csv")
    title = "# Reconstruction across datasets (mean ± std over the evaluation clips)\n\n"
    write_text(md_path, title + "\n".join("| " + " | ".join(c) + " |" for c in lines) + "\n")
    write_text(csv_path, buffer.getvalue())
    logger.info("Cross-dataset table: %s, %s", md_path, csv_path)
    return md_path, csv_path


def _slug(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)
