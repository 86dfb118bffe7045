"""Tests of the fit figures (fewsound_sb.plotting)."""

import pytest
import torch

from fewsound_sb.plotting import log_mel, plot_loss_curve, plot_reconstruction

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    with open(path, "rb") as fin:
        return fin.read(8) == PNG_MAGIC and path.stat().st_size > 1000


def test_plot_reconstruction_writes_png(tmp_path):
    x = torch.sin(torch.linspace(0, 600, 22050))
    path = tmp_path / "sub" / "clip.png"
    plot_reconstruction(x, 0.9 * x + 0.01 * torch.randn(22050), 22050, path,
                        title="clip | PSNR 30.0 dB")
    assert is_png(path)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp_")]


def test_plot_reconstruction_short_and_2d_inputs(tmp_path):
    path = tmp_path / "short.png"
    plot_reconstruction(torch.randn(1, 100), torch.randn(100, 1), 8000, path)
    assert is_png(path)


def test_plot_reconstruction_rejects_length_mismatch(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        plot_reconstruction(torch.randn(100), torch.randn(99), 8000, tmp_path / "x.png")


def test_plot_loss_curve_writes_png(tmp_path):
    path = tmp_path / "loss.png"
    histories = {f"clip{i}": [1.0 / (s + 1 + i) for s in range(50)] for i in range(12)}
    histories["failed"] = [1.0, float("nan")]
    plot_loss_curve(histories, path, title="loss")
    assert is_png(path)
    with pytest.raises(ValueError):
        plot_loss_curve({}, tmp_path / "empty.png")


def test_log_mel_shape():
    assert log_mel(torch.randn(8192), 22050).shape == (128, 33)
