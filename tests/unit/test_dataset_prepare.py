"""Tests of the five dataset prepare scripts on miniature trees of their real layouts.

recipes/{GTZAN,UrbanSound8K,LibriSpeech,LJSpeech,NoisyVCTK}/<dataset>_prepare.py
and the shared fewsound_sb.preparation (probe, manifests written once, counts,
seeded fitting picks). The trees are built at test time (tests/dataset_trees.py).
"""

import json
import logging
import os
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tests"))
for _name in ("GTZAN", "UrbanSound8K", "LibriSpeech", "LJSpeech", "NoisyVCTK"):
    sys.path.insert(0, os.path.join(REPO, "recipes", _name))

from dataset_trees import build_tree  # noqa: E402
from gtzan_prepare import prepare_gtzan  # noqa: E402
from librispeech_prepare import prepare_librispeech  # noqa: E402
from ljspeech_prepare import prepare_ljspeech  # noqa: E402
from noisyvctk_prepare import prepare_noisy_vctk  # noqa: E402
from urbansound8k_prepare import prepare_urbansound8k  # noqa: E402

from fewsound_sb.preparation import pick_per_group, probe_audio  # noqa: E402

RATE, CROP = 22050, 2048
PREPARE = {  # dataset -> (function, its dataset-specific options)
    "GTZAN": (prepare_gtzan, {"valid_ratio": 0.25, "split_seed": 0}),
    "UrbanSound8K": (prepare_urbansound8k,
                     {"train_folds": [1], "valid_folds": [9], "test_folds": [10]}),
    "LibriSpeech": (prepare_librispeech, {"train_subsets": ["train-clean-100"],
                                          "valid_subsets": ["test-other"],
                                          "test_subsets": ["test-other"]}),
    "LJSpeech": (prepare_ljspeech, {"valid_ratio": 0.2, "split_seed": 1}),
    "NoisyVCTK": (prepare_noisy_vctk, {"train_set": "28spk"}),
}
# dataset -> {split: (found, kept, padded)}
EXPECTED = {
    "UrbanSound8K": {"train": (5, 4, 1), "valid": (2, 2, 1), "test": (2, 2, 1)},
    "LibriSpeech": {"train": (6, 6, 0), "valid": (3, 3, 0), "test": (3, 3, 0)},
    "LJSpeech": {"train": (9, 8, 0), "valid": (2, 2, 0), "test": (2, 2, 0)},
    "NoisyVCTK": {"train": (6, 6, 0), "valid": (3, 3, 0), "test": (3, 3, 0)},
}


def _prepare(name, data_folder, save_folder, **changes):
    function, options = PREPARE[name]
    return function(data_folder, str(save_folder), **{**options, **changes},
                    sample_rate=RATE, crop_length=CROP, progress=False)


def _load(path):
    with open(path, encoding="utf-8") as fin:
        return json.load(fin)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("trees")
    return {name: build_tree(name, root / name) for name in PREPARE}


@pytest.mark.parametrize("name", sorted(PREPARE))
def test_manifests_written_once_with_lengths(name, trees, tmp_path):
    save = tmp_path / "save"
    counts = _prepare(name, trees[name], save)
    manifests = {split: _load(save / f"{split}.json") for split in ("train", "valid", "test")}
    for split, entries in manifests.items():
        assert entries, split
        assert counts[split]["kept"] == len(entries)
        for entry in entries.values():
            assert entry["wav"].startswith("{data_root}/")
            path = entry["wav"].replace("{data_root}", trees[name])
            assert os.path.isfile(path)
            assert entry["num_samples"] == probe_audio(path)["num_samples"] > 0
            assert entry["duration"] == pytest.approx(
                entry["num_samples"] / entry["file_sample_rate"], abs=1e-6)
    if name in EXPECTED:
        got = {split: (c["found"], c["kept"], c["padded"]) for split, c in counts.items()}
        assert got == EXPECTED[name]
    assert not set(manifests["train"]) & set(manifests["valid"]), "train/valid overlap"

    # a rerun with the same options reuses the manifests (not rewritten), same counts
    mtime = os.path.getmtime(save / "train.json")
    assert _prepare(name, trees[name], save) == counts
    assert os.path.getmtime(save / "train.json") == mtime


def test_gtzan_undecodable_file_skipped_with_warning(trees, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        counts = _prepare("GTZAN", trees["GTZAN"], tmp_path)
    assert "jazz.00054.wav" in caplog.text
    assert sum(c.get("skipped", {}).get("unreadable", 0)
               for split, c in counts.items() if split != "test") == 1
    assert sum(counts[s]["found"] for s in ("train", "valid")) == 13
    entries = {**_load(tmp_path / "train.json"), **_load(tmp_path / "valid.json")}
    assert len(entries) == 12 and "jazz.00054" not in entries
    assert {e["genre"] for e in entries.values()} == {"blues", "jazz", "rock"}
    valid = _load(tmp_path / "valid.json")
    assert sorted(e["genre"] for e in valid.values()) == ["blues", "jazz", "rock"]
    # formats as distributed: the 24-bit and the stereo clip are kept
    assert entries["rock.00001"]["channels"] == 2
    # another split seed rewrites the manifests
    _prepare("GTZAN", trees["GTZAN"], tmp_path, split_seed=5)
    assert _load(tmp_path / "prepare_options.json")["options"]["split_seed"] == 5


def test_urbansound8k_formats_lengths_and_missing_row(trees, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        counts = _prepare("UrbanSound8K", trees["UrbanSound8K"], tmp_path)
    assert "104817-4-0-2.wav" in caplog.text
    assert counts["train"]["skipped"] == {"listed in metadata/UrbanSound8K.csv, missing": 1}
    train = _load(tmp_path / "train.json")
    assert train["100032-3-0-0"] == {
        "wav": "{data_root}/audio/fold1/100032-3-0-0.wav", "duration": 0.3, "num_samples": 13230,
        "file_sample_rate": 44100, "channels": 2, "fold": 1, "class": "dog_bark",
    }
    assert train["100263-2-0-117"]["file_sample_rate"] == 48000  # 8-bit
    assert train["101415-3-0-2"]["num_samples"] == 220  # far shorter than the crop
    assert train["102305-6-0-0"]["file_sample_rate"] == 96000
    assert set(_load(tmp_path / "test.json")) == {"103199-4-0-0", "103258-5-0-17"}


def test_librispeech_splits_are_subsets(trees, tmp_path):
    _prepare("LibriSpeech", trees["LibriSpeech"], tmp_path)
    train, valid = _load(tmp_path / "train.json"), _load(tmp_path / "valid.json")
    assert {e["subset"] for e in train.values()} == {"train-clean-100"}
    assert {e["spk_id"] for e in train.values()} == {"19", "26"}
    assert {e["spk_id"] for e in valid.values()} == {"1688"}
    assert train["19-119-0000"]["file_sample_rate"] == 16000


def test_ljspeech_seeded_split(trees, tmp_path):
    _prepare("LJSpeech", trees["LJSpeech"], tmp_path / "a")
    _prepare("LJSpeech", trees["LJSpeech"], tmp_path / "b", split_seed=2)
    valid_a = set(_load(tmp_path / "a" / "valid.json"))
    assert valid_a == set(_load(tmp_path / "a" / "test.json"))
    assert valid_a != set(_load(tmp_path / "b" / "valid.json"))
    assert _load(tmp_path / "a" / "train.json")["LJ001-0001"]["words"].startswith("Printing")


def test_noisy_vctk_reconstructs_the_noisy_clip(trees, tmp_path):
    _prepare("NoisyVCTK", trees["NoisyVCTK"], tmp_path)
    entry = _load(tmp_path / "train.json")["p226_001"]
    assert entry["wav"] == "{data_root}/noisy_trainset_28spk_wav/p226_001.wav"
    assert entry["clean_wav"] == "{data_root}/clean_trainset_28spk_wav/p226_001.wav"
    assert {e["spk_id"] for e in _load(tmp_path / "valid.json").values()} == {"p232"}


@pytest.mark.parametrize("name, folder, message", [
    ("GTZAN", "genres_original", "is not a GTZAN folder: expected"),
    ("UrbanSound8K", "metadata", "UrbanSound8K.csv"),
    ("LJSpeech", "metadata.csv", "expected"),
    ("NoisyVCTK", "noisy_testset_wav", "noisy_testset_wav"),
])
def test_wrong_folder_says_what_was_expected(name, folder, message, tmp_path):
    data = build_tree(name, tmp_path / "tree")
    if name == "GTZAN":  # the archive's parent: genres_original is one level down
        with pytest.raises(ValueError, match="Data"):
            _prepare(name, os.path.dirname(data), tmp_path / "save")
    target = os.path.join(data, folder)
    os.rename(target, target + ".moved")
    with pytest.raises(ValueError, match=message):
        _prepare(name, data, tmp_path / "save")
    with pytest.raises(FileNotFoundError, match="--data_folder"):
        _prepare(name, os.path.join(data, "nowhere"), tmp_path / "save")


def test_librispeech_parent_or_subset_folder_fails_clearly(trees, tmp_path):
    parent = os.path.dirname(trees["LibriSpeech"])
    with pytest.raises(ValueError, match="Pass --data_folder .*LibriSpeech$"):
        _prepare("LibriSpeech", parent, tmp_path)
    with pytest.raises(ValueError, match="is a LibriSpeech subset folder"):
        _prepare("LibriSpeech", os.path.join(trees["LibriSpeech"], "train-clean-100"), tmp_path)
    with pytest.raises(ValueError, match="dev-clean"):
        _prepare("LibriSpeech", trees["LibriSpeech"], tmp_path, valid_subsets=["dev-clean"])


@pytest.mark.parametrize("name, key, groups", [
    ("GTZAN", "genre", ["blues", "jazz", "rock"]),
    ("UrbanSound8K", "fold", ["1", "9", "10"]),
])
def test_pick_per_group_is_seeded_and_balanced(name, key, groups, trees, tmp_path):
    _prepare(name, trees[name], tmp_path)
    manifests = [str(tmp_path / f"{s}.json") for s in ("train", "valid", "test")]
    picks = pick_per_group(manifests, key, 2, seed=3, data_folder=trees[name])
    assert len(picks) == 2 * len(groups)
    assert picks == pick_per_group(manifests, key, 2, seed=3, data_folder=trees[name])
    assert all(os.path.isfile(path) for _, path in picks)
    assert "jazz.00054" not in [clip_id for clip_id, _ in picks]
    others = [pick_per_group(manifests, key, 2, seed=s, data_folder=trees[name]) for s in range(6)]
    assert any(p != picks for p in others)


def test_short_clips_carry_their_valid_length(trees, tmp_path):
    """UrbanSound8K clips shorter than the crop: zero-padded, relative length < 1."""
    from fewsound_sb.datasets import make_datasets

    _prepare("UrbanSound8K", trees["UrbanSound8K"], tmp_path)
    hparams = {"data_folder": trees["UrbanSound8K"], "sample_rate": RATE, "crop_length": CROP,
               "data_seed": 0, "samples_per_epoch": 4, "n_valid": None, "n_test": None,
               **{f"{s}_annotation": str(tmp_path / f"{s}.json") for s in ("train", "valid", "test")}}
    datasets, _ = make_datasets(hparams)
    test = datasets["test"]
    items = {test[i]["id"]: test[i] for i in range(len(test))}  # (iterating never stops)
    short = items["103258-5-0-17"]  # 0.02 s at 32 kHz = 441 samples at 22,050 Hz
    assert short["sig"].shape == (CROP,)
    assert short["length"] == pytest.approx(441 / CROP)
    assert short["sig"][441:].abs().max() == 0 and short["sig"][:441].abs().max() == 1
    assert items["103199-4-0-0"]["length"] == 1.0


def test_brain_loss_ignores_the_padding_of_short_clips():
    """FewSoundBrain.compute_objectives uses the pipeline's relative ``length``."""
    from types import SimpleNamespace

    import speechbrain as sb
    import torch
    from speechbrain.dataio.batch import PaddedBatch

    from fewsound_sb.brains import FewSoundBrain
    from fewsound_sb.losses import FewSoundLoss

    torch.manual_seed(0)
    wav = torch.zeros(2, 1024)
    wav[:, :256] = torch.randn(2, 256)  # 256 samples of audio, then zero padding
    batch = PaddedBatch([{"id": str(i), "sig": wav[i], "length": 0.25} for i in range(2)])
    brain = SimpleNamespace(hparams=SimpleNamespace(loss=FewSoundLoss(lambda_f=0.0)),
                            stage_batches=0, skipped_items=0)  # the counters the hook updates
    exact = wav.clone()
    noisy_padding = wav.clone()
    noisy_padding[:, 256:] = 1.0  # wrong only where the clip is padding
    losses = [FewSoundBrain.compute_objectives(brain, (x_hat, {}), batch, sb.Stage.TRAIN)
              for x_hat in (exact, noisy_padding)]
    assert float(losses[0]) == 0.0 and float(losses[1]) == 0.0
    full = PaddedBatch([{"id": str(i), "sig": wav[i], "length": 1.0} for i in range(2)])
    assert float(FewSoundBrain.compute_objectives(
        brain, (noisy_padding, {}), full, sb.Stage.TRAIN)) == pytest.approx(0.75)


def test_check_audio_decodes_everything_and_lists_bad_files(trees, tmp_path):
    counts = _prepare("GTZAN", trees["GTZAN"], tmp_path, check_audio=True)
    bad = (tmp_path / "bad_audio_files.txt").read_text(encoding="utf-8").split()
    assert bad == ["genres_original/jazz/jazz.00054.wav"]
    assert sum(counts[s]["kept"] for s in ("train", "valid")) == 12
