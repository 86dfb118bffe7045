"""The benchmark suite runs on tiny sizes, and every implementation in it computes our KAN.

No timing is asserted here: benchmarks are not tests.
"""

import json
import logging
from pathlib import Path
import re

import pytest
import torch

from bench import bench_kan, kan_impls, memory_probe, run_all
from fewsound_sb.nnet.inr import time_grid

HEADLINE = re.compile(r"^speed-up vs Cox-de Boor \(train step\): \d+\.\dx$")
# Implementations whose parameters map one to one onto ours (the scaler included).
EXACT = ("ours-unfused", "cox-de-boor", "pykan")
# Cubic-only peers: no per-edge scaler, it is folded into their spline coefficients
# (same function). flashkan's truncated-power basis loses a few ulps to cancellation.
FOLDED = ("flashkan", "inkan")


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.md"
    progress = _Collect()
    logger = logging.getLogger("bench")
    logger.addHandler(progress)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        results = run_all.main(["--quick", "--output", str(out)])
    finally:
        logger.removeHandler(progress)
        logger.setLevel(level)
    return out, results, progress.messages


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_quick_run_logs_its_progress(quick_results):
    """A run of many minutes says which section and which round it is in."""
    messages = quick_results[2]
    for section in ("KAN against its peers", "fitting throughput", "FewSound inference", "sound encoders"):
        assert any(m.startswith(section) for m in messages), (section, messages[:5])
    assert any(re.match(r"timed round 1/1: kan B=1, nerf B=1, siren B=1", m) for m in messages), messages


def test_quick_run_writes_report(quick_results):
    out, results, _ = quick_results
    text = out.read_text(encoding="utf-8")
    headline = [line for line in text.splitlines() if line.startswith("speed-up vs Cox-de Boor")]
    assert len(headline) == 1 and HEADLINE.match(headline[0]), headline
    data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert set(data["kan"]) == {"2", "3"}
    for order, res in data["kan"].items():
        rows, skipped = res["rows"], res["skipped"]
        for name in bench_kan.IMPL_ORDER:
            assert name in rows or name in skipped, (order, name)
            if name in rows:
                assert rows[name]["train"]["median_ms"] > 0 and rows[name]["forward"]["median_ms"] > 0
                assert f"| {name} |" in text
        for name in ("ours", "ours-unfused", "cox-de-boor", "siren"):
            assert name in rows
    assert "flashkan" in data["kan"]["2"]["skipped"]  # cubic only
    assert set(data["fit"]["rows"]) == {"kan", "nerf", "siren", "finer", "rff", "wire"}  # no compiled row
    for name, entry in data["fit"]["rows"].items():
        assert set(entry["batches"]) == {"1", "2"}
        assert all(c["clip_steps_per_s"] > 0 and 0 < c["loss_share"] for c in entry["batches"].values())
        assert f"| {name} | {entry['num_params']:,} |" in text
    few = data["fewsound"]
    assert few["rtf"] > 0 and few["output_shape"] == [1, few["num_samples"]]
    assert set(few["stages"]) == {"1", "2"} and few["g_once_ms"] > 0
    assert all(st["rtf_encode"] > 0 and st["rtf_decode"] > 0 for st in few["stages"].values())
    assert all(st["encode_torch_elu_ms"] > 0 for st in few["stages"].values())
    assert "Encode E with torch.nn.ELU (expm1) instead of ours" in text
    assert all(st["encode_bf16_ms"] > 0 and st["rtf_total_bf16"] > 0 for st in few["stages"].values())
    # bf16 moves the embedding, but not far (a few per cent at most)
    assert 0 < few["bf16_embedding_deviation"] < 0.1
    assert "Encode E in bfloat16" in text
    assert {"soundstream", "soundstream-torch-elu"} <= set(data["encoders"]["rows"])
    assert "RTF encode" in text and "Fitting throughput, all targets" in text
    assert data["machine"]["torch"] == torch.__version__


@pytest.mark.parametrize("order", [2, 3])
def test_every_implementation_matches_ours(order):
    report = bench_kan.check_outputs(order, points=256)
    assert report["ours"]["finite"] and report["ours"]["shape"] == [256, 1]
    for name, entry in report.items():
        assert entry["finite"] and entry["shape"] == [256, 1], name
        if name in EXACT:
            assert entry["max_abs_diff"] < 1e-5, (name, entry)
        elif name in FOLDED:
            assert entry["max_abs_diff"] < 1e-4 * max(1.0, entry["max_abs_ours"]), (name, entry)
    # Same weights in, same gradients out: ours (fused layer) against Cox-de Boor (autograd).
    modules = bench_kan.build_all(order, ["ours", "cox-de-boor"], "cpu", weight_scale=3.0)
    t = time_grid(300)
    for module in modules.values():
        module(t).square().sum().backward()
    ours = torch.cat([p.grad.flatten() for p in modules["ours"].parameters()])
    ref = torch.cat([p.grad.flatten() for p in modules["cox-de-boor"].parameters()])
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-5 * ref.abs().max())


def test_peer_rows_say_why_when_missing(monkeypatch):
    monkeypatch.setattr(kan_impls, "peer_available", lambda name: False)
    names, skipped = bench_kan.implementations_for(3)
    assert names == ["ours", "ours-unfused", "cox-de-boor", "siren"]
    assert skipped == {p: "skipped: not installed" for p in kan_impls.PEERS}


def test_memory_probe_runs_in_process():
    result = memory_probe.main(["--impl", "ours", "--points", "256", "--steps", "1"])
    assert result["peak_mib"] >= 0 and "RSS" in result["method"]
    result = memory_probe.main(["--fit-batch", "2", "--fit-target", "wire", "--points", "256", "--steps", "1"])
    assert result["peak_mib"] >= 0 and result["fit_target"] == "wire"


def test_compare_heads_runs_and_reports_both_models(tmp_path):
    """bench/compare_heads.py trains both heads a few steps and writes one table with both rows."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "bench" / "compare_heads.py"
    spec = importlib.util.spec_from_file_location("compare_heads", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "heads.md"
    module.main(["--steps", "2", "--clips", "2", "--crop", "2048", "--hidden", "16", "--output", str(out)])
    text = out.read_text()
    assert "| FewSound-KAN |" in text and "| HyperSound-KAN |" in text
    assert text.count("| Model |") == 1
    assert "loss" in text and "→" in text


def test_gemm_widths_reports_both_forms(tmp_path, monkeypatch):
    """bench/gemm_widths.py: one row per form, width and B, the work of near-equal time
    chunks covering every point (three n-wide products for gauss, one 2n-wide for block)."""
    from bench import gemm_widths

    monkeypatch.setattr(gemm_widths, "POINTS", 1000)
    out = tmp_path / "gemm.md"
    gemm_widths.main(["--widths", "6", "8", "--batches", "1", "3", "--repeats", "1", "--warmup", "0",
                      "--output", str(out)])
    rows = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["rows"]
    assert {(r["form"], r["width"], r["batch"]) for r in rows} == {
        (form, n, b) for form in ("block", "gauss") for n in (6, 8) for b in (1, 3)}
    for r in rows:
        side, products = (2 * r["width"], 1) if r["form"] == "block" else (r["width"], 3)
        n_chunks = -(-1000 // r["chunk"])
        assert (n_chunks - 1) * r["chunk"] < 1000 <= n_chunks * r["chunk"]
        assert r["gflop_per_clip"] == pytest.approx(3 * 2 * products * n_chunks * r["chunk"] * side**2 / 1e9)
        assert r["ms_per_clip"] > 0 and r["gflop_per_s"] > 0
        assert f"| {r['form']} | {r['width']} | {r['batch']} | {r['chunk']} |" in out.read_text(encoding="utf-8")


def test_fit_table_reports_how_calls_are_tiled():
    """The fit table's chunk line follows the path a call takes: compiled WIRE one clip per
    chunk (FunctionalINR.clip_group), every other target all clips of the call."""
    from bench import bench_fit
    from fewsound_sb.nnet import kan

    siren = bench_fit.chunking(bench_fit.build_target("siren"), 16, 32768)
    assert siren == {"clips_per_chunk": 16, "chunk": 728}
    if kan.compile_available():
        wire = bench_fit.build_target("wire-compiled")
        assert bench_fit.chunking(wire, 16, 32768) == bench_fit.chunking(wire, 1, 32768) == {
            "clips_per_chunk": 1, "chunk": 3640}


def test_clip_groups_bench_times_each_group_against_the_loop(tmp_path):
    """bench/clip_groups.py: one row per group size, the target's own choice marked, the
    ratio to B = 1 from the same rounds; the forced group is what the call uses."""
    from bench import bench_fit, clip_groups

    net = clip_groups.forced_group(bench_fit.build_target("nerf"), 1)
    assert net.clip_group(3, False) == 1 and bench_fit.chunking(net, 3, 1500)["clips_per_chunk"] == 1
    out = tmp_path / "groups.md"
    results = clip_groups.main(["--targets", "nerf", "--batch", "3", "--groups", "3", "1", "--points",
                                "1500", "--repeats", "1", "--warmup", "0", "--output", str(out)])
    assert [(r["row"], r["group"], r["default"]) for r in results] == [("nerf", 3, True), ("nerf", 1, False)]
    for r in results:
        assert r["ms_per_clip"] > 0 and r["vs_loop"] == pytest.approx(r["ms_per_clip"] / r["loop_ms_per_clip"])
    text = out.read_text(encoding="utf-8")
    assert "| nerf | 3 | **3** |" in text and "| nerf | 3 | 1 |" in text
    assert json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["results"] == results
