"""End-to-end runs of the single-clip fitting entry points on tiny inputs.

``recipes/VCTK/fit_inr.py`` on the embedded VCTK-mini corpus and the generic
``python -m fewsound_sb.fit`` on a folder of odd files, both through
command-line overrides only (as a user would run them).
"""

import csv
import glob
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from hyperpyyaml import load_hyperpyyaml

from fewsound_sb.dataio import prepare_clips
from fewsound_sb.fitting import fit_from_hparams
from fewsound_sb.weights import INRWeights, load_fitted
from fewsound_sb.nnet.inr import time_grid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "samples", "VCTK-mini")
RECIPE = os.path.join(ROOT, "recipes", "VCTK", "fit_inr.py")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAST = ["--progress", "False", "--device", "cpu"]

sys.path.insert(0, os.path.join(ROOT, "recipes", "VCTK"))
from vctk_prepare import pick_one_per_speaker  # noqa: E402  (the recipe's own folder)


def run(args, timeout=900):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def read_rows(folder):
    with open(os.path.join(folder, "results.csv"), newline="", encoding="utf-8") as fin:
        return list(csv.DictReader(fin))


def is_png(path):
    with open(path, "rb") as fin:
        return fin.read(8) == PNG_MAGIC


@pytest.mark.slow
def test_vctk_recipe_kan_learns_and_writes_everything(tmp_path):
    out = str(tmp_path / "kan")
    proc = run([RECIPE, "hparams/inr/kan.yaml", "--data_folder", CORPUS, "--output_folder", out,
                "--n_clips", "2", "--n_steps", "60", "--crop_length", "8192", "--batch_clips", "2",
                "--n_figures", "1", "--metrics", "[mse,psnr,lsd,si_snr,pesq]", *FAST])
    assert proc.returncode == 0, proc.stderr[-3000:]

    rows = read_rows(out)
    assert [r["id"] for r in rows] == ["p225", "p226"]
    for row in rows:
        assert row["status"] == "ok" and row["steps"] == "60"
        for key in ("mse", "psnr", "lsd", "si_snr", "pesq", "seconds", "final_loss"):
            assert math.isfinite(float(row[key])), (key, row[key])
        # one record per (content, settings, steps): records/<id>/<key>-<n_steps>.pt
        saved = glob.glob(os.path.join(out, "records", row["id"], "*-60.pt"))
        assert len(saved) == 1, saved
        record = torch.load(saved[0], weights_only=True)
        history = record["history"]
        assert history[-1] < 0.5 * history[0], history[::10]  # the loss falls substantially
        wav, rate = soundfile.read(os.path.join(out, "wavs", f"{row['id']}.wav"))
        assert rate == 22050 and wav.shape == (8192,)
        net = load_fitted(os.path.join(out, "weights", f"{row['id']}.safetensors"))
        with torch.no_grad():
            est = net(time_grid(8192)).squeeze(-1).clamp(-1, 1).numpy()
        assert np.abs(est - wav).max() < 1e-3
    summary = open(os.path.join(out, "summary.md"), encoding="utf-8").read()
    assert "33,768 parameters" in summary and "PSNR" in summary and "±" in summary
    assert is_png(os.path.join(out, "figures", "p225.png"))
    assert not os.path.exists(os.path.join(out, "figures", "p226.png"))
    assert is_png(os.path.join(out, "loss_curve.png"))

    # the same command again: finished clips are not refitted
    mtime = os.path.getmtime(os.path.join(out, "weights", "p225.safetensors"))
    again = run([RECIPE, "hparams/inr/kan.yaml", "--data_folder", CORPUS, "--output_folder", out,
                 "--n_clips", "2", "--n_steps", "60", "--crop_length", "8192", "--batch_clips", "2",
                 "--n_figures", "1", "--metrics", "[mse,psnr,lsd,si_snr,pesq]", *FAST])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already fitted" in again.stdout + again.stderr
    assert os.path.getmtime(os.path.join(out, "weights", "p225.safetensors")) == mtime


@pytest.mark.parametrize("name", ["nerf", "siren", "rff", "wire", "finer", "kan"])
def test_every_target_yaml_loads_and_fits(tmp_path, name):
    """In-process (no interpreter start-up): YAML + overrides -> fit -> outputs."""
    out = str(tmp_path / name)
    overrides = {"output_folder": out, "n_steps": 3, "crop_length": 2048,
                 "n_figures": 0, "metrics": ["mse", "psnr"], "progress": False}
    with open(os.path.join(ROOT, "hparams", "inr", f"{name}.yaml"), encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)
    assert hparams["loss"].reduction == "none" and hparams["lr"] > 0
    path = pick_one_per_speaker(CORPUS, hparams["seed"])[0][1]
    clips = prepare_clips([("clip", path)], hparams["sample_rate"], hparams["crop_length"],
                          crop="random", seed=hparams["seed"])
    rows, _ = fit_from_hparams(clips, hparams)
    assert rows[0]["status"] == "ok" and math.isfinite(rows[0]["psnr"]), rows
    net = load_fitted(os.path.join(out, "weights", "clip.safetensors"))
    assert type(net).__name__.lower() == name


def make_odd_folder(folder):
    os.makedirs(os.path.join(folder, "sub"))
    t = np.arange(6000) / 44100
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)], 1)
    soundfile.write(os.path.join(folder, "stereo.wav"), stereo, 44100)
    short = 0.4 * np.sin(2 * np.pi * 440 * np.arange(800) / 8000)
    soundfile.write(os.path.join(folder, "short.ogg"), short, 8000)
    soundfile.write(os.path.join(folder, "sub", "tone.flac"),
                    0.2 * np.sin(2 * np.pi * 100 * np.arange(4000) / 16000), 16000)
    with open(os.path.join(folder, "broken.wav"), "wb") as fout:
        fout.write(b"RIFF\x00\x00\x00\x00WAVEnot audio at all")


def test_generic_cli_odd_files(tmp_path):
    data, out = str(tmp_path / "audio"), str(tmp_path / "out")
    make_odd_folder(data)
    proc = run(["-m", "fewsound_sb.fit", "--hparams", "hparams/inr/kan.yaml", data,
                "--output_folder", out, "--n_steps", "5", "--crop_length", "4096",
                "--metrics", "[mse,psnr]", "--n_figures", "1", *FAST])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "broken.wav" in proc.stdout + proc.stderr  # reported by name
    rows = {r["id"]: r for r in read_rows(out)}
    assert set(rows) == {"broken", "short", "stereo", "tone"}
    assert rows["broken"]["status"] == "unreadable" and "broken.wav" in rows["broken"]["message"]
    for clip_id in ("short", "stereo", "tone"):
        assert rows[clip_id]["status"] == "ok"
        assert math.isfinite(float(rows[clip_id]["psnr"]))
    # resampled to 22.05 kHz: 6000 @ 44.1k -> 3000 and 800 @ 8k -> 2205 samples: padded;
    # 4000 @ 16k -> 5512: cropped at the start
    assert "padded" in rows["stereo"]["message"] and rows["stereo"]["num_samples"] == "3000"
    assert "padded" in rows["short"]["message"] and rows["short"]["num_samples"] == "2205"
    # cropping is reported per file (not silent)
    assert rows["tone"]["message"].startswith("cropped") and rows["tone"]["num_samples"] == "4096"
    wav, rate = soundfile.read(os.path.join(out, "wavs", "tone.wav"))
    assert rate == 22050 and wav.shape == (4096,)
    assert soundfile.read(os.path.join(out, "wavs", "stereo.wav"))[0].shape == (3000,)
    assert is_png(os.path.join(out, "loss_curve.png"))
    summary = open(os.path.join(out, "summary.md"), encoding="utf-8").read()
    assert "unreadable" in summary and "padded" in summary


def test_generic_cli_pads_short_clips_and_splits_pieces(tmp_path):
    data, out = str(tmp_path / "audio"), str(tmp_path / "out")
    make_odd_folder(data)
    proc = run(["-m", "fewsound_sb.fit", "--hparams", "hparams/inr/nerf.yaml",
                os.path.join(data, "short.ogg"), os.path.join(data, "stereo.wav"),
                "--output_folder", out, "--n_steps", "3", "--crop_length", "2048",
                "--all_pieces", "--metrics", "[mse]", "--n_figures", "0", *FAST])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["id"]: r for r in read_rows(out)}
    # short.ogg: 2205 samples -> 2 pieces, the second padded; stereo.wav: 3000 -> 2 pieces
    assert set(rows) == {"short_piece000", "short_piece001", "stereo_piece000", "stereo_piece001"}
    assert "padded" in rows["short_piece001"]["message"]
    assert rows["short_piece001"]["num_samples"] == "157"
    wav, _ = soundfile.read(os.path.join(out, "wavs", "short_piece001.wav"))
    assert wav.shape == (157,)


def test_generic_cli_empty_folder_fails_clearly(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run(["-m", "fewsound_sb.fit", "--hparams", "hparams/inr/kan.yaml", str(empty),
                "--output_folder", str(tmp_path / "out")])
    assert proc.returncode != 0
    assert "No audio files found" in proc.stderr


def test_generic_cli_all_unreadable_fails_clearly(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    proc = run(["-m", "fewsound_sb.fit", "--hparams", "hparams/inr/kan.yaml", str(bad),
                "--output_folder", str(tmp_path / "out"), "--n_steps", "1"])
    assert proc.returncode != 0
    assert "could be read" in proc.stderr and "bad.wav" in proc.stderr


def test_installed_fewsound_fit_runs_outside_the_checkout(tmp_path):
    """``fewsound-fit --inr nerf`` from a folder that is not the repository:
    the packaged YAML is used and the default output folder is under the cwd."""
    script = os.path.join(os.path.dirname(sys.executable), "fewsound-fit")
    if not os.path.isfile(script):
        pytest.skip("fewsound-fit is not installed in this environment (pip install -e .)")
    work = tmp_path / "elsewhere"
    work.mkdir()
    wav = work / "tone.wav"
    soundfile.write(str(wav), 0.3 * np.sin(2 * np.pi * 220 * np.arange(3000) / 22050), 22050)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [script, "--inr", "nerf", "tone.wav", "--n_steps", "2", "--crop_length", "2048",
         "--encoding_length", "2", "--hidden_sizes", "[8]", "--metrics", "[mse,psnr]",
         "--n_figures", "1", "--progress", "False", "--device", "cpu"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = work / "results" / "fit_inr" / "nerf" / "1234"  # the YAML's default, under the cwd
    rows = read_rows(str(out))
    assert [(r["id"], r["status"], r["steps"]) for r in rows] == [("tone", "ok", "2")]
    assert math.isfinite(float(rows[0]["psnr"]))
    clip = INRWeights.load(out / "weights" / "tone.safetensors")
    assert clip.target == "nerf" and clip.config["hidden_sizes"] == [8]
    assert clip.gains.tolist() == [pytest.approx(0.3, abs=1e-3)]  # the tone's peak
    for name in ("summary.md", "summary.csv", "loss_curve.png", "hyperparams.yaml",
                 "wavs/tone.wav", "originals/tone.wav", "figures/tone.png"):
        assert (out / name).is_file(), name


def test_cli_rejects_unknown_keys_and_inr_names(tmp_path, capsys):
    from fewsound_sb.fit import main

    wav = tmp_path / "a.wav"
    soundfile.write(str(wav), np.zeros(100), 8000)
    with pytest.raises(SystemExit) as err:
        main(["--inr", "nerf", str(wav), "--n_step", "2"])
    assert err.value.code == 2 and "did you mean: n_steps" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--inr", "mlp", str(wav)])
    assert "choose one of finer, kan, nerf, rff, siren, wire" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(wav)])  # neither --inr nor --hparams
    assert "one of the arguments --inr --hparams is required" in capsys.readouterr().err
