"""SpeechBrain Brains for hypernetwork training (FewSound and HyperSound).

:class:`FewSoundBrain` trains a sound encoder ``E`` and a hypernetwork head
(``fewsound_sb.nnet.hyper.FewSoundHead`` or ``HyperSoundHead``: the head decides
which method it is) so that the weights it produces make the target INR
reproduce the input clip. It only holds SpeechBrain hooks; every object and
number comes from the YAML (``hparams/fewsound_kan.yaml`` and siblings).

Also here, for the recipes: :class:`CompleteCheckpointer` (ignores
checkpoints cut short by a kill). Command-line overrides are checked in
:mod:`fewsound_sb.config`.

Example
-------
See ``recipes/VCTK/train.py`` and ``tests/unit/test_brains.py``.
"""

import math
import os
import signal
import zipfile

import speechbrain as sb
import torch
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.distributed import if_main_process, is_distributed_initialized
from speechbrain.utils.logger import get_logger

from fewsound_sb.logs import setup_experiment_logs
from fewsound_sb.metrics import compute_metrics, summarize
from fewsound_sb.nnet.hyper import count_parameters
from fewsound_sb.nnet.inr import time_grid
from fewsound_sb.plotting import plot_reconstruction
from fewsound_sb.reports import write_example, write_metric_table

logger = get_logger(__name__)

PREEMPTED_EXIT_CODE = 0  # exit status after SIGTERM (checkpoint saved; rerun resumes)


def _is_complete(ckpt, names):
    """A checkpoint holds a file per recoverable and its torch zips are whole."""
    for name in names:
        path = ckpt.path / f"{name}.ckpt"
        if not path.is_file():
            return False
        with open(path, "rb") as fin:
            is_zip = fin.read(2) == b"PK"
        if is_zip and not zipfile.is_zipfile(path):
            return False
    return True


class CompleteCheckpointer(Checkpointer):
    """A ``Checkpointer`` that ignores checkpoints cut short by a kill.

    SpeechBrain writes ``CKPT.yaml`` before the parameter files, so a run
    killed (e.g. SIGKILL) while saving leaves a checkpoint that looks valid but
    misses files or holds a truncated torch file, and the rerun would fail to
    load it. This class lists only complete checkpoints (one file per
    registered recoverable; torch zip files readable to their end). Incomplete
    ones are left on disk with a warning.

    Arguments are those of ``speechbrain.utils.checkpoints.Checkpointer``.

    Example
    -------
    >>> import tempfile
    >>> layer = torch.nn.Linear(2, 2)
    >>> ckpt = CompleteCheckpointer(tempfile.mkdtemp(), {"layer": layer})
    >>> _ = ckpt.save_checkpoint(verbosity=0)
    >>> len(ckpt.list_checkpoints())
    1
    >>> (ckpt.list_checkpoints()[0].path / "layer.ckpt").write_bytes(b"PK")
    2
    >>> len(ckpt.list_checkpoints())
    0
    """

    def list_checkpoints(self):
        """Complete checkpoints of the checkpoints directory."""
        checkpoints = super().list_checkpoints()
        names = list(self.recoverables)
        complete = [c for c in checkpoints if _is_complete(c, names)]
        for ckpt in checkpoints:
            if ckpt not in complete:
                logger.warning(
                    "Ignoring incomplete checkpoint %s (interrupted while saving?)",
                    ckpt.path,
                )
        return complete


def _unwrap(module):
    """The module inside a DDP / DataParallel wrapper (or itself)."""
    return getattr(module, "module", module)


def _ignore_sigterm(worker_id):
    """DataLoader ``worker_init_fn``: workers ignore SIGTERM (the main process
    saves a checkpoint and stops them itself)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class ShardSampler(torch.utils.data.Sampler):
    """Evaluation items of one DDP process: ``rank, rank + world, ...`` (no padding).

    Unlike ``DistributedSampler``, nothing is repeated to even out the
    shards, so every item is evaluated exactly once over all processes; the
    rows gathered from the ranks are interleaved back into dataset order
    (:func:`_interleave`).

    Example
    -------
    >>> list(ShardSampler(5, rank=1, world_size=2))
    [1, 3]
    """

    def __init__(self, num_items, rank, world_size):
        self.num_items, self.rank, self.world_size = num_items, rank, world_size

    def __iter__(self):
        return iter(range(self.rank, self.num_items, self.world_size))

    def __len__(self):
        return len(range(self.rank, self.num_items, self.world_size))


def _interleave(shards):
    """Per-rank lists (rank r holds items r, r + W, ...) back in dataset order.

    Example
    -------
    >>> _interleave([[0, 2, 4], [1, 3]])
    [0, 1, 2, 3, 4]
    """
    merged = []
    for i in range(max((len(s) for s in shards), default=0)):
        merged.extend(s[i] for s in shards if i < len(s))
    return merged


class FewSoundBrain(sb.Brain):
    """Trains E and a hypernetwork head: clip -> INR weights -> clip.

    ``compute_forward``: ``e_s = E(x)``, ``w = head(e_s)`` ``[B, P]``,
    ``x_hat = target.forward_flat(t, w)`` on the clip's time grid. The head
    decides the method: ``FewSoundHead`` (``theta + f * delta``) or
    ``HyperSoundHead`` (``w = H(e_s)``).

    Expected ``modules``: ``encoder``, ``head``. Expected ``hparams``:
    ``target`` (the head's target), ``loss``, ``sample_rate``,
    ``epoch_counter``, ``train_logger``, ``eval_folder``, ``eval_metrics``,
    ``valid_every``, ``n_examples``, ``model_name``, optionally
    ``lr_scheduler`` (a partial taking ``(optimizer, total_steps=...)``,
    stepped after every optimizer step and checkpointed), ``use_tensorboard``
    and ``tensorboard_folder`` (TensorBoard logging, see ``_log_tensorboard``).

    A NaN/inf training loss stops the run (``FloatingPointError`` naming the
    step and the batch's clip ids) after checkpointing the last good state.

    Validation computes the loss every epoch with two references on the same
    clips: ``silence_loss`` (a silent output, i.e. learning nothing) and
    ``clip_blind_loss`` (each clip decoded from the embedding of another clip
    of its batch, rolled by one: what a model that ignores its input reaches).
    A model that learns ends below both; one that collapses to silence or to
    a clip-independent output does not. The metric table (Markdown +
    CSV under ``eval_folder``) and example reconstructions (wav + PNG) are
    made every ``valid_every`` epochs, at the last epoch, and at test time.
    """

    # -------------------------------------------------------------- setup --
    def make_dataloader(self, dataset, stage, ckpt_prefix="dataloader-", **loader_kwargs):
        """Makes the loader; for TRAIN also records its length (for the LR
        schedule) and lets SpeechBrain call ``set_epoch`` on a custom sampler
        (it only does so by itself for samplers it made or wrapped for DDP).

        Worker processes ignore SIGTERM (the main process handles it, see
        :meth:`on_fit_start`). Under DDP, validation and test items are
        sharded across the processes (:class:`ShardSampler`); the metric rows
        are gathered on rank 0 in :meth:`on_stage_end`."""
        if loader_kwargs.get("num_workers", 0) > 0 and "worker_init_fn" not in loader_kwargs:
            loader_kwargs["worker_init_fn"] = _ignore_sigterm
        if (stage != sb.Stage.TRAIN and is_distributed_initialized()
                and loader_kwargs.get("sampler") is None):
            loader_kwargs["sampler"] = ShardSampler(
                len(dataset), torch.distributed.get_rank(), torch.distributed.get_world_size())
        loader = super().make_dataloader(
            dataset, stage, ckpt_prefix=ckpt_prefix, **loader_kwargs
        )
        if stage == sb.Stage.TRAIN:
            self.train_batches_per_epoch = len(loader)
            sampler = getattr(loader, "sampler", None)
            if self.train_sampler is None and hasattr(sampler, "set_epoch"):
                self.train_sampler = sampler
        return loader

    def init_optimizers(self):
        """Optimizer from ``opt_class``, then the per-step LR schedule."""
        super().init_optimizers()
        self.scheduler = None
        scheduler_factory = getattr(self.hparams, "lr_scheduler", None)
        if self.opt_class is None or scheduler_factory is None:
            return
        batches = getattr(self, "train_batches_per_epoch", None)
        if not batches:
            raise ValueError(
                "FewSoundBrain needs the training loader's length to plan the LR "
                "schedule: pass a Dataset (not an iterable) as train_set to fit()."
            )
        steps_per_epoch = math.ceil(batches / self.grad_accumulation_factor)
        total_steps = steps_per_epoch * self.hparams.epoch_counter.limit
        self.scheduler = scheduler_factory(self.optimizer, total_steps=total_steps)
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("scheduler", self.scheduler)
        logger.info(
            "LR schedule %s: %d steps (%d per epoch), stepped per optimizer step",
            type(self.scheduler).__name__,
            total_steps,
            steps_per_epoch,
        )

    def on_fit_start(self):
        """Checks E's sample rate; logs the parameter counts of E, G, H, theta
        and the target; keeps third-party DEBUG out of the log and writes
        ``env.log`` of this interpreter (:mod:`fewsound_sb.logs`); installs the
        SIGTERM handler (preemption: checkpoint, then exit 0)."""
        super().on_fit_start()
        folder = getattr(self.hparams, "output_folder", None)
        if folder and if_main_process():
            setup_experiment_logs(folder)
        self.stop_requested = False
        try:
            signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread: leave signals alone
            logger.warning("Not in the main thread: SIGTERM will not save a checkpoint")
        encoder = _unwrap(self.modules.encoder)
        # The encoder contract (fewsound_sb.lobes): output_dim, sample_rate, input_length
        if encoder.sample_rate != self.hparams.sample_rate:
            raise ValueError(
                f"The encoder {type(encoder).__name__} expects {encoder.sample_rate} Hz "
                f"but the data is at sample_rate = {self.hparams.sample_rate} Hz: pass "
                "sample_rate: !ref <sample_rate> to the encoder in the YAML."
            )
        logger.info(
            "Encoder %s: %d Hz, input length %s, embedding size %d",
            type(encoder).__name__, encoder.sample_rate,
            encoder.input_length or "any", encoder.output_dim,
        )
        head = _unwrap(self.modules.head)
        target = self.hparams.target
        # per module: trainable and frozen (e.g. a Whisper backbone under LoRA)
        modules = {"E (encoder)": encoder}
        if hasattr(head, "weight_encoder"):
            modules["G (universal weight encoder)"] = head.weight_encoder
        modules["H (hypernetwork)"] = head.hypernet
        for name, module in modules.items():
            total = sum(p.numel() for p in module.parameters())
            trainable = count_parameters(module)
            logger.info(
                "Parameters of %s: %s trainable, %s frozen",
                name, f"{trainable:,}", f"{total - trainable:,}",
            )
        if hasattr(head, "theta"):
            logger.info("Parameters of theta (universal weights): %s", f"{head.theta.numel():,}")
        logger.info("Parameters of target INR P: %s", f"{int(target.num_params):,}")
        logger.info(
            "Trainable parameters in total: %s",
            f"{count_parameters(self.modules):,}",
        )

    def fit(self, *args, **kwargs):
        """SpeechBrain's ``fit``, then the inference folder of the run.

        ``<output_folder>/inference/`` (:func:`fewsound_sb.inference.export_inference`:
        ``hyperparams.yaml``, ``encoder.ckpt``, ``head.ckpt`` of the checkpoint of
        lowest validation loss) is written on the main process when the run
        folder holds the run's ``hyperparams.yaml``; load it with
        ``fewsound_sb.inference.Reconstructor.from_hparams(source=...)``.
        """
        result = super().fit(*args, **kwargs)
        folder = getattr(self.hparams, "output_folder", None)
        if folder and os.path.isfile(os.path.join(folder, "hyperparams.yaml")) \
                and if_main_process():
            from fewsound_sb.inference import export_inference

            export_inference(folder)
        return result

    # ------------------------------------------------------------ forward --
    def compute_forward(self, batch, stage):
        """Clip -> embedding -> INR weights -> reconstruction.

        Returns
        -------
        x_hat : torch.Tensor
            ``[B, T]`` reconstruction.
        extras : dict
            ``weights`` ``[B, P]`` (the clips' INR weights).
        """
        batch = batch.to(self.device)
        wavs, _ = batch.sig  # [B, T] (fixed-length crops)
        encoder, head = self.modules.encoder, self.modules.head
        if stage != sb.Stage.TRAIN:  # DDP shards evaluation unevenly: no collectives
            encoder, head = _unwrap(encoder), _unwrap(head)
        embedding = encoder(wavs)  # [B, encoder_dim]
        weights = head(embedding)  # [B, P]
        t = time_grid(wavs.shape[1], device=wavs.device, dtype=weights.dtype)  # [T, 1]
        x_hat = self.hparams.target.forward_flat(t, weights)  # [B, T, 1]
        extras = {"weights": weights}
        if stage != sb.Stage.TRAIN and wavs.shape[0] > 1:
            # clip-blind reference: every clip decoded from its neighbour's embedding
            blind = self.hparams.target.forward_flat(t, head(embedding.roll(1, dims=0)))
            extras["clip_blind"] = blind.squeeze(-1)
        return x_hat.squeeze(-1), extras

    def compute_objectives(self, predictions, batch, stage):
        """The paper's loss; metrics and examples at evaluation epochs."""
        x_hat, extras = predictions
        wavs, lens = batch.sig  # [B, T], relative lengths [B]
        valid = getattr(batch, "length", None)  # the pipeline's: < 1 for a zero-padded short clip
        if valid is not None:
            lens = valid.to(device=wavs.device, dtype=wavs.dtype)
        x_hat = x_hat.float()
        loss = self.hparams.loss(predictions=x_hat, targets=wavs, length=lens)
        if stage == sb.Stage.TRAIN and not torch.isfinite(loss):
            self._stop_on_nonfinite(loss, batch)
        skipped = getattr(batch, "skipped", None)  # bad files passed over (fewsound_sb.datasets)
        if skipped is not None:
            self.skipped_items += int(torch.as_tensor(skipped).sum())
        self.stage_batches += 1
        if stage != sb.Stage.TRAIN:
            # reference: the loss of a silent output (learning nothing) on the same clips
            silence = self.hparams.loss(predictions=torch.zeros_like(wavs), targets=wavs, length=lens)
            self.silence_loss_sum += float(silence)
            if "clip_blind" in extras:
                blind = self.hparams.loss(
                    predictions=extras["clip_blind"].float(), targets=wavs, length=lens)
                self.clip_blind_loss_sum += float(blind)
                self.clip_blind_batches += 1
        if stage != sb.Stage.TRAIN and (self.evaluating or self._tensorboard() is not None):
            self._collect_examples(batch, wavs, x_hat)
        if stage != sb.Stage.TRAIN and self.evaluating:
            self.metric_rows.extend(
                compute_metrics(
                    predictions=x_hat,
                    targets=wavs,
                    sample_rate=self.hparams.sample_rate,
                    length=lens,
                    metrics=self.hparams.eval_metrics,
                )
            )
        return loss

    def _collect_examples(self, batch, wavs, x_hat):
        """Keeps the first ``n_examples`` (id, reference, reconstruction) of the stage."""
        for i, item_id in enumerate(batch.id):
            if len(self.examples) >= self.hparams.n_examples:
                break
            self.examples.append((item_id, wavs[i].detach().cpu(), x_hat[i].detach().cpu()))

    def _stop_on_nonfinite(self, loss, batch):
        """A NaN/inf training loss: checkpoint the last good state, then stop.

        Called before ``backward`` and the optimizer step, so the modules still
        hold the weights of the last finite step; they are saved as an
        intra-epoch checkpoint (a rerun resumes from it) and the run stops with
        a message naming the step and the batch's clip ids.
        """
        step = self.optimizer_step + 1
        ids = list(getattr(batch, "id", []))
        saved = "no checkpointer: nothing saved"
        if self.checkpointer is not None:
            sb.Brain._save_intra_epoch_ckpt(self)  # SpeechBrain's own (no SIGTERM exit here)
            saved = f"the last good state is saved in {self.checkpointer.checkpoints_dir}"
        raise FloatingPointError(
            f"Training loss is {float(loss.detach())} at optimizer step {step} (epoch "
            f"{self.hparams.epoch_counter.current}), batch clips {ids}; {saved}. Check "
            "these clips, lower lr or set max_grad_norm, then rerun the same command "
            "to resume from that checkpoint."
        )

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Steps the LR schedule once per optimizer step (not per epoch)."""
        scheduler = getattr(self, "scheduler", None)
        if should_step and scheduler is not None:
            # OneCycleLR raises past total_steps (e.g. a rerun with more epochs)
            if scheduler.last_epoch < getattr(scheduler, "total_steps", math.inf):
                scheduler.step()
        writer = self._tensorboard()
        if should_step and writer is not None:
            writer.add_scalar("train/loss_step", float(loss), self.optimizer_step)
            writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], self.optimizer_step)
        log_every = getattr(self.hparams, "log_every", None)
        if should_step and log_every and self.optimizer_step % log_every == 0:
            logger.info("Train step %d (epoch %d): loss %.8e", self.optimizer_step,
                        self.hparams.epoch_counter.current, float(loss.detach()))

    # --------------------------------------------------------- preemption --
    def _on_sigterm(self, signum, frame):
        """SIGTERM handler: asks the training loop to checkpoint and stop."""
        logger.warning("SIGTERM received: saving a checkpoint after this step, then exiting")
        self.stop_requested = True

    def _stop_everywhere(self):
        """True if any process got SIGTERM (DDP: agreed by all processes)."""
        flag = bool(getattr(self, "stop_requested", False))
        if not is_distributed_initialized():
            return flag
        tensor = torch.tensor([int(flag)], device=self.device)
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
        self.stop_requested = bool(tensor.item())
        return self.stop_requested

    def _should_save_intra_epoch_ckpt(self, last_ckpt_time, steps_since_ckpt):
        """SpeechBrain's intra-epoch rule, or now if SIGTERM was received."""
        if self._stop_everywhere() and self.checkpointer is not None:
            return True
        return super()._should_save_intra_epoch_ckpt(last_ckpt_time, steps_since_ckpt)

    def _save_intra_epoch_ckpt(self):
        """Saves the intra-epoch checkpoint; after SIGTERM, then exits with 0."""
        super()._save_intra_epoch_ckpt()
        if self.stop_requested:
            self._exit_preempted()

    def _exit_preempted(self):
        logger.warning(
            "Stopped by SIGTERM at epoch %d, optimizer step %d: checkpoint saved in %s. "
            "Rerun the same command to resume from it.",
            self.hparams.epoch_counter.current, self.optimizer_step,
            self.checkpointer.checkpoints_dir,
        )
        raise SystemExit(PREEMPTED_EXIT_CODE)

    # ------------------------------------------------------------- stages --
    def on_stage_start(self, stage, epoch=None):
        """Warm-up factor for this epoch; fresh metric and example stores."""
        head = _unwrap(self.modules.head)
        if stage != sb.Stage.TEST and epoch is not None and hasattr(head, "set_epoch"):
            head.set_epoch(epoch - 1)  # SpeechBrain's epochs are 1-based
        limit = self.hparams.epoch_counter.limit
        self.evaluating = stage == sb.Stage.TEST or (
            stage == sb.Stage.VALID
            and epoch is not None
            and (epoch % self.hparams.valid_every == 0 or epoch >= limit)
        )
        self.metric_rows = []
        self.examples = []
        self.silence_loss_sum = 0.0
        self.clip_blind_loss_sum = 0.0
        self.clip_blind_batches = 0
        self.skipped_items = 0
        self.stage_batches = 0

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs, checkpoints, writes the metric table and the examples."""
        stats = {"loss": stage_loss}
        skipped = self._sum_over_processes(self.skipped_items)
        if skipped:
            stats["skipped"] = skipped
            logger.warning("%s: %d bad audio item(s) skipped this epoch (see the warnings "
                           "naming the files)", stage.name.lower(), skipped)
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if is_distributed_initialized():
            stats["loss"] = self._gather_evaluation(stage_loss)
        # references over all batches (DDP: summed over the processes' shards)
        silence_sum, batches = self._sum_over_processes((self.silence_loss_sum, self.stage_batches))
        blind_sum, blind_batches = self._sum_over_processes(
            (self.clip_blind_loss_sum, self.clip_blind_batches))  # batches of two clips or more
        if batches:
            stats["silence_loss"] = silence_sum / batches
        if blind_batches:
            stats["clip_blind_loss"] = blind_sum / blind_batches
        if self.evaluating:
            summary = summarize(self.metric_rows)
            stats.update({name: mean for name, (mean, _) in summary.items()})
            label = epoch if epoch is not None else self.hparams.epoch_counter.current
            if if_main_process():
                self._write_evaluation(stage, label, summary)
        if if_main_process():
            self._log_tensorboard(stage, stats)
        if stage == sb.Stage.VALID:
            lr = self.optimizer.param_groups[0]["lr"] if self.opt_class else 0.0
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": lr, "steps": self.optimizer_step},
                train_stats=getattr(self, "train_stats", None),
                valid_stats=stats,
            )
            self.checkpointer.save_and_keep_only(
                meta={"loss": stats["loss"], "epoch": epoch}, min_keys=["loss"]
            )
            if self._stop_everywhere():
                self._exit_preempted()
        elif stage == sb.Stage.TEST:
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )

    # -------------------------------------------------------- TensorBoard --
    def _tensorboard(self):
        """The run's ``SummaryWriter`` when the YAML sets ``use_tensorboard``
        (main process only), else None. Created on first use in
        ``tensorboard_folder``."""
        if not getattr(self.hparams, "use_tensorboard", False) or not if_main_process():
            return None
        if getattr(self, "_tb_logger", None) is None:
            try:
                from speechbrain.utils.train_logger import TensorboardLogger

                self._tb_logger = TensorboardLogger(self.hparams.tensorboard_folder)
            except ImportError as err:
                raise ImportError(
                    "use_tensorboard: True needs the tensorboard package: "
                    "pip install 'fewsound-sb[tensorboard]' (or set use_tensorboard: False)"
                ) from err
        return self._tb_logger.writer

    def _log_tensorboard(self, stage, stats):
        """Stage losses and metrics (``<stage>/<name>``, x = optimizer steps);
        after validation/test the examples as audio and as waveform + log-mel images."""
        writer = self._tensorboard()
        if writer is None:
            return
        step = self.optimizer_step
        for name, value in stats.items():
            writer.add_scalar(f"{stage.name.lower()}/{name}", float(value), step)
        if stage == sb.Stage.TRAIN:
            return
        import matplotlib.image
        import tempfile

        rate = self.hparams.sample_rate
        with tempfile.TemporaryDirectory() as tmp:
            for item_id, reference, estimate in self.examples:
                tag = f"{stage.name.lower()}_examples/{item_id}"
                writer.add_audio(f"{tag}/reference", reference.clamp(-1, 1), step, sample_rate=rate)
                writer.add_audio(f"{tag}/reconstruction", estimate.clamp(-1, 1), step,
                                 sample_rate=rate)
                png = os.path.join(tmp, "example.png")
                plot_reconstruction(reference, estimate, rate, png, title=str(item_id))
                image = matplotlib.image.imread(png)[..., :3]  # [H, W, 3] in [0, 1]
                writer.add_image(f"{tag}/waveform_logmel", image, step, dataformats="HWC")
        writer.flush()

    # ---------------------------------------------------------------- DDP --
    def _sum_over_processes(self, value):
        """``value`` (a number or a tuple of numbers) summed over the DDP
        processes (itself without DDP)."""
        if not is_distributed_initialized():
            return value
        totals = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(totals, value)
        if isinstance(value, tuple):
            return tuple(sum(parts) for parts in zip(*totals))
        return sum(totals)

    def _gather_evaluation(self, stage_loss):
        """Gathers the evaluation shards: metric rows and examples in dataset
        order (:func:`_interleave`), and the loss averaged over all batches."""
        world = torch.distributed.get_world_size()
        shards = [None] * world
        torch.distributed.all_gather_object(
            shards, (self.metric_rows, self.examples, float(stage_loss), self.stage_batches))
        self.metric_rows = _interleave([rows for rows, _, _, _ in shards])
        self.examples = _interleave([ex for _, ex, _, _ in shards])[: self.hparams.n_examples]
        batches = sum(n for _, _, _, n in shards)
        return sum(loss * n for _, _, loss, n in shards) / max(batches, 1)

    # ------------------------------------------------------------ writing --
    def _write_evaluation(self, stage, epoch, summary):
        """``<eval_folder>/<stage>_epoch<N>.md|.csv`` and the examples folder
        (written by :mod:`fewsound_sb.reports`)."""
        name = f"{stage.name.lower()}_epoch{epoch}"
        folder = self.hparams.eval_folder
        md_path = os.path.join(folder, f"{name}.md")
        model = self.hparams.model_name
        n_clips = len(self.metric_rows)
        write_metric_table(
            md_path, os.path.join(folder, f"{name}.csv"), summary, title=model,
            heading=f"{model}, {stage.name.lower()} epoch {epoch} ({n_clips} clips, mean ± std)",
            n_clips=n_clips, meta={"model": model, "stage": stage.name.lower(), "epoch": epoch},
        )
        example_folder = os.path.join(folder, name)
        self._write_examples(example_folder)
        logger.info("Metric table: %s; examples: %s", md_path, example_folder)

    def _write_examples(self, folder):
        """``<id>_ref.wav``, ``<id>_rec.wav`` and ``<id>.png`` per example."""
        for item_id, reference, estimate in self.examples:
            base = os.path.join(folder, str(item_id))
            write_example(reference, estimate, self.hparams.sample_rate, f"{base}_ref.wav",
                          f"{base}_rec.wav", f"{base}.png", title=str(item_id))
