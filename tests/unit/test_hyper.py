"""Tests for fewsound_sb.nnet.hyper: G, H, FewSound and HyperSound heads."""

import math
from typing import NamedTuple

import pytest
import torch

from fewsound_sb.nnet.inr import build_inr, time_grid
from fewsound_sb.nnet.hyper import (
    FewSoundHead,
    HyperSoundHead,
    MLPHypernetwork,
    UniversalWeightEncoder,
    count_parameters,
    mlp_num_params,
)


class _PS(NamedTuple):
    """Hand-written spec entries for init tests on synthetic layouts."""

    name: str
    shape: tuple
    kind: str
    fan_in: int


# Tiny real targets (fewsound_sb.nnet.inr); P in parentheses.
TINY = {
    "nerf": dict(encoding_length=3, hidden_sizes=(16, 16)),  # (401)
    "kan": dict(encoding_length=2, hidden_sizes=(4,), grid_size=3),  # (140)
    "siren": dict(hidden_sizes=(8, 8)),  # (97)
}


def _tiny_target(name="nerf"):
    torch.manual_seed(0)
    return build_inr(name, **TINY[name])


def _time(n):
    return time_grid(n)  # [T, 1]


def _fewsound(target, **kw):
    args = dict(
        encoder_dim=6,
        hypernet_hidden=(32, 32),
        g_output_dim=4,
        g_kernel_size=3,
        warmup_epochs=0,
    )
    args.update(kw)
    return FewSoundHead(target, **args)


# ---------------------------------------------------------------- sizes
PAPER_H = (400, 768, 768, 768, 768, 400)
PAPER_H_X2 = (800, 1536, 1536, 1536, 1536, 800)
PAPER_IN = 3296 + 3296


# (target, overrides, expected P): the configs behind the paper's arithmetic
PAPER_TARGETS = {
    "nerf10": ("nerf", dict(encoding_length=10), 32901),  # the FewSound target
    "siren": ("siren", {}, 31191),
}


@pytest.mark.parametrize(
    "target_key, hidden, expected",
    [
        ("nerf10", PAPER_H, 18.22e6),
        ("siren", PAPER_H, 17.53e6),  # the paper's "17.5M"
        ("nerf10", PAPER_H_X2, 41.2e6),  # doubled widths: the "41.2M" (a guess)
    ],
)
def test_paper_hypernetwork_sizes(target_key, hidden, expected):
    name, overrides, p = PAPER_TARGETS[target_key]
    assert build_inr(name, **overrides).num_params == p
    n = mlp_num_params((PAPER_IN,) + hidden + (p,))
    assert abs(n - expected) / expected < 0.01


def test_count_matches_formula_on_built_mlp():
    h = MLPHypernetwork(PAPER_IN, 31191, hidden_sizes=PAPER_H)
    assert count_parameters(h) == mlp_num_params(h.sizes) == 17_532_135


def test_paper_fewsound_head_sizes():
    # Built from the YAML-level arguments only: P is read from the target's spec.
    target = build_inr("nerf", encoding_length=10)
    head = FewSoundHead(target, encoder_dim=3296, hypernet_hidden=PAPER_H,
                        g_output_dim=3296, g_kernel_size=8101, g_num_conv=2)
    assert count_parameters(head.hypernet) == 18_217_845  # 18.22M
    assert head.weight_encoder.linear.in_features == 16701
    g = count_parameters(head.weight_encoder)
    assert abs(g - 55.07e6) / 55.07e6 < 0.001  # 55,065,996
    assert count_parameters(head) == 32901 + g + 18_217_845


def test_g_rejects_small_p():
    with pytest.raises(ValueError, match="P > n_conv"):
        UniversalWeightEncoder(16200, output_dim=8, kernel_size=8101, n_conv=2)
    g = UniversalWeightEncoder(16201, output_dim=8, kernel_size=8101, n_conv=2)
    assert g.linear.in_features == 1


def test_g_shapes_and_bad_input():
    g = UniversalWeightEncoder(20, output_dim=5, kernel_size=3)
    assert g(torch.rand(20)).shape == (1, 5)
    assert g(torch.rand(1, 20)).shape == (1, 5)
    with pytest.raises(ValueError):
        g(torch.rand(2, 20))


def test_count_parameters_excludes_frozen_target():
    target = _tiny_target()
    head = HyperSoundHead(target, encoder_dim=6, hypernet_hidden=(16,))
    assert count_parameters(head) == count_parameters(head.hypernet)
    assert count_parameters(head) == mlp_num_params((6, 16, target.num_params))


# ---------------------------------------------------------------- H init
def test_hidden_init_kaiming_zero_bias():
    h = MLPHypernetwork(64, 10, hidden_sizes=(128, 64))
    for layer in h.hidden:
        if isinstance(layer, torch.nn.Linear):
            assert torch.all(layer.bias == 0)
            bound = math.sqrt(6.0 / layer.in_features)
            assert layer.weight.abs().max() <= bound
            assert layer.weight.abs().max() > 0.95 * bound


def _blocks(spec, flat):
    """Split a [P] or [P, n] tensor into the spec's blocks (name -> rows)."""
    out, start = {}, 0
    for entry in spec:
        n = math.prod(entry.shape)
        out[entry.name] = flat[start : start + n]
        start += n
    return out


def test_output_init_variances_nerf():
    torch.manual_seed(0)
    hidden = 32
    target = build_inr("nerf", encoding_length=10, hidden_sizes=(64, 16))
    h = MLPHypernetwork(8, target.num_params, hidden_sizes=(hidden,))
    h.init_output_for_target(target.spec)
    assert torch.all(h.output.bias == 0)
    rows = _blocks(target.spec, h.output.weight.detach())
    for entry in target.spec:
        if entry.kind == "bias":
            var = 1.0 / hidden
        else:  # every NeRF layer has a bias: c_b = 2
            var = 2.0 / (2 * entry.fan_in * hidden)
        block = rows[entry.name]  # [numel, hidden]
        assert block.abs().max() <= math.sqrt(3 * var) * (1 + 1e-6), entry.name
        if block.numel() >= 1000:  # w0 40960, b0 2048, w1 32768, w2 512 x
            assert abs(block.var().item() / var - 1) < 0.1, entry.name


def test_output_init_layer_without_bias():
    torch.manual_seed(0)
    spec = (_PS("w0", (64, 16), "weight", 16), _PS("s0", (64, 16), "scaler", 16))
    h = MLPHypernetwork(4, 2048, hidden_sizes=(32,))
    h.init_output_for_target(spec)
    block = h.output.weight[:1024]
    var = 2.0 / (1 * 16 * 32)  # c_b = 1
    assert abs(block.var().item() / var - 1) < 0.1


def test_output_init_keeps_default_for_kan_blocks():
    torch.manual_seed(0)
    target = _tiny_target("kan")
    h = MLPHypernetwork(4, target.num_params, hidden_sizes=(16,))
    before = h.output.weight.detach().clone()
    h.init_output_for_target(target.spec)
    assert {e.kind for e in target.spec} == {"base", "spline", "scaler"}
    assert torch.equal(h.output.weight, before)
    assert torch.all(h.output.bias == 0)


def test_output_init_siren_variant():
    torch.manual_seed(0)
    target = _tiny_target("siren")  # 1 -> 8 -> 8 -> 1
    head = HyperSoundHead(
        target, encoder_dim=4, hypernet_hidden=(32,),
        output_row_scale=1e-3, output_bias_omega=30.0,
    )
    out = head.hypernet.output
    assert out.weight.abs().max() <= 1e-3 * math.sqrt(3 / 32)
    bias = _blocks(target.spec, out.bias.detach())
    assert 0.5 < bias["w0"].abs().max() <= 1.0  # fan_in 1: U(+-1)
    assert bias["w1"].abs().max() <= math.sqrt(6 / 8) / 30
    for name in ("b0", "b1", "b2"):
        assert torch.all(bias[name] == 0)


def test_output_init_rejects_wrong_spec():
    h = MLPHypernetwork(4, 10, hidden_sizes=(8,))
    with pytest.raises(ValueError, match="output_dim"):
        h.init_output_for_target((_PS("w0", (3, 1), "weight", 1),))


def test_output_init_default_mode_untouched():
    torch.manual_seed(0)
    head = HyperSoundHead(_tiny_target(), 4, (16,), output_init="default")
    bound = 1 / math.sqrt(16)  # PyTorch Linear default
    assert head.hypernet.output.bias.abs().max() > 0
    assert head.hypernet.output.weight.abs().max() <= bound


def test_bad_options():
    with pytest.raises(ValueError, match="output_init"):
        HyperSoundHead(_tiny_target(), 6, (8,), output_init="nope")
    with pytest.raises(ValueError, match="theta_init"):
        _fewsound(_tiny_target(), theta_init="nope")
    with pytest.raises(ValueError, match="warmup_epochs"):
        _fewsound(_tiny_target(), warmup_epochs=-1)
    with pytest.raises(ValueError, match="FunctionalINR"):
        HyperSoundHead(torch.nn.Linear(1, 1), 6, (8,))
    with pytest.raises(ValueError, match="P > n_conv"):
        _fewsound(_tiny_target("siren"), g_kernel_size=50)  # P = 97


# ---------------------------------------------------------------- FewSound
@pytest.mark.parametrize("name", ["nerf", "kan", "siren"])
def test_fewsound_theta_init_authors(name):
    target = _tiny_target(name)
    head = _fewsound(target)
    assert head.theta.shape == (target.num_params,)
    blocks = _blocks(target.spec, head.theta.detach())
    for entry in target.spec:
        block = blocks[entry.name]
        if entry.kind in ("bias", "scaler"):  # KAN's scaler starts at 0
            assert torch.all(block == 0), entry.name
        else:  # weight, base, spline
            assert block.abs().max() <= math.sqrt(6 / block.numel()), entry.name
            assert block.abs().max() > 0, entry.name


def test_fewsound_theta_init_target():
    target = _tiny_target("kan")
    head = _fewsound(target, theta_init="target")
    assert torch.equal(head.theta.detach(), target.flat_weights().detach())
    assert head.theta.requires_grad


@pytest.mark.parametrize("name", ["nerf", "kan", "siren"])
def test_fewsound_warmup_zero_gives_theta(name):
    head = _fewsound(_tiny_target(name), warmup_epochs=50)
    assert float(head.warmup_factor) == 0.0  # epoch 0
    w = head(torch.randn(3, 6))
    assert w.shape == (3, head.num_params)
    for i in range(3):
        assert torch.equal(w[i], head.theta.detach())


def test_fewsound_warmup_schedule_and_checkpoint():
    head = _fewsound(_tiny_target(), warmup_epochs=50)
    for epoch, f in [(0, 0.0), (10, 0.2), (49, 0.98), (50, 1.0), (300, 1.0)]:
        head.set_epoch(epoch)
        assert abs(float(head.warmup_factor) - f) < 1e-6
    head.set_epoch(25)
    e = torch.randn(2, 6)
    expected = head.theta + 0.5 * head.compute_delta(e)
    assert torch.allclose(head(e), expected)
    assert abs(float(head.state_dict()["warmup_factor"]) - 0.5) < 1e-6
    other = _fewsound(_tiny_target(), warmup_epochs=50)
    other.load_state_dict(head.state_dict())
    assert abs(float(other.warmup_factor) - 0.5) < 1e-6
    off = _fewsound(_tiny_target(), warmup_epochs=0)
    assert float(off.warmup_factor) == 1.0
    with pytest.raises(ValueError):
        head.set_epoch(-1)


def test_fewsound_delta_depends_on_embedding():
    head = _fewsound(_tiny_target())
    e = torch.randn(2, 6)
    delta = head.compute_delta(e)
    assert delta.shape == (2, head.num_params)
    assert not torch.allclose(delta[0], delta[1])
    w = head(e)
    assert torch.allclose(w, head.theta + delta)


@pytest.mark.parametrize("name", ["nerf", "kan", "siren"])
def test_fewsound_gradients_and_frozen_target(name):
    target = _tiny_target(name)
    head = _fewsound(target)
    assert all(not p.requires_grad for p in target.parameters())
    e = torch.randn(2, 6, requires_grad=True)
    out = head.reconstruct(e, _time(16))
    assert out.shape == (2, 16, 1)
    out.pow(2).mean().backward()
    assert head.theta.grad is not None and head.theta.grad.abs().sum() > 0
    for part, mod in [("G", head.weight_encoder), ("H", head.hypernet)]:
        grads = [p.grad for p in mod.parameters()]
        assert all(g is not None for g in grads), part
        assert sum(g.abs().sum() for g in grads) > 0, part
    assert e.grad is not None and e.grad.abs().sum() > 0
    assert all(p.grad is None for p in target.parameters())
    trainable = {n for n, p in head.named_parameters() if p.requires_grad}
    assert trainable and not any(n.startswith("target.") for n in trainable)
    expected = (
        target.num_params
        + count_parameters(head.weight_encoder)
        + count_parameters(head.hypernet)
    )
    assert count_parameters(head) == expected


@pytest.mark.parametrize("name", ["nerf", "kan", "rff"])
def test_heads_share_target_buffers(name):
    torch.manual_seed(0)
    target = build_inr(name, **TINY.get(name, dict(num_features=8, hidden_sizes=(8,))))
    buffers = dict(target.named_buffers())
    assert buffers  # PE freqs / RFF projection
    for head in (_fewsound(target), HyperSoundHead(target, 6, (8,))):
        assert head.target is target
        state = head.state_dict()
        for key, buf in buffers.items():
            assert state["target." + key].data_ptr() == buf.data_ptr()


def test_fewsound_bad_embedding():
    head = _fewsound(_tiny_target())
    with pytest.raises(ValueError, match="embedding"):
        head(torch.randn(2, 5))
    with pytest.raises(ValueError, match="embedding"):
        head(torch.randn(6))


# ------------------------------------------------- learning vs collapse
# Two clips that differ: a head that ignores the embedding (clip-blind) can at
# best output their mean, and a silent output stays at the silence loss. A
# head that learns must beat both by a wide margin.
def _two_clips(t):
    return torch.stack([torch.sin(3 * math.pi * t), 0.5 * torch.cos(2 * math.pi * t)])  # [2, T, 1]


def _train_heads(head, clips, t, emb, mode="real", steps=60, lr=3e-3):
    """Trains ``head`` on the clips; returns (loss, silence loss, clip-blind loss).

    ``mode``: "real" (each clip its embedding), "zeroed" (all embeddings 0),
    "shuffled" (embeddings permuted across the batch at every step) or
    "silent" (the output multiplied by 0): the last three cannot learn the
    clips apart and must fail :func:`_assert_learned`.
    """
    opt = torch.optim.Adam([p for p in head.parameters() if p.requires_grad], lr=lr)
    gen = torch.Generator().manual_seed(0)

    def decode(e):
        out = head.reconstruct(e, t)
        return out * 0.0 if mode == "silent" else out

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: thread overhead dominates on shared CPUs
    try:
        for _ in range(steps):
            e = emb
            if mode == "zeroed":
                e = torch.zeros_like(emb)
            elif mode == "shuffled":
                e = emb[torch.randperm(emb.shape[0], generator=gen)]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(decode(e), clips)
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        fed = torch.zeros_like(emb) if mode == "zeroed" else emb
        final = torch.nn.functional.mse_loss(decode(fed), clips).item()
        # clip-blind reference: the trained head, each clip decoded from the other's embedding
        blind = torch.nn.functional.mse_loss(decode(fed.roll(1, dims=0)), clips).item()
    silence = clips.pow(2).mean().item()
    return final, silence, blind


def _assert_learned(final, silence, blind):
    """Learning, not collapse: far below silence and far below the clip-blind loss."""
    assert final < 0.05 * silence, f"loss {final:.4g} not far below silence {silence:.4g}"
    assert final < 0.1 * blind, f"loss {final:.4g} not far below clip-blind {blind:.4g}"


def _head(kind, name, output_init="hyperfan"):
    target = _tiny_target(name)
    torch.manual_seed(0)
    if kind == "fewsound":
        return _fewsound(target, hypernet_hidden=(32, 32), output_init=output_init)
    return HyperSoundHead(target, encoder_dim=6, hypernet_hidden=(32, 32), output_init=output_init)


@pytest.mark.parametrize("kind", ["fewsound", "hypersound"])
@pytest.mark.parametrize("name", ["nerf", "kan"])
def test_head_learns_two_clips_apart(kind, name):
    t = _time(64)
    torch.manual_seed(1)
    emb = torch.randn(2, 6)
    _assert_learned(*_train_heads(_head(kind, name), _two_clips(t), t, emb))


@pytest.mark.parametrize("kind", ["fewsound", "hypersound"])
def test_head_learns_with_target_output_init(kind):
    t = _time(64)
    torch.manual_seed(1)
    emb = torch.randn(2, 6)
    _assert_learned(*_train_heads(_head(kind, "kan", "target"), _two_clips(t), t, emb))


@pytest.mark.parametrize("mode", ["zeroed", "shuffled", "silent"])
@pytest.mark.parametrize("kind", ["fewsound", "hypersound"])
def test_learning_check_fails_on_collapse(kind, mode):
    """The learning test above must fail on a clip-blind head or a silent output."""
    t = _time(64)
    torch.manual_seed(1)
    emb = torch.randn(2, 6)
    result = _train_heads(_head(kind, "kan"), _two_clips(t), t, emb, mode=mode)
    with pytest.raises(AssertionError):
        _assert_learned(*result)


def test_output_init_target_starts_at_target_init():
    """HyperSound "target" init: H's bias is the target's weights, rows spread like them;
    FewSound: bias 0 (θ holds the init)."""
    target = _tiny_target("kan")
    reference = target.flat_weights().detach().clone()
    torch.manual_seed(0)
    hs = HyperSoundHead(target, encoder_dim=6, hypernet_hidden=(32,), output_init="target",
                        output_row_scale=0.5)
    assert torch.equal(hs.hypernet.output.bias, reference)
    n = 32
    start = 0
    for entry in target.spec:
        stop = start + math.prod(entry.shape)
        block = reference[start:stop]
        spread = float(block.std()) if block.numel() > 1 else float(block.abs().mean())
        if spread == 0.0:
            spread = 1.0 / math.sqrt(entry.fan_in)
        bound = 0.5 * math.sqrt(3.0 / n) * spread
        rows = hs.hypernet.output.weight[start:stop]
        assert float(rows.abs().max()) <= bound + 1e-7, entry.name
        assert float(rows.abs().max()) > 0.5 * bound, entry.name  # not all tiny
        start = stop
    fs = _fewsound(target, hypernet_hidden=(32,), output_init="target", theta_init="target")
    assert float(fs.hypernet.output.bias.abs().max()) == 0.0
    assert torch.equal(fs.theta.detach(), reference)


def test_output_init_target_is_quiet_for_kan():
    """A KAN target under H's "target" init is as quiet as its own init; the
    authors' hyperfan init (KAN blocks at PyTorch's default) is far louder."""
    t = _time(256)
    emb = torch.randn(4, 6, generator=torch.Generator().manual_seed(0))
    level = {}
    for mode in ("target", "hyperfan"):
        target = build_inr("kan", encoding_length=4, hidden_sizes=(16, 8))
        own = target(t).pow(2).mean().sqrt().item()
        torch.manual_seed(0)
        head = HyperSoundHead(target, encoder_dim=6, hypernet_hidden=(32, 32), output_init=mode)
        with torch.no_grad():
            level[mode] = head.reconstruct(emb, t).pow(2).mean().sqrt().item() / own
    assert level["target"] < 5.0, level
    assert level["hyperfan"] > 10 * level["target"], level


# ---------------------------------------------------------------- HyperSound
@pytest.mark.parametrize("name", ["nerf", "kan", "siren"])
def test_hypersound_shapes_and_grads(name):
    target = _tiny_target(name)
    head = HyperSoundHead(target, encoder_dim=6, hypernet_hidden=(16, 16))
    e = torch.randn(3, 6, requires_grad=True)
    w = head(e)
    assert w.shape == (3, target.num_params)
    out = head.reconstruct(e, _time(20))
    assert out.shape == (3, 20, 1)
    out.sum().backward()
    assert e.grad.abs().sum() > 0
    assert all(p.grad is None for p in target.parameters())
    with pytest.raises(ValueError, match="embedding"):
        head(torch.randn(3, 5))


def _tiny_fewsound(name="nerf"):
    target = _tiny_target(name)
    return FewSoundHead(target, encoder_dim=6, hypernet_hidden=(16, 16), g_output_dim=4, g_kernel_size=5)


def test_fewsound_universal_embedding_cached_in_inference_only():
    """G(θ) is computed once in eval/no-grad, afresh in training or with grad, and tracks θ and G."""
    head = _tiny_fewsound()
    calls = []
    head.weight_encoder.register_forward_hook(lambda *args: calls.append(1))
    emb = torch.rand(3, 6)
    head.train()
    with torch.no_grad():
        expected = head(emb)
        head(emb)
    assert len(calls) == 2  # training: no cache
    head.eval()
    head(emb)
    head(emb)
    assert len(calls) == 4  # grad enabled: no cache
    calls.clear()
    with torch.inference_mode():
        first = head(emb)
        second = head(emb[:1])
    assert len(calls) == 1
    torch.testing.assert_close(first, expected, rtol=0, atol=0)
    torch.testing.assert_close(second, expected[:1], rtol=0, atol=0)
    # an optimiser step changes θ and G in place: recomputed, and equal to a fresh G(θ)
    head.train()
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    head(emb).square().sum().backward()
    opt.step()
    head.eval()
    calls.clear()
    with torch.no_grad():
        cached = head.universal_embedding()
        fresh = head.weight_encoder(head.theta)
    assert len(calls) == 2
    torch.testing.assert_close(cached, fresh, rtol=0, atol=0)
    head.clear_cache()
    with torch.no_grad():
        head.universal_embedding()
    assert len(calls) == 3
