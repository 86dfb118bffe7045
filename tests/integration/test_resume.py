"""Kill training with SIGKILL, rerun the same command: it must continue.

Checks that the rerun loads the last checkpoint (intra-epoch checkpoints every
3 steps) and continues the epoch counter, the optimizer-step counter and the
OneCycle learning-rate schedule instead of restarting them.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train_recipe import DATA, FEWSOUND_TINY, TINY, TRAIN, train_log_rows  # noqa: E402

EPOCHS = 8
STEPS_PER_EPOCH = 4  # samples_per_epoch 16 / batch_size 4
LR = 0.001  # TINY's --lr


def expected_lr(steps, total_steps):
    """The OneCycle LR of the YAML after ``steps`` optimizer steps."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=LR)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=LR * 25, div_factor=25, pct_start=0.05, total_steps=total_steps
    )
    for _ in range(steps):
        opt.step()
        sched.step()
    return opt.param_groups[0]["lr"]


@pytest.mark.slow
def test_sigkill_and_rerun_continues(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=ROOT)
    cmd = [sys.executable, TRAIN, os.path.join(ROOT, "hparams", "fewsound_kan.yaml"),
           "--data_folder", DATA, "--output_folder", str(out), *TINY, *FEWSOUND_TINY,
           "--number_of_epochs", str(EPOCHS), "--valid_every", "1000",
           "--ckpt_interval_steps", "3", "--lr_schedule", "onecycle"]  # an lr that changes per step
    log_path = out / "train_log.txt"

    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if log_path.exists() and len(log_path.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.3)  # usually mid-epoch, after an intra-epoch checkpoint
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    before = [r for r in train_log_rows(out) if "epoch" in r]
    killed_after = int(before[-1]["epoch"])
    assert killed_after < EPOCHS

    rerun = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Loading a checkpoint" in rerun.stdout + rerun.stderr

    rows = [r for r in train_log_rows(out) if "epoch" in r]
    resumed = rows[len(before):]
    # The rerun starts where the checkpoint was (it may redo the last logged epoch
    # if the kill came between its log line and its checkpoint), not at epoch 1.
    assert int(resumed[0]["epoch"]) in (killed_after, killed_after + 1)
    assert sorted({int(r["epoch"]) for r in rows}) == list(range(1, EPOCHS + 1))
    total = EPOCHS * STEPS_PER_EPOCH
    for row in rows:
        epoch = int(row["epoch"])
        # optimizer steps continue across the kill (an intra-epoch resume skips
        # the batches already done)...
        assert int(row["steps"]) == epoch * STEPS_PER_EPOCH, row
        # ...and so does the LR schedule (logged with 3 significant digits)
        assert float(row["lr"]) == pytest.approx(
            expected_lr(epoch * STEPS_PER_EPOCH, total), rel=1e-2
        ), row

    ckpts = sorted(d for d in os.listdir(out / "save") if d.startswith("CKPT"))
    last = out / "save" / ckpts[-1]
    scheduler = torch.load(last / "scheduler.ckpt", weights_only=False)
    assert scheduler["last_epoch"] == total
    assert f"optimizer_step: {total}" in (last / "brain.ckpt").read_text()


def _step_losses(output_folder):
    """``{optimizer step: loss}`` from log.txt's per-step lines (the last line of
    a step wins: after a resume, the rerun's)."""
    losses = {}
    with open(os.path.join(output_folder, "log.txt"), encoding="utf-8") as fin:
        for line in fin:
            if "Train step " in line:
                step = int(line.split("Train step ")[1].split()[0])
                losses[step] = line.rsplit("loss ", 1)[1].strip()
    return losses


def _weights(output_folder):
    """The exported model's tensors (``inference/``: the checkpoint of lowest valid loss)."""
    folder = os.path.join(output_folder, "inference")
    return [torch.load(os.path.join(folder, f"{name}.ckpt"), weights_only=True)
            for name in ("encoder", "head")]


@pytest.mark.slow
@pytest.mark.parametrize("num_workers", ["0", "2"])
def test_sigkill_resume_is_exact(tmp_path, num_workers):
    """Killed mid-epoch and resumed: the same per-step losses and final weights
    as an uninterrupted run (the crops are keyed by seed, epoch and draw)."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")

    tiny = list(TINY)
    tiny[tiny.index("--num_workers") + 1] = num_workers

    def command(out):
        return [sys.executable, TRAIN, os.path.join(ROOT, "hparams", "fewsound_kan.yaml"),
                "--data_folder", DATA, "--output_folder", str(out), *tiny, *FEWSOUND_TINY,
                "--number_of_epochs", "4", "--valid_every", "1000", "--ckpt_interval_steps",
                "3", "--log_every", "1"]

    straight = tmp_path / "straight"
    result = subprocess.run(command(straight), env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(command(out), env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if (out / "log.txt").exists() and "Train step 7 " in (out / "log.txt").read_text():
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)  # mid-epoch 2, after the step-6 checkpoint
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    killed_at = max(_step_losses(out))
    assert killed_at < 16
    rerun = subprocess.run(command(out), env=env, cwd=ROOT, capture_output=True, text=True,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Loading a checkpoint" in rerun.stdout + rerun.stderr

    expected, resumed = _step_losses(straight), _step_losses(out)
    assert sorted(expected) == list(range(1, 17))
    assert resumed == expected  # every step's loss, before and after the kill
    for a, b in zip(_weights(straight), _weights(out), strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), key
