"""Miniature on-disk trees of each dataset's distributed layout, built at test time.

Speech comes from the embedded corpus (tests/samples/VCTK-mini), music and
environmental sound are generated tones and noise. The awkward cases of the
real archives are included: 8-bit and 24-bit wavs, stereo, 44.1/48/96 kHz,
clips far shorter than the crop, an undecodable file (GTZAN's
jazz.00054.wav) and a metadata row without its file.

``build_tree(name, root)`` returns the folder to pass as ``--data_folder``.
"""

import glob
import os

import numpy as np
import soundfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(REPO, "tests", "samples", "VCTK-mini", "wav48_silence_trimmed")
CLIP_SECONDS = 0.4  # long enough for the tests' 2,048-sample crops at 22,050 Hz


def _speech(index, sample_rate, seconds=CLIP_SECONDS):
    """A piece of an embedded VCTK recording, resampled (linearly) to ``sample_rate``."""
    files = sorted(glob.glob(os.path.join(CORPUS, "*", "*.flac")))
    data, rate = soundfile.read(files[index % len(files)], dtype="float32")
    data = data[int(0.3 * rate): int((0.3 + seconds) * rate)]
    n_out = int(round(len(data) * sample_rate / rate))
    return np.interp(np.arange(n_out) * rate / sample_rate, np.arange(len(data)), data)


def _tone(index, sample_rate, seconds=CLIP_SECONDS, channels=1):
    """A chord of two tones plus a little seeded noise, ``[T]`` or ``[T, C]``."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(index)
    f0 = 110.0 * (index % 7 + 2)
    wav = 0.4 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * 1.5 * f0 * t)
    wav = wav + 0.05 * rng.standard_normal(len(t))
    if channels == 1:
        return wav
    return np.stack([wav * (1.0 - 0.3 * c) for c in range(channels)], axis=1)


def _write(root, rel_path, wav, sample_rate, subtype="PCM_16"):
    path = os.path.join(root, rel_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    soundfile.write(path, wav, sample_rate, subtype=subtype)
    return path


def _write_undecodable(root, rel_path):
    """A RIFF/WAVE header followed by garbage, like GTZAN's jazz.00054.wav."""
    path = os.path.join(root, rel_path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fout:
        fout.write(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(40)))
    return path


def build_gtzan(root):
    """``genres_original/<genre>/<genre>.000NN.wav``: 3 genres x 4 clips + jazz.00054."""
    folder = os.path.join(root, "Data")
    for g, genre in enumerate(("blues", "jazz", "rock")):
        for i in range(4):
            kwargs = {}
            if (g, i) == (1, 0):
                kwargs = {"subtype": "PCM_24"}
            wav = _tone(10 * g + i, 22050, channels=2 if (g, i) == (2, 1) else 1)
            _write(folder, f"genres_original/{genre}/{genre}.{i:05d}.wav", wav, 22050, **kwargs)
    _write_undecodable(folder, "genres_original/jazz/jazz.00054.wav")
    return folder


US8K_ROWS = (  # (file, fold, class, sample rate, channels, subtype, seconds)
    ("100032-3-0-0.wav", 1, "dog_bark", 44100, 2, "PCM_24", 0.3),
    ("100263-2-0-117.wav", 1, "children_playing", 48000, 1, "PCM_U8", 0.2),
    ("101415-3-0-2.wav", 1, "dog_bark", 22050, 1, "PCM_16", 0.01),  # far shorter than the crop
    ("102305-6-0-0.wav", 1, "gun_shot", 96000, 1, "FLOAT", 0.15),
    ("102871-8-0-3.wav", 9, "siren", 11025, 1, "PCM_16", 0.4),
    ("103074-7-0-0.wav", 9, "jackhammer", 44100, 2, "PCM_16", 0.05),
    ("103199-4-0-0.wav", 10, "drilling", 48000, 1, "PCM_24", 0.3),
    ("103258-5-0-17.wav", 10, "engine_idling", 32000, 2, "PCM_U8", 0.02),
)


def build_urbansound8k(root):
    """``audio/fold{1,9,10}/*.wav`` in mixed formats and ``metadata/UrbanSound8K.csv``.

    Folds 1, 9 and 10: the recipe's default train / valid / test folds find
    clips. The CSV also lists ``104817-4-0-2.wav`` (fold 1) whose file is missing.
    """
    folder = os.path.join(root, "UrbanSound8K")
    lines = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    for i, (name, fold, cls, rate, channels, subtype, seconds) in enumerate(US8K_ROWS):
        wav = _tone(i, rate, seconds=seconds, channels=channels)
        _write(folder, f"audio/fold{fold}/{name}", wav, rate, subtype=subtype)
        lines.append(f"{name},{name.split('-')[0]},0.0,{seconds},1,{fold},{name.split('-')[1]},{cls}")
    lines.append("104817-4-0-2.wav,104817,0.0,4.0,2,1,4,drilling")
    os.makedirs(os.path.join(folder, "metadata"), exist_ok=True)
    with open(os.path.join(folder, "metadata", "UrbanSound8K.csv"), "w", encoding="utf-8") as fout:
        fout.write("\n".join(lines) + "\n")
    return folder


def build_librispeech(root):
    """``LibriSpeech/{train-clean-100,test-other}/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac``."""
    folder = os.path.join(root, "LibriSpeech")
    index = 0
    for subset, speakers in (("train-clean-100", ("19", "26")), ("test-other", ("1688",))):
        for spk in speakers:
            chapter = str(100 + int(spk))
            for utt in range(3):
                _write(folder, f"{subset}/{spk}/{chapter}/{spk}-{chapter}-{utt:04d}.flac",
                       _speech(index, 16000), 16000)
                index += 1
    return folder


def build_ljspeech(root):
    """``LJSpeech-1.1/wavs/LJ001-000N.wav`` and ``metadata.csv`` (one row without its wav)."""
    folder = os.path.join(root, "LJSpeech-1.1")
    rows = []
    for i in range(1, 11):
        utt = f"LJ001-{i:04d}"
        _write(folder, f"wavs/{utt}.wav", _speech(i, 22050), 22050)
        rows.append(f"{utt}|Printing, in the only sense {i}|Printing, in the only sense {i}")
    rows.append("LJ050-0278|Gone.|Gone.")
    with open(os.path.join(folder, "metadata.csv"), "w", encoding="utf-8") as fout:
        fout.write("\n".join(rows) + "\n")
    return folder


def build_noisy_vctk(root):
    """``{noisy,clean}_{trainset_28spk,testset}_wav/p<spk>_<utt>.wav`` at 48 kHz."""
    folder = os.path.join(root, "DS_10283_2791")
    rng = np.random.default_rng(0)
    index = 0
    for subset, speakers in (("trainset_28spk", ("p226", "p227")), ("testset", ("p232",))):
        for spk in speakers:
            for utt in range(1, 4):
                clean = _speech(index, 48000)
                noisy = clean + 0.05 * rng.standard_normal(len(clean))
                name = f"{spk}_{utt:03d}.wav"
                _write(folder, f"clean_{subset}_wav/{name}", clean, 48000)
                _write(folder, f"noisy_{subset}_wav/{name}", np.clip(noisy, -1, 1), 48000)
                index += 1
    return folder


BUILDERS = {
    "GTZAN": build_gtzan,
    "UrbanSound8K": build_urbansound8k,
    "LibriSpeech": build_librispeech,
    "LJSpeech": build_ljspeech,
    "NoisyVCTK": build_noisy_vctk,
}


def build_tree(name, root):
    """Builds the miniature tree of dataset ``name`` under ``root``; returns its data folder."""
    return BUILDERS[name](os.fspath(root))
