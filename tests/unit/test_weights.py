"""Tests of the INR weights file (fewsound_sb.weights) and the open target registry."""

import importlib
import json
import struct
import sys
import textwrap

import pytest
import torch

from fewsound_sb.nnet.inr import INR_REGISTRY, build_inr, inr_class, time_grid
from fewsound_sb.weights import (
    FORMAT_VERSION,
    WEIGHTS_SUFFIX,
    INRWeights,
    load_fitted,
    storage_bits,
)

TINY_KAN = {"encoding_length": 2, "hidden_sizes": [4], "grid_size": 3}


def kan_clip(n_pieces=2, dtype="fp32", seed=0):
    torch.manual_seed(seed)
    rows = torch.stack([build_inr("kan", **TINY_KAN).flat_weights().detach()
                        for _ in range(n_pieces)])
    return INRWeights("kan", TINY_KAN, rows, sample_rate=8000, num_samples=120,
                      piece_length=64, hop=56, gains=torch.tensor([0.5, 2.0])[:n_pieces],
                      dtype=dtype, metadata={"id": "clip", "loss": 0.25, "nan": float("nan")})


@pytest.mark.parametrize("dtype, tolerance", [("fp32", 0.0), ("fp16", 1e-3), ("int8", 1e-2)])
def test_round_trip_every_dtype(tmp_path, dtype, tolerance):
    clip = kan_clip(dtype=dtype)
    path = tmp_path / f"clip{WEIGHTS_SUFFIX}"
    clip.save(path)
    again = INRWeights.load(path)
    assert again.dtype == dtype and again.weights.dtype == torch.float32
    assert (again.target, again.target_class) == ("kan", "fewsound_sb.nnet.inr:KAN")
    assert again.config == TINY_KAN and again.sample_rate == 8000
    assert (again.n_pieces, again.piece_length, again.hop, again.num_samples) == (2, 64, 56, 120)
    assert again.gains.tolist() == [0.5, 2.0]
    assert again.metadata["id"] == "clip" and again.metadata["loss"] == 0.25
    # error within the storage precision, relative to each piece's largest weight
    peak = clip.weights.abs().amax(dim=1, keepdim=True)
    error = ((again.weights - clip.weights).abs() / peak).max().item()
    assert error <= tolerance
    if dtype != "fp32":
        assert error > 0  # really stored at lower precision
    torch.testing.assert_close(again.weights, clip.as_stored().weights, rtol=0, atol=0)
    # the file is smaller at lower precision
    assert again.num_bits() == storage_bits(clip.num_params, dtype, 2)
    # the rebuilt networks reproduce each piece
    for k in range(2):
        expected = build_inr("kan", **TINY_KAN)
        expected.load_flat_weights(again.weights[k])
        torch.testing.assert_close(again.build_network(k)(time_grid(64)),
                                   expected(time_grid(64)))


def test_file_sizes_follow_the_dtype(tmp_path):
    sizes = {}
    for dtype in ("fp32", "fp16", "int8"):
        path = tmp_path / f"{dtype}{WEIGHTS_SUFFIX}"
        kan_clip(dtype=dtype).save(path)
        sizes[dtype] = path.stat().st_size
    assert sizes["fp32"] > sizes["fp16"] > sizes["int8"]


def test_reconstruct_joins_pieces_with_gains():
    clip = kan_clip()
    pieces = [clip.build_network(k)(time_grid(64)).squeeze(-1).detach() for k in range(2)]
    out = clip.reconstruct()
    assert out.shape == (120,)
    torch.testing.assert_close(out[:56], 0.5 * pieces[0][:56])
    torch.testing.assert_close(out[56:64], (0.5 * pieces[0][56:] + 2.0 * pieces[1][:8]) / 2)
    torch.testing.assert_close(out[64:], 2.0 * pieces[1][8:64])


def test_layout_is_checked():
    with pytest.raises(ValueError, match="num_samples"):
        INRWeights("kan", TINY_KAN, torch.zeros(2, 140), 8000, num_samples=200, piece_length=64)
    with pytest.raises(ValueError, match="gains"):
        INRWeights("kan", TINY_KAN, torch.zeros(2, 140), 8000, num_samples=100, piece_length=64,
                   gains=[1.0])
    with pytest.raises(ValueError, match="dtype"):
        INRWeights("kan", TINY_KAN, torch.zeros(140), 8000, 64, dtype="bf16")


def test_unseeded_rff_frequencies_are_restored(tmp_path):
    net = build_inr("rff", num_features=8, hidden_sizes=(8,), seed=None)
    path = tmp_path / f"rff{WEIGHTS_SUFFIX}"
    INRWeights.from_network(net, {"num_features": 8, "hidden_sizes": [8], "seed": None},
                            8000, 64).save(path)
    torch.testing.assert_close(load_fitted(path)(time_grid(64)), net(time_grid(64)))


CUSTOM_MODULE = textwrap.dedent('''
    import torch
    from fewsound_sb.nnet.inr import FunctionalINR, ParamSpec, register_inr

    @register_inr("outside_line")
    class OutsideLine(FunctionalINR):
        def __init__(self, width=3):
            super().__init__()
            self._register_spec([ParamSpec("w", (width,), "weight", 1)])
            torch.nn.init.normal_(self.w)

        def forward_params(self, t, params):
            w = params["w"]
            return w[:, None, :1] * t + w[:, None, 1:].sum(-1, keepdim=True)
''')


@pytest.fixture
def outside_module(tmp_path, monkeypatch):
    """A target class in a module outside the package, registered on import."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "outside_targets.py").write_text(CUSTOM_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module("outside_targets")
    yield module
    INR_REGISTRY.pop("outside_line", None)
    sys.modules.pop("outside_targets", None)


def test_custom_target_registered_outside_the_package(tmp_path, outside_module):
    assert inr_class("outside_line") is outside_module.OutsideLine
    net = build_inr("outside_line", width=4)
    path = tmp_path / f"line{WEIGHTS_SUFFIX}"
    clip = INRWeights.from_network(net, {"width": 4}, sample_rate=100, num_samples=50,
                                   dtype="fp16")
    assert (clip.target, clip.target_class) == ("outside_line", "outside_targets:OutsideLine")
    clip.save(path)
    expected = net(time_grid(50)).detach()
    # a fresh process: neither the module nor the registry entry exist yet;
    # loading imports the module from the stored class path
    INR_REGISTRY.pop("outside_line")
    sys.modules.pop("outside_targets")
    again = INRWeights.load(path).build_network()
    assert type(again).__module__ == "outside_targets" and "outside_line" in INR_REGISTRY
    torch.testing.assert_close(again(time_grid(50)), expected, atol=1e-2, rtol=1e-3)


def test_missing_custom_module_fails_clearly(tmp_path, outside_module):
    path = tmp_path / f"line{WEIGHTS_SUFFIX}"
    INRWeights.from_network(build_inr("outside_line"), {}, 100, 50).save(path)
    INR_REGISTRY.pop("outside_line")
    sys.modules.pop("outside_targets")
    sys.path.remove(str(tmp_path / "site"))
    clip = INRWeights.load(path)  # the file itself is fine
    with pytest.raises(ValueError, match="outside_targets:OutsideLine"):
        clip.build_network()


def test_registry_rejects_a_taken_name():
    from fewsound_sb.nnet.inr import FunctionalINR, register_inr

    class Other(FunctionalINR):
        pass

    with pytest.raises(ValueError, match="taken"):
        register_inr("kan")(Other)
    assert INR_REGISTRY["kan"].__name__ == "KAN"


def _rewrite_header(path, **changes):
    """Edits the JSON metadata of a safetensors file in place."""
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8: 8 + size])
    header["__metadata__"].update(changes)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size:])


def test_other_format_version_fails_clearly(tmp_path):
    path = tmp_path / f"clip{WEIGHTS_SUFFIX}"
    kan_clip().save(path)
    _rewrite_header(path, format_version=str(FORMAT_VERSION + 1))
    with pytest.raises(ValueError, match=f"format version {FORMAT_VERSION + 1}") as err:
        INRWeights.load(path)
    assert str(path) in str(err.value) and "refit" in str(err.value)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "torch_file",
                                    "other_safetensors"])
def test_corrupt_or_foreign_file_fails_clearly(tmp_path, damage):
    path = tmp_path / f"clip{WEIGHTS_SUFFIX}"
    kan_clip().save(path)
    data = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(data[: len(data) - 100])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 8 + data[16:])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "torch_file":
        torch.save({"inr": "kan", "flat_weights": torch.zeros(3)}, path)
    else:
        from safetensors.torch import save_file

        save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError) as err:
        INRWeights.load(path)
    message = str(err.value)
    assert str(path) in message
    expected = {"truncated": "truncated", "garbage": "truncated", "empty": "truncated",
                "torch_file": "torch.save", "other_safetensors": "not an INR weights file"}
    assert expected[damage] in message


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        INRWeights.load("nowhere.safetensors")


def test_metadata_must_be_json(tmp_path):
    clip = kan_clip()
    clip.metadata["tensor"] = torch.zeros(1)
    with pytest.raises(ValueError, match="JSON"):
        clip.save(tmp_path / f"x{WEIGHTS_SUFFIX}")
    assert not list(tmp_path.iterdir())
