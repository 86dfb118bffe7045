"""Single-clip INR fitting, many clips at once (the paper's Table 1 and ablations).

Each clip gets its own target network, fitted from its own fresh
initialisation to reproduce the clip. ``B`` clips are optimised together as
one weight tensor ``w: [B, P]`` evaluated through the target's
``forward_flat(t, w)`` on the shared :func:`~fewsound_sb.nnet.inr.time_grid`.
One AdamW optimiser over ``w`` equals B independent fits: AdamW's update is
element-wise (weight decay too), and the loss is the *sum* of per-clip losses,
so the gradient of clip i depends on clip i only. Clip i starts from the
target built under seed ``seed + i`` (i = the clip's position in the whole
list), so its result does not depend on which clips share its batch.

A clip whose loss turns NaN/inf is stopped alone (weights frozen, marked
failed); the others go on. The loss sees each clip's relative valid length
(``FitClip.num_valid``), so the zero padding of a short clip is not fitted.
The optimiser state is saved every ``save_every`` steps (atomically);
rerunning with the same output folder continues from the last saved step.

A finished clip is recognised by a key (:meth:`INRFitter.clip_key`): the
SHA-256 of its source file's bytes and of the fitted samples, and the fit
settings (target and its configuration, lr, weight decay, betas, eps, loss
and its settings, clip length, initialisation seed), not by its name. A rerun
with the same key and ``n_steps`` reuses the fit; any other setting, or a
changed file under the same name, refits (the log says which setting
changed); a larger ``n_steps`` continues the saved fit from its weights and
AdamW state (kept in the record) instead of starting over.

Outputs of :meth:`INRFitter.run` in the output folder::

    results.csv              one row per clip: id, path, status, metrics, steps, seconds
    summary.md, summary.csv  mean ± std per metric (paper Table 1 layout)
    weights/<id>.safetensors fitted weights (fewsound_sb.weights.INRWeights; the
                             network: fewsound_sb.weights.load_fitted(path))
    wavs/<id>.wav            reconstruction; originals/<id>.wav the fitted crop
    figures/<id>.png         waveform + log-mel, original above reconstruction
    loss_curve.png           loss per step of every clip
    records/<id>/<key>-<n_steps>.pt  per-clip row, loss history, settings, final
                             weights and AdamW state (reuse, continue)
    records/<id>/current     the record whose weights/wavs/figure are on disk
    state/batch_*.pt         optimiser state of the unfinished batch (removed when done)

This module holds the fitter only. The clips come from
:func:`fewsound_sb.dataio.prepare_clips` (:class:`~fewsound_sb.dataio.FitClip`),
the weights files are :class:`fewsound_sb.weights.INRWeights`, the tables,
wavs and figures are written by :mod:`fewsound_sb.reports`, and every file
atomically by :mod:`fewsound_sb.files`.
"""

import functools
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass

import torch
from speechbrain.utils.logger import get_logger
from tqdm import tqdm

from fewsound_sb.files import file_sha256, save_torch, write_text
from fewsound_sb.metrics import compute_metrics, summarize
from fewsound_sb.nnet.hyper import count_parameters
from fewsound_sb.nnet.inr import (
    INR_REGISTRY,
    FunctionalINR,
    inr_class_path,
    registered_name,
    time_grid,
)
from fewsound_sb.plotting import plot_loss_curve
from fewsound_sb.reports import figure_title, write_example, write_metric_table, write_rows_csv
from fewsound_sb.weights import WEIGHTS_SUFFIX, INRWeights

logger = get_logger(__name__)

STATE_VERSION = 1
RECORD_VERSION = 2
CSV_COLUMNS = (
    "id", "path", "status", "message", "num_samples", "steps", "seconds", "final_loss",
)


# --------------------------------------------------------------------------- targets
def describe_target(target):
    """Registry name and constructor overrides of a target factory.

    Arguments
    ---------
    target : callable
        A :class:`~fewsound_sb.nnet.inr.FunctionalINR` subclass (registered
        with :func:`~fewsound_sb.nnet.inr.register_inr`, or any subclass
        importable by its module path), or a ``functools.partial`` of one
        (what ``!name:fewsound_sb.nnet.inr.KAN`` with keyword arguments gives
        in HyperPyYAML).

    Returns
    -------
    (str, dict)
        ``(name, overrides)`` such that ``build_inr(name, **overrides)``
        builds the same network; ``name`` is the registry name, or the
        class import path ``"module:Class"`` for an unregistered class.

    Example
    -------
    >>> from fewsound_sb.nnet.inr import KAN
    >>> describe_target(functools.partial(KAN, grid_size=5))
    ('kan', {'grid_size': 5})
    """
    if isinstance(target, FunctionalINR):
        raise TypeError(
            "target must be a factory that builds a fresh network per clip "
            "(YAML: `target: !name:fewsound_sb.nnet.inr.KAN`), not a built "
            "network (`!new:`): every clip starts from its own initialisation."
        )
    func, config = target, {}
    if isinstance(target, functools.partial):
        if target.args:
            raise ValueError("give the target's arguments by keyword (YAML keys), not positionally")
        func, config = target.func, dict(target.keywords)
    if isinstance(func, type) and issubclass(func, FunctionalINR):
        return registered_name(func) or inr_class_path(func), config
    raise ValueError(
        f"unknown target {target!r}: use a FunctionalINR class, e.g. one of "
        + ", ".join(f"{inr_class_path(c)}" for c in INR_REGISTRY.values())
        + " (or your own class decorated with @fewsound_sb.nnet.inr.register_inr)"
    )


def initial_weights(target, seeds):
    """Fresh flat weights ``[B, P]``: row i is ``target()`` built under ``seeds[i]``.

    The global RNG state is left untouched.

    Example
    -------
    >>> from fewsound_sb.nnet.inr import KAN
    >>> factory = functools.partial(KAN, encoding_length=2, hidden_sizes=(4,), grid_size=3)
    >>> w = initial_weights(factory, [0, 1, 0])
    >>> w.shape, bool(torch.equal(w[0], w[2])), bool(torch.equal(w[0], w[1]))
    (torch.Size([3, 140]), True, False)
    """
    rows = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            rows.append(target().flat_weights().detach())
    return torch.stack(rows)


# --------------------------------------------------------------------------- fitting
@dataclass
class FitResult:
    """Outcome of :meth:`INRFitter.fit_batch` for B clips.

    Attributes
    ----------
    weights : torch.Tensor
        ``[B, P]`` final weights (CPU).
    estimates : torch.Tensor
        ``[B, N]`` reconstructions from the final weights (CPU).
    final_loss : list of float
        Loss of the final weights, per clip.
    history : list of list of float
        Loss per step of each clip (a failed clip's ends with its NaN/inf).
    status : list of str
        ``"ok"`` or ``"failed"``.
    messages : list of str
        Why a clip failed ("" otherwise).
    steps : int
        Steps done by the batch.
    seconds : float
        Wall time spent fitting this batch (summed over resumed runs).
    """

    weights: torch.Tensor
    estimates: torch.Tensor
    final_loss: list
    history: list
    status: list
    messages: list
    steps: int
    seconds: float


class INRFitter:
    """Fits one target network per clip, B clips per optimisation step.

    Arguments
    ---------
    target : callable
        Factory of a fresh target network (``!name:fewsound_sb.nnet.inr.KAN``
        with its knobs in YAML; a ``functools.partial`` in Python).
    loss : torch.nn.Module
        Returns one loss per clip, ``[B]`` (e.g. ``FewSoundLoss(reduction="none")``).
    lr : float
        AdamW learning rate.
    n_steps : int
        Optimisation steps per clip.
    weight_decay : float
        AdamW weight decay.
    betas : tuple of float
        AdamW betas.
    eps : float
        AdamW epsilon.
    save_every : int
        Save the fit state every this many steps (0: only at the end).
    seed : int
        Base seed: clip i starts from the target built under ``seed + i``.
    device : str
        Torch device of the fit.
    progress : bool
        Show a tqdm bar over steps with the current mean loss.
    log_every : int
        Log the mean loss of the running clips every this many steps (0: never).

    Example
    -------
    >>> from fewsound_sb.nnet.inr import KAN
    >>> from fewsound_sb.losses import FewSoundLoss
    >>> fitter = INRFitter(
    ...     functools.partial(KAN, encoding_length=2, hidden_sizes=(4,), grid_size=3),
    ...     FewSoundLoss(lambda_f=0.0, reduction="none"), lr=1e-2, n_steps=3, progress=False)
    >>> result = fitter.fit_batch(torch.rand(2, 64) - 0.5, seeds=[0, 1])
    >>> result.weights.shape, result.estimates.shape, result.status, len(result.history[0])
    (torch.Size([2, 140]), torch.Size([2, 64]), ['ok', 'ok'], 3)
    """

    def __init__(
        self, target, loss, lr, n_steps, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8,
        save_every=500, seed=0, device="cpu", progress=True, log_every=0,
    ):
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0. Found: {n_steps}")
        if lr <= 0:
            raise ValueError(f"lr must be positive. Found: {lr}")
        self.target = target
        self.inr_name, self.config = describe_target(target)
        self.device = torch.device(device)
        self.loss = loss.to(self.device) if isinstance(loss, torch.nn.Module) else loss
        self.lr = float(lr)
        self.n_steps = int(n_steps)
        self.weight_decay = float(weight_decay)
        self.betas = tuple(float(b) for b in betas)
        self.eps = float(eps)
        self.save_every = int(save_every or 0)
        self.seed = int(seed)
        self.progress = progress
        self.log_every = int(log_every or 0)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.network = target().to(self.device)  # evaluates every clip's weights
        self.num_params = count_parameters(self.network)
        registered = registered_name(type(self.network))
        self.display_name = registered.upper() if registered else type(self.network).__name__

    def fingerprint(self, num_samples):
        """The fit settings a saved state or record must match (all but n_steps).

        Example
        -------
        >>> from fewsound_sb.nnet.inr import KAN
        >>> from fewsound_sb.losses import FewSoundLoss
        >>> fitter = INRFitter(functools.partial(KAN, encoding_length=2, hidden_sizes=(4,)),
        ...                    FewSoundLoss(reduction="none"), lr=1e-2, n_steps=3)
        >>> settings = fitter.fingerprint(64)
        >>> settings["inr"], settings["lr"], settings["num_samples"]
        ('kan', 0.01, 64)
        """
        return {
            "inr": self.inr_name, "config": repr(sorted(self.config.items())),
            "lr": self.lr, "weight_decay": self.weight_decay, "betas": self.betas,
            "eps": self.eps, "num_samples": int(num_samples), "loss": repr(self.loss),
            "loss_weights": (getattr(self.loss, "lambda_t", None),
                             getattr(self.loss, "lambda_f", None)),
        }

    # ----------------------------------------------------------------- one batch
    def fit_batch(self, wavs, seeds=None, ids=None, state_path=None, callback=None,
                  init_weights=None, lengths=None, start=None):
        """Fits B clips at once (resuming from ``state_path`` if it holds a state).

        Arguments
        ---------
        wavs : torch.Tensor
            ``[B, N]`` target waveforms.
        seeds : list of int or None
            Initialisation seed of each clip (not needed with ``init_weights``).
        ids : list of str or None
            Clip names (progress bar, messages, state check).
        state_path : str or None
            File to save the fit state to every ``save_every`` steps and
            to resume from.
        callback : callable or None
            Called as ``callback(step, losses)`` after every step (and after
            any save of that step); may raise to stop the fit.
        init_weights : torch.Tensor or None
            ``[B, P]`` weights to start from instead of each clip's fresh
            initialisation (refinement, e.g. of a hypernetwork's output:
            :meth:`fewsound_sb.inference.Reconstructor.encode`).
        lengths : torch.Tensor or None
            ``[B]`` relative valid lengths (``num_valid / N``): the loss
            ignores each clip's padded end. None: the whole clip.
        start : dict or None
            Continue finished fits instead of starting afresh (used when
            ``n_steps`` grows): ``weights`` ``[B, P]``, ``exp_avg``,
            ``exp_avg_sq`` (AdamW moments, ``[B, P]``), ``step`` (steps done,
            the same for the B clips), ``history`` and ``seconds``.

        Returns
        -------
        FitResult

        Example
        -------
        >>> from fewsound_sb.nnet.inr import KAN
        >>> from fewsound_sb.losses import FewSoundLoss
        >>> fitter = INRFitter(
        ...     functools.partial(KAN, encoding_length=2, hidden_sizes=(4,), grid_size=3),
        ...     FewSoundLoss(lambda_f=0.0, reduction="none"), lr=1e-2, n_steps=0, progress=False)
        >>> start = torch.full((2, 140), 0.01)
        >>> bool(torch.equal(fitter.fit_batch(torch.rand(2, 64), init_weights=start).weights, start))
        True
        """
        if wavs.dim() != 2:
            raise ValueError(f"expected wavs [B, N], got {tuple(wavs.shape)}")
        batch, num_samples = wavs.shape
        if init_weights is not None:
            if tuple(init_weights.shape) != (batch, self.num_params):
                raise ValueError(f"init_weights must be [{batch}, {self.num_params}], got "
                                 f"{tuple(init_weights.shape)}")
            seeds = [self.seed] * batch if seeds is None else seeds
        elif seeds is None:
            raise ValueError("give each clip a seed (or init_weights to start from)")
        ids = list(ids) if ids is not None else [str(i) for i in range(batch)]
        if len(seeds) != batch or len(ids) != batch:
            raise ValueError(f"need one seed and id per clip: {batch} clips, "
                             f"{len(seeds)} seeds, {len(ids)} ids")
        x = wavs.to(self.device, torch.float32)
        if lengths is not None:
            lengths = torch.as_tensor(lengths, dtype=torch.float32, device=self.device)
        t = time_grid(num_samples, device=self.device)
        state = self._load_state(state_path, ids, num_samples)
        if state is None and start is not None:
            init, step = start["weights"].float().cpu().clone(), int(start["step"])
            history, seconds = [list(h) for h in start["history"]], float(start["seconds"])
            status, messages = ["running"] * batch, [""] * batch
        elif state is None:
            init = (initial_weights(self.target, seeds) if init_weights is None
                    else init_weights.detach().float().cpu().clone())
            step, history, seconds = 0, [[] for _ in ids], 0.0
            status, messages = ["running"] * batch, [""] * batch
        else:
            init, step, history = state["weights"], state["step"], state["history"]
            status, messages, seconds = state["status"], state["messages"], state["seconds"]
            logger.info("Resuming %s from step %d (%s)", ", ".join(ids), step, state_path)
        weights = torch.nn.Parameter(init.to(self.device))
        optimizer = torch.optim.AdamW(
            [weights], lr=self.lr, betas=self.betas, eps=self.eps,
            weight_decay=self.weight_decay,
        )
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng"])
        elif start is not None:  # AdamW is element-wise: per-clip rows of its moments
            optimizer.state[weights] = {
                "step": torch.tensor(float(step)),
                "exp_avg": start["exp_avg"].to(self.device, torch.float32).clone(),
                "exp_avg_sq": start["exp_avg_sq"].to(self.device, torch.float32).clone(),
            }

        def save():
            if state_path:
                self._save_state(state_path, ids, seeds, num_samples, weights, optimizer,
                                 step, history, status, messages,
                                 seconds + time.time() - started)

        started = time.time()
        bar = tqdm(total=self.n_steps, initial=min(step, self.n_steps), disable=not self.progress,
                   desc=f"fit {ids[0]}" + (f" +{batch - 1}" if batch > 1 else ""),
                   dynamic_ncols=True)
        try:
            while step < self.n_steps and "running" in status:
                values = self._step(x, t, weights, optimizer, ids, status, messages, step,
                                     lengths)
                step += 1
                for i, value in enumerate(values):
                    if value is not None:
                        history[i].append(value)
                running = [v for v, s in zip(values, status) if v is not None and s == "running"]
                if running:
                    bar.set_postfix(loss=f"{sum(running) / len(running):.4g}")
                bar.update(1)
                if self.log_every and step % self.log_every == 0 and running:
                    logger.info("Fit %s: step %d/%d, mean loss %.6g over %d running clip(s)",
                                ids[0] + (f" +{batch - 1}" if batch > 1 else ""), step,
                                self.n_steps, sum(running) / len(running), len(running))
                if self.save_every and step % self.save_every == 0:
                    save()
                if callback is not None:
                    callback(step, values)
        except KeyboardInterrupt:
            save()
            logger.warning("Interrupted at step %d: state saved to %s", step, state_path)
            raise
        finally:
            bar.close()
        status = ["ok" if s == "running" else s for s in status]
        save()
        with torch.no_grad():
            estimates = self.network.forward_flat(t, weights).squeeze(-1)  # [B, N]
            final = self.loss(predictions=estimates, targets=x, length=lengths)
        self.last_optimizer_state = {  # per-clip AdamW moments, for the records
            key: value.detach().cpu() for key, value in optimizer.state[weights].items()
        } if weights in optimizer.state else None
        return FitResult(
            weights.detach().cpu(), estimates.cpu(), [float(v) for v in final.cpu()],
            history, status, messages, step, seconds + time.time() - started,
        )

    def _step(self, x, t, weights, optimizer, ids, status, messages, step, lengths=None):
        """One AdamW step over the running clips; returns each clip's loss (None if stopped)."""
        active_before = torch.tensor([s == "running" for s in status], device=self.device)
        optimizer.zero_grad(set_to_none=True)
        estimates = self.network.forward_flat(t, weights).squeeze(-1)  # [B, N]
        losses = self.loss(predictions=estimates, targets=x, length=lengths)  # [B]
        if losses.shape != (x.shape[0],):
            raise ValueError(
                f"the loss must return one value per clip, shape [{x.shape[0]}], got "
                f"{tuple(losses.shape)}: set reduction: none on the loss in the YAML"
            )
        finite = torch.isfinite(losses.detach())
        values = losses.detach().cpu().tolist()
        for i in torch.nonzero(active_before & ~finite).flatten().tolist():
            status[i] = "failed"
            messages[i] = (f"loss became {values[i]} at step {step + 1}: clip stopped "
                           "(lower lr or check the audio)")
            logger.warning("Clip %s: %s; the other clips go on", ids[i], messages[i])
        active = active_before & finite
        if active.any():
            torch.where(active, losses, torch.zeros_like(losses)).sum().backward()
            stopped = ~active
            weights.grad[stopped] = 0.0
            kept = weights.detach()[stopped].clone()
            optimizer.step()
            with torch.no_grad():
                weights[stopped] = kept  # no decay or momentum for stopped clips
        return [v if a else None for v, a in zip(values, active_before.tolist())]

    # ----------------------------------------------------------------- state
    def _save_state(self, path, ids, seeds, num_samples, weights, optimizer, step, history,
                    status, messages, seconds):
        save_torch({
            "version": STATE_VERSION, "ids": list(ids), "seeds": [int(s) for s in seeds],
            "fingerprint": self.fingerprint(num_samples), "step": step,
            "weights": weights.detach().cpu(), "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(), "history": history, "status": list(status),
            "messages": list(messages), "seconds": seconds,
        }, path)

    def _load_state(self, path, ids, num_samples):
        if not path or not os.path.isfile(path):
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("ids") != list(ids):
            logger.warning("State %s is for clips %s, not %s: starting afresh",
                           path, state.get("ids"), list(ids))
            return None
        if state.get("fingerprint") != self.fingerprint(num_samples):
            raise ValueError(
                f"The saved fit state '{path}' was made with other settings "
                f"({state.get('fingerprint')}) than this run "
                f"({self.fingerprint(num_samples)}). Use another --output_folder, "
                "or delete that file to start these clips again."
            )
        return state

    # ----------------------------------------------------------------- whole run
    def clip_key(self, clip, seed, source_sha256=None):
        """The key of a clip's fit: what a saved fit must match to be reused.

        Arguments
        ---------
        clip : FitClip
            The clip.
        seed : int
            Its initialisation seed.
        source_sha256 : str or None
            SHA-256 of the source file (computed if None and the file exists).

        Returns
        -------
        key : str
            16 hex digits of the SHA-256 of ``settings``.
        settings : dict
            :meth:`fingerprint` (all fit settings but ``n_steps``), the seed,
            the source file's SHA-256 and that of the fitted samples.

        Example
        -------
        >>> from fewsound_sb.dataio import FitClip
        >>> from fewsound_sb.nnet.inr import KAN
        >>> from fewsound_sb.losses import FewSoundLoss
        >>> fitter = INRFitter(functools.partial(KAN, encoding_length=2, hidden_sizes=(4,)),
        ...                    FewSoundLoss(reduction="none"), lr=1e-2, n_steps=3)
        >>> clip = FitClip("a", "no_file.wav", torch.zeros(8), 8)
        >>> key, settings = fitter.clip_key(clip, seed=0)
        >>> len(key), key == fitter.clip_key(clip, seed=1)[0], settings["lr"]
        (16, False, 0.01)
        """
        if source_sha256 is None and os.path.isfile(clip.path):
            source_sha256 = file_sha256(clip.path)
        samples = hashlib.sha256(clip.wav.detach().cpu().float().numpy().tobytes())
        samples.update(str(clip.num_valid).encode())
        settings = {**self.fingerprint(clip.wav.shape[-1]), "seed": int(seed),
                    "source_sha256": source_sha256, "samples_sha256": samples.hexdigest()}
        settings = json.loads(json.dumps(settings, sort_keys=True, default=repr))
        key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
        return key, settings

    def run(self, clips, output_folder, batch_clips=8, sample_rate=22050, n_figures=4,
            metrics=None, title=None):
        """Fits every clip in batches and writes all outputs (see module docstring).

        A clip whose fit with the same key (:meth:`clip_key`) and ``n_steps``
        is recorded in ``output_folder`` is not refitted; one recorded with
        fewer steps continues from its weights and AdamW state; any other
        clip is fitted afresh (the log says what changed since a previous fit
        of the same name). An interrupted batch resumes from its saved state.

        Arguments
        ---------
        clips : list of FitClip
            From :func:`fewsound_sb.dataio.prepare_clips`; unreadable ones are
            reported, not fitted.
        output_folder : str
            Where everything is written.
        batch_clips : int
            Clips optimised together per step.
        sample_rate : int
            Sample rate of the clips (Hz).
        n_figures : int
            Figures for the first this many clips.
        metrics : list of str or None
            Metric names for :func:`~fewsound_sb.metrics.compute_metrics` (None: all).
        title : str or None
            Row label of the summary table (default: the INR name and size).

        Returns
        -------
        (list of dict, dict)
            The CSV rows (clip order) and the summary ``metric -> (mean, std)``.
        """
        if batch_clips < 1:
            raise ValueError(f"batch_clips must be >= 1. Found: {batch_clips}")
        ids = [c.id for c in clips]
        if len(set(ids)) != len(ids):
            raise ValueError("clip ids must be unique")
        readable = [c for c in clips if not c.error]
        if not readable:
            raise ValueError(
                f"none of the {len(clips)} input files could be read: "
                + "; ".join(c.error for c in clips)
            )
        index_of = {c.id: i for i, c in enumerate(clips)}
        figure_ids = {c.id for c in readable[: max(0, int(n_figures))]}
        file_hashes = {}
        for clip in readable:
            if clip.path not in file_hashes and os.path.isfile(clip.path):
                file_hashes[clip.path] = file_sha256(clip.path)
        records, fresh, continued = {}, [], {}
        for clip in readable:
            key, settings = self.clip_key(clip, self.seed + index_of[clip.id],
                                          file_hashes.get(clip.path))
            plan, record = self._plan(output_folder, clip.id, key, settings)
            if plan == "reuse":
                records[clip.id] = record
                self._refresh_outputs(output_folder, clip, record, sample_rate,
                                      clip.id in figure_ids)
            elif plan == "continue":
                continued.setdefault(record["steps"], []).append((clip, key, settings, record))
            else:
                fresh.append((clip, key, settings, None))
        if records:
            logger.info("%d of %d clips already fitted with these settings in %s: reused",
                        len(records), len(readable), output_folder)
        groups = [fresh[i: i + batch_clips] for i in range(0, len(fresh), batch_clips)]
        for steps in sorted(continued):
            todo = continued[steps]
            groups += [todo[i: i + batch_clips] for i in range(0, len(todo), batch_clips)]
        for b, group in enumerate(groups):
            group_clips = [c for c, _, _, _ in group]
            group_ids = [c.id for c in group_clips]
            start = self._start_from([r for _, _, _, r in group])
            logger.info("Batch %d/%d: fitting %s for %d steps%s", b + 1, len(groups),
                        ", ".join(group_ids), self.n_steps,
                        f" (continuing from step {start['step']})" if start else "")
            state_path = os.path.join(output_folder, "state", "batch_" + _digest(
                group_ids + [k for _, k, _, _ in group] + [str(start and start["step"])]) + ".pt")
            result = self.fit_batch(
                torch.stack([c.wav for c in group_clips]),
                seeds=[self.seed + index_of[c.id] for c in group_clips],
                ids=group_ids, state_path=state_path,
                lengths=torch.tensor([c.num_valid / c.wav.shape[-1] for c in group_clips]),
                start=start,
            )
            for i, (clip, key, settings, _) in enumerate(group):
                records[clip.id] = self._write_clip(output_folder, clip, result, i, sample_rate,
                                                    metrics, clip.id in figure_ids, key, settings)
            os.remove(state_path)
        return self._write_report(output_folder, clips, sample_rate, title, records)

    # ----------------------------------------------------------------- records
    def _record_path(self, folder, clip_id, key, n_steps):
        return os.path.join(folder, "records", clip_id, f"{key}-{n_steps}.pt")

    def _plan(self, folder, clip_id, key, settings):
        """``("reuse" | "continue" | "fit", record or None)`` for one clip, with a log
        line saying why when a saved fit of that clip is not reused."""
        exact = self._record_path(folder, clip_id, key, self.n_steps)
        if os.path.isfile(exact):
            return "reuse", torch.load(exact, weights_only=True)
        saved = _list_records(os.path.join(folder, "records", clip_id))
        shorter = [(n, path) for k, n, path in saved if k == key and n < self.n_steps]
        if shorter:
            path = max(shorter)[1]
            record = torch.load(path, weights_only=True)
            if record["row"]["status"] == "ok" and record.get("exp_avg") is not None:
                logger.info("Clip %s: fitted before with the same settings for %d steps "
                            "(%s); continuing to %d steps from its saved weights and AdamW "
                            "state", clip_id, record["steps"], path, self.n_steps)
                return "continue", record
            logger.warning("Clip %s: the saved %d-step fit (%s) cannot be continued to %d "
                           "steps (%s): fitting afresh", clip_id, record["steps"], path,
                           self.n_steps, "it failed" if record["row"]["status"] != "ok"
                           else "its optimiser state was not kept")
            return "fit", None
        if saved:
            _, _, path = max(saved, key=lambda s: os.path.getmtime(s[2]))
            old = torch.load(path, weights_only=True)
            logger.warning("Clip %s: the fit saved in %s is not reused: %s. Fitting afresh "
                           "(the old record stays; another --output_folder keeps runs apart)",
                           clip_id, path, _describe_change(old, settings, self.n_steps))
        return "fit", None

    @staticmethod
    def _start_from(group_records):
        """``fit_batch``'s ``start`` from the records of clips to continue (or None)."""
        if group_records[0] is None:
            return None
        return {"weights": torch.stack([r["weights"] for r in group_records]),
                "exp_avg": torch.stack([r["exp_avg"] for r in group_records]),
                "exp_avg_sq": torch.stack([r["exp_avg_sq"] for r in group_records]),
                "step": group_records[0]["steps"],
                "history": [r["history"] for r in group_records],
                "seconds": max(r["row"].get("seconds", 0.0) for r in group_records)}

    def _write_clip(self, folder, clip, result, i, sample_rate, metrics, with_figure, key,
                    settings):
        """Writes a clip's outputs and its record; returns the record."""
        valid = clip.num_valid
        row = {"id": clip.id, "path": clip.path, "status": result.status[i],
               "message": "; ".join(m for m in (result.messages[i], clip.note) if m),
               "num_samples": valid, "steps": len(result.history[i]),
               "seconds": round(result.seconds, 3), "final_loss": result.final_loss[i]}
        if result.status[i] == "ok":
            reference, estimate = clip.wav[:valid], result.estimates[i, :valid]
            try:
                row.update(compute_metrics(predictions=estimate[None], targets=reference[None],
                                           sample_rate=sample_rate,
                                           metrics=metrics)[0])
            except Exception as err:  # a metric failing must not lose the fit
                logger.error("Metrics failed for clip %s: %s", clip.id, err)
        state = self.last_optimizer_state
        record = {
            "version": RECORD_VERSION, "row": row, "history": result.history[i], "key": key,
            "settings": settings, "n_steps": self.n_steps, "steps": result.steps,
            "weights": result.weights[i].clone(),
            "exp_avg": state["exp_avg"][i].clone() if state else None,
            "exp_avg_sq": state["exp_avg_sq"][i].clone() if state else None,
        }
        path = self._record_path(folder, clip.id, key, self.n_steps)
        save_torch(record, path)
        if result.status[i] == "ok":
            self._write_outputs(folder, clip, record, result.estimates[i], sample_rate,
                                with_figure)
        return record

    def _write_outputs(self, folder, clip, record, estimate, sample_rate, with_figure):
        """weights/, wavs/, originals/ (and figures/) of one clip, then ``current``."""
        valid, row = clip.num_valid, record["row"]
        INRWeights(
            target=self.inr_name, config=self.config, weights=record["weights"],
            sample_rate=sample_rate, num_samples=clip.wav.shape[-1],
            gains=[clip.gain],
            buffers=dict(self.network.named_buffers()),
            target_class=inr_class_path(type(self.network)),
            metadata={"id": clip.id, "source": clip.path, "num_valid": valid,
                      "final_loss": row["final_loss"], "steps": row["steps"],
                      "fit_key": record["key"]},
        ).save(os.path.join(folder, "weights", clip.id + WEIGHTS_SUFFIX))
        write_example(
            clip.wav[:valid], estimate[:valid], sample_rate,
            os.path.join(folder, "originals", f"{clip.id}.wav"),
            os.path.join(folder, "wavs", f"{clip.id}.wav"),
            os.path.join(folder, "figures", f"{clip.id}.png") if with_figure else None,
            title=figure_title(clip.id, row),
        )
        write_text(os.path.join(folder, "records", clip.id, "current"),
                   f"{record['key']}-{record['n_steps']}\n")

    def _refresh_outputs(self, folder, clip, record, sample_rate, with_figure):
        """Rewrites a reused clip's outputs if another fit of the same name
        overwrote them since (``records/<id>/current`` names another record)."""
        if record["row"]["status"] != "ok":
            return
        current = os.path.join(folder, "records", clip.id, "current")
        name = f"{record['key']}-{record['n_steps']}"
        if os.path.isfile(current) and open(current, encoding="utf-8").read().strip() == name:
            return
        logger.info("Clip %s: rewriting its weights, wavs and figure from the reused fit",
                    clip.id)
        t = time_grid(clip.wav.shape[-1], device=self.device)
        with torch.no_grad():
            estimate = self.network.forward_flat(
                t, record["weights"][None].to(self.device)).squeeze(-1)[0].cpu()
        self._write_outputs(folder, clip, record, estimate, sample_rate, with_figure)

    def _write_report(self, folder, clips, sample_rate, title, records):
        rows, histories = [], {}
        for clip in clips:
            if clip.error:
                rows.append({"id": clip.id, "path": clip.path, "status": "unreadable",
                             "message": clip.error, "num_samples": 0, "steps": 0})
                continue
            record = records[clip.id]
            rows.append(record["row"])
            histories[clip.id] = record["history"]
        metric_names = [k for r in rows for k in r if k not in CSV_COLUMNS]
        columns = list(CSV_COLUMNS) + list(dict.fromkeys(metric_names))
        write_rows_csv(os.path.join(folder, "results.csv"), rows, columns)
        ok_rows = [{k: r[k] for k in r if k not in CSV_COLUMNS}
                   for r in rows if r["status"] == "ok"]
        summary = summarize(ok_rows)
        num_samples = next(c.wav.shape[-1] for c in clips if not c.error)
        problems = [r for r in rows if r["status"] != "ok" or r.get("message")]
        table = write_metric_table(
            os.path.join(folder, "summary.md"), os.path.join(folder, "summary.csv"), summary,
            title=title or f"{self.display_name} ({self.num_params:,})",
            heading=f"Single-clip fits: {self.display_name}, {self.num_params:,} parameters",
            n_clips=len(ok_rows),
            intro=(f"{len(ok_rows)} of {len(rows)} clips fitted; {self.n_steps} AdamW steps "
                   f"(lr {self.lr:g}, weight decay {self.weight_decay:g}); "
                   f"{num_samples} samples at {sample_rate} Hz "
                   f"({num_samples / sample_rate:.2f} s); mean ± std over clips."),
            notes=[f"`{r['id']}` ({r['status']}): {r['message']}" for r in problems],
            meta={"target": self.inr_name, "num_params": self.num_params,
                  "n_steps": self.n_steps},
        )
        if histories:
            plot_loss_curve(histories, os.path.join(folder, "loss_curve.png"),
                            title=f"{self.display_name}: loss per step")
        logger.info("Summary (%s):\n%s", os.path.join(folder, "summary.md"), table)
        return rows, summary


# --------------------------------------------------------------------------- helpers
def _digest(ids):
    return hashlib.sha1("\n".join(ids).encode("utf-8")).hexdigest()[:12]


def _list_records(folder):
    """``(key, n_steps, path)`` of the records in a clip's records folder."""
    if not os.path.isdir(folder):
        return []
    found = []
    for name in sorted(os.listdir(folder)):
        match = re.fullmatch(r"([0-9a-f]{16})-(\d+)\.pt", name)
        if match:
            found.append((match.group(1), int(match.group(2)), os.path.join(folder, name)))
    return found


def _describe_change(old_record, settings, n_steps):
    """Which settings differ between a saved record and this run, in words.

    Example
    -------
    >>> old = {"settings": {"lr": 0.01, "source_sha256": "ab"}, "n_steps": 5}
    >>> _describe_change(old, {"lr": 0.001, "source_sha256": "ab"}, 5)
    'lr changed (0.01 -> 0.001)'
    >>> _describe_change(old, {"lr": 0.01, "source_sha256": "cd"}, 5)
    "the file's content changed"
    >>> _describe_change(old, {"lr": 0.01, "source_sha256": "ab"}, 3)
    'n_steps lowered (5 -> 3)'
    """
    old = old_record.get("settings", {})
    changes = []
    for name in sorted(set(old) | set(settings)):
        if old.get(name) == settings.get(name):
            continue
        if name == "source_sha256":
            changes.insert(0, "the file's content changed")
        elif name == "samples_sha256":
            if "source_sha256" not in [c for c in old if old.get(c) != settings.get(c)]:
                changes.append("the fitted samples changed (crop, sample rate or length)")
        else:
            changes.append(f"{name} changed ({old.get(name)} -> {settings.get(name)})")
    if not changes and old_record.get("n_steps", n_steps) > n_steps:
        changes.append(f"n_steps lowered ({old_record['n_steps']} -> {n_steps})")
    return "; ".join(changes) or "other settings"


# --------------------------------------------------------------------------- from YAML
def fitter_from_hparams(hparams, device="cpu"):
    """Builds an :class:`INRFitter` from a loaded ``hparams/inr/<name>.yaml``.

    Arguments
    ---------
    hparams : dict
        Loaded HyperPyYAML (keys target, loss, lr, n_steps, weight_decay, betas,
        adam_eps, save_every, seed, progress, log_every).
    device : str
        Torch device.

    Returns
    -------
    INRFitter
    """
    return INRFitter(
        target=hparams["target"], loss=hparams["loss"], lr=hparams["lr"],
        n_steps=hparams["n_steps"], weight_decay=hparams["weight_decay"],
        betas=hparams["betas"], eps=hparams["adam_eps"], save_every=hparams["save_every"],
        seed=hparams["seed"], device=device, progress=hparams["progress"],
        log_every=hparams["log_every"],
    )


def fit_from_hparams(clips, hparams, device="cpu"):
    """Fits ``clips`` with the settings of a loaded YAML; writes to its output_folder.

    Arguments
    ---------
    clips : list of FitClip
        From :func:`fewsound_sb.dataio.prepare_clips`.
    hparams : dict
        Loaded ``hparams/inr/<name>.yaml`` (plus output_folder, batch_clips,
        sample_rate, n_figures, metrics).
    device : str
        Torch device.

    Returns
    -------
    (list of dict, dict)
        Rows of results.csv and the summary, as :meth:`INRFitter.run`.
    """
    fitter = fitter_from_hparams(hparams, device)
    return fitter.run(
        clips, hparams["output_folder"], batch_clips=hparams["batch_clips"],
        sample_rate=hparams["sample_rate"], n_figures=hparams["n_figures"],
        metrics=hparams["metrics"],
    )
