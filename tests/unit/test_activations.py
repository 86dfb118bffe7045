"""The exp-based ELU: torch's ELU values and gradients, in every mode the encoders use."""

import pytest
import torch

from fewsound_sb.lobes.soundstream import SoundStreamEncoder
from fewsound_sb.nnet.activations import ELU, elu


def test_values_match_a_float64_reference_as_closely_as_torch_elu():
    x = torch.cat([torch.linspace(-30, 30, 200_001), torch.tensor([-1e-8, 0.0, 1e-8, -1e-30, 1e30, -1e30])])
    reference = torch.nn.functional.elu(x.double())
    ours = (elu(x).double() - reference).abs().max().item()
    torch_elu = (torch.nn.functional.elu(x).double() - reference).abs().max().item()
    assert ours < 1e-7, ours
    assert ours <= 2 * torch_elu
    assert torch.equal(elu(x) > 0, x > 0)  # positive exactly where x is
    assert torch.equal(elu(x)[x > 0], x[x > 0])  # the identity branch is exact


def test_gradients_match_torch_elu_and_gradcheck():
    x = torch.randn(3, 4, 50, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(elu, (x,))
    grad = torch.randn_like(x)
    (ours,) = torch.autograd.grad(elu(x), x, grad)
    (theirs,) = torch.autograd.grad(torch.nn.functional.elu(x), x, grad)
    torch.testing.assert_close(ours, theirs)


def test_works_in_inference_mode_and_in_bfloat16():
    x = torch.randn(2, 8, 16)
    with torch.inference_mode():
        y = ELU()(x)
    torch.testing.assert_close(y, torch.nn.functional.elu(x))
    xb = x.bfloat16()
    assert elu(xb).dtype == torch.bfloat16
    torch.testing.assert_close(elu(xb).float(), torch.nn.functional.elu(xb).float(), atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("norm", ["layer_ct", "channel"])
def test_soundstream_encoder_is_unchanged_by_the_activation(norm):
    """The default (exp-based) ELU and torch.nn.ELU give the same embedding and gradients
    from the same weights: checkpoints of either load into the other."""
    kwargs = dict(input_length=2048, channels=2, output_channels=4, channel_mults=(2, 4), strides=(4, 8), norm=norm)
    ours = SoundStreamEncoder(**kwargs)
    theirs = SoundStreamEncoder(activation=torch.nn.ELU, **kwargs)
    theirs.load_state_dict(ours.state_dict())
    ours, theirs = ours.double(), theirs.double()  # float32 rounding would hide nothing here
    assert any(isinstance(m, ELU) for m in ours.modules())
    assert not any(isinstance(m, ELU) for m in theirs.modules())
    wavs = 0.3 * torch.randn(3, 2048, dtype=torch.float64)
    out_ours, out_theirs = ours(wavs), theirs(wavs)
    torch.testing.assert_close(out_ours, out_theirs, atol=1e-10, rtol=1e-10)
    out_ours.square().sum().backward()
    out_theirs.square().sum().backward()
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-9 * b.grad.abs().max().item(), rtol=1e-9, msg=name)
