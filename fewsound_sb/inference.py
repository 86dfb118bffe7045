"""Using a trained hypernetwork: sound of any length and rate to INR weights and back.

:class:`Reconstructor` is a SpeechBrain pretrained interface
(``speechbrain.inference.interfaces.Pretrained``) around a trained sound
encoder E and hypernetwork head (FewSound or HyperSound, paper arXiv
2503.02585). It loads a *local* model folder only (nothing is downloaded):
the ``<output_folder>/inference/`` folder a training run writes
(:func:`export_inference`), holding ``hyperparams.yaml``, ``encoder.ckpt``
and ``head.ckpt``.

Any length: pieces and cross-fade
---------------------------------
The model was trained on clips of ``piece_length`` samples (the training
``crop_length``). A signal of N samples is cut into ``n`` pieces of
``piece_length`` samples starting every ``hop = piece_length - overlap``
samples, ``n = max(1, ceil((N - overlap) / hop))``; the last piece is
zero-padded past the end of the signal. Each piece is peak-normalised (as the
training clips are), encoded to INR weights, and its peak is kept as the
piece's gain. Decoding evaluates each piece's INR on its own time grid,
multiplies it by its gain and joins neighbours by a raised-cosine cross-fade
over the ``overlap`` samples: the later piece fades in with
``r(u) = sin²(π/2 · (u + 1/2) / overlap)`` (``u`` = samples since its start)
while the earlier one fades out with ``1 - r``, so the two weights sum to 1 at
every sample (``overlap <= piece_length / 2``, so a piece never fades in and
out at once). The padding is dropped: the output has exactly N samples. The
result is an :class:`~fewsound_sb.weights.INRWeights` (``join =
"raised_cosine"``), the same weights file format single-clip fitting writes.

Other sample rates
------------------
:func:`decode_weights` evaluates the INRs on the time grid of any output rate
(``sample_rate=44100`` for a 22,050 Hz model). That is the INR's *continuous
interpolation* between the samples it was fitted to, not recovered bandwidth:
nothing above the model rate's Nyquist frequency is restored (and a lower
rate is point sampling of the INR, without an anti-aliasing filter).

Refinement
----------
``encode(..., refine_steps=N)`` starts from the hypernetwork's weights and
runs N steps of the single-clip fitter (:class:`fewsound_sb.fitting.INRFitter`,
batched over the pieces, settings ``refine_*`` in the model's YAML). It bridges
the gap between the hypernetwork (one forward pass) and per-clip fitting from
scratch (thousands of steps); ``bench/bench_refine.py`` measures it.

Precision
---------
``precision`` (``fp32`` | ``bf16`` | ``fp16``, SpeechBrain's run option, set
in the model's YAML or ``run_opts={"precision": "bf16"}``) runs the sound
encoder E under ``torch.autocast`` (SpeechBrain's ``inference_ctx``): its
convolutions and matrix products in that precision, its output cast back to
float32. The hypernetwork head and the INR stay in float32 always: the
weights are the product, and the first layers of the periodic targets take
arguments like ``2000 · t`` whose phase bfloat16's 8-bit mantissa cannot hold.
``bench/bench_fewsound.py`` times the encoder in bfloat16 against float32
and measures how far its embedding moves.
"""

import copy
import functools
import io
import math
import os
import shutil

import torch
import torchaudio
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.fetching import FetchConfig, FetchFrom, FetchSource
from speechbrain.utils.logger import get_logger
from tqdm import tqdm

from fewsound_sb.dataio import peak_normalize, read_audio, write_audio
from fewsound_sb.files import atomic_write, write_text
from fewsound_sb.nnet.inr import inr_class_path, registered_name
from fewsound_sb.weights import INRWeights

logger = get_logger(__name__)

HPARAMS_FILE = "hyperparams.yaml"
MODEL_FILES = ("encoder.ckpt", "head.ckpt")
INFERENCE_FOLDER = "inference"
GAIN_EPS = 1e-8  # peak_normalize's floor: a silent piece gets gain 1e-8 and stays silent
# Top-level keys of a training YAML that the inference YAML keeps (with every
# object they use); the rest (data, optimiser, logging) is left out.
KEPT_TRAINING_KEYS = ("sample_rate", "crop_length", "model_name", "target", "encoder", "head")
PRECISIONS = ("fp32", "bf16", "fp16")  # SpeechBrain's autocast modes (AMPConfig)
INFERENCE_TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hparams",
                                  "inference.yaml")


# --------------------------------------------------------------------------- pieces
def plan_pieces(num_samples, piece_length, overlap):
    """Number of pieces and hop covering ``num_samples`` samples.

    Arguments
    ---------
    num_samples : int
        Signal length N (>= 1).
    piece_length : int
        Samples per piece L.
    overlap : int
        Samples shared by neighbouring pieces, ``0 <= overlap <= L / 2``.

    Returns
    -------
    (int, int)
        ``(n_pieces, hop)`` with ``hop = L - overlap`` and
        ``n_pieces = max(1, ceil((N - overlap) / hop))``.

    Example
    -------
    >>> plan_pieces(100, 40, 8), plan_pieces(40, 40, 8), plan_pieces(10, 40, 8)
    ((3, 32), (1, 32), (1, 32))
    """
    num_samples, piece_length, overlap = int(num_samples), int(piece_length), int(overlap)
    if num_samples < 1:
        raise ValueError(f"the signal is empty (0 samples): nothing to encode")
    if not 0 <= 2 * overlap <= piece_length:
        raise ValueError(
            f"overlap must be between 0 and piece_length / 2 = {piece_length // 2} samples "
            f"(a piece must not fade in and out at once). Found: {overlap}"
        )
    hop = piece_length - overlap
    return max(1, math.ceil((num_samples - overlap) / hop)), hop


def split_pieces(wav, piece_length, hop, n_pieces):
    """Cuts ``wav`` ``[N]`` into ``[n_pieces, piece_length]``, zero-padded at the end.

    Example
    -------
    >>> split_pieces(torch.arange(1.0, 8.0), 4, 3, 2)
    tensor([[1., 2., 3., 4.],
            [4., 5., 6., 7.]])
    >>> split_pieces(torch.ones(3), 4, 3, 1)
    tensor([[1., 1., 1., 0.]])
    """
    covered = (n_pieces - 1) * hop + piece_length
    padded = torch.nn.functional.pad(wav, (0, max(0, covered - wav.shape[-1])))
    return padded.unfold(-1, piece_length, hop)[:n_pieces].clone()


def _ramp(position, overlap):
    """``sin²(π/2 · (u + 1/2) / overlap)`` clamped to [0, 1] (1 from u >= 0 if no overlap)."""
    if overlap <= 0:
        return (position >= 0).to(torch.float64)
    x = ((position + 0.5) / overlap).clamp(0.0, 1.0)
    return torch.sin(0.5 * math.pi * x) ** 2


def piece_window(position, index, weights):
    """Weight of piece ``index`` at ``position`` samples from its start.

    ``join="raised_cosine"``: fade-in ``r(u)`` unless first, fade-out
    ``1 - r(u - hop)`` unless last (see the module docstring); ``"mean"``: 1.
    Outside ``[0, piece_length)`` the weight is 0.

    Arguments
    ---------
    position : torch.Tensor
        Positions ``u`` (float64, in samples of the clip's rate).
    index : int
        Piece index k.
    weights : INRWeights
        The layout (piece_length, hop, n_pieces, join).

    Returns
    -------
    torch.Tensor
        float64, same shape as ``position``.

    Example
    -------
    >>> w = INRWeights("kan", {}, torch.zeros(2, 3), 8000, num_samples=14, piece_length=8,
    ...                hop=6, join="raised_cosine")
    >>> u = torch.arange(8, dtype=torch.float64)
    >>> first, second = piece_window(u, 0, w), piece_window(u, 1, w)
    >>> [round(v, 4) for v in first[6:].tolist()], [round(v, 4) for v in second[:2].tolist()]
    ([0.8536, 0.1464], [0.1464, 0.8536])
    """
    inside = ((position >= 0) & (position < weights.piece_length)).to(torch.float64)
    if weights.join == "mean":
        return inside
    overlap = weights.piece_length - weights.hop
    window = inside
    if index > 0:
        window = window * _ramp(position, overlap)
    if index < weights.n_pieces - 1:
        window = window * (1.0 - _ramp(position - weights.hop, overlap))
    return window


@torch.no_grad()
def decode_weights(weights, sample_rate=None, num_samples=None, device="cpu", batch_pieces=16,
                   progress=False):
    """Waveform of an :class:`~fewsound_sb.weights.INRWeights` at any sample rate.

    Output sample m lies at ``m * weights.sample_rate / sample_rate`` samples
    of the clip; each piece covering it is evaluated there (its time grid
    ``t = -1 + 2u / (piece_length - 1)``, clamped to [-1, 1] within the last
    half sample), scaled by its gain and weighted by :func:`piece_window`;
    the weighted sum is divided by the sum of the weights. At another rate
    this is the INR's continuous interpolation, not recovered bandwidth.

    Arguments
    ---------
    weights : INRWeights
        A weights file's content (any producer: the Reconstructor, fitting).
    sample_rate : int or None
        Output rate in Hz (None: the clip's own rate).
    num_samples : int or None
        Output length (None: the clip's duration at the output rate,
        ``round(num_samples * sample_rate / weights.sample_rate)``); a
        smaller value cuts the end.
    device : str or torch.device
        Where the INRs are evaluated.
    batch_pieces : int
        Pieces evaluated together.
    progress : bool
        tqdm bar over the batches of pieces.

    Returns
    -------
    torch.Tensor
        ``[num_samples]`` float32 (CPU).

    Example
    -------
    >>> from fewsound_sb.nnet.inr import build_inr, time_grid
    >>> net = build_inr("nerf", encoding_length=2, hidden_sizes=(4,))
    >>> clip = INRWeights.from_network(net, {"encoding_length": 2, "hidden_sizes": [4]},
    ...                                sample_rate=8000, num_samples=50, gains=[0.5])
    >>> out = decode_weights(clip)
    >>> bool(torch.allclose(out, 0.5 * net(time_grid(50)).squeeze(-1), atol=1e-6))
    True
    >>> decode_weights(clip, sample_rate=16000).shape, decode_weights(clip, 4000).shape
    (torch.Size([100]), torch.Size([25]))
    """
    out_rate = weights.sample_rate if sample_rate is None else int(sample_rate)
    if out_rate <= 0:
        raise ValueError(f"sample_rate must be a positive number of Hz. Found: {sample_rate}")
    ratio = weights.sample_rate / out_rate
    full = max(1, round(weights.num_samples / ratio))
    length = full if num_samples is None else int(num_samples)
    if not 1 <= length <= full:
        raise ValueError(
            f"num_samples must be between 1 and {full} (the clip's {weights.num_samples} "
            f"samples at {weights.sample_rate} Hz last {full} samples at {out_rate} Hz). "
            f"Found: {num_samples}"
        )
    positions = torch.arange(length, dtype=torch.float64) * ratio  # in samples of the clip
    total = torch.zeros(length, dtype=torch.float64)
    norm = torch.zeros(length, dtype=torch.float64)
    network = weights.build_network(0, device)
    span = weights.piece_length - 1
    batches = range(0, weights.n_pieces, batch_pieces)
    for first in tqdm(batches, disable=not progress, desc="decode", dynamic_ncols=True):
        indices = list(range(first, min(first + batch_pieces, weights.n_pieces)))
        ranges = []
        for k in indices:
            start = k * weights.hop
            lo = int(torch.searchsorted(positions, float(start)))
            hi = int(torch.searchsorted(positions, float(start + weights.piece_length)))
            ranges.append((lo, hi))
        width = max(hi - lo for lo, hi in ranges)
        if width == 0:
            continue
        grid = torch.zeros(len(indices), width, 1, dtype=torch.float64)
        for row, (k, (lo, hi)) in enumerate(zip(indices, ranges)):
            local = positions[lo:hi] - k * weights.hop
            grid[row, : hi - lo, 0] = (-1.0 + 2.0 * local / span).clamp(-1.0, 1.0)
        values = network.forward_flat(
            grid.to(device, torch.float32), weights.weights[indices].to(device)
        ).squeeze(-1).double().cpu()
        for row, (k, (lo, hi)) in enumerate(zip(indices, ranges)):
            window = piece_window(positions[lo:hi] - k * weights.hop, k, weights)
            total[lo:hi] += window * float(weights.gains[k]) * values[row, : hi - lo]
            norm[lo:hi] += window
    return (total / norm.clamp_min(1e-12)).float()


# --------------------------------------------------------------------------- model folder
def check_model_folder(folder, hparams_file=HPARAMS_FILE):
    """Checks that ``folder`` is a local model folder; returns its absolute path.

    Raises
    ------
    FileNotFoundError
        The folder, its YAML or a module checkpoint is missing (the message
        says how to make one).

    Example
    -------
    >>> try:
    ...     check_model_folder("no/such/folder")
    ... except FileNotFoundError as err:
    ...     print(str(err).split(":")[0])
    Model folder not found
    """
    folder = os.path.abspath(os.fspath(folder))
    fix = ("A trained run writes it to <output_folder>/inference/; make it from a checkpoint "
           "with `fewsound-export <output_folder>`.")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"Model folder not found: '{folder}'. {fix}")
    missing = [name for name in (hparams_file, *MODEL_FILES)
               if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise FileNotFoundError(
            f"Model folder '{folder}' lacks {', '.join(missing)} (it needs {hparams_file}, "
            f"{', '.join(MODEL_FILES)}). {fix}"
        )
    return folder


class Reconstructor(Pretrained):
    """Sound of any length <-> INR weights, with a trained encoder and hypernetwork.

    Load with :meth:`from_hparams` from a local model folder. See the module
    docstring for pieces, cross-fade, rates and refinement.

    Example
    -------
    >>> import os, tempfile
    >>> folder = write_tiny_model(tempfile.mkdtemp())  # an untrained tiny model
    >>> model = Reconstructor.from_hparams(source=folder)
    >>> wav = torch.sin(torch.arange(3000) / 20.0)
    >>> weights = model.encode(wav, sample_rate=8000)
    >>> weights.n_pieces, weights.piece_length, weights.hop, weights.join
    (4, 1024, 896, 'raised_cosine')
    >>> model.decode(weights).shape, model.decode(weights, sample_rate=16000).shape
    (torch.Size([3000]), torch.Size([6000]))
    """

    MODULES_NEEDED = ["encoder", "head"]
    HPARAMS_NEEDED = [
        "target", "target_config", "sample_rate", "piece_length", "overlap", "batch_pieces",
        "progress", "refine_steps", "refine_lr", "refine_weight_decay", "refine_betas",
        "refine_eps", "refine_loss", "model_name",
    ]

    def __init__(self, modules=None, hparams=None, run_opts=None, freeze_params=True):
        precision = (hparams or {}).get("precision", "fp32")
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} in the model's {HPARAMS_FILE}: "
                             f"use one of {', '.join(PRECISIONS)}")
        super().__init__(modules, hparams, run_opts, freeze_params)
        encoder = self.mods.encoder
        hp = self.hparams
        if encoder.sample_rate != hp.sample_rate:
            raise ValueError(f"the encoder expects {encoder.sample_rate} Hz but the model's "
                             f"sample_rate is {hp.sample_rate}: fix hyperparams.yaml")
        if encoder.input_length not in (None, hp.piece_length):
            raise ValueError(f"the encoder takes {encoder.input_length} samples but "
                             f"piece_length is {hp.piece_length}: fix hyperparams.yaml")
        plan_pieces(1, hp.piece_length, hp.overlap)  # checks the overlap
        target = self.mods.head.target
        rebuilt = type(target)(**hp.target_config)
        if rebuilt.num_params != target.num_params:
            raise ValueError(f"target_config {hp.target_config} builds a target of "
                             f"{rebuilt.num_params} weights, the head's has {target.num_params}")

    @classmethod
    def from_hparams(cls, source, savedir=None, hparams_file=HPARAMS_FILE, overrides=None,
                     **kwargs):
        """Loads a local model folder (never the network: no hub, no URL).

        Arguments
        ---------
        source : str or os.PathLike
            The model folder (``<output_folder>/inference``).
        savedir : str or None
            Where SpeechBrain links the files (default: ``source`` itself).
        hparams_file : str
            The YAML's name in ``source``.
        overrides : dict or None
            Overrides of the YAML's keys (e.g. ``{"overlap": 512}``).
        **kwargs
            ``run_opts`` etc. (``speechbrain.inference.interfaces.Pretrained``).

        Returns
        -------
        Reconstructor
        """
        folder = check_model_folder(source, hparams_file)
        return super().from_hparams(
            source=FetchSource(FetchFrom.LOCAL, folder), hparams_file=hparams_file,
            savedir=folder if savedir is None else savedir, overrides=overrides or {},
            fetch_config=FetchConfig(allow_network=False), **kwargs,
        )

    # ----------------------------------------------------------------- encode
    def encode_batch(self, pieces):
        """Hypernetwork weights of peak-normalised pieces.

        The encoder runs in the model's ``precision`` (see the module
        docstring), the head in float32.

        Arguments
        ---------
        pieces : torch.Tensor
            ``[B, piece_length]`` at the model's rate.

        Returns
        -------
        torch.Tensor
            ``[B, P]`` INR weights (on the model's device).
        """
        with torch.no_grad():
            pieces = pieces.to(self.device, torch.float32)
            with self.inference_ctx:  # torch.autocast in the model's precision (no-op for fp32)
                embedding = self.mods.encoder(pieces)
            return self.mods.head(embedding.float())

    def forward(self, pieces):
        """Same as :meth:`encode_batch`."""
        return self.encode_batch(pieces)

    def _as_model_rate(self, wav, sample_rate):
        wav = torch.as_tensor(wav, dtype=torch.float32).detach().cpu()
        if wav.dim() == 2:  # [C, T]: mixed to mono, as everywhere else
            wav = wav.mean(dim=0)
        if wav.dim() != 1:
            raise ValueError(f"expected a waveform [T] or [C, T], got {tuple(wav.shape)}")
        if not torch.isfinite(wav).all():
            raise ValueError("the waveform holds NaN or inf samples")
        if int(sample_rate) != self.hparams.sample_rate:
            wav = torchaudio.functional.resample(wav, int(sample_rate), self.hparams.sample_rate)
        return wav

    def encode(self, wav, sample_rate, refine_steps=None, progress=None):
        """INR weights of a signal of any length.

        Arguments
        ---------
        wav : torch.Tensor
            ``[T]`` or ``[C, T]`` (channels are averaged).
        sample_rate : int
            Rate of ``wav`` in Hz; resampled to the model's rate.
        refine_steps : int or None
            Fitter steps from the hypernetwork's weights (None: the YAML's
            ``refine_steps``; 0: none).
        progress : bool or None
            Progress bars (None: the YAML's ``progress``, shown for long files).

        Returns
        -------
        INRWeights
            At the model's rate, ``num_samples`` = the resampled length.
        """
        hp = self.hparams
        steps = hp.refine_steps if refine_steps is None else int(refine_steps)
        if steps < 0:
            raise ValueError(f"refine_steps must be >= 0. Found: {steps}")
        wav = self._as_model_rate(wav, sample_rate)
        n_pieces, hop = plan_pieces(wav.shape[-1], hp.piece_length, hp.overlap)
        pieces = split_pieces(wav, hp.piece_length, hop, n_pieces)
        gains = pieces.abs().amax(dim=-1).clamp_min(GAIN_EPS)
        pieces = peak_normalize(pieces, eps=GAIN_EPS)
        n_batches = math.ceil(n_pieces / hp.batch_pieces)
        show = (hp.progress if progress is None else progress) and n_batches > 1
        rows = [self.encode_batch(pieces[i: i + hp.batch_pieces]).cpu()
                for i in tqdm(range(0, n_pieces, hp.batch_pieces), disable=not show,
                              desc="encode", dynamic_ncols=True)]
        weights = torch.cat(rows)
        if steps > 0:
            weights = self.refine(weights, pieces, steps, progress=show or bool(progress))
        target = self.mods.head.target
        return INRWeights(
            target=registered_name(type(target)) or inr_class_path(type(target)),
            config=_plain(hp.target_config), weights=weights, sample_rate=hp.sample_rate,
            num_samples=wav.shape[-1], piece_length=hp.piece_length, hop=hop, gains=gains,
            buffers={k: v.cpu() for k, v in target.named_buffers()},
            target_class=inr_class_path(type(target)), join="raised_cosine",
            metadata={"model": hp.model_name, "source_sample_rate": int(sample_rate),
                      "refine_steps": steps},
        )

    def refiner(self, n_steps, progress=False):
        """The single-clip fitter with the YAML's ``refine_*`` settings.

        Returns
        -------
        fewsound_sb.fitting.INRFitter
        """
        from fewsound_sb.fitting import INRFitter  # matplotlib-free import of this module

        hp = self.hparams
        return INRFitter(
            functools.partial(type(self.mods.head.target), **hp.target_config),
            hp.refine_loss, lr=hp.refine_lr, n_steps=n_steps,
            weight_decay=hp.refine_weight_decay, betas=hp.refine_betas, eps=hp.refine_eps,
            save_every=0, device=self.device, progress=progress,
        )

    def refine(self, weights, pieces, n_steps, progress=False):
        """``n_steps`` fitter steps from ``weights`` on the (normalised) pieces.

        Arguments
        ---------
        weights : torch.Tensor
            ``[n, P]`` starting weights (the hypernetwork's).
        pieces : torch.Tensor
            ``[n, piece_length]`` peak-normalised targets.
        n_steps : int
            Optimisation steps.
        progress : bool
            tqdm bar over steps.

        Returns
        -------
        torch.Tensor
            ``[n, P]`` refined weights (CPU).
        """
        fitter = self.refiner(n_steps, progress)
        size = self.hparams.batch_pieces
        out = []
        for i in range(0, weights.shape[0], size):
            with torch.enable_grad():
                result = fitter.fit_batch(pieces[i: i + size], init_weights=weights[i: i + size])
            failed = [j for j, s in enumerate(result.status) if s != "ok"]
            if failed:
                logger.warning("Refinement diverged on piece(s) %s: kept the hypernetwork's "
                               "weights there (lower refine_lr)", [i + j for j in failed])
                result.weights[failed] = weights[i: i + size][failed].cpu()
            out.append(result.weights)
        return torch.cat(out)

    # ----------------------------------------------------------------- decode
    def decode(self, weights, sample_rate=None, num_samples=None, progress=None):
        """Waveform of INR weights (:func:`decode_weights` on the model's device).

        Arguments
        ---------
        weights : INRWeights
            From :meth:`encode` or a weights file (any producer).
        sample_rate : int or None
            Output rate (None: the weights' rate).
        num_samples : int or None
            Output length (None: the clip's duration at the output rate).
        progress : bool or None
            Progress bar (None: the YAML's ``progress``, for many pieces).

        Returns
        -------
        torch.Tensor
            ``[num_samples]`` (CPU).
        """
        show = self.hparams.progress if progress is None else progress
        return decode_weights(weights, sample_rate, num_samples, device=self.device,
                              batch_pieces=self.hparams.batch_pieces,
                              progress=show and weights.n_pieces > self.hparams.batch_pieces)

    def reconstruct_file(self, path, out_path, sample_rate=None, refine_steps=None,
                         weights_path=None, dtype="fp32"):
        """Reads an audio file, encodes it and writes the reconstruction.

        Arguments
        ---------
        path : str
            Any audio file (mixed to mono, resampled to the model's rate).
        out_path : str
            Output audio file (its folder must exist; written atomically).
        sample_rate : int or None
            Output rate (None: the model's rate).
        refine_steps : int or None
            Refinement steps (None: the YAML's ``refine_steps``).
        weights_path : str or None
            Also save the weights file there.
        dtype : str
            Storage dtype of that file; the audio is decoded from the
            weights as stored (fp16/int8 rounding included).

        Returns
        -------
        INRWeights
        """
        check_output_path(out_path)
        if weights_path is not None:
            check_output_path(weights_path)
        wav = read_audio(path, sample_rate=self.hparams.sample_rate)
        weights = self.encode(wav, self.hparams.sample_rate, refine_steps=refine_steps)
        weights.metadata["source"] = os.path.abspath(os.fspath(path))
        weights.dtype = dtype
        weights = weights.as_stored()
        write_audio(out_path, self.decode(weights, sample_rate).clamp(-1.0, 1.0),
                    sample_rate or self.hparams.sample_rate)
        if weights_path is not None:
            weights.save(weights_path)
        return weights


def check_output_path(path):
    """Raises FileNotFoundError if ``path``'s folder does not exist.

    Example
    -------
    >>> check_output_path("out.wav")
    >>> try:
    ...     check_output_path("no/such/folder/out.wav")
    ... except FileNotFoundError as err:
    ...     print(str(err).split(":")[0])
    Output folder does not exist
    """
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise FileNotFoundError(
            f"Output folder does not exist: '{folder}' (for '{path}'). Create it first "
            f"(mkdir -p '{folder}') or choose another output path."
        )


def _plain(value):
    """JSON-able copy of YAML values (tuples and ruamel containers to lists/dicts)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- export
def _ruamel():
    import ruamel.yaml

    yaml = ruamel.yaml.YAML()
    yaml.width = 100
    return yaml


def _load_resolved(yaml_text):
    """The YAML with its references resolved, as ruamel round-trip data (nothing built)."""
    from hyperpyyaml import resolve_references

    return _ruamel().load(resolve_references(io.StringIO(yaml_text)).getvalue())


def inference_yaml(training_yaml_text, template_path=INFERENCE_TEMPLATE):
    """The inference ``hyperparams.yaml`` of a training run's YAML.

    References are resolved; the keys of :data:`KEPT_TRAINING_KEYS` are kept
    with every object they use (so the encoder, head and target are built
    exactly as in training: a Whisper encoder's ``source`` path is recorded,
    not copied); ``target_config`` (the target's constructor arguments, for
    weights files) and ``refine_loss`` (the training loss with
    ``reduction: none``) are added, then the inference settings of
    ``template_path`` (``piece_length``, ``overlap``, ``refine_*``,
    ``modules``, ``pretrainer``).

    Arguments
    ---------
    training_yaml_text : str
        The run's ``hyperparams.yaml`` (or any model YAML, overrides applied).
    template_path : str
        The inference settings appended (``hparams/inference.yaml``).

    Returns
    -------
    str
    """
    yaml = _ruamel()
    doc = _load_resolved(training_yaml_text)
    missing = [key for key in KEPT_TRAINING_KEYS if key not in doc]
    if missing or "loss" not in doc:
        raise ValueError(f"the training YAML has no {', '.join(missing or ['loss'])}: is it a "
                         "FewSound / HyperSound model YAML (hparams/fewsound_*.yaml)?")
    out = type(doc)()
    for key in doc:
        if key in KEPT_TRAINING_KEYS:
            out[key] = doc[key]
    out["target_config"] = _plain(dict(doc["target"]))
    refine_loss = copy.deepcopy(doc["loss"])
    refine_loss["reduction"] = "none"
    out["refine_loss"] = refine_loss
    stream = io.StringIO()
    yaml.dump(out, stream)
    with open(template_path, encoding="utf-8") as fin:
        template = fin.read()
    header = ("# Inference model written by fewsound_sb.inference.export_inference: the "
              "training run's\n# encoder, head and target (as trained) + the inference "
              "settings. Load with\n# fewsound_sb.inference.Reconstructor.from_hparams("
              "source=<this folder>).\n\n")
    return header + stream.getvalue() + "\n" + template


def _find_checkpoint(save_folder, min_key="loss"):
    from speechbrain.utils.checkpoints import Checkpointer

    if not os.path.isdir(save_folder):
        raise FileNotFoundError(f"No checkpoint folder '{save_folder}': train first (the run "
                                "saves checkpoints there)")
    ckpt = Checkpointer(save_folder).find_checkpoint(min_key=min_key)
    if ckpt is None:
        raise FileNotFoundError(f"No checkpoint in '{save_folder}': train first")
    missing = [n for n in MODEL_FILES if not os.path.isfile(os.path.join(ckpt.path, n))]
    if missing:
        raise FileNotFoundError(f"Checkpoint '{ckpt.path}' lacks {', '.join(missing)} "
                                "(interrupted while saving?): remove it and export again")
    return ckpt.path


def export_inference(run_folder, output_folder=None, min_key="loss"):
    """Writes a run's inference folder from its best checkpoint.

    ``<run_folder>/inference/`` gets ``hyperparams.yaml``
    (:func:`inference_yaml` of ``<run_folder>/hyperparams.yaml``) and the
    checkpoint's ``encoder.ckpt`` and ``head.ckpt`` (a Whisper encoder's
    checkpoint holds only its LoRA adapters and pooling head; the backbone
    stays at its recorded ``source`` path). Every file is written atomically.

    Arguments
    ---------
    run_folder : str
        A training run's ``output_folder`` (holds ``hyperparams.yaml`` and
        the checkpoints in its ``save_folder``).
    output_folder : str or None
        Where to write (default ``<run_folder>/inference``).
    min_key : str
        The checkpoint with the lowest value of this meta key is exported.

    Returns
    -------
    str
        The inference folder.
    """
    run_folder = os.fspath(run_folder)
    yaml_path = os.path.join(run_folder, HPARAMS_FILE)
    if not os.path.isfile(yaml_path):
        raise FileNotFoundError(f"No '{yaml_path}': '{run_folder}' is not a training run's "
                                "output_folder (train.py writes hyperparams.yaml there)")
    with open(yaml_path, encoding="utf-8") as fin:
        training_text = fin.read()
    text = inference_yaml(training_text)
    save_folder = str(_load_resolved(training_text).get("save_folder") or "")
    if not os.path.isdir(save_folder):  # e.g. a relative path from another working folder
        save_folder = os.path.join(run_folder, "save")
    ckpt_path = _find_checkpoint(save_folder, min_key)
    output_folder = os.path.join(run_folder, INFERENCE_FOLDER) if output_folder is None \
        else os.fspath(output_folder)
    for name in MODEL_FILES:
        atomic_write(os.path.join(output_folder, name), functools.partial(
            shutil.copyfile, os.path.join(ckpt_path, name)))
    write_text(os.path.join(output_folder, HPARAMS_FILE), text)
    logger.info("Inference model (checkpoint %s) written to %s", ckpt_path, output_folder)
    return output_folder


def write_model_folder(folder, yaml_text, modules):
    """Writes a model folder from a YAML text and built modules (tests, tools).

    Arguments
    ---------
    folder : str
        Output folder (created).
    yaml_text : str
        The inference ``hyperparams.yaml``.
    modules : dict
        ``{"encoder": module, "head": module}``, saved with SpeechBrain's
        checkpoint hooks (as the checkpointer saves them).

    Returns
    -------
    str
        ``folder``.
    """
    from speechbrain.utils.checkpoints import DEFAULT_SAVE_HOOKS, get_default_hook

    for name, module in modules.items():
        hook = get_default_hook(module, DEFAULT_SAVE_HOOKS)
        atomic_write(os.path.join(folder, f"{name}.ckpt"),
                     functools.partial(hook, module))
    write_text(os.path.join(folder, HPARAMS_FILE), yaml_text)
    return folder


TINY_MODEL_YAML = """\
sample_rate: 8000
crop_length: 1024
model_name: tiny
target: !new:fewsound_sb.nnet.inr.KAN
    encoding_length: 2
    hidden_sizes: [4]
    grid_size: 3
encoder: !new:fewsound_sb.lobes.encoders.SoundStreamEncoder
    input_length: 1024
    sample_rate: 8000
    channels: 2
    norm: channel
head: !new:fewsound_sb.nnet.hyper.FewSoundHead
    target: !ref <target>
    encoder_dim: 128
    hypernet_hidden: [8]
    g_output_dim: 4
    g_kernel_size: 5
    warmup_epochs: 0
loss: !new:fewsound_sb.losses.FewSoundLoss
    lambda_f: 0.0
    sample_rate: 8000
"""
"""A tiny untrained model YAML (SoundStream encoder, FewSound head, KAN target) for
examples and tests: :func:`write_tiny_model`."""


def write_tiny_model(folder, seed=0):
    """A tiny *untrained* model folder (examples and tests; reconstructs nothing useful).

    Example
    -------
    >>> import tempfile
    >>> sorted(os.listdir(write_tiny_model(tempfile.mkdtemp())))
    ['encoder.ckpt', 'head.ckpt', 'hyperparams.yaml']
    """
    from hyperpyyaml import load_hyperpyyaml

    text = inference_yaml(TINY_MODEL_YAML)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        hparams = load_hyperpyyaml(text)
    return write_model_folder(folder, text, hparams["modules"])
