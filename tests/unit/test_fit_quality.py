"""Every target network fits real audio: a tone and a short speech clip.

Each target is built with its shipped fit YAML (hparams/inr/<name>.yaml:
knobs, learning rate, AdamW settings), fitted with the time-domain MSE (the
YAML's STFT loss would triple the test time) and must bring the MSE of its
fit under 10 % of the MSE of a silent output (SNR above 10 dB).
A silent output scores 100 %, and so does a target that ignores its
weights. The clips lie at the start of the time grid of a 32,768-sample
clip (the paper's length), so the networks see the frequencies, in units
of t, that they see in a real fit.
"""

import glob
import math
import os

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from fewsound_sb.dataio import read_audio
from fewsound_sb.nnet.inr import time_grid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEECH = sorted(glob.glob(os.path.join(
    REPO, "tests", "samples", "VCTK-mini", "wav48_silence_trimmed", "*", "*.flac")))[0]
SAMPLE_RATE = 22050
GRID = 32768  # the paper's clip: the test clips are its first NUM_SAMPLES points
NUM_SAMPLES = 2048
MAX_RELATIVE_MSE = 0.1
# Steps per target: enough for the shipped settings, a few seconds each on one CPU core.
STEPS = {"kan": 150, "nerf": 300, "siren": 200, "finer": 100, "wire": 200, "rff": 150}


def tone():
    """A 220 Hz tone with a 1.1 kHz partial."""
    s = torch.arange(NUM_SAMPLES) / SAMPLE_RATE
    return 0.5 * torch.sin(2 * math.pi * 220 * s) + 0.25 * torch.sin(2 * math.pi * 1100 * s)


def speech():
    """93 ms of espeak speech from the embedded corpus, peak-normalised."""
    wav = read_audio(SPEECH, sample_rate=SAMPLE_RATE).reshape(-1)[8000: 8000 + NUM_SAMPLES]
    return wav / wav.abs().max()


def fit(name, signal, steps):
    """Fits ``signal`` with the target and optimiser of its YAML (MSE loss).

    Returns
    -------
    tuple of float
        Final MSE relative to the silent output's, and correlation with the signal.
    """
    with open(os.path.join(REPO, "hparams", "inr", f"{name}.yaml")) as f:
        hparams = load_hyperpyyaml(f)
    torch.manual_seed(0)
    net = hparams["target"]()
    weights = torch.nn.Parameter(net.flat_weights().detach().unsqueeze(0).clone())
    optimizer = torch.optim.AdamW(
        [weights], lr=hparams["lr"], betas=hparams["betas"], eps=hparams["adam_eps"],
        weight_decay=hparams["weight_decay"],
    )
    t = time_grid(GRID)[:NUM_SAMPLES]
    target = signal.unsqueeze(0)
    for _ in range(steps):
        optimizer.zero_grad()
        estimate = net.forward_flat(t, weights).squeeze(-1)
        (estimate - target).pow(2).mean().backward()
        optimizer.step()
    with torch.no_grad():
        estimate = net.forward_flat(t, weights).squeeze(-1)[0]
    relative = float((estimate - signal).pow(2).mean() / signal.pow(2).mean())
    corr = float(torch.corrcoef(torch.stack([estimate, signal]))[0, 1])
    return relative, corr


@pytest.mark.parametrize("signal", ["tone", "speech"])
@pytest.mark.parametrize("name", sorted(STEPS))
def test_target_fits_well_below_silence(name, signal):
    wav = tone() if signal == "tone" else speech()
    relative, corr = fit(name, wav, STEPS[name])
    assert relative < MAX_RELATIVE_MSE, (
        f"{name} on the {signal}: MSE {relative:.3f} of silence's after {STEPS[name]} steps "
        f"(correlation {corr:.3f})"
    )
    assert corr > 0.9
