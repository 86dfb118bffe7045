"""Tests of the six functional target networks."""

import logging

import pytest
import torch

from fewsound_sb.nnet.inr import (
    FINER, INR_REGISTRY, KAN, SIREN, WIRE, build_inr, linear, time_grid,
)

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


def _one_unit(cls, **kwargs):
    """A target with one hidden unit, weights set by hand (float64)."""
    net = cls(hidden_sizes=(1,), **kwargs).double()
    with torch.no_grad():
        net.w0.fill_(0.8)
        net.b0.fill_(-0.3)
        net.w1.fill_(1.7 if not net.w1.is_complex() else complex(1.7, -0.6))
        net.b1.fill_(0.2 if not net.b1.is_complex() else complex(0.2, 0.9))
    return net


T = torch.tensor([[-0.9], [-0.2], [0.013], [0.55]], dtype=torch.float64)


def test_siren_scales_each_layer_input_by_omega():
    """sin(W(ωx) + b): ω_first on t, ω_hidden on the last layer's input too."""
    net = _one_unit(SIREN, first_omega=7.0, hidden_omega=3.0)
    z = 0.8 * 7.0 * T - 0.3
    expected = 1.7 * 3.0 * torch.sin(z) + 0.2
    assert torch.allclose(net(T), expected, atol=1e-12)


def test_finer_scales_the_preactivation():
    """sin(ω(|z| + 1)z) with z = W x + b; the output layer is plain linear."""
    net = _one_unit(FINER, first_omega=7.0, hidden_omega=3.0)
    z = 0.8 * T - 0.3
    expected = 1.7 * torch.sin(7.0 * (z.abs() + 1) * z) + 0.2
    assert torch.allclose(net(T), expected, atol=1e-12)


def test_wire_gabor_on_the_preactivation():
    """exp(iωz − |s z|²) with z = W x + b, output the real part."""
    net = _one_unit(WIRE, first_omega=7.0, hidden_omega=3.0, scale=2.0).float()  # complex64
    z = (0.8 * T - 0.3).to(torch.complex128)
    x = torch.exp(1j * 7.0 * z - (2.0 * z).abs().square())
    expected = (complex(1.7, -0.6) * x + complex(0.2, 0.9)).real
    assert torch.allclose(net(T.float()).double(), expected, atol=1e-5)


def _wire_complex_reference(net, t, params):
    """WIRE's forward with complex tensors (the authors' formulation)."""
    def gabor(z, omega):
        return torch.exp(1j * omega * z - (net.scale * z).abs().square())

    x = gabor(linear(t, params["w0"], params["b0"]), net.first_omega)
    for i in range(1, net.n_layers):
        x = linear(x, params[f"w{i}"], params[f"b{i}"])
        if i < net.n_layers - 1:
            x = gabor(x, net.hidden_omega)
    return x.real


def test_wire_real_arithmetic_equals_complex_formulation():
    torch.manual_seed(0)
    net = build_inr("wire").double()
    w = torch.stack([net.flat_weights().detach(), build_inr("wire").double().flat_weights().detach()])
    t = time_grid(4096, dtype=torch.float64)[:512]  # the start of a 1.5 s clip at 22,050 Hz / 8
    ours = net.forward_flat(t, w)
    reference = _wire_complex_reference(net, t.unsqueeze(0), net.unflatten(w))
    assert ours.shape == reference.shape == (2, 512, 1)
    assert ours.abs().max() > 0.05  # not a trivial zero output
    assert torch.allclose(ours, reference, atol=1e-10, rtol=1e-8)


def test_wire_gradients_equal_complex_formulation():
    """The hand-written Gabor backward gives autograd's gradients of the complex form."""
    torch.manual_seed(1)
    net = build_inr("wire").double()
    w = net.flat_weights().detach().unsqueeze(0).repeat(2, 1)
    w = (w + 1e-3 * torch.randn_like(w)).requires_grad_()
    t = time_grid(4096, dtype=torch.float64)[:256]
    ours, = torch.autograd.grad(net.forward_flat(t, w).square().sum(), w)
    w_ref = w.detach().clone().requires_grad_()
    out = _wire_complex_reference(net, t.unsqueeze(0), net.unflatten(w_ref))
    reference, = torch.autograd.grad(out.square().sum(), w_ref)
    assert reference.abs().max() > 1.0  # the gradient is not trivially small
    assert torch.allclose(ours, reference, atol=1e-8, rtol=1e-7)


def test_gabor_wavelet_backward_gradcheck():
    from fewsound_sb.nnet.inr import gabor_wavelet

    z = (0.3 * torch.randn(2, 5, 8, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: gabor_wavelet(x, 3.0, 0.7), (z,))


def test_wire_gauss_form_equals_complex_formulation():
    """The compiled path's form (Gauss's three products, widths padded to 16), run
    uncompiled in float64: the complex form's values and weight gradients."""
    from fewsound_sb.nnet.inr import _wire_gauss_forward

    torch.manual_seed(2)
    net = build_inr("wire").double()  # widths 90 and 70: both padded
    w = net.flat_weights().detach().unsqueeze(0).repeat(2, 1)
    w = (w + 1e-3 * torch.randn_like(w)).requires_grad_()
    t = time_grid(4096, dtype=torch.float64)[:256].unsqueeze(0)
    first, hidden, last = net.gauss_params(net.unflatten(w))
    assert first[0].shape == (2, 96, 1) and hidden[0][0].shape == (6, 96, 96)
    assert hidden[-1][0].shape == (6, 96, 80) and last[0].shape == (2, 80, 1)
    ours = _wire_gauss_forward(t, first, hidden, last, net.first_omega, net.hidden_omega, net.scale**2)
    grad, = torch.autograd.grad(ours.square().sum(), w)
    w_ref = w.detach().clone().requires_grad_()
    reference = _wire_complex_reference(net, t, net.unflatten(w_ref))
    grad_ref, = torch.autograd.grad(reference.square().sum(), w_ref)
    assert ours.abs().max() > 0.05 and grad_ref.abs().max() > 1.0  # neither trivially small
    assert torch.allclose(ours, reference, atol=1e-10, rtol=1e-8)
    assert torch.allclose(grad, grad_ref, atol=1e-8, rtol=1e-7)


@pytest.mark.parametrize("name", ["siren", "finer", "wire", "nerf", "rff"])
def test_compiled_path_is_the_same_network(name, caplog, monkeypatch):
    """compile=True gives compile=False's outputs and weight gradients on chunked, batched calls."""
    from fewsound_sb.nnet import kan as kan_module
    from fewsound_sb.nnet.kan import compile_available

    if not compile_available():
        pytest.skip("no compiler for torch.compile here")
    monkeypatch.setattr(kan_module, "_LOGGED", set())  # the path line is logged once per process
    torch.manual_seed(0)
    hidden = (12, 10) if name == "wire" else (16, 16)  # WIRE's compiled path pads 12 and 10 to 16
    eager = build_inr(name, hidden_sizes=hidden, compile=False)
    with caplog.at_level(logging.INFO):
        net = build_inr(name, hidden_sizes=hidden, compile=True)
    assert f"{type(net).__name__}: torch.compile'd path" in caplog.text
    net.load_state_dict(eager.state_dict())
    net.chunk_elements = eager.chunk_elements = 3 * 300 * 32  # three chunks of 300 points
    t = time_grid(900).unsqueeze(0)
    w = torch.stack([eager.flat_weights().detach(), 1.01 * eager.flat_weights().detach()])
    results = []
    for model in (eager, net):
        wb = w.clone().requires_grad_()
        y = model.forward_flat(t, wb)
        results.append((y, *torch.autograd.grad(y.square().sum(), wb)))
    for ref, got in zip(*results):
        assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5 * float(ref.abs().max()))
    assert net._compiled_now is None  # reset after the call
    from fewsound_sb.nnet import inr, kan

    compiled_fns = (inr._wire_gauss_forward,) if name == "wire" else (type(net).forward_params,)
    assert all(fn in kan._COMPILED for fn in compiled_fns)  # the compiled path did run
    with torch.no_grad():  # inference
        assert torch.allclose(net(t[0]), eager(t[0]), atol=1e-5 * float(results[0][0].abs().max()))


def test_compile_defaults():
    """NeRF and RFF default to eager (measured slower compiled); the others to "auto"."""
    from fewsound_sb.nnet.kan import compile_available

    for name in ("nerf", "rff"):
        assert not build_inr(name, hidden_sizes=(8,))._use_compiled(10**9)
    for name in ("kan", "siren", "finer", "wire"):
        net = build_inr(name)
        assert net.compile == "auto"
        assert net._use_compiled(10**9) == compile_available()
        assert not net._use_compiled(net.compile_min_points - 1)
    with pytest.raises(ValueError, match="compile must be"):
        build_inr("siren", compile="sometimes")


def test_wire_hidden_init_is_scaled_by_hidden_omega():
    net = build_inr("wire", hidden_omega=30.0)
    for i in range(1, net.n_layers):
        parts = torch.view_as_real(getattr(net, f"w{i}"))
        bound = (6 / parts.shape[1]) ** 0.5 / 30.0
        assert parts.abs().max() <= bound
        assert parts.abs().max() > 0.95 * bound  # uniform over the whole range
    assert net.w0.abs().max() <= 1.0 and net.w0.abs().max() > 0.9
