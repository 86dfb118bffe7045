"""Tests of the six functional target networks."""

import pytest
import torch

from fewsound_sb.nnet.inr import INR_REGISTRY, KAN, build_inr, time_grid

TABLE1_PARAMS = {
    "kan": 33768, "nerf": 33261, "siren": 31191, "finer": 31191, "wire": 31191, "rff": 39201,
}
NAMES = sorted(TABLE1_PARAMS)


@pytest.mark.parametrize("name", NAMES)
def test_table1_parameter_counts(name):
    net = build_inr(name)
    assert sum(p.numel() for p in net.parameters()) == TABLE1_PARAMS[name]
    assert net.flat_weights().numel() == net.num_params
    assert sum(b.numel for b in net.spec) == net.num_params


@pytest.mark.parametrize("name", NAMES)
def test_forward_flat_agrees_with_module(name):
    torch.manual_seed(0)
    net = build_inr(name)
    t = time_grid(257)
    own = net(t)
    assert own.shape == (257, 1)
    w = net.flat_weights().detach()
    other = build_inr(name).flat_weights().detach()
    out = net.forward_flat(t, torch.stack([w, other, w]))
    assert out.shape == (3, 257, 1)
    assert torch.allclose(out[0], own, atol=1e-5, rtol=1e-4)
    assert torch.allclose(out[2], own, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(out[1], own)
    # Per-item time grids give the same answer as a shared one.
    per_item = net.forward_flat(t.unsqueeze(0).expand(3, -1, -1), torch.stack([w, other, w]))
    assert torch.allclose(per_item, out, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_flow_to_flat_weights(name):
    net = build_inr(name)
    w = torch.stack([net.flat_weights().detach()] * 2).requires_grad_()
    y = net.forward_flat(time_grid(128), w)
    y.pow(2).sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all()
    assert (w.grad.abs().sum(1) > 0).all()
    # Item 0's output does not depend on item 1's weights.
    w2 = w.detach().clone().requires_grad_()
    net.forward_flat(time_grid(128), w2)[0].sum().backward()
    assert w2.grad[1].abs().sum() == 0


@pytest.mark.parametrize("name", NAMES)
def test_load_flat_weights_roundtrip(name):
    a, b = build_inr(name), build_inr(name)
    b.load_flat_weights(a.flat_weights().detach())
    t = time_grid(64)
    assert torch.allclose(a(t), b(t), atol=1e-6)


def test_batched_time_module_forward():
    net = build_inr("kan")
    t = torch.stack([time_grid(32), time_grid(32) * 0.5])
    y = net(t)
    assert y.shape == (2, 32, 1)
    assert torch.allclose(y[1], net(time_grid(32) * 0.5), atol=1e-6)


def test_kan_ablation_counts():
    # paper Tables 7-10 (#Params): L=8, [48,24,12] -> 31,080; k=3 -> 33,300; G=17 -> 46,620; no scaler -> 28,860.
    assert KAN(encoding_length=8).num_params == 31080
    assert KAN(encoding_length=8, spline_order=3).num_params == 33300
    assert KAN(encoding_length=8, grid_size=17).num_params == 46620
    assert KAN(encoding_length=8, enable_scale_spline=False).num_params == 28860
    assert build_inr("nerf", encoding_length=10).num_params == 32901


def test_time_grid_and_errors():
    t = time_grid(32768)
    assert t.shape == (32768, 1) and t[0] == -1 and t[-1] == 1
    with pytest.raises(ValueError, match="unknown target network 'mlp'"):
        build_inr("mlp")
    net = build_inr("siren")
    with pytest.raises(ValueError, match=r"expected flat weights \[B, 31191\]"):
        net.forward_flat(time_grid(8), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="expected time points"):
        net.forward_flat(torch.zeros(8), torch.zeros(1, net.num_params))
    with pytest.raises(ValueError, match="time points have batch 3"):
        net.forward_flat(torch.zeros(3, 8, 1), torch.zeros(2, net.num_params))
    with pytest.raises(ValueError, match="at least 2"):
        time_grid(1)
    assert set(INR_REGISTRY) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_each_network_fits_a_tone(name):
    """A few steps of Adam on a 200 Hz tone reduce the error: the networks train."""
    torch.manual_seed(0)
    net = build_inr(name)
    t = time_grid(2048)
    y = 0.5 * torch.sin(2 * torch.pi * 40 * (t + 1))
    opt = torch.optim.Adam(net.parameters(), 1e-4 if name in ("siren", "finer") else 2e-3)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = (net(t) - y).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < 0.7 * losses[0]
