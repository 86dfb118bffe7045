"""LR schedules by name (fewsound_sb.schedules)."""

import pytest
import torch

from fewsound_sb.schedules import lr_schedule


def _rates(name, steps=200, lr=1e-4, **kwargs):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=lr)
    sched = lr_schedule(opt, total_steps=steps, name=name, **kwargs)
    rates = []
    for _ in range(steps):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return rates, opt, sched


def test_constant_keeps_the_rate():
    rates, _, _ = _rates("constant")
    assert rates == [1e-4] * 200


def test_cosine_decays_from_lr_to_zero():
    rates, _, _ = _rates("cosine")
    assert rates[0] == pytest.approx(1e-4)
    assert rates[100] == pytest.approx(0.5e-4, rel=1e-6)  # half-way: half the rate
    assert rates[-1] < 1e-7 and all(a >= b for a, b in zip(rates, rates[1:]))


def test_onecycle_is_the_papers_shape():
    rates, _, _ = _rates("onecycle", max_factor=25, pct_start=0.05)
    peak = max(range(200), key=rates.__getitem__)
    assert rates[0] == pytest.approx(1e-4)  # starts at lr (div_factor = max_factor)
    assert rates[peak] == pytest.approx(2.5e-3)
    assert 8 <= peak <= 10  # 5 % of 200 steps
    assert rates[-1] < 1e-7


def test_schedule_state_round_trips():
    _, opt, sched = _rates("onecycle", steps=50)
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=1e-4)
    sched2 = lr_schedule(opt2, total_steps=50, name="onecycle")
    sched2.load_state_dict(sched.state_dict())
    assert sched2.last_epoch == sched.last_epoch == 50


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "linear"}, "one of onecycle, cosine, constant"),
    ({"name": "onecycle", "max_factor": 0.5}, "lr_max_factor must be >= 1"),
])
def test_bad_settings_fail_clearly(kwargs, match):
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    with pytest.raises(ValueError, match=match):
        lr_schedule(opt, total_steps=10, **kwargs)
