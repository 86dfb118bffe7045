"""A tiny training run's inference folder loads with no editing and reconstructs files.

Trains FewSound-KAN for 2 epochs on tests/samples/VCTK-mini (seconds), then
loads ``<output_folder>/inference`` with ``Reconstructor.from_hparams`` offline
(HF_HUB_OFFLINE=1), runs the CLIs on a held-out speaker's file (reconstruct in a
fresh interpreter, encode / decode / export in-process) and re-exports the
folder with ``fewsound-export``.
"""

import json
import os
import subprocess
import sys

import pytest
import soundfile
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train_recipe import DATA, FEWSOUND_TINY, ROOT, TINY, run_recipe  # noqa: E402

pytestmark = pytest.mark.slow  # ~1 min on 2 CPU cores


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("inference") / "run"
    result = run_recipe("fewsound_kan.yaml", out, *TINY, *FEWSOUND_TINY,
                        "--number_of_epochs", "2", "--valid_every", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _held_out_file(run):
    with open(run / "save" / "test.json", encoding="utf-8") as fin:
        entry = next(iter(json.load(fin).values()))
    return entry["wav"].replace("{data_root}", DATA)


def _cli(name, *args):
    code = (f"import sys; from fewsound_sb.inference_cli import {name}; "
            f"sys.exit({name}(sys.argv[1:]))")
    env = dict(os.environ, PYTHONPATH=ROOT, HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=900)


def test_trained_run_writes_loadable_inference_folder(trained_run, tmp_path, monkeypatch):
    from fewsound_sb.dataio import read_audio
    from fewsound_sb.inference import Reconstructor

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = trained_run / "inference"
    assert sorted(os.listdir(folder)) == ["encoder.ckpt", "head.ckpt", "hyperparams.yaml"]
    model = Reconstructor.from_hparams(source=str(folder), savedir=str(tmp_path / "links"),
                                       overrides={"progress": False})
    assert model.hparams.piece_length == 2048 and model.hparams.overlap == 256
    # the exported head is the trained one: equal to the best checkpoint's
    ckpts = [d for d in os.listdir(trained_run / "save") if d.startswith("CKPT")]
    state = torch.load(trained_run / "save" / ckpts[0] / "head.ckpt", weights_only=True)
    assert torch.equal(model.mods.head.theta.cpu(), state["theta"])

    wav = read_audio(_held_out_file(trained_run), sample_rate=22050)
    weights = model.encode(wav, 22050)
    assert weights.n_pieces > 1 and weights.num_samples == wav.shape[-1]
    assert model.decode(weights).shape == wav.shape


def test_clis_on_trained_model(trained_run, tmp_path, capsys, monkeypatch):
    from fewsound_sb.inference_cli import main_decode, main_encode, main_export

    folder = trained_run / "inference"
    src = _held_out_file(trained_run)  # 48 kHz flac of a held-out speaker
    out = tmp_path / "rec.wav"
    # one fresh interpreter, offline (the console script's path); the other CLIs run
    # in-process: on a loaded 2-core machine each interpreter start costs 20-40 s
    result = _cli("main_reconstruct", src, out, "--model", folder, "--sample_rate", "16000",
                  "--refine_steps", "3", "--no_progress")
    assert result.returncode == 0, result.stderr[-2000:]
    frames = soundfile.info(src).frames
    assert abs(soundfile.info(str(out)).frames - frames / 3) <= 2

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    weights = tmp_path / "clip.safetensors"
    assert main_encode([src, str(weights), "--model", str(folder), "--dtype", "fp16",
                        "--no_progress"]) == 0
    assert "kbit/s" in capsys.readouterr().out
    assert main_decode([str(weights), str(tmp_path / "dec.wav")]) == 0
    info = soundfile.info(str(tmp_path / "dec.wav"))
    assert info.samplerate == 22050 and abs(info.frames - frames * 22050 / 48000) <= 2

    assert main_export([str(trained_run), "--output", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "hyperparams.yaml").read_text() == \
        (folder / "hyperparams.yaml").read_text()


def test_refinement_rows_continue_one_fit(trained_run, monkeypatch):
    """Rows after 0, 3, 6 steps are one continuous fit: the 6-step row is a straight 6-step fit."""
    from fewsound_sb.dataio import read_audio
    from fewsound_sb.inference import Reconstructor
    from fewsound_sb.inference_cli import refinement_rows

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = Reconstructor.from_hparams(source=str(trained_run / "inference"),
                                       overrides={"progress": False})
    wav = read_audio(_held_out_file(trained_run), sample_rate=22050)[:4000]  # 2 pieces
    for start in ("hypernetwork", "scratch"):
        rows = refinement_rows(model, wav, [0, 3, 6], ["mse"], start=start)
        mse = [row["mse"] for _, _, row, _, _ in rows]
        assert mse[0] != mse[1] != mse[2], (start, mse)  # every count fits further
        straight = refinement_rows(model, wav, [6], ["mse"], start=start)[0][3]
        assert torch.allclose(rows[-1][3], straight, atol=1e-6), start
