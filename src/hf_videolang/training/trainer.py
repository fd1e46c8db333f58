"""``VideoTextTrainer``: a ``transformers.Trainer`` that logs every loss term a video-language model returns.

Models return ``loss`` (the weighted sum) and each unweighted term as ``loss_<name>`` (``loss_vtc``, ``loss_vtm``,
``loss_mlm``, ...). The trainer averages every term over the logging window, exactly as ``Trainer`` averages
``loss`` (under gradient accumulation too), and adds it to the training logs under its own name; evaluation adds
``eval_loss_<name>``. ``evaluate_retrieval`` runs the retrieval loop of :mod:`hf_videolang.evaluation.retrieval`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from transformers import Trainer, TrainingArguments
from transformers.trainer_utils import EvalLoopOutput
from transformers.utils import logging

from ..evaluation.retrieval import evaluate_retrieval as run_retrieval_evaluation
from .collator import VideoTextCollator

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
    """

    # Per-micro-batch mean losses: Trainer divides them by the accumulation steps (see the class docstring).
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: nn.Module | None = None,
        args: TrainingArguments | None = None,
        data_collator: Any = None,
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
        super().__init__(model, args, data_collator, **kwargs)
        self._train_loss_terms = LossTermAverager()
        self._eval_loss_terms = LossTermAverager()

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
        :class:`VideoTextProcessor`), logs the metrics as ``<metric_key_prefix>_<name>`` and returns them. It runs
        on the whole dataset in every process; call it from a single process for large corpora.
        """
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise ValueError("evaluate_retrieval needs an eval_dataset (none was passed or given to the trainer)")
        if self.processing_class is None:
            raise ValueError("evaluate_retrieval needs the trainer's processing_class (a VideoTextProcessor)")
        result = run_retrieval_evaluation(
            self.accelerator.unwrap_model(self.model),
            self.processing_class,
            dataset,
            batch_size=batch_size or self.args.per_device_eval_batch_size,
            rerank_top_k=rerank_top_k,
            device=self.args.device,
            progress=not self.args.disable_tqdm,
        )
        metrics = {f"{metric_key_prefix}_{name}": float(value) for name, value in result.metrics.items()}
        self.log(dict(metrics))  # log() adds the epoch to the dict it gets
        return metrics


__all__ = ["LossTermAverager", "VideoTextTrainer", "VideoTextTrainingArguments", "loss_terms"]
