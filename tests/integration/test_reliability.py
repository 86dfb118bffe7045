"""Reliability of long runs on shared machines (README, "Reliability").

* a truncated FLAC in the training data is skipped with a warning naming it,
  counted in the epoch's log line, and stops the run only past
  ``max_bad_fraction``; ``check_audio`` leaves it out of the manifests;
* SIGTERM saves a checkpoint and exits with 0; the rerun resumes;
* files are written with the usual permissions (0666 minus the umask);
* ``fewsound-fit`` logs: no third-party DEBUG, the loss every ``log_every``
  steps, ``env.log`` of the running interpreter, a warning per cropped file;
* ``num_workers`` follows the machine.
"""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "recipes", "VCTK"))
from test_train_recipe import DATA, FEWSOUND_TINY, TINY, TRAIN, train_log_rows  # noqa: E402
from vctk_prepare import BAD_FILES, prepare_vctk  # noqa: E402

from fewsound_sb.dataio import write_audio  # noqa: E402
from fewsound_sb.datasets import KeyedCropSampler, default_num_workers  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")


def corpus_with_truncated_flac(tmp_path):
    """A copy of VCTK-mini whose first training draw (seed 1986) is truncated to
    3,000 bytes; returns ``(data_folder, truncated_path)``."""
    data = tmp_path / "VCTK-mini"
    shutil.copytree(DATA, data)
    save = tmp_path / "manifests"
    prepare_vctk(str(data), str(save), valid_speakers=10)
    train = json.loads((save / "train.json").read_text())
    sampler = KeyedCropSampler([1.0] * len(train), num_samples=16, replacement=True, seed=1986)
    sampler.set_epoch(1)
    index, _ = next(iter(sampler))
    path = list(train.values())[index]["wav"].replace("{data_root}", str(data))
    with open(path, "rb") as fin:
        head = fin.read(3000)
    with open(path, "wb") as fout:
        fout.write(head)
    return data, path


def recipe_command(data, out, *extra):
    return [sys.executable, TRAIN, os.path.join(ROOT, "hparams", "fewsound_kan.yaml"),
            "--data_folder", str(data), "--output_folder", str(out), *TINY, *FEWSOUND_TINY,
            "--valid_every", "1000", *extra]


# ------------------------------------------------------------------ bad files
@pytest.mark.slow
def test_truncated_flac_is_skipped_counted_and_logged(tmp_path):
    data, bad = corpus_with_truncated_flac(tmp_path)
    out = tmp_path / "run"
    result = subprocess.run(recipe_command(data, out, "--number_of_epochs", "2"), env=ENV,
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    rows = [r for r in train_log_rows(out) if "epoch" in r]
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert int(rows[0]["train skipped"]) >= 1  # the epoch's line counts the skips
    log = (out / "log.txt").read_text()
    assert os.path.basename(bad) in log and "skipped" in log


@pytest.mark.slow
def test_too_many_bad_files_stop_with_a_clear_error(tmp_path):
    data, bad = corpus_with_truncated_flac(tmp_path)
    result = subprocess.run(
        recipe_command(data, tmp_path / "run", "--number_of_epochs", "1",
                       "--max_bad_fraction", "0.0"),
        env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "max_bad_fraction" in output and os.path.basename(bad) in output


def test_check_audio_leaves_bad_files_out_of_the_manifests(tmp_path):
    data, bad = corpus_with_truncated_flac(tmp_path)
    utt = os.path.basename(bad)[: -len("_mic1.flac")]
    save = tmp_path / "checked"
    prepare_vctk(str(data), str(save), valid_speakers=10, check_audio=True, progress=False)
    assert utt not in json.loads((save / "train.json").read_text())
    assert bad in (save / BAD_FILES).read_text()
    plain = tmp_path / "plain"  # the header-only listing keeps it (training skips it)
    prepare_vctk(str(data), str(plain), valid_speakers=10)
    assert utt in json.loads((plain / "train.json").read_text())


# ------------------------------------------------------------------ preemption
@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_exits_0_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "run"
    cmd = recipe_command(DATA, out, "--number_of_epochs", "6", "--log_every", "1",
                         "--ckpt_interval_minutes", "0")
    proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 300
        log = out / "log.txt"
        while time.time() < deadline and proc.poll() is None:
            if log.exists() and "Train step 6 " in log.read_text():
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before SIGTERM"
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    text = (out / "log.txt").read_text()
    assert "Stopped by SIGTERM" in text
    stopped_at = max(int(line.split("Train step ")[1].split()[0])
                     for line in text.splitlines() if "Train step " in line)
    assert stopped_at < 6 * 4  # stopped early (6 epochs of 4 steps)

    rerun = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Loading a checkpoint" in rerun.stdout + rerun.stderr
    rows = [r for r in train_log_rows(out) if "epoch" in r]
    assert sorted({int(r["epoch"]) for r in rows}) == list(range(1, 7))
    assert int(rows[-1]["steps"]) == 6 * 4  # no step lost or repeated
    rerun_steps = [int(line.split("Train step ")[1].split()[0])
                   for line in (out / "log.txt").read_text().splitlines()[len(text.splitlines()):]
                   if "Train step " in line]
    assert rerun_steps[0] == stopped_at + 1  # resumed right after the SIGTERM checkpoint


# ------------------------------------------------------------------ permissions
@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_get_the_usual_permissions(tmp_path, umask):
    from fewsound_sb.reports import write_example, write_metric_table
    from fewsound_sb.weights import INRWeights

    old = os.umask(umask)
    try:
        write_example(torch.zeros(512), torch.zeros(512), 8000, tmp_path / "ref.wav",
                      tmp_path / "rec.wav", tmp_path / "fig.png", title="x")
        write_metric_table(tmp_path / "t.md", tmp_path / "t.csv", {"mse": (0.1, 0.0)},
                           title="x", heading="x", n_clips=1)
        INRWeights(target="kan", config={"encoding_length": 2, "hidden_sizes": [4],
                                         "grid_size": 3},
                   weights=torch.zeros(140), sample_rate=8000,
                   num_samples=64).save(tmp_path / "w.safetensors")
        write_audio(tmp_path / "a.wav", torch.zeros(64), 8000)
    finally:
        os.umask(old)
    names = ["ref.wav", "rec.wav", "fig.png", "t.md", "t.csv", "w.safetensors", "a.wav"]
    for name in names:
        mode = stat.S_IMODE(os.stat(tmp_path / name).st_mode)
        assert mode == 0o666 & ~umask, (name, oct(mode))


# ------------------------------------------------------------------ logs and cropping
def test_fit_log_is_ours_and_env_log_is_this_interpreter(tmp_path):
    audio = tmp_path / "long.wav"
    write_audio(audio, 0.5 * torch.sin(torch.arange(80000) * 0.05), 8000)  # 10 s
    out = tmp_path / "fit"
    cmd = [sys.executable, "-m", "fewsound_sb.fit", "--inr", "kan", str(audio),
           "--output_folder", str(out), "--n_steps", "20", "--crop_length", "2048",
           "--sample_rate", "8000", "--metrics", "[mse]", "--progress", "False",
           "--log_every", "10", "--n_figures", "1", "--device", "cpu"]
    result = subprocess.run(cmd, env=ENV, cwd=str(tmp_path), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (out / "log.txt").read_text()
    debug = [line for line in log.splitlines() if " - DEBUG - " in line]
    assert all(" - fewsound_sb" in line or " - speechbrain" in line for line in debug), debug[:3]
    assert "matplotlib.font_manager" not in log and "findfont" not in log
    assert "step 10/20" in log and "step 20/20" in log  # the loss every log_every steps
    assert "only its start is fitted" in log and "--all_pieces" in log  # 10 s file, 0.26 s fit
    assert "fewsound-reconstruct" in log  # whole files: the trained model's Reconstructor
    env = (out / "env.log").read_text()
    assert f"Python: {sys.executable}" in env and "speechbrain: " in env
    assert "CUDA available: " in env and "torch==" in env


# ------------------------------------------------------------------ workers
def test_num_workers_follow_the_machine(monkeypatch):
    from hyperpyyaml import load_hyperpyyaml

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    assert default_num_workers(4) == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert default_num_workers(4) == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    for name in sorted(os.listdir(os.path.join(ROOT, "hparams"))):
        if not name.endswith(".yaml"):
            continue
        with open(os.path.join(ROOT, "hparams", name), encoding="utf-8") as fin:
            lines = [line for line in fin if line.startswith("num_workers:")]
        if lines:  # a training YAML: its default is what the machine has
            assert load_hyperpyyaml(lines[0])["num_workers"] == 1, name
