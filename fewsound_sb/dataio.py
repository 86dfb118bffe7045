"""Audio input/output, clips to fit, and SpeechBrain data pipelines.

Reading (any format soundfile reads: wav, flac, ogg, mp3), mixing to mono,
resampling, peak normalisation, cropping/padding to the fixed clip length the
hypernetworks use (32,768 samples at 22,050 Hz in the paper), splitting a long
file into consecutive pieces, writing audio (atomically, through
:func:`fewsound_sb.files.atomic_write`), and the ``@takes``/``@provides``
pipeline factory for :class:`speechbrain.dataio.dataset.DynamicItemDataset`.

The clips of single-clip fitting are read here too: :func:`prepare_clips`
turns files into :class:`FitClip` objects (cropped or split into pieces,
peak-normalised, with the gain that restores the original level), and
:func:`unique_ids` names them; :mod:`fewsound_sb.fitting` fits them.

Every bad audio file raises the same exception, :class:`AudioReadError`, whose
message names the file, what is wrong with it and what to do.
"""

import numbers
import os
from dataclasses import dataclass

import numpy as np
import soundfile
import torch
import torchaudio
from speechbrain.utils.data_pipeline import provides, takes
from speechbrain.utils.logger import get_logger
from tqdm import tqdm

from fewsound_sb.files import atomic_write

logger = get_logger(__name__)

CROP_MODES = ("random", "start", "center")


class AudioReadError(ValueError):
    """Raised for any audio file that cannot be used: missing, empty, corrupt,
    not audio, without samples, or with NaN/inf samples.

    The message names the file, the problem and what to do about it.

    Example
    -------
    >>> try:
    ...     read_audio("no/such/file.wav")
    ... except AudioReadError as err:
    ...     print(str(err).split(":")[0])
    Cannot read audio file 'no/such/file.wav'
    """


def _fail(path, problem, advice):
    """Builds an AudioReadError with a uniform message."""
    return AudioReadError(f"Cannot read audio file '{path}': {problem}. {advice}")


def read_audio(path, sample_rate=22050, mono=True):
    """Reads an audio file as float32, optionally mixing to mono and resampling.

    Arguments
    ---------
    path : str or os.PathLike
        Any file soundfile reads (wav, flac, ogg, mp3).
    sample_rate : int or None
        Output sample rate in Hz. The audio is resampled with
        ``torchaudio.functional.resample`` when the file's rate differs.
        ``None`` keeps the file's own rate (see ``soundfile.info(path)``).
    mono : bool
        If True, channels are averaged and a ``[T]`` tensor is returned;
        otherwise ``[C, T]``.

    Returns
    -------
    wav : torch.Tensor
        float32, ``[T]`` (mono) or ``[C, T]``, at ``sample_rate``.

    Raises
    ------
    AudioReadError
        The file is missing, empty (0 bytes), truncated or corrupt, not audio,
        has no samples, or contains NaN/inf samples.

    Example
    -------
    >>> import os, tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> path = os.path.join(tmp, "tone.wav")
    >>> stereo = torch.zeros(2, 4800)
    >>> stereo[0] = 0.5
    >>> write_audio(path, stereo, sample_rate=48000)
    >>> read_audio(path, sample_rate=16000).shape
    torch.Size([1600])
    >>> read_audio(path, sample_rate=None, mono=False).shape
    torch.Size([2, 4800])
    >>> round(read_audio(path, sample_rate=None)[100].item(), 3)
    0.25
    """
    if sample_rate is not None and (
        not isinstance(sample_rate, numbers.Integral) or sample_rate <= 0
    ):
        raise ValueError(
            f"sample_rate must be a positive int or None. Found: {sample_rate!r}"
        )
    path = os.fspath(path)
    if not os.path.exists(path):
        raise _fail(
            path, "file not found", "Check the path (and {data_root} in the manifest)."
        )
    if not os.path.isfile(path):
        raise _fail(path, "not a regular file", "Pass an audio file, not a folder.")
    if os.path.getsize(path) == 0:
        raise _fail(path, "the file is empty (0 bytes)", "Re-copy or re-download it.")
    try:
        data, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError) as err:
        raise _fail(
            path,
            f"it is not audio soundfile can decode, or it is truncated/corrupt ({err})",
            "Re-copy or re-export it as wav/flac/ogg.",
        ) from err
    if data.shape[0] == 0:
        raise _fail(
            path, "it contains no samples (zero length)", "Remove it from the data."
        )
    if not np.isfinite(data).all():
        raise _fail(
            path,
            "it contains NaN or inf samples",
            "Re-export it or remove it from the data.",
        )

    wav = torch.from_numpy(data.T.copy())  # [C, T]
    if mono:
        wav = wav.mean(dim=0)  # [T]
    if sample_rate is not None and file_rate != sample_rate:
        wav = torchaudio.functional.resample(wav, file_rate, sample_rate)
    return wav


def peak_normalize(wav, eps=1e-8):
    """Divides each signal by its peak absolute value (y / max|y|).

    Silent (all-zero) signals stay zero instead of becoming NaN: the peak is
    clamped to at least ``eps``.

    Arguments
    ---------
    wav : torch.Tensor
        ``[..., T]``; each signal along the last dimension is normalised alone.
    eps : float
        Lower bound on the peak, to avoid dividing by zero.

    Returns
    -------
    torch.Tensor
        Same shape as ``wav``, peak 1 (0 for silent signals).

    Example
    -------
    >>> peak_normalize(torch.tensor([[0.1, -0.5, 0.25], [0.0, 0.0, 0.0]]))
    tensor([[ 0.2000, -1.0000,  0.5000],
            [ 0.0000,  0.0000,  0.0000]])
    """
    peak = wav.abs().amax(dim=-1, keepdim=True).clamp_min(eps)
    return wav / peak


def crop_or_pad(wav, length, mode="random", generator=None):
    """Crops or zero-pads the last dimension to exactly ``length`` samples.

    Longer signals are cropped (``"random"`` start for training, drawn with
    ``generator``; ``"start"`` or ``"center"`` for deterministic evaluation).
    Shorter signals are zero-padded at the end.

    Arguments
    ---------
    wav : torch.Tensor
        ``[..., T]`` signal.
    length : int
        Output length in samples.
    mode : str
        ``"random"``, ``"start"`` or ``"center"``.
    generator : torch.Generator or None
        RNG for ``mode="random"`` (None: torch's global RNG).

    Returns
    -------
    out : torch.Tensor
        ``[..., length]``.
    num_valid : int
        Number of leading samples of ``out`` that come from ``wav``
        (``min(T, length)``); the rest is padding.

    Example
    -------
    >>> wav = torch.arange(10.0)
    >>> crop_or_pad(wav, 4, mode="start")
    (tensor([0., 1., 2., 3.]), 4)
    >>> crop_or_pad(wav, 4, mode="center")
    (tensor([3., 4., 5., 6.]), 4)
    >>> crop_or_pad(wav[:3], 5, mode="start")
    (tensor([0., 1., 2., 0., 0.]), 3)
    >>> g = torch.Generator().manual_seed(0)
    >>> crop_or_pad(wav, 4, mode="random", generator=g)[0].shape
    torch.Size([4])
    """
    if mode not in CROP_MODES:
        raise ValueError(f"mode must be one of {CROP_MODES}. Found: {mode!r}")
    if length <= 0:
        raise ValueError(f"length must be positive. Found: {length}")
    num_samples = wav.shape[-1]
    if num_samples < length:
        pad = torch.zeros(
            *wav.shape[:-1], length - num_samples, dtype=wav.dtype, device=wav.device
        )
        return torch.cat([wav, pad], dim=-1), num_samples
    start = crop_start(num_samples, length, mode, generator)
    return wav[..., start : start + length], length


def crop_start(num_samples, length, mode="random", generator=None):
    """First sample of the crop :func:`crop_or_pad` takes (0 if no crop).

    Arguments
    ---------
    num_samples : int
        Length of the signal.
    length : int
        Crop length.
    mode : str
        ``"random"``, ``"start"`` or ``"center"``.
    generator : torch.Generator or None
        RNG for ``mode="random"`` (one draw, only if the signal is longer).

    Returns
    -------
    int

    Example
    -------
    >>> crop_start(10, 4, "center"), crop_start(3, 4, "random")
    (3, 0)
    """
    slack = num_samples - length
    if mode == "start" or slack <= 0:
        return 0
    if mode == "center":
        return slack // 2
    return int(torch.randint(0, slack + 1, (1,), generator=generator))


def phase_mangle(wav, sample_rate, generator=None, min_freq=20.0, max_freq=2000.0,
                 pole_radius=0.99):
    """Random 2nd-order all-pass filter ("phase mangling") of a signal.

    The authors' training augmentation (github.com/gmum/fewsound,
    ``fewsound/datasets/transforms.py``): a biquad all-pass with poles at
    radius ``r`` and angle ``w0 = 2 pi f / sample_rate``, ``f`` drawn
    log-uniformly in ``[min_freq, max_freq]``:
    ``H(z) = (r^2 - 2 r cos(w0) z^-1 + z^-2) / (1 - 2 r cos(w0) z^-1 + r^2 z^-2)``.
    The magnitude spectrum is kept, the phase around ``f`` is changed.

    Arguments
    ---------
    wav : torch.Tensor
        ``[T]`` or ``[C, T]`` float signal.
    sample_rate : int
        Sample rate in Hz.
    generator : torch.Generator or None
        RNG of the centre frequency (None: torch's global RNG).
    min_freq, max_freq : float
        Range of the centre frequency in Hz (log-uniform).
    pole_radius : float
        Pole radius ``r`` in (0, 1).

    Returns
    -------
    torch.Tensor
        The filtered signal, same shape and dtype.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(4096, generator=g)
    >>> y = phase_mangle(x, 22050, generator=g)
    >>> y.shape, bool((y - x).abs().max() > 0.1)  # the waveform changes...
    (torch.Size([4096]), True)
    >>> spec = lambda s: torch.fft.rfft(s).abs().pow(2).sum()
    >>> round(float(spec(y) / spec(x)), 2)  # ...its energy does not
    1.0
    """
    if not 0.0 < pole_radius < 1.0:
        raise ValueError(f"pole_radius must be in (0, 1). Found: {pole_radius}")
    if not 0.0 < min_freq <= max_freq < sample_rate / 2:
        raise ValueError(
            "phase_mangle needs 0 < min_freq <= max_freq < sample_rate / 2. "
            f"Found: min_freq={min_freq}, max_freq={max_freq}, sample_rate={sample_rate}"
        )
    u = float(torch.rand((), generator=generator))
    freq = min_freq * (max_freq / min_freq) ** u  # log-uniform
    cos_w0 = float(np.cos(2.0 * np.pi * freq / sample_rate))
    r = pole_radius
    a = torch.tensor([1.0, -2.0 * r * cos_w0, r * r], dtype=torch.float64)
    b = torch.tensor([r * r, -2.0 * r * cos_w0, 1.0], dtype=torch.float64)
    out = torchaudio.functional.lfilter(wav.double(), a, b, clamp=False)
    return out.to(wav.dtype)


def dequantize(wav, generator=None, bits=16):
    """Adds uniform dequantisation noise ``U(-1/2, 1/2) / 2^bits``.

    The authors' training augmentation (after the phase mangling): it hides
    the PCM grid of the stored 16-bit audio.

    Arguments
    ---------
    wav : torch.Tensor
        Float signal, any shape.
    generator : torch.Generator or None
        RNG of the noise (None: torch's global RNG).
    bits : int
        Bit depth of the stored audio.

    Returns
    -------
    torch.Tensor
        ``wav`` plus the noise, same shape and dtype.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> noise = dequantize(torch.zeros(10000), generator=g)
    >>> bool(noise.abs().max() <= 0.5 / 2**16), bool(noise.abs().max() > 0.4 / 2**16)
    (True, True)
    """
    noise = torch.rand(wav.shape, generator=generator, dtype=wav.dtype) - 0.5
    return wav + noise / float(2**bits)


def augment(wav, sample_rate, generator=None, phase_mangle_p=0.0, dequantize_noise=False):
    """The authors' training augmentation of one crop, before peak-normalising.

    With probability ``phase_mangle_p`` :func:`phase_mangle`, then (if
    ``dequantize_noise``) :func:`dequantize`. All randomness comes from
    ``generator``, so a crop is reproducible from the generator's seed.

    Arguments
    ---------
    wav : torch.Tensor
        ``[T]`` crop.
    sample_rate : int
        Sample rate in Hz.
    generator : torch.Generator or None
        RNG (None: torch's global RNG).
    phase_mangle_p : float
        Probability of the all-pass filter (authors: 0.8; 0 disables it).
    dequantize_noise : bool
        Add the 16-bit dequantisation noise (authors: True).

    Returns
    -------
    torch.Tensor
        The augmented crop, same shape.

    Example
    -------
    >>> x = torch.linspace(-1, 1, 64)
    >>> bool(torch.equal(augment(x, 8000), x))  # everything off
    True
    >>> g = torch.Generator().manual_seed(0)
    >>> bool(torch.equal(augment(x, 8000, g, phase_mangle_p=1.0), x))
    False
    """
    if not 0.0 <= phase_mangle_p <= 1.0:
        raise ValueError(f"phase_mangle_p must be in [0, 1]. Found: {phase_mangle_p}")
    if phase_mangle_p > 0.0 and float(torch.rand((), generator=generator)) < phase_mangle_p:
        wav = phase_mangle(wav, sample_rate, generator=generator)
    if dequantize_noise:
        wav = dequantize(wav, generator=generator)
    return wav


def split_pieces(wav, length):
    """Splits a signal into consecutive pieces of ``length`` samples.

    The last piece is zero-padded; nothing is dropped. The number of real
    samples is ``wav.shape[-1]``, so the padding can be cut after merging.

    Arguments
    ---------
    wav : torch.Tensor
        ``[..., T]`` signal with ``T >= 1``.
    length : int
        Piece length in samples.

    Returns
    -------
    list of torch.Tensor
        ``ceil(T / length)`` tensors of shape ``[..., length]``.

    Example
    -------
    >>> pieces = split_pieces(torch.arange(1.0, 6.0), 2)
    >>> pieces
    [tensor([1., 2.]), tensor([3., 4.]), tensor([5., 0.])]
    >>> torch.cat(pieces)[:5].tolist()
    [1.0, 2.0, 3.0, 4.0, 5.0]
    """
    if length <= 0:
        raise ValueError(f"length must be positive. Found: {length}")
    num_samples = wav.shape[-1]
    if num_samples == 0:
        raise ValueError("cannot split an empty signal (0 samples)")
    pieces = []
    for start in range(0, num_samples, length):
        piece, _ = crop_or_pad(wav[..., start : start + length], length, mode="start")
        pieces.append(piece)
    return pieces


class AudioPipeline:
    """Reads, resamples, crops/pads and (optionally) peak-normalises one file.

    The callable behind :func:`make_audio_pipeline`; a class (not a closure)
    so it can be pickled into DataLoader worker processes.

    Training crops are random. Called with a ``crop_seed`` (what
    :func:`make_audio_pipeline` with ``keyed_crops=True`` passes, and what
    :func:`fewsound_sb.datasets.make_datasets` uses: the seed is derived from
    ``(seed, epoch, draw)`` by its sampler), the crop is a pure function of
    that seed: no generator state, so a run resumed mid-epoch (or with another
    number of workers) draws exactly the crops of an uninterrupted one.
    Without a ``crop_seed``, each DataLoader worker draws them from its own
    generator, seeded from ``seed`` and the worker seed torch assigns for the
    epoch, so workers do not repeat each other's crops. Evaluation takes the first ``crop_length`` samples
    (the authors' validation, fewsound/systems/main.py in
    github.com/gmum/fewsound).

    Arguments
    ---------
    sample_rate : int
        Sample rate in Hz the audio is resampled to.
    crop_length : int
        Output length in samples (32768 in the paper).
    train : bool
        Random crop if True, else the first ``crop_length`` samples.
    seed : int
        Seed of the random crops.
    normalize : bool
        Peak-normalise after cropping.
    phase_mangle_p : float
        Training only: probability of the random all-pass filter
        (:func:`augment`; authors: 0.8). 0 disables it.
    dequantize_noise : bool
        Training only: add 16-bit dequantisation noise (authors: True).

    Training crops are augmented after cropping and before peak-normalising
    with the crop's own generator, so the augmentation is as reproducible as
    the crop (the authors' order: crop, phase mangle, dequantise, normalise);
    evaluation crops never are.

    Example
    -------
    >>> pipe = AudioPipeline(16000, crop_length=8, train=False, seed=0)
    >>> pipe.crop(torch.tensor([0.0, 0.5, -2.0, 1.0])).tolist()
    [0.0, 0.25, -1.0, 0.5, 0.0, 0.0, 0.0, 0.0]
    """

    def __init__(self, sample_rate, crop_length, train, seed, normalize=True,
                 phase_mangle_p=0.0, dequantize_noise=False):
        self.sample_rate = sample_rate
        self.crop_length = crop_length
        self.train = train
        self.seed = seed
        self.normalize = normalize
        self.phase_mangle_p = phase_mangle_p
        self.dequantize_noise = dequantize_noise
        self._generator = None
        self._generator_key = None

    def _get_generator(self):
        """Returns the generator for this process, (re)seeding it per worker."""
        info = torch.utils.data.get_worker_info()
        key = None if info is None else info.seed
        if self._generator is None or key != self._generator_key:
            seed = self.seed if key is None else (self.seed * 1_000_003 + key) % 2**63
            self._generator = torch.Generator().manual_seed(seed)
            self._generator_key = key
        return self._generator

    def crop(self, wav, crop_seed=None):
        """Crops/pads ``wav`` [T] to ``[crop_length]`` and normalises it."""
        return self.crop_with_length(wav, crop_seed)[0]

    def crop_with_length(self, wav, crop_seed=None):
        """As :meth:`crop`, also returning the relative valid length.

        Arguments
        ---------
        wav : torch.Tensor
            ``[T]`` signal.
        crop_seed : int or None
            Seed of this training crop (the same seed, the same crop); None:
            the process's generator (see the class docstring).

        Returns
        -------
        sig : torch.Tensor
            ``[crop_length]``.
        length : float
            ``min(T, crop_length) / crop_length``: the part of ``sig`` that is
            audio (SpeechBrain's relative-length convention); < 1 for a clip
            shorter than the crop, whose end is zero padding.

        Example
        -------
        >>> pipe = AudioPipeline(16000, crop_length=8, train=True, seed=0)
        >>> pipe.crop_with_length(torch.ones(2))[1]
        0.25
        """
        if self.train:
            generator = (self._get_generator() if crop_seed is None
                         else torch.Generator().manual_seed(int(crop_seed)))
            sig, num_valid = crop_or_pad(
                wav, self.crop_length, mode="random", generator=generator
            )
            sig = augment(sig, self.sample_rate, generator, self.phase_mangle_p,
                          self.dequantize_noise)
        else:
            sig, num_valid = crop_or_pad(wav, self.crop_length, mode="start")
        if self.normalize:
            sig = peak_normalize(sig)
        return sig, num_valid / self.crop_length

    def __call__(self, path, crop_seed=None):
        """Reads ``path``; returns the ``[crop_length]`` float32 signal and its
        relative valid length (see :meth:`crop_with_length`)."""
        wav = read_audio(path, sample_rate=self.sample_rate, mono=True)
        return self.crop_with_length(wav, crop_seed)


def make_audio_pipeline(sample_rate, crop_length, train, seed, normalize=True,
                        keyed_crops=False, phase_mangle_p=0.0, dequantize_noise=False):
    """Makes the ``wav -> sig`` dynamic item for a ``DynamicItemDataset``.

    Arguments
    ---------
    sample_rate : int
        Sample rate in Hz the audio is resampled to.
    crop_length : int
        Output length in samples (32768 in the paper).
    train : bool
        Random crop per call if True; the first ``crop_length`` samples if
        False (deterministic evaluation).
    seed : int
        Seed of the random crops (see :class:`AudioPipeline`).
    normalize : bool
        Peak-normalise each crop (y / max|y|).
    keyed_crops : bool
        If True (and ``train``), the item also takes ``"crop_seed"`` (an int
        the dataset puts in each data point) and the crop depends on it only,
        which makes resumed runs exact (:mod:`fewsound_sb.datasets`).
    phase_mangle_p : float
        Training only: probability of the random all-pass (see :func:`augment`).
    dequantize_noise : bool
        Training only: add 16-bit dequantisation noise.

    Returns
    -------
    speechbrain.utils.data_pipeline.DynamicItem
        Takes ``"wav"`` (a path; and ``"crop_seed"`` with ``keyed_crops``), provides ``"sig"`` (float32 ``[crop_length]``)
        and ``"length"`` (float, the relative valid length: < 1 when the clip
        is shorter than the crop and ``sig`` ends in zero padding; pass it as
        ``length=`` to the loss and the metrics so the padding is ignored).

    Example
    -------
    >>> import os, tempfile
    >>> from speechbrain.dataio.dataset import DynamicItemDataset
    >>> tmp = tempfile.mkdtemp()
    >>> write_audio(os.path.join(tmp, "a.wav"), 0.1 * torch.ones(300), 8000)
    >>> data = {"a": {"wav": os.path.join(tmp, "a.wav")}}
    >>> pipe = make_audio_pipeline(8000, crop_length=256, train=True, seed=0)
    >>> dataset = DynamicItemDataset(
    ...     data, dynamic_items=[pipe], output_keys=["id", "sig"]
    ... )
    >>> dataset[0]["sig"].shape, dataset[0]["sig"].max().item()
    (torch.Size([256]), 1.0)
    >>> short = make_audio_pipeline(8000, crop_length=400, train=False, seed=0)
    >>> dataset = DynamicItemDataset(
    ...     data, dynamic_items=[short], output_keys=["id", "sig", "length"]
    ... )
    >>> dataset[0]["sig"].shape, dataset[0]["length"]
    (torch.Size([400]), 0.75)
    >>> keyed = make_audio_pipeline(8000, crop_length=64, train=True, seed=0, keyed_crops=True)
    >>> a, b = keyed.func(data["a"]["wav"], 5)[0], keyed.func(data["a"]["wav"], 5)[0]
    >>> bool(torch.equal(a, b)), list(keyed.takes)
    (True, ['wav', 'crop_seed'])
    """
    pipeline = AudioPipeline(sample_rate, crop_length, train, seed, normalize,
                             phase_mangle_p, dequantize_noise)
    if keyed_crops and train:
        return takes("wav", "crop_seed")(provides("sig", "length")(pipeline))
    return takes("wav")(provides("sig", "length")(pipeline))


def check_audio_files(paths, progress=True, desc="checking audio"):
    """Decodes every file completely; returns the readable ones and the bad ones.

    What the prepare scripts' ``check_audio`` option runs: unlike the header
    probe, every sample is decoded (:func:`read_audio` at the file's own
    rate), so a file truncated or corrupt anywhere is found before training.
    Each bad file is logged with the reason.

    Arguments
    ---------
    paths : list of str
        Audio files.
    progress : bool
        Show a progress bar (tqdm).
    desc : str
        Label of the progress bar.

    Returns
    -------
    good : list of str
        The files that decode, in order.
    bad : dict
        ``path -> reason`` of the others.

    Example
    -------
    >>> import os, tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> write_audio(os.path.join(tmp, "a.wav"), torch.zeros(100), 8000)
    >>> _ = open(os.path.join(tmp, "b.wav"), "wb").write(b"RIFF junk")
    >>> good, bad = check_audio_files([os.path.join(tmp, n) for n in ("a.wav", "b.wav")],
    ...                               progress=False)
    >>> [os.path.basename(p) for p in good], [os.path.basename(p) for p in bad]
    (['a.wav'], ['b.wav'])
    """
    good, bad = [], {}
    for path in tqdm(paths, desc=desc, disable=not progress, mininterval=1.0):
        try:
            read_audio(path, sample_rate=None, mono=False)
        except AudioReadError as err:
            logger.warning("Bad audio file left out: %s", err)
            bad[path] = str(err)
            continue
        good.append(path)
    return good, bad


def list_audio_files(paths, extensions=(".wav", ".flac", ".ogg", ".mp3")):
    """Lists audio files given files and/or folders (searched recursively).

    Arguments
    ---------
    paths : str, os.PathLike, or a sequence of them
        Files (taken as given, whatever their extension) and folders.
    extensions : tuple of str
        File endings looked for in folders (case-insensitive).

    Returns
    -------
    list of str
        Sorted, without duplicates.

    Raises
    ------
    FileNotFoundError
        A path does not exist.
    ValueError
        No audio file was found.

    Example
    -------
    >>> import os, tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(tmp, "sub"))
    >>> for name in ("b.wav", "sub/a.FLAC", "notes.txt"):
    ...     open(os.path.join(tmp, name), "w").close()
    >>> [os.path.relpath(f, tmp) for f in list_audio_files(tmp)]
    ['b.wav', 'sub/a.FLAC']
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    extensions = tuple(ext.lower() for ext in extensions)
    found = set()
    for path in paths:
        path = os.fspath(path)
        if os.path.isfile(path):
            found.add(path)
        elif os.path.isdir(path):
            for root, _, files in os.walk(path):
                for name in files:
                    if name.lower().endswith(extensions):
                        found.add(os.path.join(root, name))
        else:
            raise FileNotFoundError(f"Audio path not found: '{path}'")
    if not found:
        raise ValueError(
            f"No audio files found in {[os.fspath(p) for p in paths]} "
            f"(looked for {', '.join(extensions)})"
        )
    return sorted(found)


def write_audio(path, wav, sample_rate, subtype=None):
    """Writes audio atomically (:func:`fewsound_sb.files.atomic_write`).

    An interrupted write never leaves a half-written file at ``path``.
    The format follows the extension (wav, flac, ogg); parent folders are
    created.

    Arguments
    ---------
    path : str or os.PathLike
        Output file.
    wav : torch.Tensor
        ``[T]`` or ``[C, T]``, float in [-1, 1] (values outside are clipped
        by integer formats; a warning is logged).
    sample_rate : int
        Sample rate in Hz.
    subtype : str or None
        soundfile subtype (e.g. ``"PCM_16"``, ``"FLOAT"``); None uses
        soundfile's default for the format (PCM_16 for wav and flac).

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "out", "x.wav")
    >>> write_audio(path, torch.zeros(160), sample_rate=16000)
    >>> read_audio(path, sample_rate=None).shape
    torch.Size([160])
    """
    path = os.fspath(path)
    wav = torch.as_tensor(wav).detach().to("cpu", torch.float32)
    if wav.dim() not in (1, 2):
        raise ValueError(f"expected [T] or [C, T], got {tuple(wav.shape)}")
    if not torch.isfinite(wav).all():
        raise ValueError(f"refusing to write NaN/inf samples to '{path}'")
    if wav.numel() > 0 and wav.abs().max() > 1.0 and subtype != "FLOAT":
        logger.warning("Audio written to '%s' exceeds [-1, 1] and may clip", path)
    data = wav.numpy() if wav.dim() == 1 else wav.T.numpy()  # [T] or [T, C]

    # the temporary file keeps the extension: soundfile picks the format from it
    atomic_write(path, lambda tmp_path: soundfile.write(tmp_path, data, sample_rate,
                                                        subtype=subtype))


# --------------------------------------------------------------------------- clips to fit
@dataclass
class FitClip:
    """One clip to fit (or a file that could not be read).

    Attributes
    ----------
    id : str
        Unique name (file stem, ``_piece003`` suffix for pieces).
    path : str
        Source file.
    wav : torch.Tensor or None
        ``[N]`` peak-normalised crop; None if the file could not be read.
    num_valid : int
        Leading samples of ``wav`` that are audio (the rest is padding).
    note : str
        What happened to the clip (padding), for the log and the CSV.
    error : str
        Why the file could not be read ("" if it was).
    gain : float
        Peak of the crop before normalisation: ``gain * wav`` is the crop at
        its original level.
    file_samples : int
        Samples of the whole file (at the fit's sample rate).
    start : int
        First sample of the file in the clip.
    cropped : bool
        The file is longer than the clip and only this crop is fitted (the
        rest of the file is not; ``all_pieces`` fits every piece).

    Example
    -------
    >>> clip = FitClip("a", "a.wav", torch.tensor([0.5, -1.0]), 2, gain=0.25)
    >>> (clip.gain * clip.wav).tolist()
    [0.125, -0.25]
    """

    id: str
    path: str
    wav: torch.Tensor = None
    num_valid: int = 0
    note: str = ""
    error: str = ""
    gain: float = 1.0
    file_samples: int = 0
    start: int = 0
    cropped: bool = False


def prepare_clips(sources, sample_rate, crop_length, crop="start", seed=0, all_pieces=False):
    """Reads files into fixed-length, peak-normalised clips.

    Files are mixed to mono and resampled to ``sample_rate``. Longer files are
    cropped (``"start"``: the first ``crop_length`` samples; ``"random"``: a
    random crop, clip i drawn with seed ``seed + i``; ``"center"``) or, with
    ``all_pieces``, split into consecutive pieces. Shorter ones are
    zero-padded and the clip's ``note`` says so. Unreadable files become
    clips with ``error`` set (and are logged), so the caller can report them
    and go on.

    Arguments
    ---------
    sources : list of (str, str)
        ``(id, path)`` pairs; ids must be unique.
    sample_rate : int
        Target sample rate in Hz.
    crop_length : int
        Clip length in samples.
    crop : str
        ``"start"``, ``"random"`` or ``"center"``.
    seed : int
        Seed of the random crops.
    all_pieces : bool
        Split each file into consecutive pieces instead of cropping.

    Returns
    -------
    list of FitClip

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> write_audio(path, 0.5 * torch.ones(2500), 8000)
    >>> clips = prepare_clips([("a", path), ("b", "missing.wav")], 8000, 1000, all_pieces=True)
    >>> [(c.id, c.num_valid, bool(c.error)) for c in clips]
    [('a_piece000', 1000, False), ('a_piece001', 1000, False), ('a_piece002', 500, False), ('b', 0, True)]
    >>> round(clips[0].gain, 4), clips[0].wav.max().item()
    (0.5, 1.0)
    """
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {CROP_MODES}. Found: {crop!r}")
    clips = []
    for index, (clip_id, path) in enumerate(sources):
        try:
            wav = read_audio(path, sample_rate=sample_rate, mono=True)
        except AudioReadError as err:
            logger.error("Skipping %s: %s", path, err)
            clips.append(FitClip(clip_id, os.fspath(path), error=str(err)))
            continue
        total = wav.shape[-1]
        if all_pieces:
            pieces = split_pieces(wav, crop_length)
            for k, piece in enumerate(pieces):
                valid = min(crop_length, total - k * crop_length)
                clips.append(_make_clip(f"{clip_id}_piece{k:03d}", path, piece, valid,
                                        crop_length, sample_rate, total, k * crop_length))
        else:
            generator = torch.Generator().manual_seed(seed + index)
            start = crop_start(total, crop_length, mode=crop, generator=generator)
            sig, valid = crop_or_pad(wav[..., start:], crop_length, mode="start")
            clips.append(_make_clip(clip_id, path, sig, valid, crop_length, sample_rate,
                                    total, start, cropped=total > crop_length))
    return clips


def _make_clip(clip_id, path, sig, valid, crop_length, sample_rate, total, start,
               cropped=False):
    """A :class:`FitClip` of one crop: normalised, with its gain and its
    padding or cropping note."""
    note = ""
    if valid < crop_length:
        note = (f"padded: only {valid} of {crop_length} samples are audio "
                f"({valid / sample_rate:.2f} s); metrics use the audio part")
        logger.warning("Clip %s (%s) %s", clip_id, path, note)
    elif cropped:
        note = (f"cropped: fitted {valid / sample_rate:.2f} s (samples {start}-"
                f"{start + valid}) of the file's {total / sample_rate:.2f} s")
        logger.info("Clip %s (%s) %s", clip_id, path, note)
    peak = float(sig.abs().max())
    return FitClip(clip_id, os.fspath(path), peak_normalize(sig), valid, note,
                   gain=peak if peak > 0 else 1.0, file_samples=total, start=start,
                   cropped=cropped)


def unique_ids(paths):
    """File stems as clip ids, made unique with ``-2``, ``-3``... suffixes.

    Arguments
    ---------
    paths : list of str
        Audio files.

    Returns
    -------
    list of str
        One id per path, in order.

    Example
    -------
    >>> unique_ids(["x/a.wav", "y/a.flac", "b.ogg"])
    ['a', 'a-2', 'b']
    """
    seen, ids = {}, []
    for path in paths:
        stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
        seen[stem] = seen.get(stem, 0) + 1
        ids.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return ids
