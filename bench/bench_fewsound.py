"""FewSound inference: wav pieces → E (encode) → FewSoundHead (G, H) → KAN target → wav (decode).

``torch.inference_mode``, the paper-size modules: SoundStream encoder E
(``norm="layer_ct"``, 21.0M), universal-weight encoder G (two convolutions with
kernel 8101 over θ, then a linear layer to 3296: 55M for the 33,768-parameter
KAN target), hypernetwork H (``(400, 768, 768, 768, 768, 400)``), KAN target of
the paper. A long file is cut into 1.486 s pieces (32,768 samples) that are
processed as one batch of ``n`` pieces. G(θ) does not depend on the input: it is
computed once per model (:meth:`FewSoundHead.universal_embedding`, cached in
inference) and timed apart ("G(θ) once"). Stages: encode = E; decode = H (with
the cached G(θ)) + the target on the time grid. The encoder is also timed with
``torch.nn.ELU`` in place of :class:`fewsound_sb.nnet.activations.ELU` (same
weights, same function, torch's ``expm1`` kernel), and under bfloat16 autocast
(the inference interface's ``precision: bf16``; head and target stay float32),
with how far that moves the embedding E(x) from float32's (relative L2). The real-time factor of a
stage is its compute time / the audio duration of the batch (below 1: faster
than real time; "x real time" is its inverse).

The roofline: the floating-point operations of one piece per stage (counted
by ``torch.utils.flop_counter``: convolutions and matrix products) and the
rate of a large fp32 matrix product on the same threads (``gemm_gflops``).
Their ratio is the fastest any implementation of these models could run on
the machine, whatever the kernels, as long as it computes in fp32.
"""

import copy
import time

import torch

from bench.common import interleaved_medians, sync
from fewsound_sb.lobes.soundstream import SoundStreamEncoder
from fewsound_sb.nnet.activations import ELU
from fewsound_sb.nnet.hyper import FewSoundHead, count_parameters
from fewsound_sb.nnet.inr import build_inr, time_grid

SAMPLE_RATE = 22050


def build(quick=False, compile=False):
    """(encoder, head, num_samples): paper sizes, or tiny ones with ``quick``; ``compile``: the KAN's."""
    torch.manual_seed(0)
    if quick:
        encoder = SoundStreamEncoder(
            input_length=2048, channels=2, output_channels=4, channel_mults=(2, 4), strides=(4, 8)
        )
        target = build_inr("kan", encoding_length=4, hidden_sizes=(8, 4), compile=False)
        head = FewSoundHead(
            target, encoder_dim=encoder.output_dim, hypernet_hidden=(16, 16), g_output_dim=8, g_kernel_size=5
        )
        return encoder, head, 2048
    encoder = SoundStreamEncoder()
    head = FewSoundHead(build_inr("kan", compile=compile), encoder_dim=encoder.output_dim)
    return encoder, head, encoder.input_length


def gemm_gflops(device="cpu", size=2048, repeats=10):
    """The machine's fp32 matrix-product rate on the current threads, GFLOP/s (best of ``repeats``)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats + 2):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def relative_deviation(reference, other):
    """``‖other − reference‖ / ‖reference‖`` (float32)."""
    return ((other.float() - reference).norm() / reference.norm()).item()


def count_flops(fn):
    """Floating-point operations of ``fn()`` (torch.utils.flop_counter: matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def run(repeats, warmup, device="cpu", quick=False, batches=(1, 8), compile=False):
    """Median times (ms) per stage for batches of ``n`` pieces, and the real-time factor per stage."""
    encoder, head, num_samples = build(quick, compile)
    encoder.eval().to(device)
    head.eval().to(device)
    t = time_grid(num_samples, device=device)
    duration_s = num_samples / SAMPLE_RATE
    state = {}

    def g_once():
        with torch.inference_mode():
            head.clear_cache()
            head.universal_embedding()

    fns = {"G(θ) once": g_once}
    # the same encoder with torch's ELU (expm1) instead of ours (exp), same weights
    torch_elu_encoder = copy.deepcopy(encoder)
    for parent in torch_elu_encoder.modules():
        for name, child in parent.named_children():
            if isinstance(child, ELU):
                setattr(parent, name, torch.nn.ELU())
    for n in batches:
        wav = (0.1 * torch.randn(n, num_samples)).to(device)

        def encode(n=n, wav=wav):
            with torch.inference_mode():
                state[f"embedding {n}"] = encoder(wav)

        def hyper(n=n):
            with torch.inference_mode():
                state[f"weights {n}"] = head(state[f"embedding {n}"])

        def target(n=n):
            with torch.inference_mode():
                state[f"wav {n}"] = head.target.forward_flat(t, state[f"weights {n}"])[..., 0]

        def encode_torch_elu(n=n, wav=wav):
            with torch.inference_mode():
                torch_elu_encoder(wav)

        def encode_bf16(n=n, wav=wav):  # the inference interface's precision: bf16
            with torch.inference_mode(), torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
                state[f"embedding bf16 {n}"] = encoder(wav)

        encode()
        hyper()
        fns.update({f"encode E, n={n}": encode, f"decode H, n={n}": hyper, f"decode target, n={n}": target,
                    f"encode E torch.nn.ELU, n={n}": encode_torch_elu, f"encode E bf16, n={n}": encode_bf16})
    times = interleaved_medians(fns, repeats, warmup, device)
    n0 = batches[0]  # operations per piece, from the first batch size
    # compiled kernels bypass the FLOP counter: count the target on its eager path
    eager_target = copy.deepcopy(head.target)
    eager_target.compile, eager_target._compile_ok = False, False

    def eager_decode():
        with torch.inference_mode():
            eager_target.forward_flat(t, state[f"weights {n0}"])

    flops = {
        "encode": count_flops(fns[f"encode E, n={n0}"]) / n0,
        "decode": (count_flops(fns[f"decode H, n={n0}"]) + count_flops(eager_decode)) / n0,
    }
    rate = gemm_gflops(device)
    # what bf16 changes: the embedding the float32 head reads
    bf16_deviation = relative_deviation(state[f"embedding {n0}"], state[f"embedding bf16 {n0}"])
    stages = {}
    for n in batches:
        audio_s = n * duration_s
        enc = times[f"encode E, n={n}"]["median_ms"]
        dec = times[f"decode H, n={n}"]["median_ms"] + times[f"decode target, n={n}"]["median_ms"]
        stages[str(n)] = {
            "audio_s": audio_s,
            "encode_ms": enc,
            "encode_torch_elu_ms": times[f"encode E torch.nn.ELU, n={n}"]["median_ms"],
            "encode_bf16_ms": times[f"encode E bf16, n={n}"]["median_ms"],
            "rtf_total_bf16": (times[f"encode E bf16, n={n}"]["median_ms"] + dec) / 1000.0 / audio_s,
            "decode_h_ms": times[f"decode H, n={n}"]["median_ms"],
            "decode_target_ms": times[f"decode target, n={n}"]["median_ms"],
            "decode_ms": dec,
            "rtf_encode": enc / 1000.0 / audio_s,
            "rtf_decode": dec / 1000.0 / audio_s,
            "rtf_total": (enc + dec) / 1000.0 / audio_s,
        }
    return {
        "num_samples": num_samples,
        "duration_s": duration_s,
        "target_compile": str(compile),
        "params": {
            "E": count_parameters(encoder),
            "G": count_parameters(head.weight_encoder),
            "H": count_parameters(head.hypernet),
            "theta": head.num_params,
        },
        "times": times,
        "stages": stages,
        "g_once_ms": times["G(θ) once"]["median_ms"],
        "rtf": stages[str(batches[0])]["rtf_total"],
        "flops_per_piece": flops,
        "gemm_gflops": rate,
        "bf16_embedding_deviation": bf16_deviation,
        "floor_ms_per_piece": 1000.0 * (flops["encode"] + flops["decode"]) / (rate * 1e9),
        "output_shape": list(state[f"wav {batches[0]}"].shape),
    }
