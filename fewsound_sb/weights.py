"""INR weights files: the target-network weights of one clip, whoever produced them.

A clip represented as an implicit neural representation is a target network
(:mod:`fewsound_sb.nnet.inr`) plus its weights. :class:`INRWeights` holds
everything needed to play the clip back and nothing else, and is the one file
format of the package: single-clip fitting (:mod:`fewsound_sb.fitting`) writes
it, and any other producer of INR weights (a hypernetwork at inference) can
write it the same way.

What a file holds
-----------------
* the target: its registry name (:data:`~fewsound_sb.nnet.inr.INR_REGISTRY`)
  and its class import path (``"package.module:Class"``), so a target class
  defined outside this package is found again (its module is imported on
  load; only load files you trust, as with any code reference);
* the constructor config (``build_inr(target, **config)``) and the network's
  non-trainable buffers (e.g. an unseeded RFF frequency draw);
* the piece layout: a clip may be several pieces, each with its own weights.
  ``weights`` is ``[n_pieces, P]``; piece k covers samples
  ``[k * hop, k * hop + piece_length)`` of the clip, ``num_samples`` long in
  all at ``sample_rate`` Hz; each piece was fitted peak-normalised and
  ``gains[k]`` restores its original level. A single fit has ``n_pieces = 1``;
* the storage dtype: ``"fp32"``, ``"fp16"`` or ``"int8"`` (symmetric, one
  scale per piece; dequantised to float32 on load);
* free-form metadata (clip id, source file, loss, ...), JSON.

The file is a `safetensors <https://huggingface.co/docs/safetensors>`_ file
(no pickle): tensors ``weights``, ``gains``, ``scales`` (int8 only) and
``buffers/<name>``, and the rest as JSON in the header's metadata. It is
written atomically (:func:`fewsound_sb.files.write_bytes`). Loading a file of
another format version, a truncated or corrupt file, or a file that is not an
INR weights file raises a ``ValueError`` naming the file and what to do.

Example
-------
>>> import os, tempfile
>>> from fewsound_sb.nnet.inr import build_inr, time_grid
>>> net = build_inr("nerf", encoding_length=2, hidden_sizes=(8,))
>>> clip = INRWeights.from_network(net, {"encoding_length": 2, "hidden_sizes": [8]},
...                                sample_rate=8000, num_samples=64, metadata={"id": "a"})
>>> path = os.path.join(tempfile.mkdtemp(), "a" + WEIGHTS_SUFFIX)
>>> clip.save(path)
>>> again = INRWeights.load(path)
>>> again.target, again.n_pieces, again.metadata["id"]
('nerf', 1, 'a')
>>> bool(torch.equal(again.build_network()(time_grid(64)), net(time_grid(64))))
True
"""

import json
import os
from dataclasses import dataclass, field, replace

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_save
from speechbrain.utils.logger import get_logger

from fewsound_sb.files import write_bytes
from fewsound_sb.nnet.inr import (
    INR_REGISTRY,
    inr_class,
    inr_class_path,
    registered_name,
    time_grid,
)

logger = get_logger(__name__)

FORMAT_NAME = "fewsound-inr-weights"
FORMAT_VERSION = 1
WEIGHTS_SUFFIX = ".safetensors"
STORAGE_DTYPES = ("fp32", "fp16", "int8")
_DTYPE_BITS = {"fp32": 32, "fp16": 16, "int8": 8}
_INT8_MAX = 127
_BUFFER_PREFIX = "buffers/"
JOIN_MODES = ("mean", "raised_cosine")


def storage_bits(num_params, dtype, n_pieces=1):
    """Bits a clip's weights take when stored at ``dtype``.

    Counts the ``[n_pieces, num_params]`` weight tensor at the storage dtype,
    one fp32 gain per piece and, for int8, one fp32 scale per piece. The
    target's config and buffers are not counted: they are the same for every
    clip of a target configuration.

    Arguments
    ---------
    num_params : int
        Flat weight length P of the target.
    dtype : str
        ``"fp32"``, ``"fp16"`` or ``"int8"``.
    n_pieces : int
        Pieces of the clip.

    Returns
    -------
    int

    Example
    -------
    >>> bits = storage_bits(33768, "fp16")  # the paper's KAN, one 1.5 s clip at 22,050 Hz
    >>> bits, round(bits * 22050 / 32768 / 1000, 2)  # kbit/s
    (540320, 363.58)
    """
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {STORAGE_DTYPES}. Found: {dtype!r}")
    per_piece = num_params * _DTYPE_BITS[dtype] + 32 + (32 if dtype == "int8" else 0)
    return int(n_pieces) * per_piece


@dataclass
class INRWeights:
    """The weights of one clip's target network, as stored in a weights file.

    Arguments
    ---------
    target : str
        Registry name of the target class (``"kan"``...), or its import path
        if it is not registered.
    config : dict
        Constructor arguments: ``build_inr(target, **config)`` (JSON values).
    weights : torch.Tensor
        ``[n_pieces, P]`` flat weights (``[P]`` is taken as one piece); kept
        as float32 in memory.
    sample_rate : int
        Sample rate of the clip (Hz).
    num_samples : int
        Length of the whole clip in samples.
    piece_length : int or None
        Samples per piece (each piece's time grid is
        ``time_grid(piece_length)``). None: ``num_samples`` (one piece).
    hop : int or None
        Spacing of the piece starts in samples. None: ``piece_length``
        (consecutive pieces).
    gains : torch.Tensor or None
        ``[n_pieces]`` factor restoring each piece's original level. None: 1.
    buffers : dict
        Non-trainable tensors of the network, restored on load.
    target_class : str
        Import path ``"module:QualName"`` of the class ("" : from ``target``).
    dtype : str
        Storage dtype used by :meth:`save`: ``"fp32"``, ``"fp16"``, ``"int8"``.
    metadata : dict
        Free-form JSON-serialisable information (clip id, source, loss...).
    join : str
        How overlapping pieces are joined (:data:`JOIN_MODES`): ``"mean"``
        averages them; ``"raised_cosine"`` cross-fades them over the overlap
        with sin²/cos² ramps that sum to 1 (what
        :class:`fewsound_sb.inference.Reconstructor` writes; see
        :func:`fewsound_sb.inference.decode_weights`).
    version : int
        Format version (:data:`FORMAT_VERSION`).

    Example
    -------
    >>> w = INRWeights("kan", {}, torch.zeros(3, 10), sample_rate=16000, num_samples=2500,
    ...                piece_length=1000, dtype="int8")
    >>> w.n_pieces, w.hop, w.gains.tolist(), w.target_class
    (3, 1000, [1.0, 1.0, 1.0], 'fewsound_sb.nnet.inr:KAN')
    >>> w.num_bits(), round(w.bitrate(), 1)  # 3 x 10 int8 + per-piece scale and gain (fp32)
    (432, 2764.8)
    """

    target: str
    config: dict
    weights: torch.Tensor
    sample_rate: int
    num_samples: int
    piece_length: int = None
    hop: int = None
    gains: torch.Tensor = None
    buffers: dict = field(default_factory=dict)
    target_class: str = ""
    dtype: str = "fp32"
    metadata: dict = field(default_factory=dict)
    join: str = "mean"
    version: int = FORMAT_VERSION

    def __post_init__(self):
        weights = torch.as_tensor(self.weights).detach().to("cpu", torch.float32)
        if weights.dim() == 1:
            weights = weights.unsqueeze(0)
        if weights.dim() != 2 or weights.shape[0] < 1:
            raise ValueError(f"weights must be [n_pieces, P], got {tuple(weights.shape)}")
        self.weights = weights
        n_pieces = weights.shape[0]
        if self.dtype not in STORAGE_DTYPES:
            raise ValueError(f"dtype must be one of {STORAGE_DTYPES}. Found: {self.dtype!r}")
        if self.join not in JOIN_MODES:
            raise ValueError(f"join must be one of {JOIN_MODES}. Found: {self.join!r}")
        self.sample_rate = int(self.sample_rate)
        self.num_samples = int(self.num_samples)
        if self.piece_length is None:
            if n_pieces != 1:
                raise ValueError(f"piece_length is needed for {n_pieces} pieces")
            self.piece_length = self.num_samples
        self.piece_length = int(self.piece_length)
        self.hop = self.piece_length if self.hop is None else int(self.hop)
        if self.sample_rate <= 0 or self.piece_length < 2 or self.hop < 1:
            raise ValueError(
                f"need sample_rate > 0, piece_length >= 2, hop >= 1; got {self.sample_rate}, "
                f"{self.piece_length}, {self.hop}"
            )
        covered = (n_pieces - 1) * self.hop + self.piece_length
        if not (n_pieces - 1) * self.hop < self.num_samples <= covered:
            raise ValueError(
                f"{n_pieces} pieces of {self.piece_length} samples every {self.hop} cover "
                f"{covered} samples: num_samples must be in "
                f"({(n_pieces - 1) * self.hop}, {covered}], got {self.num_samples}"
            )
        gains = torch.ones(n_pieces) if self.gains is None else self.gains
        self.gains = torch.as_tensor(gains, dtype=torch.float32).detach().cpu().reshape(-1)
        if self.gains.shape != (n_pieces,):
            raise ValueError(f"gains must be [{n_pieces}], got {tuple(self.gains.shape)}")
        self.buffers = {k: torch.as_tensor(v).detach().cpu() for k, v in self.buffers.items()}
        if not self.target_class:
            self.target_class = inr_class_path(inr_class(self.target))
        self.target = str(self.target).lower() if str(self.target).lower() in INR_REGISTRY \
            else str(self.target)
        self.config = dict(self.config)
        self.metadata = dict(self.metadata)

    # ------------------------------------------------------------------ info
    @property
    def n_pieces(self):
        """Number of pieces (rows of ``weights``)."""
        return self.weights.shape[0]

    @property
    def num_params(self):
        """Length P of one piece's flat weight vector."""
        return self.weights.shape[1]

    def num_bits(self):
        """Bits of the stored weights (:func:`storage_bits`)."""
        return storage_bits(self.num_params, self.dtype, self.n_pieces)

    def bitrate(self):
        """Bits per second of audio: :meth:`num_bits` over the clip duration."""
        return self.num_bits() * self.sample_rate / self.num_samples

    # ------------------------------------------------------------------ build
    @classmethod
    def from_network(cls, network, config, sample_rate, num_samples, **kwargs):
        """The weights of a built network (one piece by default).

        Arguments
        ---------
        network : FunctionalINR
            A target network; its class must be registered or importable.
        config : dict
            The constructor arguments it was built with.
        sample_rate : int
            Sample rate of the clip (Hz).
        num_samples : int
            Length of the clip.
        **kwargs
            Other :class:`INRWeights` fields (gains, dtype, metadata...).

        Returns
        -------
        INRWeights
        """
        kind = type(network)
        return cls(
            target=registered_name(kind) or inr_class_path(kind), config=config,
            weights=network.flat_weights().detach(), sample_rate=sample_rate,
            num_samples=num_samples, buffers=dict(network.named_buffers()),
            target_class=inr_class_path(kind), **kwargs,
        )

    def target_network_class(self):
        """The class to build: the registered one if it is the stored class,
        else the class imported from its stored path."""
        known = INR_REGISTRY.get(self.target)
        if known is not None and inr_class_path(known) == self.target_class:
            return known
        try:
            return inr_class(self.target_class)
        except ValueError as err:
            if known is None:
                raise ValueError(
                    f"cannot rebuild target '{self.target}': {err}"
                ) from err
            logger.warning("Target class %s not importable (%s): using the registered '%s' (%s)",
                           self.target_class, err, self.target, inr_class_path(known))
            return known

    def build_network(self, piece=0, device="cpu"):
        """The target network with the weights of one piece (eval mode).

        The network reproduces the peak-normalised piece on
        ``time_grid(piece_length)``; ``gains[piece]`` times its output is the
        piece at its original level (:meth:`reconstruct` does this for the
        whole clip). The global RNG is left untouched.

        Arguments
        ---------
        piece : int
            Which piece.
        device : str or torch.device
            Where to put the network.

        Returns
        -------
        FunctionalINR
        """
        if not -self.n_pieces <= piece < self.n_pieces:
            raise IndexError(f"piece {piece} out of range: the clip has {self.n_pieces} piece(s)")
        with torch.random.fork_rng(devices=[]):
            network = self.target_network_class()(**self.config)
        network.load_flat_weights(self.weights[piece])
        own = dict(network.named_buffers())
        for name, value in self.buffers.items():
            if name not in own or own[name].shape != value.shape:
                raise ValueError(
                    f"stored buffer '{name}' {tuple(value.shape)} does not fit target "
                    f"{self.target_class} with config {self.config} (its buffers: "
                    f"{ {k: tuple(v.shape) for k, v in own.items()} })"
                )
            own[name].copy_(value)
        return network.to(device).eval()

    @torch.no_grad()
    def reconstruct(self, device="cpu"):
        """The whole clip at its original level, ``[num_samples]`` (CPU).

        Every piece's network is evaluated on ``time_grid(piece_length)``,
        scaled by its gain and placed at ``k * hop``; where pieces overlap
        they are averaged (``join="mean"``) or cross-faded
        (``join="raised_cosine"``, decoded by
        :func:`fewsound_sb.inference.decode_weights`, which also decodes at
        other sample rates).

        Example
        -------
        >>> from fewsound_sb.nnet.inr import build_inr, time_grid
        >>> net = build_inr("nerf", encoding_length=2, hidden_sizes=(4,))
        >>> flat = net.flat_weights().detach()
        >>> clip = INRWeights("nerf", {"encoding_length": 2, "hidden_sizes": [4]},
        ...                   torch.stack([flat, flat]), 8000, num_samples=15,
        ...                   piece_length=10, hop=8, gains=torch.tensor([1.0, 2.0]))
        >>> out, piece = clip.reconstruct(), net(time_grid(10)).squeeze(-1).detach()
        >>> out.shape, bool(torch.allclose(out[10:], 2 * piece[2:7]))
        (torch.Size([15]), True)
        >>> bool(torch.allclose(out[8:10], (piece[8:10] + 2 * piece[:2]) / 2))  # overlap: mean
        True
        """
        if self.join != "mean":
            from fewsound_sb.inference import decode_weights  # inference imports this module

            return decode_weights(self, device=device)
        total = torch.zeros((self.n_pieces - 1) * self.hop + self.piece_length)
        count = torch.zeros_like(total)
        grid = time_grid(self.piece_length, device=device)
        for k in range(self.n_pieces):
            piece = self.build_network(k, device)(grid).squeeze(-1).float().cpu()
            start = k * self.hop
            total[start: start + self.piece_length] += self.gains[k] * piece
            count[start: start + self.piece_length] += 1
        return (total / count)[: self.num_samples]

    # ------------------------------------------------------------------ storage
    def as_stored(self):
        """A copy whose weights are those loading the saved file would give
        (fp16 / int8 rounding applied), without writing a file.

        Example
        -------
        >>> w = INRWeights("kan", {}, torch.tensor([[0.5, -1.0, 0.3]]), 8000, 4, dtype="int8")
        >>> [round(v, 4) for v in w.as_stored().weights[0].tolist()]
        [0.5039, -1.0, 0.2992]
        """
        tensors = self._encode()
        return replace(self, weights=_decode(tensors, self.dtype, "memory"))

    def _encode(self):
        """The weight tensors as stored: ``weights`` (+ ``scales`` for int8)."""
        if self.dtype == "fp32":
            return {"weights": self.weights.contiguous()}
        if self.dtype == "fp16":
            peak = float(self.weights.abs().max())
            if not peak <= torch.finfo(torch.float16).max:
                raise ValueError(f"weights reach {peak:g}, beyond fp16's range: store as fp32")
            return {"weights": self.weights.half().contiguous()}
        scales = self.weights.abs().amax(dim=1) / _INT8_MAX  # [n_pieces]
        scales = torch.where(scales > 0, scales, torch.ones_like(scales))
        quantized = torch.round(self.weights / scales[:, None]).clamp(-_INT8_MAX, _INT8_MAX)
        return {"weights": quantized.to(torch.int8).contiguous(), "scales": scales.contiguous()}

    def save(self, path):
        """Writes the weights file (atomically), weights in ``self.dtype``.

        Arguments
        ---------
        path : str or os.PathLike
            Output file (``.safetensors`` by convention; folders are created).
        """
        info = {
            "target": self.target, "target_class": self.target_class, "config": self.config,
            "sample_rate": self.sample_rate, "num_samples": self.num_samples,
            "piece_length": self.piece_length, "hop": self.hop, "dtype": self.dtype,
            "metadata": self.metadata, "join": self.join,
        }
        try:
            info_json = json.dumps(info)
        except (TypeError, ValueError) as err:
            raise ValueError(f"config and metadata must be JSON values to save '{path}': {err}") \
                from err
        tensors = self._encode()
        tensors["gains"] = self.gains.contiguous()
        for name, value in self.buffers.items():
            tensors[_BUFFER_PREFIX + name] = value.contiguous()
        header = {"format": FORMAT_NAME, "format_version": str(self.version), "info": info_json}
        write_bytes(path, safetensors_save(tensors, metadata=header))

    @classmethod
    def load(cls, path):
        """Reads a weights file written by :meth:`save` (weights as float32).

        Arguments
        ---------
        path : str or os.PathLike
            The file.

        Returns
        -------
        INRWeights

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            The file is not an INR weights file, is truncated or corrupt, or
            was written in another format version.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"INR weights file not found: '{path}'")
        try:
            with safe_open(path, framework="pt") as fin:
                header = fin.metadata() or {}
                tensors = {name: fin.get_tensor(name) for name in fin.keys()}
        except (SafetensorError, OSError, ValueError, RuntimeError) as err:
            raise ValueError(_unreadable(path, err)) from err
        if header.get("format") != FORMAT_NAME:
            raise ValueError(
                f"'{path}' is a safetensors file but not an INR weights file (no "
                f"'{FORMAT_NAME}' header): write INR weights with INRWeights.save"
            )
        version = header.get("format_version")
        if version != str(FORMAT_VERSION):
            raise ValueError(
                f"'{path}' is an INR weights file of format version {version}; this "
                f"fewsound-sb reads version {FORMAT_VERSION}. Load it with the fewsound-sb "
                "release that wrote it, or refit the clip."
            )
        try:
            info = json.loads(header["info"])
            weights = _decode(tensors, info["dtype"], path)
            buffers = {name[len(_BUFFER_PREFIX):]: value for name, value in tensors.items()
                       if name.startswith(_BUFFER_PREFIX)}
            return cls(
                target=info["target"], config=info["config"], weights=weights,
                sample_rate=info["sample_rate"], num_samples=info["num_samples"],
                piece_length=info["piece_length"], hop=info["hop"], gains=tensors["gains"],
                buffers=buffers, target_class=info["target_class"], dtype=info["dtype"],
                metadata=info["metadata"], join=info.get("join", "mean"),
                version=FORMAT_VERSION,
            )
        except (KeyError, TypeError, json.JSONDecodeError) as err:
            raise ValueError(
                f"'{path}' is an INR weights file with a damaged header ({err!r}): "
                "re-create it (refit, or save it again)"
            ) from err


def _decode(tensors, dtype, path):
    """float32 ``[n_pieces, P]`` from the stored tensors."""
    if dtype not in STORAGE_DTYPES:
        raise ValueError(f"'{path}': unknown storage dtype {dtype!r} (expected {STORAGE_DTYPES})")
    weights = tensors["weights"].to(torch.float32)
    if dtype == "int8":
        weights = weights * tensors["scales"].to(torch.float32)[:, None]
    return weights


def _unreadable(path, err):
    with open(path, "rb") as fin:
        magic = fin.read(2)
    if magic == b"PK":
        return (
            f"'{path}' is a torch.save file, not an INR weights file (format version "
            f"{FORMAT_VERSION}, safetensors): fewsound-sb 0.1 wrote fitted weights as .pt "
            "files; refit the clip to get a weights file"
        )
    return (
        f"'{path}' is not a readable INR weights file: it is truncated, corrupt or another "
        f"kind of file ({err}). Re-create it (refit, or save it again with INRWeights.save)."
    )


def load_fitted(path, map_location="cpu", piece=0):
    """Rebuilds the fitted target network of a weights file.

    A thin wrapper: ``INRWeights.load(path).build_network(piece, map_location)``.

    Arguments
    ---------
    path : str
        A weights file (``weights/<id>.safetensors`` of a fit).
    map_location : str or torch.device
        Device of the network.
    piece : int
        Which piece, for multi-piece files.

    Returns
    -------
    FunctionalINR
        The network with the fitted weights (eval mode). It reproduces the
        peak-normalised clip: ``net(time_grid(num_samples))``.

    Example
    -------
    >>> import os, tempfile
    >>> from fewsound_sb.nnet.inr import build_inr
    >>> net = build_inr("siren", hidden_sizes=(8,))
    >>> path = os.path.join(tempfile.mkdtemp(), "clip.safetensors")
    >>> INRWeights.from_network(net, {"hidden_sizes": [8]}, 8000, 64).save(path)
    >>> type(load_fitted(path)).__name__
    'SIREN'
    """
    return INRWeights.load(path).build_network(piece, map_location)
