"""End-to-end runs of the dataset recipes on miniature trees of their real layouts.

recipes/{NoisyVCTK,LibriSpeech,LJSpeech,GTZAN,UrbanSound8K}/train.py (a few
training steps each), the GTZAN and UrbanSound8K single-clip fitting recipes,
and one cross-dataset evaluation (recipes/evaluate.py). Tiny model sizes via
command-line overrides (the YAMLs are the paper's); the recipe bodies run
in-process (fewsound_sb.recipe), so each run takes seconds.
"""

import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from dataset_trees import build_tree  # noqa: E402

from fewsound_sb.recipe import run_fitting, run_training  # noqa: E402

YAMLS = {
    "NoisyVCTK": "NoisyVCTK/noisyvctk.yaml",
    "LibriSpeech": "LibriSpeech/librispeech.yaml",
    "LJSpeech": "LJSpeech/ljspeech.yaml",
    "GTZAN": "GTZAN/gtzan.yaml",
    "UrbanSound8K": "UrbanSound8K/urbansound8k.yaml",
}
CLEAN_SPEECH = {"LibriSpeech", "LJSpeech"}
TINY = [
    "--crop_length", "2048",
    "--enc_channels", "2", "--enc_output_channels", "2",
    "--enc_channel_mults", "[2,4]", "--enc_strides", "[4,8]",
    "--kan_encoding_length", "2", "--kan_hidden", "[4]", "--kan_grid_size", "3",
    "--hypernet_hidden", "[16]", "--g_output_dim", "8", "--g_kernel_size", "5",
    "--warmup_epochs", "0", "--samples_per_epoch", "8", "--batch_size", "4",
    "--num_workers", "0", "--n_valid", "4", "--n_test", "4", "--n_examples", "1",
    "--eval_metrics", "[mse,si_snr,lsd,pesq]", "--lr", "0.001", "--number_of_epochs", "1",
    "--ckpt_interval_minutes", "0", "--noprogressbar", "--device", "cpu",
]
TINY_FIT = [
    "--crop_length", "2048", "--encoding_length", "2", "--hidden_sizes", "[4]",
    "--grid_size", "3", "--n_steps", "2", "--batch_clips", "4", "--n_figures", "1",
    "--metrics", "[mse,psnr,lsd,si_snr,pesq]", "--progress", "False", "--device", "cpu",
]


def _yaml(name):
    return os.path.join(ROOT, "recipes", YAMLS[name])


def _csv(path):
    with open(path, newline="", encoding="utf-8") as fin:
        return list(csv.DictReader(fin))


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("trees")
    return {name: build_tree(name, root / name) for name in YAMLS}


@pytest.fixture(scope="module")
def gtzan_run(trees, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "gtzan_kan"
    run_training([os.path.join(ROOT, "hparams", "fewsound_kan.yaml"), "--data_folder",
                  trees["GTZAN"], "--output_folder", str(out), *TINY], _yaml("GTZAN"))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(YAMLS))
def test_recipe_prepares_trains_and_evaluates(name, trees, gtzan_run, tmp_path):
    out = gtzan_run if name == "GTZAN" else tmp_path / "run"
    if name != "GTZAN":
        run_training([os.path.join(ROOT, "hparams", "fewsound_kan.yaml"), "--data_folder",
                      trees[name], "--output_folder", str(out), *TINY], _yaml(name))
    for split in ("train", "valid", "test"):
        assert (out / "save" / f"{split}.json").is_file()
    assert any(d.startswith("CKPT+") for d in os.listdir(out / "save"))
    metrics = {row["metric"] for row in _csv(out / "eval" / "test_epoch1.csv")}
    # PESQ only for clean speech (the paper's Table 6)
    expected = {"mse", "si_snr", "lsd"} | ({"pesq"} if name in CLEAN_SPEECH else set())
    assert metrics == expected
    with open(out / "save" / "prepare_options.json", encoding="utf-8") as fin:
        counts = json.load(fin)["counts"]  # files found / kept / skipped per split
    assert counts["train"]["kept"] > 0 and counts["train"]["found"] >= counts["train"]["kept"]
    with open(out / "hyperparams.yaml", encoding="utf-8") as fin:
        assert f"data_folder: {trees[name]}" in fin.read()


@pytest.mark.slow
@pytest.mark.parametrize("name, groups", [("GTZAN", 3), ("UrbanSound8K", 3)])
def test_fit_recipe_one_clip_per_group(name, groups, trees, tmp_path):
    out = tmp_path / "fit"
    rows, summary = run_fitting(
        [os.path.join(ROOT, "hparams", "inr", "kan.yaml"), "--data_folder", trees[name],
         "--output_folder", str(out), "--clips_per_group", "1", *TINY_FIT], _yaml(name))
    results = _csv(out / "results.csv")
    assert len(results) == groups
    assert all(row["status"] == "ok" for row in results)
    assert "jazz.00054" not in [row["id"] for row in results]
    assert "pesq" not in results[0] and "pesq" not in summary
    assert float(results[0]["psnr"]) > 0
    for item in ("summary.md", "loss_curve.png"):
        assert (out / item).is_file()
    assert len(os.listdir(out / "weights")) == groups


@pytest.mark.slow
def test_cross_dataset_evaluation_table(trees, gtzan_run, tmp_path):
    out = tmp_path / "table"
    moved = tmp_path / "moved_run"  # a run folder is self-contained: it may be moved
    shutil.copytree(gtzan_run, moved)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, os.path.join(ROOT, "recipes", "evaluate.py"),
           "--runs", str(moved), "--eval_sets", f"GTZAN={trees['GTZAN']}",
           f"LibriSpeech={trees['LibriSpeech']}", "--output_folder", str(out),
           "--n_clips", "3", "--noprogressbar"]
    os.rename(gtzan_run / "save", gtzan_run / "save_hidden")  # only the moved copy is left
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT,
                                timeout=300)
    finally:
        os.rename(gtzan_run / "save_hidden", gtzan_run / "save")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _csv(out / "cross_dataset.csv")
    assert [(r["training_set"], r["evaluation_set"], r["target"]) for r in rows] == [
        ("GTZAN", "GTZAN", "KAN"), ("GTZAN", "LibriSpeech", "KAN")]
    assert [r["n_clips"] for r in rows] == ["3", "3"]
    assert rows[0]["pesq_mean"] == "" and rows[1]["pesq_mean"] != ""
    assert float(rows[0]["mse_mean"]) > 0
    table = (out / "cross_dataset.md").read_text(encoding="utf-8").splitlines()
    # '-' where PESQ does not apply (GTZAN); LibriSpeech's PESQ is computed (NaN
    # here only because 2,048 samples are shorter than PESQ's 0.25 s minimum)
    assert "PESQ ↑" in table[2] and "nan" not in table[-2]
    assert table[-2].startswith("| GTZAN | GTZAN | KAN | 3 |") and table[-2].endswith("| - |")
    # the run's own log is left alone; the evaluation has its own
    assert "test loss" in (out / "eval_log.txt").read_text(encoding="utf-8")


def test_evaluate_rejects_a_folder_that_is_no_run(tmp_path):
    from fewsound_sb.evaluation import load_run

    with pytest.raises(FileNotFoundError, match="hyperparams.yaml"):
        load_run(str(tmp_path))
