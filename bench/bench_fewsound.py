"""FewSound inference time for one clip: wav → E → FewSoundHead (G, H) → KAN target → wav.

Batch 1, ``torch.inference_mode``, the paper-size modules: SoundStream encoder
E (``norm="layer_ct"``, 21.0M), universal-weight encoder G (two convolutions with
kernel 8101 over θ, then a linear layer to 3296: 55M for the 33,768-parameter
KAN target), hypernetwork H (``(400, 768, 768, 768, 768, 400)``, 17.5M class),
KAN target of the paper. The real-time factor is compute time / audio duration.
"""

import torch

from bench.common import interleaved_medians
from fewsound_sb.lobes.soundstream import SoundStreamEncoder
from fewsound_sb.nnet.hyper import FewSoundHead, count_parameters
from fewsound_sb.nnet.inr import build_inr, time_grid

SAMPLE_RATE = 22050


def build(quick=False):
    """(encoder, head, num_samples): paper sizes, or tiny ones with ``quick``."""
    torch.manual_seed(0)
    if quick:
        encoder = SoundStreamEncoder(
            input_length=2048, channels=2, output_channels=4, channel_mults=(2, 4), strides=(4, 8)
        )
        target = build_inr("kan", encoding_length=4, hidden_sizes=(8, 4))
        head = FewSoundHead(
            target, encoder_dim=encoder.output_dim, hypernet_hidden=(16, 16), g_output_dim=8, g_kernel_size=5
        )
        return encoder, head, 2048
    encoder = SoundStreamEncoder()
    head = FewSoundHead(build_inr("kan"), encoder_dim=encoder.output_dim)
    return encoder, head, encoder.input_length


def run(repeats, warmup, device="cpu", quick=False):
    """Median times (ms) of the stages and of the whole reconstruction, and the RTF."""
    encoder, head, num_samples = build(quick)
    encoder.eval().to(device)
    head.eval().to(device)
    wav = (0.1 * torch.randn(1, num_samples)).to(device)
    t = time_grid(num_samples, device=device)
    state = {}

    def encode():
        with torch.inference_mode():
            state["embedding"] = encoder(wav)

    def weights():
        with torch.inference_mode():
            state["weights"] = head(state["embedding"])

    def decode():
        with torch.inference_mode():
            state["wav"] = head.target.forward_flat(t, state["weights"])[..., 0]

    def total():
        with torch.inference_mode():
            head.target.forward_flat(t, head(encoder(wav)))

    encode()
    weights()
    times = interleaved_medians(
        {"encoder E": encode, "head G+H": weights, "target KAN": decode, "total": total}, repeats, warmup, device
    )
    duration_s = num_samples / SAMPLE_RATE
    return {
        "num_samples": num_samples,
        "duration_s": duration_s,
        "params": {
            "E": count_parameters(encoder),
            "G": count_parameters(head.weight_encoder),
            "H": count_parameters(head.hypernet),
            "theta": head.num_params,
        },
        "times": times,
        "rtf": times["total"]["median_ms"] / 1000.0 / duration_s,
        "output_shape": list(state["wav"].shape),
    }
