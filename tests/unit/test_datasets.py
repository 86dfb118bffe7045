"""Tests of fewsound_sb.datasets on the embedded VCTK-mini corpus."""

import json
import os
import sys

import pytest
import torch

from fewsound_sb.datasets import make_datasets

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "samples", "VCTK-mini")
sys.path.insert(0, os.path.join(ROOT, "recipes", "VCTK"))
from vctk_prepare import prepare_vctk  # noqa: E402  (the recipe's own folder)


def vctk_hparams(save, **overrides):
    hparams = {
        "data_folder": CORPUS,
        "train_annotation": os.path.join(save, "train.json"),
        "valid_annotation": os.path.join(save, "valid.json"),
        "test_annotation": os.path.join(save, "test.json"),
        "sample_rate": 8000, "crop_length": 1024, "data_seed": 3,
        "samples_per_epoch": 7, "n_valid": 5, "n_test": None,
    }
    hparams.update(overrides)
    return hparams


def test_make_datasets_splits_subsets_and_sampler(tmp_path):
    save = str(tmp_path)
    prepare_vctk(CORPUS, save, valid_speakers=10)
    n_train = len(json.load(open(os.path.join(save, "train.json"))))
    n_valid = len(json.load(open(os.path.join(save, "valid.json"))))
    datasets, sampler = make_datasets(vctk_hparams(save))
    assert len(datasets["train"]) == n_train
    assert len(datasets["valid"]) == 5 < n_valid  # seeded subset
    assert len(datasets["test"]) == n_valid  # n_test null: all
    assert len(sampler) == 7 and len(list(iter(sampler))) == 7
    # the same seed picks the same subset; another seed another one
    again, _ = make_datasets(vctk_hparams(save))
    other, _ = make_datasets(vctk_hparams(save, data_seed=4))
    ids = sorted(datasets["valid"].data_ids)
    assert ids == sorted(again["valid"].data_ids) and ids != sorted(other["valid"].data_ids)
    # evaluation crops: the first crop_length samples, peak-normalised, deterministic
    item = datasets["test"][0]
    assert item["sig"].shape == (1024,) and float(item["sig"].abs().max()) == pytest.approx(1.0)
    torch.testing.assert_close(item["sig"], datasets["test"][0]["sig"])


def test_make_datasets_reads_its_own_test_manifest(tmp_path):
    save = str(tmp_path)
    prepare_vctk(CORPUS, save, valid_speakers=10)
    with open(os.path.join(save, "valid.json"), encoding="utf-8") as fin:
        valid = json.load(fin)
    test_json = tmp_path / "other_test.json"
    test_json.write_text(json.dumps(dict(list(valid.items())[:3])), encoding="utf-8")
    datasets, _ = make_datasets(vctk_hparams(save, test_annotation=str(test_json), n_valid=None))
    assert sorted(datasets["test"].data_ids) == sorted(list(valid)[:3])
    assert len(datasets["valid"]) == len(valid)


def test_make_datasets_empty_manifest_fails_clearly(tmp_path):
    save = str(tmp_path)
    prepare_vctk(CORPUS, save, valid_speakers=10)
    (tmp_path / "test.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"No clips in '.*test.json' \(test split\)"):
        make_datasets(vctk_hparams(save))
