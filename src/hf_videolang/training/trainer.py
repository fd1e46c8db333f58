"""``VideoTextTrainer``: a ``transformers.Trainer`` that logs every loss term a video-language model returns.

Models return ``loss`` (the weighted sum) and each unweighted term as ``loss_<name>`` (``loss_vtc``, ``loss_vtm``,
``loss_mlm``, ...). The trainer averages every term over the logging window, exactly as ``Trainer`` averages
``loss`` (under gradient accumulation too), and adds it to the training logs under its own name; evaluation adds
``eval_loss_<name>``.

``evaluate()`` reports the task metrics, so that ``metric_for_best_model``, ``load_best_model_at_end`` and
``EarlyStoppingCallback`` work: retrieval R@1/5/10, MdR, MnR in both directions (``eval_t2v_R@1``, ...), computed by
:func:`hf_videolang.evaluation.retrieval.evaluate_retrieval` sharded across ranks; QA / multiple-choice
``eval_accuracy`` through ``Trainer``'s own loop and the ``compute_metrics`` builders. Evaluation batches are
deterministic: the collator runs in its evaluation mode (uniform frames, no masks).
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import EvalLoopOutput, speed_metrics
from transformers.utils import logging

from ..evaluation.metrics import build_mc_compute_metrics, build_qa_compute_metrics
from ..evaluation.retrieval import evaluate_retrieval as run_retrieval_evaluation
from .collator import AnswerTargetCollator, VideoTextCollator

logger = logging.get_logger(__name__)

LOSS_TERM_PREFIX = "loss_"


@dataclass
class VideoTextTrainingArguments(TrainingArguments):
    """``TrainingArguments`` whose defaults suit video-text training.

    ``remove_unused_columns`` defaults to ``False``: the rows keep their ``"video"`` / ``"caption"`` columns, which
    the model's ``forward`` does not take but :class:`VideoTextCollator` needs.
    """

    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Drop dataset columns the model forward does not take (keep False with VideoTextCollator)."},
    )
    learning_rate_multipliers: dict | str | None = field(
        default=None,
        metadata={
            "help": "Per-parameter learning-rate factors: a dict (or its JSON) from a regular expression searched in "
            "the parameter name to a factor, e.g. '{\"crossattention|vtm_head\": 10}'; the first match wins, "
            "others keep the factor 1. For modules added on top of pretrained ones."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.learning_rate_multipliers, str):
            self.learning_rate_multipliers = json.loads(self.learning_rate_multipliers)
        for pattern, factor in (self.learning_rate_multipliers or {}).items():
            re.compile(pattern)
            if not isinstance(factor, (int, float)) or factor <= 0:
                raise ValueError(f"learning_rate_multipliers[{pattern!r}] must be a positive number, got {factor!r}")


class LossTermAverager:
    """Weighted running sums of loss terms, averaged and reset when logged.

    Each micro-batch adds its terms with weight ``1 / gradient_accumulation_steps``, the weight ``Trainer`` gives its
    ``loss``; a term missing from some micro-batches is averaged over the ones that have it.
    """

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.weights: dict[str, float] = {}

    def add(self, terms: Mapping[str, torch.Tensor], weight: float = 1.0) -> None:
        for name, value in terms.items():
            value = value.detach().float().mean()  # mean: DataParallel returns one value per GPU
            self.sums[name] = self.sums.get(name, 0.0) + value * weight
            self.weights[name] = self.weights.get(name, 0.0) + weight

    def pop_averages(self, reduce_sum: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
        """Return ``{name: weighted mean}`` and reset.

        ``reduce_sum(tensor) -> tensor`` sums across processes; all processes must have the same term names.
        """
        if not self.sums:
            return {}
        names = sorted(self.sums)
        totals = torch.stack([self.sums[name] for name in names])
        weights = torch.tensor([self.weights[name] for name in names], device=totals.device)
        if reduce_sum is not None:
            totals, weights = reduce_sum(totals), reduce_sum(weights)
        self.sums, self.weights = {}, {}
        return {name: (total / weight).item() for name, total, weight in zip(names, totals, weights)}


def loss_terms(outputs: Any) -> dict[str, torch.Tensor]:
    """The ``loss_*`` tensors of a model output (``None`` terms, i.e. disabled objectives, are skipped)."""
    if not isinstance(outputs, Mapping):
        return {}
    return {
        name: value
        for name, value in outputs.items()
        if name.startswith(LOSS_TERM_PREFIX) and isinstance(value, torch.Tensor)
    }


#: The evaluation each collator task gets, and the batch keys ``Trainer`` gathers as labels for it.
EVAL_TASKS = {"retrieval": "retrieval", "pretrain": "retrieval", "qa": "qa", "mc": "mc"}
LABEL_NAMES = {"retrieval": ["video_ids"], "qa": ["labels"], "mc": ["labels"]}


def evaluation_collator(collator: Any) -> Any:
    """The evaluation-mode copy of a training collator: uniform frame sampling, first caption, no masks.

    :class:`VideoTextCollator` (and subclasses) and :class:`AnswerTargetCollator` are copied with
    ``training=False``, ``return_masks=False``, ``return_mlm=False``; any other collator is returned as is.
    """
    if isinstance(collator, AnswerTargetCollator):
        wrapped = copy.copy(collator)
        wrapped.collator = evaluation_collator(collator.collator)
        return wrapped
    if isinstance(collator, VideoTextCollator) and collator.training:
        evaluation = copy.copy(collator)
        evaluation.training = False
        evaluation.return_masks = False
        evaluation.return_mlm = False
        return evaluation
    return collator


class CollatorEpochCallback(TrainerCallback):
    """Calls ``set_epoch(epoch)`` on the training collator (or the one it wraps) when each epoch begins.

    ``Trainer`` creates the epoch's DataLoader iterator after ``on_epoch_begin``, so workers (which get a copy of
    the collator) see the new epoch too.
    """

    def __init__(self, collator: Any) -> None:
        while not hasattr(collator, "set_epoch") and hasattr(collator, "collator"):
            collator = collator.collator
        self.collator = collator

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if hasattr(self.collator, "set_epoch"):
            self.collator.set_epoch(math.floor(state.epoch or 0))


def _is_stream(dataset: Any) -> bool:
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets is a dependency
        return False
    return isinstance(dataset, datasets.IterableDataset)


def _accepts_argument(model: nn.Module, name: str) -> bool:
    forward = getattr(model, "module", model).forward  # DDP wraps the model
    return name in inspect.signature(forward).parameters


def _without_loss_terms(outputs: Any) -> Any:
    """A copy of a ``ModelOutput`` without its ``loss_*`` entries, so evaluation does not gather them as predictions."""
    terms = loss_terms(outputs)
    if not terms:
        return outputs
    kept = {name: value for name, value in outputs.items() if name not in terms}
    try:
        return type(outputs)(**kept)  # ModelOutput dataclasses: the dropped fields default to None
    except TypeError:
        return kept


class VideoTextTrainer(Trainer):
    """``Trainer`` that logs every ``loss_*`` term of the model output, averaged over the logging window.

    Conventions it relies on (``docs/design.md``): the model returns a ``ModelOutput`` with ``loss`` and unweighted
    ``loss_<name>`` terms, each a mean over the micro-batch, and sets ``accepts_loss_kwargs = False``. The loss is
    therefore divided by the number of gradient accumulation steps (``loss_is_scaled_for_ga = False``), which gives
    the same gradient as one large batch when the objective is a mean over samples. Contrastive objectives are not:
    their negatives come from the micro-batch only.

    For evaluation losses, ``Trainer`` needs the model to take ``labels`` or a ``return_loss=True`` argument
    (as CLIP does); the averaged terms are added to the metrics as ``eval_loss_<name>``.

    Arguments are those of ``Trainer`` (pass the ones after ``data_collator`` by keyword). If ``args`` is not
    given, :class:`VideoTextTrainingArguments` is used. With a :class:`VideoTextCollator`, rows
    must keep their raw columns, so ``remove_unused_columns`` is switched off (with a warning) if it was on.

    ``eval_task``: ``"retrieval"``, ``"qa"``, ``"mc"`` or ``None`` (``Trainer``'s plain evaluation); default: from the
    collator's task (``"pretrain"`` evaluates retrieval). It picks the metrics of ``evaluate()`` and, unless
    ``args.label_names`` is set, the label names (``["video_ids"]`` / ``["labels"]``), which ``Trainer`` would
    otherwise infer from the forward's signature (``["mlm_labels"]`` for MAC, leaving ``evaluate()`` without
    labels). With ``eval_task="retrieval"`` and no ``compute_metrics``, ``evaluate()`` ranks every distinct video of
    the eval rows (``"video"`` / ``"caption"``) with ``processing_class`` (or the collator's processor).
    """

    # Per-micro-batch mean losses: Trainer divides them by the accumulation steps (see the class docstring).
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: nn.Module | None = None,
        args: TrainingArguments | None = None,
        data_collator: Any = None,
        eval_task: str | None = "auto",
        **kwargs: Any,
    ) -> None:
        if args is None:
            args = VideoTextTrainingArguments(output_dir="tmp_trainer")
        if isinstance(data_collator, VideoTextCollator) and args.remove_unused_columns:
            logger.warning(
                "remove_unused_columns=True would drop the 'video' and text columns VideoTextCollator needs; "
                "setting it to False (use VideoTextTrainingArguments to get this default)."
            )
            args.remove_unused_columns = False
        train_dataset = kwargs.get("train_dataset")
        if _is_stream(train_dataset) and getattr(args.accelerator_config, "dispatch_batches", None) is None:
            # Each rank iterates its own shards of a `datasets` stream (accelerate's `IterableDataset.shard`)
            # instead of rank 0 reading every batch and sending the others their parts (accelerate's default).
            args.accelerator_config.dispatch_batches = False
        if eval_task == "auto":
            inner = data_collator.collator if isinstance(data_collator, AnswerTargetCollator) else data_collator
            eval_task = EVAL_TASKS.get(getattr(inner, "task", None))
            if isinstance(data_collator, AnswerTargetCollator):
                eval_task = None  # a generative answer head has no answer-list logits
        if eval_task not in (None, "retrieval", "qa", "mc"):
            raise ValueError(f"eval_task must be 'retrieval', 'qa', 'mc', None or 'auto', got {eval_task!r}")
        if kwargs.get("compute_metrics") is None and model is not None and eval_task in ("qa", "mc"):
            answer_list = getattr(getattr(model, "config", None), "answer_list", None)
            if eval_task == "mc":
                kwargs["compute_metrics"] = build_mc_compute_metrics()
            elif answer_list:
                kwargs["compute_metrics"] = build_qa_compute_metrics(answer_list)
        super().__init__(model, args, data_collator, **kwargs)
        self.eval_task = eval_task
        if self.args.label_names is None and eval_task is not None:
            self.label_names = list(LABEL_NAMES[eval_task])
        self._train_loss_terms = LossTermAverager()
        self._eval_loss_terms = LossTermAverager()
        if data_collator is not None:
            self.add_callback(CollatorEpochCallback(data_collator))

    # ------------------------------------------------------------------ loss

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """``Trainer``'s optimizer, with each parameter group split by ``args.learning_rate_multipliers``.

        The learning-rate scheduler is built afterwards from each group's ``lr``, so a factor holds for the whole
        schedule (warm-up and decay included).
        """
        optimizer = super().create_optimizer(model)
        multipliers = getattr(self.args, "learning_rate_multipliers", None)
        if not multipliers:
            return optimizer
        names = {id(p): name for name, p in (model if model is not None else self.model).named_parameters()}
        patterns = [(re.compile(pattern), float(factor)) for pattern, factor in multipliers.items()]
        base_groups, scaled_groups = [], []
        for group in optimizer.param_groups:
            by_factor: dict[float, list[nn.Parameter]] = defaultdict(list)
            for param in group["params"]:
                name = names.get(id(param), "")
                by_factor[next((f for pattern, f in patterns if pattern.search(name)), 1.0)].append(param)
            for factor, params in by_factor.items():
                split = {**group, "params": params, "lr": group["lr"] * factor}
                (base_groups if factor == 1.0 else scaled_groups).append(split)
        # Unscaled groups first: Trainer logs the learning rate of group 0.
        optimizer.param_groups.clear()
        for group in base_groups + scaled_groups:
            optimizer.add_param_group(group)
        return optimizer

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """``Trainer.compute_loss`` that also records the ``loss_*`` terms of the output.

        With ``return_outputs=True`` (evaluation) the returned output has no ``loss_*`` entries: they are averaged
        into the metrics instead of being gathered as predictions.
        """
        if not model.training and "return_loss" not in inputs and _accepts_argument(model, "return_loss"):
            # Models that compute their loss only in training (UMT's retrieval head) give evaluation losses too.
            inputs = {**inputs, "return_loss": True}
        loss, outputs = super().compute_loss(
            model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
        )
        terms = loss_terms(outputs)
        if model.training:
            # Same weight as Trainer gives `loss` in `training_step`.
            accumulation_steps = getattr(self, "current_gradient_accumulation_steps", 1)
            self._train_loss_terms.add(terms, weight=1.0 / accumulation_steps)
        else:
            self._eval_loss_terms.add(terms)
        if return_outputs:
            return loss, _without_loss_terms(outputs)
        return loss

    def _prepare_input(self, data: Any) -> Any:
        """``Trainer._prepare_input``, and floating-point inputs (``pixel_values``) follow the model's dtype.

        The processor makes float32 frames; a model held in another dtype (loaded with ``dtype=torch.bfloat16``,
        or ``.double()``) gets them in its own. Under ``--bf16`` / ``--fp16`` the model stays float32 and autocast
        covers the float32 inputs.
        """
        data = super()._prepare_input(data)
        if isinstance(data, torch.Tensor) and data.is_floating_point():
            dtype = getattr(self.accelerator.unwrap_model(self.model), "dtype", None)
            if isinstance(dtype, torch.dtype) and dtype.is_floating_point and data.dtype != dtype:
                data = data.to(dtype)
        return data

    # ------------------------------------------------------------------ logging

    def train(self, *args: Any, **kwargs: Any):
        """``Trainer.train``; loss terms left over from a previous run's last partial logging window are dropped."""
        self._train_loss_terms.pop_averages()
        return super().train(*args, **kwargs)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the window averages of the training loss terms to the periodic training log (the one with ``loss``)."""
        if "loss" in logs:
            logs.update(self._train_loss_terms.pop_averages(self._reduce_sum))
        super().log(logs, start_time)

    def evaluation_loop(
        self,
        dataloader: DataLoader,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> EvalLoopOutput:
        """``Trainer.evaluation_loop`` plus the averaged loss terms as ``<prefix>_loss_<name>`` metrics."""
        self._eval_loss_terms.pop_averages()  # drop anything left by an interrupted evaluation
        output = super().evaluation_loop(
            dataloader,
            description,
            prediction_loss_only=prediction_loss_only,
            ignore_keys=ignore_keys,
            metric_key_prefix=metric_key_prefix,
        )
        for name, value in self._eval_loss_terms.pop_averages(self._reduce_sum).items():
            output.metrics[f"{metric_key_prefix}_{name}"] = value
        return output

    def _reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.args.world_size <= 1:
            return tensor
        return self.accelerator.reduce(tensor.to(self.args.device), reduction="sum")

    # ------------------------------------------------------------------ evaluation

    def get_eval_dataloader(self, eval_dataset: Any = None) -> DataLoader:
        """``Trainer.get_eval_dataloader`` with the collator in evaluation mode (:func:`evaluation_collator`)."""
        return self._with_evaluation_collator(super().get_eval_dataloader, eval_dataset)

    def get_test_dataloader(self, test_dataset: Any) -> DataLoader:
        """``Trainer.get_test_dataloader`` with the collator in evaluation mode (:func:`evaluation_collator`)."""
        return self._with_evaluation_collator(super().get_test_dataloader, test_dataset)

    def _with_evaluation_collator(self, build: Callable[[Any], DataLoader], dataset: Any) -> DataLoader:
        training_collator = self.data_collator
        self.data_collator = evaluation_collator(training_collator)
        try:
            return build(dataset)
        finally:
            self.data_collator = training_collator

    def evaluate(
        self,
        eval_dataset: Any = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """``Trainer.evaluate`` with the task metrics (see the module docstring).

        Retrieval (``eval_task="retrieval"`` without ``compute_metrics``): ``Trainer``'s loop gives the evaluation
        losses; then every rank encodes its share of the distinct videos and of the captions, the embeddings are
        gathered once, and every rank computes the same ``<prefix>_t2v_R@1``, ... All are logged (``report_to``)
        and passed to the callbacks' ``on_evaluate``.
        """
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if self.eval_task != "retrieval" or self.compute_metrics is not None or isinstance(dataset, (dict, str)):
            return super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
        if dataset is None:
            raise ValueError("evaluate() needs an eval_dataset (none was passed or given to the trainer).")
        self._memory_tracker.start()
        start_time = time.time()
        # Trainer's own loop for the evaluation losses (eval_loss, eval_loss_<name>), on evaluation-mode batches.
        output = self.evaluation_loop(
            self.get_eval_dataloader(eval_dataset),
            description="Evaluation",
            prediction_loss_only=True,
            ignore_keys=ignore_keys,
            metric_key_prefix=metric_key_prefix,
        )
        metrics = dict(output.metrics)
        metrics.update(self._retrieval_metrics(dataset, metric_key_prefix, shard_across_ranks=True))
        total_batch_size = self.args.eval_batch_size * self.args.world_size
        metrics.update(
            speed_metrics(metric_key_prefix, start_time, num_samples=output.num_samples,
                          num_steps=math.ceil(output.num_samples / total_batch_size))
        )  # fmt: skip
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        self._memory_tracker.stop_and_update_metrics(metrics)
        return metrics

    def _retrieval_processor(self) -> Any:
        processor = self.processing_class
        if processor is None or not callable(processor):
            inner = getattr(self.data_collator, "collator", self.data_collator)
            processor = getattr(inner, "processor", None)
        if processor is None:
            raise ValueError(
                "retrieval evaluation needs a VideoTextProcessor: pass processing_class= (or a VideoTextCollator)."
            )
        return processor

    def _retrieval_metrics(
        self, dataset: Any, metric_key_prefix: str, shard_across_ranks: bool, rerank_top_k: int | None = None
    ) -> dict[str, float]:
        model = self.accelerator.unwrap_model(self.model)
        with self.autocast_smart_context_manager():
            result = run_retrieval_evaluation(
                model,
                self._retrieval_processor(),
                dataset,
                batch_size=self.args.per_device_eval_batch_size,
                rerank_top_k=rerank_top_k,
                device=self.args.device,
                progress=not self.args.disable_tqdm and self.is_local_process_zero(),
                num_workers=self.args.dataloader_num_workers,
                shard_across_ranks=shard_across_ranks,
            )
        return {f"{metric_key_prefix}_{name}": float(value) for name, value in result.metrics.items()}

    # ------------------------------------------------------------------ retrieval

    def evaluate_retrieval(
        self,
        eval_dataset: Dataset | None = None,
        batch_size: int | None = None,
        rerank_top_k: int | None = None,
        metric_key_prefix: str = "eval",
    ) -> dict[str, float]:
        """Text-video retrieval metrics of the current model on ``eval_dataset`` (default: ``self.eval_dataset``).

        Runs :func:`hf_videolang.evaluation.retrieval.evaluate_retrieval` with ``self.processing_class`` (a
        :class:`VideoTextProcessor`), logs the metrics as ``<metric_key_prefix>_<name>`` and returns them. Unlike
        ``evaluate()`` it can re-rank (``rerank_top_k``) and runs on the whole dataset in every process.
        """
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("evaluate_retrieval needs an eval_dataset (none was passed or given to the trainer)")
        metrics = self._retrieval_metrics(dataset, metric_key_prefix, shard_across_ranks=False,
                                          rerank_top_k=rerank_top_k)  # fmt: skip
        self.log(dict(metrics))  # log() adds the epoch to the dict it gets
        return metrics


__all__ = ["LossTermAverager", "VideoTextTrainer", "VideoTextTrainingArguments", "evaluation_collator", "loss_terms"]
