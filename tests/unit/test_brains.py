"""Tests of fewsound_sb.brains and of the hypernetwork sizes the YAMLs build."""

import os

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.dataio.dataset import DynamicItemDataset

from fewsound_sb.brains import CompleteCheckpointer, FewSoundBrain
from fewsound_sb.config import check_overrides
from fewsound_sb.dataio import make_audio_pipeline, write_audio
from fewsound_sb.nnet.hyper import FewSoundHead, HyperSoundHead, count_parameters

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HPARAMS = os.path.join(ROOT, "hparams")
YAMLS = ["fewsound_kan", "fewsound_nerf", "fewsound_siren", "hypersound_kan", "hypersound_nerf"]

TINY = {
    "crop_length": 2048, "enc_channels": 2, "enc_output_channels": 2,
    "enc_channel_mults": [2, 4], "enc_strides": [4, 8], "hypernet_hidden": [8],
    "batch_size": 2, "num_workers": 0, "n_examples": 1, "eval_metrics": ["mse", "si_snr"],
    "lr": 0.001,
}


def load(name, overrides):
    path = os.path.join(HPARAMS, f"{name}.yaml")
    with open(path, encoding="utf-8") as fin:
        return load_hyperpyyaml(fin, check_overrides(path, overrides))


def big_h_overrides(tmp_path):
    """Keeps H's sizes (E's output 3296, G's output 3296) and shrinks the rest:
    E with per-frame LayerNorm (1.2M instead of 21M), G with kernel 15000 (a
    small final Linear instead of 49-55M)."""
    return {"output_folder": str(tmp_path), "enc_norm": "channel", "g_kernel_size": 15000}


def test_hypernetwork_17_5M_from_yaml(tmp_path):
    hparams = load("fewsound_siren", big_h_overrides(tmp_path))
    assert hparams["encoder_dim"] == 3296
    n_h = count_parameters(hparams["head"].hypernet)
    assert n_h == 17_532_135
    assert abs(n_h - 17.5e6) / 17.5e6 < 0.01


def test_hypernetwork_41_2M_from_yaml(tmp_path):
    overrides = dict(big_h_overrides(tmp_path), hypernet_hidden=[800, 1536, 1536, 1536, 1536, 800])
    hparams = load("fewsound_nerf", overrides)
    n_h = count_parameters(hparams["head"].hypernet)
    assert n_h == 41_170_533
    assert abs(n_h - 41.2e6) / 41.2e6 < 0.01


@pytest.mark.parametrize("name", YAMLS)
def test_every_yaml_builds_with_tiny_overrides(name, tmp_path):
    overrides = dict(TINY, output_folder=str(tmp_path))
    if name.startswith("fewsound"):
        overrides.update(g_output_dim=4, g_kernel_size=5)
    hparams = load(name, overrides)
    head_class = FewSoundHead if name.startswith("fewsound") else HyperSoundHead
    assert isinstance(hparams["head"], head_class)
    assert hparams["head"].target is hparams["target"]  # built once, shared
    assert isinstance(hparams["checkpointer"], CompleteCheckpointer)
    expected_p = {"fewsound_kan": 33_768, "fewsound_nerf": 32_901, "fewsound_siren": 31_191,
                  "hypersound_kan": 19_908, "hypersound_nerf": 34_741}[name]
    assert hparams["target"].num_params == expected_p


def _tiny_dataset(folder, n, sample_rate, length):
    data = {}
    for i in range(n):
        path = os.path.join(folder, f"clip{i}.wav")
        t = torch.arange(length) / sample_rate
        write_audio(path, 0.5 * torch.sin(2 * torch.pi * (200 + 50 * i) * t), sample_rate)
        data[f"clip{i}"] = {"wav": path}
    pipeline = make_audio_pipeline(sample_rate, 2048, train=False, seed=0)
    return DynamicItemDataset(data, dynamic_items=[pipeline], output_keys=["id", "sig"])


def test_brain_steps_schedule_per_batch_and_warms_up(tmp_path):
    overrides = dict(TINY, output_folder=str(tmp_path), number_of_epochs=3, valid_every=2,
                     g_output_dim=4, g_kernel_size=5, warmup_epochs=4, lr_schedule="onecycle",
                     kan_encoding_length=2, kan_hidden=[4], kan_grid_size=3)
    hparams = load("fewsound_kan", overrides)
    dataset = _tiny_dataset(str(tmp_path), 4, hparams["sample_rate"], 2500)
    brain = FewSoundBrain(modules=hparams["modules"], opt_class=hparams["opt_class"],
                          hparams=hparams, run_opts={"device": "cpu", "noprogressbar": True},
                          checkpointer=hparams["checkpointer"])
    brain.fit(hparams["epoch_counter"], dataset, dataset,
              train_loader_kwargs=hparams["train_dataloader_opts"],
              valid_loader_kwargs=hparams["valid_dataloader_opts"])
    # 4 clips / batch 2 = 2 optimizer steps per epoch; the schedule follows them
    assert brain.optimizer_step == 6
    assert brain.scheduler.last_epoch == 6 == brain.scheduler.total_steps
    # epoch 3 (1-based) is the authors' epoch 2: f = 2 / 4
    assert float(hparams["head"].warmup_factor) == pytest.approx(0.5)
    # metric tables only at valid_every epochs and the last one
    assert sorted(os.listdir(hparams["eval_folder"])) == [
        "valid_epoch2", "valid_epoch2.csv", "valid_epoch2.md",
        "valid_epoch3", "valid_epoch3.csv", "valid_epoch3.md",
    ]
    loss = brain.evaluate(dataset, min_key="loss", test_loader_kwargs={"batch_size": 2})
    assert loss > 0
    # named after the epoch of the (best, lowest-loss) checkpoint it evaluated
    loaded = hparams["epoch_counter"].current
    assert os.path.isfile(os.path.join(hparams["eval_folder"], f"test_epoch{loaded}.md"))
    names = os.listdir(os.path.join(hparams["eval_folder"], f"test_epoch{loaded}"))
    assert sorted(names) == ["clip0.png", "clip0_rec.wav", "clip0_ref.wav"]


def test_brain_refuses_an_encoder_at_another_sample_rate(tmp_path):
    overrides = dict(TINY, output_folder=str(tmp_path), g_output_dim=4, g_kernel_size=5,
                     kan_encoding_length=2, kan_hidden=[4], kan_grid_size=3)
    hparams = load("fewsound_kan", overrides)
    assert hparams["encoder"].sample_rate == hparams["sample_rate"] == 22050
    hparams["sample_rate"] = 16000  # data at 16 kHz, encoder built for 22.05 kHz
    dataset = _tiny_dataset(str(tmp_path), 2, 16000, 2500)
    brain = FewSoundBrain(modules=hparams["modules"], opt_class=hparams["opt_class"],
                          hparams=hparams, run_opts={"device": "cpu", "noprogressbar": True},
                          checkpointer=hparams["checkpointer"])
    with pytest.raises(ValueError, match="expects 22050 Hz .* sample_rate = 16000 Hz"):
        brain.fit(hparams["epoch_counter"], dataset, dataset,
                  train_loader_kwargs=hparams["train_dataloader_opts"],
                  valid_loader_kwargs=hparams["valid_dataloader_opts"])
    assert brain.optimizer_step == 0


def test_complete_checkpointer_skips_truncated(tmp_path):
    layer = torch.nn.Linear(3, 3)
    ckpt = CompleteCheckpointer(str(tmp_path), {"layer": layer})
    ckpt.save_checkpoint(meta={"loss": 1.0})
    second = ckpt.save_checkpoint(meta={"loss": 0.5}, name="second")
    data = (second.path / "layer.ckpt").read_bytes()
    (second.path / "layer.ckpt").write_bytes(data[: len(data) // 2])  # killed mid-write
    found = ckpt.list_checkpoints()
    assert len(found) == 1 and found[0].meta["loss"] == 1.0
    assert ckpt.recover_if_possible() is not None
