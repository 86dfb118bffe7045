"""Tests of fewsound_sb.config: the override checker and the recipe loader."""

import os
import re

import pytest
import ruamel.yaml

from fewsound_sb.config import check_overrides, load_recipe_hparams, yaml_top_level_keys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HPARAMS = os.path.join(ROOT, "hparams")
VCTK_YAML = os.path.join(ROOT, "recipes", "VCTK", "vctk.yaml")
FIT_YAML = os.path.join(ROOT, "recipes", "VCTK", "fit_inr.yaml")
MODEL_YAMLS = ["fewsound_kan", "fewsound_nerf", "fewsound_siren", "hypersound_kan",
               "hypersound_nerf"]
INR_YAMLS = ["kan", "nerf", "siren", "rff", "wire", "finer"]
DATASET_KEYS = {"data_folder", "train_annotation", "valid_annotation", "test_annotation",
                "skip_prep", "valid_speakers", "mic", "n_clips"}


def keys_of(path):
    with open(path, encoding="utf-8") as fin:
        return set(yaml_top_level_keys(fin.read()))


def test_check_overrides_suggests_close_keys():
    path = os.path.join(HPARAMS, "fewsound_kan.yaml")
    assert check_overrides(path, "batch_size: 4\nsamples_per_epoch: 8") == (
        "batch_size: 4\nsamples_per_epoch: 8"
    )
    with pytest.raises(ValueError, match="did you mean: number_of_epochs"):
        check_overrides(path, "number_of_epoch: 3")
    with pytest.raises(ValueError, match="--no_such_key\n"):
        check_overrides(path, {"no_such_key": 1})


def test_check_overrides_drops_distributed_launch():
    path = os.path.join(HPARAMS, "fewsound_kan.yaml")
    assert check_overrides(path, {"distributed_launch": True, "lr": 0.1}) == {"lr": 0.1}
    assert check_overrides(path, "distributed_launch: True\nlr: 0.1") == "lr: 0.1"


@pytest.mark.parametrize("name", MODEL_YAMLS)
def test_model_yamls_hold_no_dataset_keys(name):
    keys = keys_of(os.path.join(HPARAMS, f"{name}.yaml"))
    assert not keys & DATASET_KEYS, keys & DATASET_KEYS
    assert not keys & keys_of(VCTK_YAML)


@pytest.mark.parametrize("name", INR_YAMLS)
def test_inr_yamls_hold_no_dataset_keys(name):
    keys = keys_of(os.path.join(HPARAMS, "inr", f"{name}.yaml"))
    assert not keys & DATASET_KEYS, keys & DATASET_KEYS
    assert not keys & keys_of(FIT_YAML)


def test_recipe_overrides_go_to_either_yaml(tmp_path):
    model = os.path.join(HPARAMS, "hypersound_nerf.yaml")
    overrides = ("data_folder: /data/VCTK\nvalid_speakers: 4\nmic: mic2\n"
                 f"output_folder: {tmp_path}\nbatch_size: 2\nenc_norm: channel\n"
                 "enc_channels: 2\nenc_output_channels: 2\nenc_channel_mults: [2]\n"
                 "enc_strides: [4]\nhypernet_hidden: [4]\ncrop_length: 256")
    hparams, saved = load_recipe_hparams(model, overrides, VCTK_YAML)
    assert (hparams["valid_speakers"], hparams["mic"], hparams["data_folder"]) == (
        4, "mic2", "/data/VCTK")
    assert hparams["batch_size"] == 2 and hparams["encoder"].input_length == 256
    # the dataset YAML refers to the model YAML's save_folder
    assert hparams["test_annotation"] == os.path.join(str(tmp_path), "save", "test.json")
    # the YAML to save holds both files, overrides applied and references resolved
    with open(saved, encoding="utf-8") as fin:
        tree = ruamel.yaml.YAML().load(fin)  # tags kept, nothing built
    assert (tree["valid_speakers"], tree["mic"], tree["batch_size"], tree["n_valid"]) == (
        4, "mic2", 2, 512)
    assert tree["test_annotation"] == os.path.join(str(tmp_path), "save", "test.json")


def test_recipe_unknown_keys_suggest_from_both_yamls():
    model = os.path.join(HPARAMS, "fewsound_kan.yaml")
    with pytest.raises(ValueError) as info:
        load_recipe_hparams(model, "valid_speaker: 4\nbatch_sise: 2\nmik: mic2", VCTK_YAML)
    message = str(info.value)
    assert "fewsound_kan.yaml" in message and "vctk.yaml" in message
    assert "--valid_speaker (did you mean: valid_speakers, valid_every?)" in message
    assert "--batch_sise (did you mean: batch_size?)" in message
    assert "--mik (did you mean: mic?)" in message


def test_recipe_key_in_both_yamls_is_an_error(tmp_path):
    model = tmp_path / "model.yaml"
    model.write_text("lr: 0.1\nmic: mic1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="mic defined in both"):
        load_recipe_hparams(str(model), {}, VCTK_YAML)


@pytest.mark.parametrize("name", INR_YAMLS)
def test_fit_recipe_loads_every_inr_yaml(name, tmp_path):
    hparams, _ = load_recipe_hparams(
        os.path.join(HPARAMS, "inr", f"{name}.yaml"),
        {"data_folder": "/data/VCTK", "n_clips": 3, "output_folder": str(tmp_path)},
        FIT_YAML,
    )
    assert hparams["n_clips"] == 3 and hparams["mic"] == "mic1" and hparams["inr"] == name


ALL_YAMLS = sorted(
    os.path.join(folder, name)
    for folder in (HPARAMS, os.path.join(HPARAMS, "inr"), os.path.join(ROOT, "recipes", "VCTK"))
    for name in os.listdir(folder) if name.endswith(".yaml")
)


@pytest.mark.parametrize("path", ALL_YAMLS, ids=lambda p: os.path.relpath(p, ROOT))
def test_yamls_have_no_duplicate_keys(path):
    """A repeated key is only a warning to ruamel (the last one wins): make it an error."""
    import io
    from collections import Counter

    with open(path, encoding="utf-8") as fin:
        text = fin.read()
    top = Counter(yaml_top_level_keys(text))
    assert not [k for k, n in top.items() if n > 1], f"{path}: repeated top-level keys"
    untagged = re.sub(r"(?<![!\w])![^!\s]*", "", text)  # HyperPyYAML tags (!new:, !ref, ...)
    loader = ruamel.yaml.YAML(typ="safe", pure=True)
    loader.allow_duplicate_keys = False
    loader.load(io.StringIO(untagged))  # raises DuplicateKeyError on nested duplicates too
