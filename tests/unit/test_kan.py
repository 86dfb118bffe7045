"""Tests of the closed-form B-spline basis and the KAN layer."""

import pytest
import torch

from fewsound_sb.nnet.kan import (
    KANLayer,
    bspline_basis,
    compile_available,
    combine_weights,
    kan_features,
    kan_layer,
    uniform_knots,
)


def cox_de_boor(x, knots, order):
    """Straightforward reference: Cox–de Boor over the whole extended knot vector."""
    x = x.unsqueeze(-1).double()
    knots = knots.double()
    bases = ((x >= knots[:-1]) & (x < knots[1:])).double()
    for k in range(1, order + 1):
        left = (x - knots[: -(k + 1)]) / (knots[k:-1] - knots[: -(k + 1)]) * bases[..., :-1]
        right = (knots[k + 1:] - x) / (knots[k + 1:] - knots[1:(-k)]) * bases[..., 1:]
        bases = left + right
    return bases


@pytest.mark.parametrize("order", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("grid_size", [1, 5, 10])
def test_closed_form_equals_cox_de_boor(order, grid_size):
    torch.manual_seed(0)
    grid_range = (-1.0, 1.0)
    # Inputs inside, at the edges of, and beyond the extended grid.
    x = torch.cat([torch.rand(500, 3) * 4 - 2, torch.linspace(-1.5, 1.5, 30).unsqueeze(-1).expand(-1, 3)])
    ours = bspline_basis(x, grid_size, order, grid_range).double()
    ref = cox_de_boor(x, uniform_knots(grid_size, order, grid_range), order)
    assert ours.shape == ref.shape == (530, 3, grid_size + order)
    assert torch.allclose(ours, ref, atol=1e-5)


def test_other_grid_range():
    x = torch.rand(200, 2) * 6 - 3
    ours = bspline_basis(x, 7, 3, (-2.0, 2.5)).double()
    ref = cox_de_boor(x, uniform_knots(7, 3, (-2.0, 2.5)), 3)
    assert torch.allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_hand_written_backward_matches_autograd(order):
    torch.manual_seed(1)
    x = (torch.rand(64, 3, dtype=torch.float64) * 3 - 1.5).requires_grad_()
    torch.autograd.gradcheck(lambda v: kan_features(v, 4, order, (-1.0, 1.0)), (x,))


def test_silu_slot_and_outside_grid():
    x = torch.tensor([[5.0, -5.0, 0.3]])
    feats = kan_features(x, 4, 2)
    assert torch.allclose(feats[..., 0], torch.nn.functional.silu(x))
    assert feats[0, 0, 1:].abs().sum() == 0 and feats[0, 1, 1:].abs().sum() == 0
    assert torch.isclose(feats[0, 2, 1:].sum(), torch.tensor(1.0))


def test_kan_layer_matches_explicit_formula():
    torch.manual_seed(2)
    x = torch.rand(2, 10, 3) * 2 - 1
    bw, sw, ss = torch.randn(2, 4, 3), torch.randn(2, 4, 3, 7), torch.randn(2, 4, 3)
    y = kan_layer(x, combine_weights(bw, sw, ss), grid_size=5, spline_order=2)
    basis = bspline_basis(x, 5, 2)  # [2, 10, 3, 7]
    expected = torch.einsum("bni,boi->bno", torch.nn.functional.silu(x), bw) + torch.einsum(
        "bnic,boic->bno", basis, sw * ss.unsqueeze(-1)
    )
    assert torch.allclose(y, expected, atol=1e-5)
    # Shared inputs (batch 1) against per-item weights.
    y_shared = kan_layer(x[:1], combine_weights(bw, sw, ss), grid_size=5, spline_order=2)
    assert torch.allclose(y_shared[1], kan_layer(x[:1], combine_weights(bw, sw, ss)[1:], 5, 2)[0], atol=1e-5)


def test_kan_layer_bad_shapes():
    w = torch.zeros(2, 4, 3, 8)
    with pytest.raises(ValueError, match="expected inputs"):
        kan_layer(torch.zeros(2, 5, 2), w, 5, 2)
    with pytest.raises(ValueError, match="coefficients per edge"):
        kan_layer(torch.zeros(2, 5, 3), w, 10, 2)


def test_kan_layer_module_learns():
    torch.manual_seed(3)
    layer = KANLayer(1, 1, grid_size=8, spline_order=3)
    x = torch.linspace(-1, 1, 200).unsqueeze(-1)
    y = torch.sin(3 * x)
    opt = torch.optim.Adam(layer.parameters(), 0.05)
    first = None
    for _ in range(200):
        opt.zero_grad()
        loss = (layer(x) - y).pow(2).mean()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.01 * first


@pytest.mark.skipif(not compile_available(), reason="torch.compile is not available in this torch build")
@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("bx,batch", [(1, 1), (1, 3), (3, 3)])
def test_compiled_layer_matches_default(order, bx, batch):
    """kan_layer(compiled=True) gives the default path's outputs and gradients (inside and beyond the grid)."""
    torch.manual_seed(0)
    x = (torch.rand(bx, 37, 5) * 3 - 1.5).requires_grad_()
    w = torch.randn(batch, 4, 5, 1 + 6 + order).requires_grad_()
    outs = []
    for compiled in (False, True):
        try:
            y = kan_layer(x, w, grid_size=6, spline_order=order, compiled=compiled)
        except Exception as exc:  # no C++ compiler / backend for Inductor here
            if compiled:
                pytest.skip(f"torch.compile failed on this machine: {type(exc).__name__}: {exc}")
            raise
        outs.append((y, *torch.autograd.grad((y ** 2).sum(), (x, w))))
    for ref, got in zip(*outs):
        assert torch.allclose(got, ref, rtol=1e-5, atol=1e-5 * max(1.0, float(ref.abs().max())))
    with torch.no_grad():  # inference path (no saved features)
        y = kan_layer(x, w, grid_size=6, spline_order=order, compiled=True)
    assert torch.allclose(y, outs[0][0], atol=1e-5 * max(1.0, float(outs[0][0].abs().max())))


@pytest.mark.skipif(not compile_available(), reason="torch.compile is not available in this torch build")
def test_kan_inr_compile_flag():
    """KAN(compile=True) is the same network as KAN() (tiny sizes)."""
    from fewsound_sb.nnet.inr import KAN

    torch.manual_seed(0)
    ref = KAN(encoding_length=2, hidden_sizes=(4,), grid_size=3, spline_order=3)
    net = KAN(encoding_length=2, hidden_sizes=(4,), grid_size=3, spline_order=3, compile=True)
    net.load_state_dict(ref.state_dict())
    t = torch.rand(16, 1)
    try:
        out = net(t)
    except Exception as exc:
        pytest.skip(f"torch.compile failed on this machine: {type(exc).__name__}: {exc}")
    assert torch.allclose(out, ref(t), atol=1e-5)


def test_workspace_reuses_buffers_and_bounds_what_it_keeps():
    """Released buffers come back for the same size; the oldest go first past the count or byte limit."""
    from fewsound_sb.nnet.kan import _Workspace

    like = torch.empty(0)
    ws = _Workspace(max_buffers=3, max_bytes=10 * 4 * 100)  # ten 100-float buffers' worth of bytes
    first = ws.acquire((10, 10), like)
    ws.release(first)
    again = ws.acquire((5, 20), like)  # same element count: the same storage, reshaped
    assert again.data_ptr() == first.data_ptr() and again.shape == (5, 20)
    bufs = [ws.acquire((100,), like) for _ in range(4)]  # 4 different buffers (none kept now)
    assert len({b.data_ptr() for b in bufs}) == 4
    for b in bufs:
        ws.release(b)
    assert len(ws._free) == 3  # count limit: the oldest was dropped
    assert ws.acquire((100,), like).data_ptr() == bufs[1].data_ptr()  # first match = oldest kept
    big = ws.acquire((900,), like)
    ws.release(big)  # 900 + 2 x 100 floats > the 1,000-float byte limit: oldest dropped until it fits
    assert [b.numel() for _, b in ws._free] == [100, 900]
    ws.release(ws.acquire((2000,), like))  # larger than the limit alone: nothing kept
    assert ws._free == []
    ws.clear()
