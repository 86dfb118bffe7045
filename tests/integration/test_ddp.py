"""Two-process DDP run of recipes/VCTK/train.py on CPU (gloo backend).

Each process runs train.py through a small launcher written by this test:
it records every file the process writes under the output folder (Python
audit hooks: ``open`` for writing, ``os.rename``/``os.replace``) and, after
training, a hash of each module's weights. Both ranks must end with identical
weights, and rank 1 must not have written any file.
"""

import csv
import hashlib
import json
import os
import subprocess
import sys

import numpy
import pytest
import soundfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_train_recipe import DATA, FEWSOUND_TINY, TINY, TRAIN, train_log_rows  # noqa: E402

LAUNCHER = r'''
import atexit, hashlib, json, os, runpy, sys
out_folder = os.path.realpath(os.environ["FS_TEST_OUTPUT"])
dump = os.environ["FS_TEST_DUMP"]
rank = os.environ["RANK"]
writes = []

def audit(event, args):
    path = None
    if event == "open" and args[0] is not None and not isinstance(args[0], int):
        mode, flags = args[1], args[2]
        writing = (mode is not None and any(c in mode for c in "wax+")) or (
            mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        path = args[0] if writing else None
    elif event in ("os.rename", "os.replace"):
        path = args[1]
    if path is not None:
        path = os.path.realpath(os.fsdecode(path))
        if path.startswith(out_folder):
            writes.append(path)

sys.addaudithook(audit)

import torch
from fewsound_sb import brains
state = {}
_fit = brains.FewSoundBrain.fit
def fit(self, *args, **kwargs):
    _fit(self, *args, **kwargs)
    state["hashes"] = {
        name: hashlib.sha256(b"".join(
            t.detach().cpu().contiguous().numpy().tobytes()
            for t in brains._unwrap(module).state_dict().values())).hexdigest()
        for name, module in self.modules.items()
    }
    state["steps"] = self.optimizer_step
brains.FewSoundBrain.fit = fit

@atexit.register
def save():
    with open(os.path.join(dump, f"rank{rank}.json"), "w") as fout:
        json.dump({"writes": writes, **state}, fout)

sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


@pytest.mark.slow
def test_ddp_two_processes_gloo(tmp_path):
    out, dump = tmp_path / "run", tmp_path / "dump"
    dump.mkdir()
    launcher = tmp_path / "launch.py"
    launcher.write_text(LAUNCHER, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=ROOT, FS_TEST_OUTPUT=str(out), FS_TEST_DUMP=str(dump),
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port=29531", str(launcher), TRAIN,
           os.path.join(ROOT, "hparams", "fewsound_kan.yaml"), "--data_folder", DATA,
           "--output_folder", str(out), *TINY, *FEWSOUND_TINY,
           "--number_of_epochs", "2", "--distributed_launch", "--distributed_backend=gloo"]
    result = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    ranks = [json.loads((dump / f"rank{r}.json").read_text()) for r in (0, 1)]
    # the same weights on both ranks (DDP averaged the gradients) ...
    assert ranks[0]["hashes"] == ranks[1]["hashes"]
    assert set(ranks[0]["hashes"]) == {"encoder", "head"}
    # ... after each rank did half of the epoch: 16 samples / 2 ranks / batch 4
    assert ranks[0]["steps"] == ranks[1]["steps"] == 2 * 2
    # only rank 0 writes files (the hook sees rank 0's writes, so it works)
    assert ranks[0]["writes"], "the audit hook recorded nothing on rank 0"
    assert ranks[1]["writes"] == [], ranks[1]["writes"]
    # and nothing is written twice: one log line per epoch, one test line
    rows = train_log_rows(out)
    assert [r.get("epoch") for r in rows] == ["1", "2", None]
    assert len([d for d in os.listdir(out / "save") if d.startswith("CKPT")]) == 1


@pytest.mark.slow
def test_ddp_validation_is_sharded_and_gives_the_one_process_table(tmp_path):
    """Two gloo processes evaluate half of the clips each (5 clips: 3 + 2) and
    rank 0 writes the table of all of them: the table of one process.

    ``--lr 0`` keeps the weights at their (seeded) initialisation, so both
    runs evaluate the same model."""
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    tiny = list(TINY)
    for key, value in (("--lr", "0.0"), ("--n_valid", "5"), ("--n_test", "5"),
                       ("--n_examples", "3")):
        tiny[tiny.index(key) + 1] = value
    common = [TRAIN, os.path.join(ROOT, "hparams", "fewsound_kan.yaml"), "--data_folder", DATA,
              *tiny, *FEWSOUND_TINY, "--number_of_epochs", "1", "--valid_every", "1"]
    one = tmp_path / "one"
    single = subprocess.run([sys.executable, *common, "--output_folder", str(one)], env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    two = tmp_path / "two"
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         "--master_port=29533", *common, "--output_folder", str(two), "--distributed_launch",
         "--distributed_backend=gloo"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, (ddp.stdout + ddp.stderr)[-4000:]
    for name in ("valid_epoch1", "test_epoch1"):
        expected, got = (_table(folder / "eval" / f"{name}.csv") for folder in (one, two))
        assert got.keys() == expected.keys() and len(expected) == 3, name
        for metric, row in expected.items():
            assert got[metric]["n_clips"] == row["n_clips"] == "5", (name, metric)  # none twice
            # the same clips: equal up to float noise of other batch shapes (4+1 vs 3 and 2).
            # At initialisation much of the prediction's spectrum lies near rounding level,
            # where LSD's log ratio turns that noise into ~0.005 (log10 units) of difference,
            # so LSD gets an absolute tolerance; MSE and SI-SNR agree to ~1e-8 relative.
            tolerance = dict(abs=0.02) if metric == "lsd" else dict(rel=1e-3)
            for field in ("mean", "std"):
                assert float(got[metric][field]) == pytest.approx(float(row[field]), **tolerance)
        assert sorted(os.listdir(two / "eval" / name)) == sorted(os.listdir(one / "eval" / name))
        recs = sorted((one / "eval" / name).glob("*_rec.wav"))
        assert len(recs) == 3, recs  # --n_examples 3
        for wav in recs:  # the same reconstructions
            expected, _ = soundfile.read(wav)
            got, _ = soundfile.read(two / "eval" / name / wav.name)
            assert numpy.abs(got - expected).max() <= 2 / 2**15, wav.name  # 16-bit PCM: <= 2 LSB


def _table(path):
    with open(path, encoding="utf-8", newline="") as fin:
        return {row["metric"]: row for row in csv.DictReader(fin)}
