"""Tests of the batched single-clip fitter (fewsound_sb.fitting)."""

import csv
import functools
import math
import os

import pytest
import torch

from fewsound_sb.dataio import FitClip, read_audio
from fewsound_sb.fitting import INRFitter, describe_target, initial_weights
from fewsound_sb.losses import FewSoundLoss
from fewsound_sb.nnet.inr import KAN, NeRF, FunctionalINR, ParamSpec, time_grid
from fewsound_sb.weights import INRWeights, load_fitted

N = 256
TINY_KAN = functools.partial(KAN, encoding_length=2, hidden_sizes=(4,), grid_size=3)


def tiny_loss():
    return FewSoundLoss(
        sample_rate=8000, fft_sizes=(64, 32), hop_sizes=(16, 8), win_lengths=(64, 32),
        n_mels=8, reduction="none",
    )


def make_fitter(n_steps=12, save_every=0, target=TINY_KAN, loss=None, lr=1e-2):
    return INRFitter(target, loss or tiny_loss(), lr=lr, n_steps=n_steps,
                     save_every=save_every, seed=7, progress=False)


def signals(batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, N)
    freqs = torch.randint(2, 20, (batch, 1), generator=g)
    return torch.sin(2 * math.pi * freqs * t) * 0.8 + 0.1 * torch.randn(batch, N, generator=g)


def test_batched_equals_sequential():
    wavs = signals()
    seeds = [7, 8, 9, 10]
    together = make_fitter().fit_batch(wavs, seeds)
    for i in range(4):
        alone = make_fitter().fit_batch(wavs[i: i + 1], seeds[i: i + 1])
        torch.testing.assert_close(together.weights[i], alone.weights[0], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(torch.tensor(together.history[i]),
                                   torch.tensor(alone.history[0]), rtol=1e-4, atol=1e-6)
    # and the fit did something
    assert all(h[-1] < h[0] for h in together.history)


def test_initial_weights_depend_on_seed_only():
    w = initial_weights(TINY_KAN, [3, 4, 3])
    assert torch.equal(w[0], w[2]) and not torch.equal(w[0], w[1])
    state = torch.get_rng_state()
    initial_weights(TINY_KAN, [5])
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched


class NaNForClip(torch.nn.Module):
    """Per-clip loss that becomes NaN for one clip from a given call on."""

    def __init__(self, clip, from_call):
        super().__init__()
        self.base, self.clip, self.from_call, self.calls = tiny_loss(), clip, from_call, 0

    def forward(self, predictions, targets, length=None):
        self.calls += 1
        losses = self.base(predictions=predictions, targets=targets, length=length)
        if self.calls >= self.from_call:
            poison = torch.zeros_like(losses)
            poison[self.clip] = float("nan")
            losses = losses + poison
        return losses


def test_nan_clip_stops_alone():
    wavs = signals(3)
    result = make_fitter(loss=NaNForClip(clip=1, from_call=4)).fit_batch(wavs, [7, 8, 9])
    assert result.status == ["ok", "failed", "ok"]
    assert "step 4" in result.messages[1]
    assert len(result.history[1]) == 4 and math.isnan(result.history[1][-1])
    assert len(result.history[0]) == 12
    # the failed clip's weights are frozen from its failing step on ...
    partial = make_fitter(n_steps=3).fit_batch(wavs, [7, 8, 9])
    torch.testing.assert_close(result.weights[1], partial.weights[1])
    # ... and the others are unaffected by it
    clean = make_fitter().fit_batch(wavs, [7, 8, 9])
    torch.testing.assert_close(result.weights[0], clean.weights[0])
    torch.testing.assert_close(result.weights[2], clean.weights[2])


class Interrupt(Exception):
    pass


def test_resume_continues_from_saved_step(tmp_path):
    wavs, seeds = signals(2), [7, 8]
    state = str(tmp_path / "state.pt")
    full = make_fitter(n_steps=10).fit_batch(wavs, seeds)

    def stop_at_7(step, _):
        if step == 7:
            raise Interrupt

    with pytest.raises(Interrupt):
        make_fitter(n_steps=10, save_every=3).fit_batch(wavs, seeds, state_path=state,
                                                       callback=stop_at_7)
    assert torch.load(state, weights_only=False)["step"] == 6
    steps_seen = []
    resumed = make_fitter(n_steps=10, save_every=3).fit_batch(
        wavs, seeds, state_path=state, callback=lambda step, _: steps_seen.append(step))
    assert steps_seen == [7, 8, 9, 10]  # continued, not from zero
    assert resumed.steps == 10 and len(resumed.history[0]) == 10
    torch.testing.assert_close(resumed.weights, full.weights, rtol=0, atol=0)
    assert resumed.history == full.history


def test_resume_refuses_other_settings(tmp_path):
    state = str(tmp_path / "state.pt")
    make_fitter(n_steps=2, save_every=1).fit_batch(signals(1), [7], state_path=state)
    with pytest.raises(ValueError, match="other settings"):
        make_fitter(n_steps=4, lr=5e-2).fit_batch(signals(1), [7], state_path=state)


def test_keyboard_interrupt_saves_state(tmp_path):
    state = str(tmp_path / "state.pt")

    def ctrl_c(step, _):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_fitter(n_steps=5, save_every=100).fit_batch(signals(1), [7], state_path=state,
                                                         callback=ctrl_c)
    assert torch.load(state, weights_only=False)["step"] == 2


def test_loss_must_be_per_clip():
    fitter = INRFitter(TINY_KAN, FewSoundLoss(lambda_f=0.0), lr=1e-2, n_steps=1, progress=False)
    with pytest.raises(ValueError, match="reduction: none"):
        fitter.fit_batch(signals(2), [0, 1])


def test_target_must_be_a_factory():
    with pytest.raises(TypeError, match="!name:"):
        describe_target(KAN(encoding_length=2, hidden_sizes=(4,), grid_size=3))
    assert describe_target(NeRF) == ("nerf", {})


class Unregistered(FunctionalINR):
    """A target defined outside the package and not registered: a line a*t + b."""

    def __init__(self, slope_scale=1.0):
        super().__init__()
        self.slope_scale = slope_scale
        self._register_spec([ParamSpec("w", (2,), "weight", 1)])
        torch.nn.init.uniform_(self.w, -0.1, 0.1)

    def forward_params(self, t, params):
        w = params["w"]
        return self.slope_scale * w[:, None, :1] * t + w[:, None, 1:]


def test_unregistered_target_is_described_by_import_path_and_fitted(tmp_path):
    name, config = describe_target(functools.partial(Unregistered, slope_scale=2.0))
    assert name == f"{Unregistered.__module__}:Unregistered" and config == {"slope_scale": 2.0}
    line = torch.linspace(-1, 1, N)  # peak-normalised, as prepare_clips makes clips
    fitter = INRFitter(functools.partial(Unregistered, slope_scale=2.0),
                       FewSoundLoss(lambda_f=0.0, reduction="none"), lr=5e-2, n_steps=100,
                       weight_decay=0.0, seed=0, progress=False)
    rows, _ = fitter.run([FitClip("line", "line.wav", line, N, gain=0.4)], str(tmp_path),
                         sample_rate=8000, n_figures=0, metrics=("mse",))
    assert rows[0]["status"] == "ok" and rows[0]["mse"] < 1e-4, rows
    clip = INRWeights.load(tmp_path / "weights" / "line.safetensors")
    assert clip.target == name and clip.gains.tolist() == [pytest.approx(0.4)]
    torch.testing.assert_close(clip.reconstruct(), 0.4 * line, atol=0.02, rtol=0)
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "Single-clip fits: Unregistered, 2 parameters" in summary


def test_run_writes_outputs_and_skips_finished(tmp_path):
    folder = str(tmp_path / "out")
    wavs = signals(3)
    clips = [FitClip(f"c{i}", f"c{i}.wav", wavs[i], N) for i in range(3)]
    clips.append(FitClip("bad", "bad.wav", error="Cannot read audio file 'bad.wav': corrupt"))
    fitter = make_fitter(n_steps=5)
    metrics = ("mse", "psnr", "lsd", "si_snr")
    rows, summary = fitter.run(clips, folder, batch_clips=2, sample_rate=8000, n_figures=1,
                               metrics=metrics)
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "unreadable"]
    assert set(summary) == set(metrics)
    with open(os.path.join(folder, "results.csv"), newline="") as fin:
        table = list(csv.DictReader(fin))
    assert [r["id"] for r in table] == ["c0", "c1", "c2", "bad"]
    assert float(table[0]["psnr"]) > 0 and table[0]["steps"] == "5"
    summary_md = open(os.path.join(folder, "summary.md"), encoding="utf-8").read()
    assert "PSNR" in summary_md and "140 parameters" in summary_md and "bad" in summary_md
    assert os.path.isfile(os.path.join(folder, "figures", "c0.png"))
    with open(os.path.join(folder, "summary.csv"), newline="") as fin:
        summary_rows = {r["metric"]: r for r in csv.DictReader(fin)}
    assert set(summary_rows) == set(metrics) and summary_rows["psnr"]["n_clips"] == "3"
    assert float(summary_rows["psnr"]["mean"]) == pytest.approx(summary["psnr"][0])
    assert not os.path.exists(os.path.join(folder, "figures", "c1.png"))
    assert os.path.getsize(os.path.join(folder, "loss_curve.png")) > 0
    assert read_audio(os.path.join(folder, "wavs", "c2.wav"), sample_rate=None).shape == (N,)
    assert not os.listdir(os.path.join(folder, "state"))
    # rerun: nothing is refitted
    mtime = os.path.getmtime(os.path.join(folder, "weights", "c0.safetensors"))
    rows_again, _ = make_fitter(n_steps=5).run(clips, folder, batch_clips=2, sample_rate=8000,
                                               metrics=metrics)
    assert os.path.getmtime(os.path.join(folder, "weights", "c0.safetensors")) == mtime
    assert rows_again[0]["psnr"] == rows[0]["psnr"]


def test_load_fitted_round_trip(tmp_path):
    folder = str(tmp_path / "out")
    wav = signals(1)[0]
    rows, _ = make_fitter(n_steps=3).run([FitClip("a", "a.wav", wav, N, gain=0.5)], folder,
                                         sample_rate=8000, metrics=("mse",))
    net = load_fitted(os.path.join(folder, "weights", "a.safetensors"))
    info = INRWeights.load(os.path.join(folder, "weights", "a.safetensors"))
    assert info.target == "kan" and info.num_samples == N and info.n_pieces == 1
    assert info.metadata["id"] == "a" and info.metadata["steps"] == 3
    assert info.gains.tolist() == [0.5] and info.dtype == "fp32"
    with torch.no_grad():
        again = net(time_grid(N)).squeeze(-1)
    saved = read_audio(os.path.join(folder, "wavs", "a.wav"), sample_rate=None)
    assert torch.allclose(again.clamp(-1, 1), saved, atol=1e-4)  # PCM16 quantisation
    assert float(((again - wav) ** 2).mean()) == pytest.approx(rows[0]["mse"], rel=1e-4)
    torch.testing.assert_close(info.reconstruct(), 0.5 * again)  # gain restores the level


# ------------------------------------------------------------------ cache keys
def _fit(folder, clips, caplog, **kwargs):
    caplog.clear()
    settings = {"n_steps": 4, "lr": 1e-2, **kwargs}
    fitter = INRFitter(TINY_KAN, tiny_loss(), lr=settings["lr"], n_steps=settings["n_steps"],
                       save_every=0, seed=7, progress=False)
    with caplog.at_level("INFO", logger="fewsound_sb.fitting"):
        rows, _ = fitter.run(clips, folder, batch_clips=2, sample_rate=8000, n_figures=0,
                             metrics=("mse",))
    return rows, caplog.text


def _file_clip(path, wav):
    from fewsound_sb.dataio import write_audio

    write_audio(path, wav, 8000, subtype="FLOAT")
    return FitClip("a", str(path), wav, N)


def _weights(folder):
    return INRWeights.load(os.path.join(folder, "weights", "a.safetensors")).weights


def test_identical_rerun_reuses_the_fit(tmp_path, caplog):
    folder = str(tmp_path / "out")
    clips = [_file_clip(tmp_path / "a.wav", signals(1)[0])]
    _fit(folder, clips, caplog)
    first = _weights(folder)
    _, log = _fit(folder, clips, caplog)
    assert "already fitted with these settings" in log and "Batch" not in log
    assert torch.equal(_weights(folder), first)


def test_other_lr_refits_and_says_so(tmp_path, caplog):
    folder = str(tmp_path / "out")
    clips = [_file_clip(tmp_path / "a.wav", signals(1)[0])]
    _fit(folder, clips, caplog)
    first = _weights(folder)
    _, log = _fit(folder, clips, caplog, lr=1e-3)
    assert "lr changed (0.01 -> 0.001)" in log and "Batch 1/1" in log
    assert not torch.equal(_weights(folder), first)
    # back to the first lr: that fit is reused, and its outputs are put back
    _, log = _fit(folder, clips, caplog)
    assert "Batch" not in log and torch.equal(_weights(folder), first)


def test_same_stem_other_content_refits(tmp_path, caplog):
    folder = str(tmp_path / "out")
    _fit(folder, [_file_clip(tmp_path / "a.wav", signals(1, seed=0)[0])], caplog)
    first = _weights(folder)
    rows, log = _fit(folder, [_file_clip(tmp_path / "a.wav", signals(1, seed=5)[0])], caplog)
    assert "the file's content changed" in log and "Batch 1/1" in log
    assert not torch.equal(_weights(folder), first)


def test_more_steps_continue_the_saved_fit(tmp_path, caplog):
    clips = [FitClip(f"c{i}", f"c{i}.wav", w, N) for i, w in enumerate(signals(2))]
    short, long_ = str(tmp_path / "short"), str(tmp_path / "long")
    _fit(short, clips, caplog, n_steps=4)
    rows, log = _fit(short, clips, caplog, n_steps=9)
    assert "continuing to 9 steps from its saved weights and AdamW state" in log
    assert "(continuing from step 4)" in log and rows[0]["steps"] == 9
    straight, _ = _fit(long_, clips, caplog, n_steps=9)  # the same 9 steps in one go
    for name in ("c0", "c1"):
        a = INRWeights.load(os.path.join(short, "weights", f"{name}.safetensors")).weights
        b = INRWeights.load(os.path.join(long_, "weights", f"{name}.safetensors")).weights
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert rows[1]["final_loss"] == pytest.approx(straight[1]["final_loss"], rel=1e-5)


def test_padding_of_short_clips_is_not_fitted():
    wav = signals(1)[0]
    zero_tail, noisy_tail = wav.clone(), wav.clone()
    zero_tail[N // 2:] = 0.0
    noisy_tail[N // 2:] = torch.randn(N - N // 2)
    lengths = torch.tensor([0.5])
    a = make_fitter(n_steps=5).fit_batch(zero_tail[None], seeds=[0], lengths=lengths)
    b = make_fitter(n_steps=5).fit_batch(noisy_tail[None], seeds=[0], lengths=lengths)
    torch.testing.assert_close(a.weights, b.weights)  # what lies past the valid part is ignored
    assert a.history == b.history
    c = make_fitter(n_steps=5).fit_batch(noisy_tail[None], seeds=[0])
    assert not torch.equal(a.weights, c.weights)  # without lengths it is fitted
