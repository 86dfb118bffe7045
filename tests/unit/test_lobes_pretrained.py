"""Unit tests for the SNAC and Whisper + LoRA encoders (fewsound_sb.lobes).

Every model is tiny, randomly initialised and saved into a temporary folder by the
tests themselves: nothing is downloaded.
"""

import json
import os

import numpy as np
import pytest
import torch
from speechbrain.utils.checkpoints import Checkpointer

from fewsound_sb.lobes.encoders import SNACEncoder, WhisperLoRAEncoder
from fewsound_sb.lobes.whisper import WhisperLogMel, save_random_whisper

CROP = 32768  # the paper's crop at 22.05 kHz
TINY_WHISPER = dict(d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32)


@pytest.fixture(scope="module")
def whisper_folder(tmp_path_factory):
    torch.manual_seed(0)
    return save_random_whisper(str(tmp_path_factory.mktemp("whisper")), **TINY_WHISPER)


def tiny_whisper(folder, **overrides):
    kwargs = dict(output_dim=12, lora_rank=2, lora_alpha=4, lora_dropout=0.0)
    kwargs.update(overrides)
    torch.manual_seed(0)
    return WhisperLoRAEncoder(folder, **kwargs)


def set_lora_b(encoder, value=0.01):
    """LoRA's B starts at zero (the adapter is a no-op): make it act."""
    with torch.no_grad():
        for name, param in encoder.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param) * value)


# ------------------------------------------------------------------- front end


def test_log_mel_matches_whisper_feature_extractor():
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor()
    rng = np.random.default_rng(0)
    wav = (0.3 * rng.standard_normal(24000)).astype(np.float32)  # 1.5 s at 16 kHz
    expected = extractor(wav, sampling_rate=16000, return_tensors="np").input_features
    log_mel = WhisperLogMel.from_feature_extractor(extractor)
    got = log_mel(torch.from_numpy(wav)[None], num_frames=3000)
    assert got.shape == expected.shape == (1, 80, 3000)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)
    # the padded tail is at the floor (clip maximum - 8) / 4 + 1
    floor = got[0, :, 200:].min()
    assert torch.allclose(got[0, :, 200:], floor.expand(80, 2800))


def test_log_mel_short_window_equals_padded_frames():
    log_mel = WhisperLogMel.from_feature_extractor(__import__("transformers").WhisperFeatureExtractor())
    wav = torch.randn(2, 23778) * 0.1  # 32768 samples at 22.05 kHz, resampled
    full = log_mel(wav, num_frames=3000)
    short = log_mel(wav, num_frames=150)  # 149 frames hold audio, +1, even
    torch.testing.assert_close(short, full[..., :150], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="do not fit in 100 frames"):
        log_mel(wav, num_frames=100)


# --------------------------------------------------------------------- Whisper


def test_whisper_encode_matches_transformers_forward(whisper_folder):
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    encoder = tiny_whisper(whisper_folder).eval()
    mel = torch.randn(2, 80, 3000)
    reference = WhisperEncoder.from_pretrained(
        whisper_folder, key_mapping={r"^(model\.)?encoder\.": ""}, local_files_only=True
    ).eval()
    with torch.no_grad():
        ours = encoder._encode(mel)
        theirs = reference(mel).last_hidden_state
    torch.testing.assert_close(ours, theirs)  # LoRA's B starts at 0: same function
    set_lora_b(encoder, 0.1)
    with torch.no_grad():
        assert not torch.allclose(encoder._encode(mel), theirs, atol=1e-4)


@pytest.mark.parametrize("pad_to_30s", [True, False])
@pytest.mark.parametrize("pooling", ["gru", "mean"])
def test_whisper_shapes_for_crop_and_other_length(whisper_folder, pad_to_30s, pooling):
    encoder = tiny_whisper(whisper_folder, pad_to_30s=pad_to_30s, pooling=pooling)
    assert encoder.num_frames(CROP) == 75  # 32768 -> 23778 at 16 kHz -> 149 mel -> 75
    assert encoder.num_frames(8000) == 19  # 5805 -> 37 mel -> 19
    for length in (CROP, 8000):
        assert encoder.features(torch.randn(2, length) * 0.1).shape == (
            2, encoder.num_frames(length), 16)
        assert encoder(torch.randn(2, length) * 0.1).shape == (2, 12)


def test_whisper_short_window_same_frames_before_attention(whisper_folder):
    """The audio frames' conv features are the same in both modes; only the
    attention context (1,500 vs 75 frames) differs."""
    padded = tiny_whisper(whisper_folder, pad_to_30s=True).eval()
    short = tiny_whisper(whisper_folder, pad_to_30s=False).eval()
    wav = torch.randn(1, CROP) * 0.1
    with torch.no_grad():
        a, b = padded.features(wav), short.features(wav)
    assert a.shape == b.shape == (1, 75, 16)
    assert not torch.allclose(a, b, atol=1e-3)


def test_whisper_only_lora_and_head_get_gradients(whisper_folder):
    encoder = tiny_whisper(whisper_folder)
    set_lora_b(encoder)
    encoder(torch.randn(2, 4000) * 0.1).pow(2).sum().backward()
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(("lora_" in n) or n.startswith("pool.") for n in trainable)
    # adapters on q_proj and v_proj of both layers (A and B), GRU weights and biases
    assert len([n for n in trainable if "lora_" in n]) == 2 * 2 * 2
    for name, param in encoder.named_parameters():
        if name in trainable:
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        else:
            assert param.grad is None, name
    frozen = sum(p.numel() for n, p in encoder.named_parameters() if n not in trainable)
    assert frozen == sum(p.numel() for n, p in encoder.backbone.named_parameters() if "lora_" not in n)


def test_whisper_lora_targets_and_rank_from_arguments(whisper_folder):
    encoder = tiny_whisper(whisper_folder, lora_rank=3, lora_target_modules=("q_proj", "k_proj", "fc1"))
    shapes = {n: tuple(p.shape) for n, p in encoder.named_parameters() if "lora_A" in n}
    assert len(shapes) == 2 * 3
    assert shapes["backbone.layers.0.fc1.lora_A.default.weight"] == (3, 16)
    with pytest.raises(ValueError, match="choose among q_proj"):
        tiny_whisper(whisper_folder, lora_target_modules=("query",))
    with pytest.raises(ValueError, match="pooling must be one of"):
        tiny_whisper(whisper_folder, pooling="max")


def test_whisper_checkpoint_holds_only_trainable_state(whisper_folder, tmp_path):
    encoder = tiny_whisper(whisper_folder).eval()
    set_lora_b(encoder)
    wav = torch.randn(2, 6000) * 0.1
    with torch.no_grad():
        expected = encoder(wav)
    ckpt = Checkpointer(tmp_path / "save", {"encoder": encoder})
    saved = ckpt.save_checkpoint()
    state = torch.load(saved.path / "encoder.ckpt", weights_only=True)
    assert set(state) == set(encoder.trainable_state_dict())
    assert all("lora_" in k or k.startswith("pool.") for k in state)
    assert "backbone.layers.0.self_attn.k_proj.weight" not in state
    trainable = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    assert sum(v.numel() for v in state.values()) == trainable

    fresh = tiny_whisper(whisper_folder, output_dim=12).eval()
    torch.manual_seed(1)
    fresh.pool.reset_parameters()
    with torch.no_grad():
        assert not torch.allclose(fresh(wav), expected)
    Checkpointer(tmp_path / "save", {"encoder": fresh}).recover_if_possible()
    with torch.no_grad():
        torch.testing.assert_close(fresh(wav), expected)

    other = tiny_whisper(whisper_folder, lora_rank=4)
    with pytest.raises(ValueError, match="does not fit this Whisper encoder"):
        other._load(saved.path / "encoder.ckpt")


def test_whisper_loads_conditional_generation_checkpoint(whisper_folder, tmp_path):
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperModel

    model = WhisperModel.from_pretrained(whisper_folder)
    full = WhisperForConditionalGeneration(model.config)
    full.model.load_state_dict(model.state_dict())
    full.save_pretrained(tmp_path / "cg")
    WhisperFeatureExtractor().save_pretrained(tmp_path / "cg")
    a = tiny_whisper(whisper_folder)
    b = tiny_whisper(str(tmp_path / "cg"))
    torch.testing.assert_close(
        a.backbone.layers[1].fc2.weight, b.backbone.layers[1].fc2.weight)
    torch.testing.assert_close(a.backbone.conv1.weight, model.encoder.conv1.weight)


def test_whisper_bad_paths_fail_clearly(whisper_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="Whisper model folder not found.*hf download"):
        WhisperLoRAEncoder(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no model: config.json is missing"):
        WhisperLoRAEncoder(str(empty))
    other = tmp_path / "wav2vec2"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "wav2vec2"}))
    with pytest.raises(ValueError, match="expected model_type 'whisper', found 'wav2vec2'"):
        WhisperLoRAEncoder(str(other))
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    for name in ("config.json", "preprocessor_config.json"):
        with open(os.path.join(whisper_folder, name), encoding="utf-8") as fin:
            (no_weights / name).write_text(fin.read())
    with pytest.raises(FileNotFoundError, match="weights could not be read"):
        WhisperLoRAEncoder(str(no_weights))
    with pytest.raises(ValueError, match="longer than Whisper's 30 s window"):
        tiny_whisper(whisper_folder)(torch.zeros(1, 31 * 22050))


# ------------------------------------------------------------------------ SNAC


def tiny_snac(**overrides):
    kwargs = dict(input_length=2048, d_model=16, strides=(4, 8), attn_window_size=4, output_dim=10)
    kwargs.update(overrides)
    torch.manual_seed(0)
    return SNACEncoder(**kwargs)


def test_snac_default_is_the_authors_shape():
    encoder = SNACEncoder()
    assert (encoder.channels, encoder.num_frames) == (512, 32)
    assert encoder.proj.in_features == 4096 and encoder.output_dim == 3296
    assert sum(p.numel() for p in encoder.proj.parameters()) == 4096 * 3296 + 3296
    with torch.no_grad():
        assert encoder(torch.rand(1, CROP) - 0.5).shape == (1, 3296)


@pytest.mark.parametrize("length, frames", [(2048, 64), (3000, 96)])
def test_snac_shapes_for_lengths(length, frames):
    # hop 32, windows of 4 frames (128 samples): 3000 samples are padded to 3072 -> 96 frames
    encoder = tiny_snac(input_length=length)
    assert encoder.num_frames == frames
    assert encoder.features(torch.rand(2, length)).shape == (2, 64, frames)
    assert encoder(torch.rand(2, 1, length)).shape == (2, 10)
    assert encoder.proj.in_features == 64 * frames // 4
    with pytest.raises(ValueError, match=f"expected {length} samples"):
        encoder(torch.rand(2, length + 1))


def test_snac_gradients_reach_every_parameter():
    encoder = tiny_snac()
    encoder(torch.rand(2, 2048) - 0.5).pow(2).sum().backward()
    for name, param in encoder.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_snac_rejects_bad_config():
    with pytest.raises(ValueError, match="multiple of 64"):
        tiny_snac(d_model=2)


def save_snac(folder, **config):
    """A randomly initialised snac.SNAC in the package's checkpoint format."""
    from snac import SNAC

    os.makedirs(folder, exist_ok=True)
    torch.manual_seed(1)
    model = SNAC(**config)
    torch.save(model.state_dict(), os.path.join(folder, "pytorch_model.bin"))
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as fout:
        json.dump(config, fout)
    return model


SMALL_SNAC = dict(
    sampling_rate=22050, encoder_dim=16, encoder_rates=[4, 8], decoder_dim=64,
    decoder_rates=[8, 4], attn_window_size=4, vq_strides=[2, 1], codebook_size=16,
    depthwise=False,
)


def test_snac_loads_local_checkpoint(tmp_path):
    model = save_snac(str(tmp_path / "snac"), **SMALL_SNAC)
    encoder = tiny_snac(pretrained_path=str(tmp_path / "snac"))
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(encoder.encoder.state_dict()[key], value)
    # a bare state-dict file works too
    other = tiny_snac(pretrained_path=str(tmp_path / "snac" / "pytorch_model.bin"))
    torch.testing.assert_close(other.encoder.block[0].weight, model.encoder.block[0].weight)


def test_snac_checkpoint_of_another_shape_fails_clearly(tmp_path):
    save_snac(str(tmp_path / "wide"), **{**SMALL_SNAC, "encoder_dim": 32})
    with pytest.raises(ValueError, match="d_model: expected 16, checkpoint has 32"):
        tiny_snac(pretrained_path=str(tmp_path / "wide"))
    with pytest.raises(ValueError, match="does not fit the encoder configured here"):
        tiny_snac(pretrained_path=str(tmp_path / "wide" / "pytorch_model.bin"))
    with pytest.raises(FileNotFoundError, match="SNAC checkpoint not found"):
        tiny_snac(pretrained_path=str(tmp_path / "none.bin"))
