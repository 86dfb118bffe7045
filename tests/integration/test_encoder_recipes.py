"""A few recipe steps with each encoder YAML (SNAC, spectrogram, Whisper + LoRA).

recipes/VCTK/train.py on tests/samples/VCTK-mini with tiny sizes through
command-line overrides; the Whisper YAMLs point --whisper_path at a tiny random
Whisper saved by the test (nothing is downloaded).
"""

import os
import re
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train_recipe import run_recipe, train_log_rows  # noqa: E402

from fewsound_sb.lobes.whisper import save_random_whisper  # noqa: E402

# Sizes of the target, head and loop shared by every encoder YAML.
TINY = [
    "--crop_length", "2048",
    "--kan_encoding_length", "2", "--kan_hidden", "[4]", "--kan_grid_size", "3",
    "--hypernet_hidden", "[16]", "--g_output_dim", "8", "--g_kernel_size", "5",
    "--warmup_epochs", "0", "--enc_output_dim", "8",
    "--samples_per_epoch", "8", "--batch_size", "4", "--num_workers", "0",
    "--n_valid", "4", "--n_test", "4", "--n_examples", "1",
    "--eval_metrics", "[mse]", "--lr", "0.001",
    "--ckpt_interval_minutes", "0", "--noprogressbar", "--device", "cpu",
]
ENCODER_TINY = {
    "fewsound_kan_snac.yaml": [
        "--snac_d_model", "16", "--snac_strides", "[4,8]", "--snac_attn_window", "4"],
    "fewsound_kan_spectrogram.yaml": [
        "--spec_n_fft", "128", "--spec_hop_length", "64", "--spec_hidden", "8",
        "--spec_n_conv", "2"],
    "fewsound_kan_whisper_tiny.yaml": ["--lora_rank", "2", "--lora_alpha", "4"],
    # the large YAML with the clip-only window (the tiny one keeps the 30 s padding)
    "fewsound_kan_whisper_large.yaml": [
        "--lora_rank", "2", "--lora_alpha", "4", "--whisper_pad_to_30s", "False"],
}
PARAMS = re.compile(r"Parameters of E \(encoder\): ([\d,]+) trainable, ([\d,]+) frozen")


@pytest.fixture(scope="module")
def whisper_folder(tmp_path_factory):
    torch.manual_seed(0)
    return save_random_whisper(
        str(tmp_path_factory.mktemp("whisper")), d_model=16, encoder_layers=2,
        encoder_attention_heads=2, encoder_ffn_dim=32,
    )


def encoder_counts(result):
    """(trainable, frozen) of E from the log of a run."""
    found = PARAMS.findall(result.stderr + result.stdout)
    assert found, "no parameter log for E"
    return tuple(int(n.replace(",", "")) for n in found[-1])


def last_checkpoint(out):
    ckpts = sorted(d for d in os.listdir(out / "save") if d.startswith("CKPT"))
    assert ckpts, "no checkpoint"
    return out / "save" / ckpts[-1]


@pytest.mark.parametrize("hparams", sorted(ENCODER_TINY))
def test_encoder_yaml_trains(hparams, whisper_folder, tmp_path):
    out = tmp_path / "run"
    extra = list(ENCODER_TINY[hparams])
    if "whisper" in hparams:
        extra += ["--whisper_path", whisper_folder]
    result = run_recipe(hparams, out, *TINY, *extra, "--number_of_epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [r for r in train_log_rows(out) if "epoch" in r]
    assert [int(r["epoch"]) for r in rows] == [1]
    assert int(rows[0]["steps"]) == 2  # 8 samples / batch 4
    assert (out / "eval" / "test_epoch1.md").is_file()

    trainable, frozen = encoder_counts(result)
    state = torch.load(last_checkpoint(out) / "encoder.ckpt", weights_only=True)
    assert sum(v.numel() for v in state.values()) >= trainable
    if "whisper" in hparams:
        assert frozen > 0
        assert all("lora_" in k or k.startswith("pool.") for k in state)
        assert sum(v.numel() for v in state.values()) == trainable
        # the inference folder records the backbone path and holds only what trained
        exported = torch.load(out / "inference" / "encoder.ckpt", weights_only=True)
        assert set(exported) == set(state)
        assert whisper_folder in (out / "inference" / "hyperparams.yaml").read_text(encoding="utf-8")
    else:
        assert frozen == 0


def test_whisper_run_resumes_on_top_of_the_backbone(whisper_folder, tmp_path):
    out = tmp_path / "run"
    args = [*TINY, *ENCODER_TINY["fewsound_kan_whisper_tiny.yaml"],
            "--whisper_path", whisper_folder, "--whisper_pad_to_30s", "False"]
    first = run_recipe("fewsound_kan_whisper_tiny.yaml", out, *args, "--number_of_epochs", "1")
    assert first.returncode == 0, first.stderr[-3000:]
    saved = torch.load(last_checkpoint(out) / "encoder.ckpt", weights_only=True)
    second = run_recipe("fewsound_kan_whisper_tiny.yaml", out, *args, "--number_of_epochs", "2")
    assert second.returncode == 0, second.stderr[-3000:]
    rows = [r for r in train_log_rows(out) if "epoch" in r]
    assert [int(r["epoch"]) for r in rows] == [1, 2]  # epoch 1 was not redone
    assert int(rows[-1]["steps"]) == 4  # the step counter went on
    resumed = torch.load(last_checkpoint(out) / "encoder.ckpt", weights_only=True)
    assert set(resumed) == set(saved)
    lora_b = [k for k in saved if "lora_B" in k]
    assert lora_b and any(not torch.equal(saved[k], resumed[k]) for k in lora_b)


def test_missing_whisper_folder_fails_clearly(tmp_path):
    result = run_recipe(
        "fewsound_kan_whisper_tiny.yaml", tmp_path / "run", *TINY,
        "--whisper_path", str(tmp_path / "no_whisper"), "--number_of_epochs", "1",
    )
    assert result.returncode != 0
    assert "Whisper model folder not found" in result.stderr
    assert "hf download openai/whisper" in result.stderr
