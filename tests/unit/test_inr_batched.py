"""Batched evaluation of the target networks: time chunking on CPU is exact."""

import pytest
import torch

from fewsound_sb.nnet.inr import build_inr, time_grid

TINY = {
    "kan": dict(encoding_length=3, hidden_sizes=(6, 5), grid_size=4),
    "nerf": dict(encoding_length=3, hidden_sizes=(7, 6)),
    "siren": dict(hidden_sizes=(7, 6)),
    "finer": dict(hidden_sizes=(7, 6)),
    "rff": dict(num_features=8, hidden_sizes=(7, 6)),
    "wire": dict(hidden_sizes=(7, 6)),
}


def _fit_outputs(net, weights, t, target):
    """Outputs and the per-clip L1 gradient w.r.t. the flat weights."""
    w = weights.clone().requires_grad_()
    out = net.forward_flat(t, w)
    (out - target).abs().mean(dim=(1, 2)).sum().backward()
    return out.detach(), w.grad


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("batch", [1, 3])
def test_chunked_forward_flat_equals_one_pass(name, batch):
    torch.manual_seed(0)
    net = build_inr(name, **TINY[name])
    net.requires_grad_(False)
    points = 301  # not a multiple of the chunk: uneven pieces
    t = time_grid(points)
    weights = net.flat_weights().detach() + 0.05 * torch.randn(batch, net.num_params)
    target = 0.3 * torch.randn(batch, points, 1)

    calls = []
    original = net.forward_params

    def counting(t_piece, params):
        calls.append(t_piece.shape[1])
        return original(t_piece, params)

    net.forward_params = counting
    net.chunk_elements = 0
    ref_out, ref_grad = _fit_outputs(net, weights, t, target)
    assert calls == [points]

    calls.clear()
    net.chunk_elements, net.min_chunk = 40 * batch * net.activation_width(), 1
    out, grad = _fit_outputs(net, weights, t, target)
    assert len(calls) == 8 and sum(calls) == points and max(calls) - min(calls) <= 1
    # SIREN/FINER's first-layer ω = 2000 turns GEMM rounding (other blocking
    # of the shorter pieces) into ~1e-6 differences; a wrong chunk would be O(1).
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-3, atol=1e-5)
    assert (grad - ref_grad).abs().max() < 1e-3 * ref_grad.abs().max()


@pytest.mark.parametrize("name", ["siren", "kan"])
def test_chunked_module_forward_equals_one_pass(name):
    torch.manual_seed(0)
    net = build_inr(name, **TINY[name])
    t = time_grid(257)
    net.chunk_elements = 0
    ref = net(t)
    ref.abs().sum().backward()
    ref_grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    net.chunk_elements, net.min_chunk = 32 * net.activation_width(), 1
    out = net(t)
    out.abs().sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    for grad, ref_grad in zip((p.grad for p in net.parameters()), ref_grads):
        torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-6)


def test_chunk_size_budget():
    net = build_inr("siren")  # widest layer 90
    assert net.activation_width() == 90
    assert net.chunk_size(16, 32768, "cpu") == max(net.min_chunk, net.chunk_elements // (16 * 90))
    assert net.chunk_size(1, 100, "cpu") == 100  # never longer than T
    assert net.chunk_size(16, 32768, "cuda") == 32768  # CUDA: one pass
    net.chunk_elements = 0
    assert net.chunk_size(16, 32768, "cpu") == 32768


@pytest.mark.parametrize("name, derived, compile", [
    ("kan", "combine_weights", False), ("wire", "complex_block", False), ("wire", "gauss_block", True),
])
def test_weight_derived_blocks_are_built_once_per_call(name, derived, compile, monkeypatch):
    """KAN's combined weights and WIRE's real block matrices (eager: complex_block; compiled:
    gauss_block) depend on the weights only: one build per layer and call (prepare_params),
    not one per time chunk; a direct forward_params call (no prepared blocks) builds them
    itself and gives the same values."""
    import fewsound_sb.nnet.inr as inr
    from fewsound_sb.nnet.kan import compile_available

    if compile and not compile_available():
        pytest.skip("no compiler for torch.compile here")
    torch.manual_seed(0)
    net = build_inr(name, **TINY[name], **({"compile": True} if compile else {}))
    net.requires_grad_(False)
    t = time_grid(301)
    weights = net.flat_weights().detach() + 0.05 * torch.randn(3, net.num_params)
    built = []
    original = getattr(inr, derived)

    def counting(*args):
        built.append(1)
        return original(*args)

    monkeypatch.setattr(inr, derived, counting)
    net.chunk_elements, net.min_chunk = 40 * 3 * net.activation_width(compiled=compile), 1
    assert net.chunk_size(3, 301, "cpu") == 40  # eight chunks, on the path the call takes
    chunked = net.forward_flat(t, weights)
    layers = net.n_layers if name == "kan" else net.n_layers - 2  # WIRE: complex hidden layers
    groups = -(-3 // net.clip_group(3, compiled=compile))  # compiled WIRE: one clip per group
    assert groups == (3 if (name, compile) == ("wire", True) else 1)
    assert len(built) == layers * groups  # once per clip group, not per chunk
    built.clear()
    direct = net.forward_params(t.unsqueeze(0), net.unflatten(weights))
    assert len(built) == layers
    torch.testing.assert_close(direct, chunked, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("group, sizes", [(1, [1] * 5), (2, [2, 2, 1]), (5, [5])])
@pytest.mark.parametrize("shared_time", [True, False])
def test_clip_groups_give_the_one_pass_values_and_gradients(group, sizes, shared_time):
    """A target evaluating its clips in groups (clip_group) gives the values and weight
    gradients of one pass over all clips; every group is chunked over time on its own."""
    torch.manual_seed(0)
    net = build_inr("siren", **TINY["siren"])
    net.requires_grad_(False)
    points, batch = 301, 5
    t = time_grid(points) if shared_time else time_grid(points).expand(batch, points, 1)
    weights = net.flat_weights().detach() + 0.05 * torch.randn(batch, net.num_params)
    target = 0.3 * torch.randn(batch, points, 1)
    net.chunk_elements = 0
    ref_out, ref_grad = _fit_outputs(net, weights, t, target)

    calls = []
    original = net.forward_params

    def counting(t_piece, params):
        calls.append((params["w0"].shape[0], t_piece.shape[1]))
        return original(t_piece, params)

    net.forward_params = counting
    net.clip_group = lambda batch, compiled: group
    net.chunk_elements, net.min_chunk = 100 * net.activation_width(), 1  # 100 clip-points a chunk
    out, grad = _fit_outputs(net, weights, t, target)
    assert sum(n for _, n in calls) == points * len(sizes)
    groups = []  # consecutive calls of one group
    for b, n in calls:
        if not groups or groups[-1][1] == points:
            groups.append([b, 0])
        groups[-1][1] += n
    assert [b for b, _ in groups] == sizes  # the groups, in order, each over the whole time axis
    assert all(n <= -(-100 // b) for b, n in calls)  # each group's own chunk length
    torch.testing.assert_close(out, ref_out, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-3, atol=1e-5)


def test_wire_groups_clips_on_its_compiled_path_only():
    net = build_inr("wire")
    assert net.clip_group(16, compiled=True) == 1
    assert net.clip_group(16, compiled=False) == 16
    assert build_inr("siren").clip_group(16, compiled=True) == 16  # the default: all clips


def test_clip_groups_only_tile_a_chunked_call():
    """Without chunking (chunk_elements 0, as on CUDA) a call is one pass over all clips."""
    net = build_inr("siren", **TINY["siren"])
    net.requires_grad_(False)
    net.clip_group = lambda batch, compiled: 1
    seen = []
    original = net.forward_params
    net.forward_params = lambda t, params: seen.append(params["w0"].shape[0]) or original(t, params)
    weights = net.flat_weights().detach().expand(3, -1)
    net.forward_flat(time_grid(50), weights)
    assert seen == [1, 1, 1]
    seen.clear()
    net.chunk_elements = 0
    net.forward_flat(time_grid(50), weights)
    assert seen == [3]


def test_wire_chunk_size_follows_the_path():
    """WIRE's activations are wider on its compiled path (three stacked parts of the width
    padded to 16) than on its eager one (real and imaginary parts side by side)."""
    net = build_inr("wire")  # widest layer 90
    assert net.activation_width() == 180 and net.activation_width(compiled=True) == 3 * 96
    assert net.chunk_size(1, 32768, "cpu", compiled=False) == net.chunk_elements // 180
    assert net.chunk_size(1, 32768, "cpu", compiled=True) == net.chunk_elements // 288
    default = net.chunk_size(4, 32768, "cpu")  # the path a call of 4 x 32,768 clip-points takes
    assert default == net.chunk_size(4, 32768, "cpu", compiled=net._use_compiled(4 * 32768))
