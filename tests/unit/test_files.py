"""Tests of the one atomic writer (fewsound_sb.files) and the files written through it."""

import os
import stat

import pytest
import torch

from fewsound_sb.dataio import write_audio
from fewsound_sb.files import atomic_write, save_torch, write_text
from fewsound_sb.nnet.inr import build_inr
from fewsound_sb.plotting import plot_loss_curve
from fewsound_sb.weights import INRWeights


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_files_get_the_usual_permissions(tmp_path, umask_022):
    net = build_inr("nerf", encoding_length=2, hidden_sizes=(4,))
    paths = {
        "wav": tmp_path / "a.wav",
        "png": tmp_path / "loss.png",
        "weights": tmp_path / "a.safetensors",
        "torch": tmp_path / "state.pt",
        "text": tmp_path / "summary.md",
    }
    write_audio(paths["wav"], torch.zeros(100), 8000)
    plot_loss_curve({"a": [1.0, 0.5]}, paths["png"])
    INRWeights.from_network(net, {"encoding_length": 2, "hidden_sizes": [4]}, 8000, 64).save(
        paths["weights"])
    save_torch({"step": 1}, paths["torch"])
    write_text(paths["text"], "x")
    for name, path in paths.items():
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o644, (name, oct(mode))  # group/other readable, as 0o666 & ~022
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())


def test_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        write_text(tmp_path / "private.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "report.md"
    write_text(path, "old")

    def broken(tmp_path_):
        with open(tmp_path_, "w") as fout:
            fout.write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_temporary_file_keeps_the_extension(tmp_path):
    seen = []

    def write(tmp):
        seen.append(tmp)
        open(tmp, "w").close()

    atomic_write(tmp_path / "sub" / "x.flac", write)
    assert seen[0].endswith(".flac") and os.path.dirname(seen[0]) == str(tmp_path / "sub")
    assert (tmp_path / "sub" / "x.flac").is_file()
