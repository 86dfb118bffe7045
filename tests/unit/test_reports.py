"""Tests of the shared report writers (fewsound_sb.reports)."""

import csv

import soundfile
import torch

from fewsound_sb.reports import figure_title, write_example, write_metric_table, write_rows_csv


def test_metric_table_markdown_and_csv(tmp_path):
    summary = {"psnr": (31.25, 1.5), "mse": (1e-4, 2e-5), "custom": (0.5, 0.0)}
    table = write_metric_table(tmp_path / "t.md", tmp_path / "t.csv", summary, title="KAN",
                               heading="Run", n_clips=4, intro="4 clips.",
                               meta={"model": "KAN", "epoch": 3})
    text = (tmp_path / "t.md").read_text(encoding="utf-8")
    assert text.startswith("# Run\n\n4 clips.\n\n| Model |") and table in text
    assert "31.25 ± 1.50" in table and "custom" in table and "## Notes" not in text
    with open(tmp_path / "t.csv", newline="") as fin:
        rows = list(csv.DictReader(fin))
    assert [r["metric"] for r in rows] == ["psnr", "mse", "custom"]
    assert rows[1] == {"model": "KAN", "epoch": "3", "metric": "mse", "mean": "0.0001",
                       "std": "2e-05", "n_clips": "4"}


def test_rows_csv_keeps_full_precision_and_nan(tmp_path):
    write_rows_csv(tmp_path / "r.csv", [{"id": "a", "x": 1 / 3, "y": float("nan")}],
                   ["id", "x", "y"])
    with open(tmp_path / "r.csv", newline="") as fin:
        row = next(csv.DictReader(fin))
    assert float(row["x"]) == 1 / 3 and row["y"] == "nan"


def test_example_clips_wavs_and_skips_figure(tmp_path):
    reference = torch.linspace(-1, 1, 800)
    write_example(reference, 1.5 * reference, 8000, tmp_path / "r.wav", tmp_path / "e.wav")
    estimate, rate = soundfile.read(tmp_path / "e.wav")
    assert rate == 8000 and estimate.max() <= 1.0 and estimate.max() > 0.99
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.wav", "r.wav"]


def test_figure_title_skips_missing_and_nonfinite():
    assert figure_title("x", {"psnr": float("inf"), "si_snr": 3.21, "mse": 1.0}) == \
        "x | SI-SNR 3.2"
