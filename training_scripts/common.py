"""Shared pieces of the UMT training scripts: argument dataclasses, parsing, data loading, model/processor set-up.

Each script (``umt_pretrain_stage1.py``, ``umt_pretrain_stage2.py``, ``umt_finetune_retrieval.py``,
``umt_finetune_qa.py``) parses ``ModelArguments``, ``DataArguments`` and ``VideoTextTrainingArguments`` with
``HfArgumentParser`` (from the command line or from one ``.json`` file) and builds everything else from them.
"""

from __future__ import annotations

import atexit
import glob
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import torch
from accelerate import PartialState
from transformers import AutoTokenizer, BatchFeature, HfArgumentParser
from transformers.utils import logging

from hf_videolang.data import load_annotations
from hf_videolang.models.umt import UmtConfig, UmtProcessor
from hf_videolang.training import VideoTextCollator, VideoTextTrainingArguments

logger = logging.get_logger("hf_videolang.training_scripts")



@dataclass
class ModelArguments:
    """Where the model, its configuration, its teacher and its tokenizer come from."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A UMT checkpoint (folder or Hub id) to start from; its processor is reused when saved."},
    )
    config_name: str | None = field(
        default=None, metadata={"help": "A UmtConfig (folder with config.json, or the json file) for a new model."}
    )
    preset: str | None = field(
        default=None, metadata={"help": "A paper preset for a new model: 'umt-b16' or 'umt-l16' (UMT §4.1)."}
    )
    teacher_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A CLIP vision checkpoint (CLIPVisionModelWithProjection) loaded as the unmasked teacher."},
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer (BERT WordPiece); default: the one saved with the checkpoint."}
    )


@dataclass
class DataArguments:
    """Annotation files (the package's JSONL formats) or a ``datasets`` dataset with the same columns."""

    train_file: str | None = field(default=None, metadata={"help": "Training annotations (.jsonl or .json list)."})
    validation_file: str | None = field(default=None, metadata={"help": "Validation annotations (.jsonl/.json)."})
    dataset_name: str | None = field(
        default=None, metadata={"help": "A `datasets` dataset (name or local path) with the annotation columns."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of `dataset_name`."})
    train_split_name: str = field(default="train", metadata={"help": "Training split of `dataset_name`."})
    validation_split_name: str | None = field(
        default="validation", metadata={"help": "Validation split of `dataset_name` (empty: no evaluation)."}
    )
    video_root: str | None = field(
        default=None,
        metadata={"help": "Folder relative video paths are resolved against (default: the annotation file's folder)."},
    )
    num_frames: int | None = field(
        default=None, metadata={"help": "Frames per video (default: 8 in stage 1, 4 otherwise; UMT §4.1)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep the first N training rows."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep the first N validation rows."})
    streaming: bool = field(
        default=False,
        metadata={"help": "Stream the training rows (a `datasets` IterableDataset) instead of loading them: "
                  "--train_file is then one or more JSONL annotation files or webdataset-style .tar shards "
                  "(comma-separated paths or glob patterns; a shard holds <key>.mp4 and <key>.json with the "
                  "annotation fields, or <key>.txt with the caption). Each rank reads its own shards (give at least "
                  "as many shards as processes). Needs --max_steps. The validation split is still loaded whole."},
    )
    shuffle_buffer_size: int = field(
        default=1000,
        metadata={"help": "With --streaming: shuffle the shard order and the rows through a buffer of this many rows "
                  "(datasets' IterableDataset.shuffle, reseeded each epoch); 0 keeps the files' order."},
    )
    shuffle_seed: int = field(default=0, metadata={"help": "With --streaming: the seed of the shuffle."})

    def __post_init__(self) -> None:
        if self.train_file is None and self.dataset_name is None:
            raise ValueError("DataArguments: pass --train_file (annotation JSONL) or --dataset_name.")
        if self.train_file is not None and self.dataset_name is not None:
            raise ValueError("DataArguments: pass either --train_file or --dataset_name, not both.")
        for name in ("train_file", "validation_file"):
            path = getattr(self, name)
            if path is None:
                continue
            if self.streaming:
                shard_files(path, f"--{name}")  # raises when a pattern matches nothing
            elif not os.path.isfile(path):
                raise FileNotFoundError(f"DataArguments: --{name} {path!r} does not exist.")
        if self.num_frames is not None and self.num_frames < 1:
            raise ValueError(f"DataArguments: --num_frames must be positive, got {self.num_frames}.")


# ---------------------------------------------------------------------------------------------------- parsing


def parse_args(dataclass_types: Sequence[type], argv: Sequence[str] | None = None) -> tuple[Any, ...]:
    """Parse ``dataclass_types`` from ``argv`` (default: ``sys.argv[1:]``), or from a single ``.json`` argument."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser(dataclass_types)
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    return parser.parse_args_into_dataclasses(args=argv)


def setup_process(training_args: VideoTextTrainingArguments) -> None:
    """Route transformers' and hf_videolang's logs at the process's level (warnings only on non-main ranks), and
    destroy the process group at exit: a gloo rank that exits with its group alive can abort in interpreter
    finalization ("terminate called without an active exception", pytorch/pytorch#190489)."""
    atexit.register(PartialState().destroy_process_group)
    level = training_args.get_process_log_level()
    logging.set_verbosity(level)
    logging.enable_default_handler()
    logging.enable_explicit_format()
    datasets.utils.logging.set_verbosity(level)
    logger.setLevel(level)

# ---------------------------------------------------------------------------------------------------- data


def load_split(
    data_args: DataArguments, split: str, task: str
) -> datasets.Dataset | datasets.IterableDataset | None:
    """Rows of ``split`` (``"train"`` / ``"validation"``) for ``task``, or None when that split is not given.

    ``task``: ``"retrieval"`` / ``"qa"`` (the package's annotation formats), or ``"video"``: any of them, keeping
    one row per distinct video (stage 1 is video-only, UMT §3.2). With ``--streaming`` the training split is a
    ``datasets.IterableDataset`` (:func:`load_streaming_split`; a stream cannot drop repeated videos, so stage 1
    sees every annotation's video); the validation split is loaded whole, since evaluation ranks all of it.
    """
    if data_args.streaming:
        dataset = load_streaming_split(data_args, split, task)
        if split == "train" or dataset is None:
            return dataset
        dataset = datasets.Dataset.from_list(list(dataset))  # evaluation needs every row at once
        if task == "video":
            dataset = _distinct_videos(dataset)
        logger.info("%s split: %d rows", split, len(dataset))
        return dataset
    if data_args.dataset_name is not None:
        name = data_args.train_split_name if split == "train" else data_args.validation_split_name
        if not name:
            return None
        dataset = datasets.load_dataset(data_args.dataset_name, data_args.dataset_config_name, split=name)
        dataset = _resolve_video_paths(dataset, data_args.video_root)
    else:
        path = data_args.train_file if split == "train" else data_args.validation_file
        if path is None:
            return None
        dataset = _load_video_list(path, data_args.video_root) if task == "video" else (
            load_annotations(path, video_root=data_args.video_root, task=task))
    _check_columns(dataset, task, split)
    if task == "video":
        dataset = _distinct_videos(dataset)
    limit = data_args.max_train_samples if split == "train" else data_args.max_eval_samples
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    logger.info("%s split: %d rows", split, len(dataset))
    return dataset


_REQUIRED_COLUMNS = {"video": ("video",), "retrieval": ("video", "caption"), "qa": ("video", "question", "answer")}


def shard_files(spec: str, name: str = "--train_file") -> list[str]:
    """The files of a comma-separated list of paths and glob patterns, in order (each pattern sorted)."""
    files: list[str] = []
    for part in (piece.strip() for piece in spec.split(",")):
        if not part:
            continue
        matches = sorted(glob.glob(part)) if glob.has_magic(part) else ([part] if os.path.isfile(part) else [])
        if not matches:
            raise FileNotFoundError(f"DataArguments: {name} {part!r} matches no file.")
        files.extend(matches)
    if not files:
        raise FileNotFoundError(f"DataArguments: {name} {spec!r} names no file.")
    return files


def load_streaming_split(data_args: DataArguments, split: str, task: str) -> datasets.IterableDataset | None:
    """A ``datasets.IterableDataset`` of the rows of ``split`` read as a stream, one shard per file.

    JSONL files go through ``load_dataset("json", streaming=True)`` (relative video paths resolved against
    ``--video_root`` or the first file's folder); ``.tar`` shards through ``load_dataset("webdataset",
    streaming=True)``, without decoding: the row's ``"video"`` is the bytes of the shard's video file, its text
    fields come from ``<key>.json`` (or the caption from ``<key>.txt``). ``--dataset_name`` streams that dataset.

    Under ``torchrun`` / ``accelerate launch``, ``VideoTextTrainer`` (``dispatch_batches=False``) lets each rank
    iterate only its own shards: accelerate shards a ``datasets`` stream with ``IterableDataset.shard(world_size,
    rank)``, as ``datasets.distributed.split_dataset_by_node`` does when the shards divide evenly.
    """
    if data_args.dataset_name is not None:
        name = data_args.train_split_name if split == "train" else data_args.validation_split_name
        if not name:
            return None
        dataset = datasets.load_dataset(data_args.dataset_name, data_args.dataset_config_name, split=name,
                                        streaming=True)  # fmt: skip
        dataset = _resolve_video_paths(dataset, data_args.video_root)
    else:
        spec = data_args.train_file if split == "train" else data_args.validation_file
        if spec is None:
            return None
        files = shard_files(spec, f"--{split}_file" if split == "train" else "--validation_file")
        kinds = {"tar" if file.endswith(".tar") else "json" for file in files}
        if len(kinds) > 1:
            raise ValueError(f"DataArguments: --streaming reads either JSONL files or .tar shards, got both: {files}")
        if kinds == {"tar"}:
            dataset = datasets.load_dataset("webdataset", data_files={"train": files}, split="train", streaming=True)
            dataset = dataset.decode(False).map(_webdataset_row)  # video bytes, not decoded frames
        else:
            dataset = datasets.load_dataset("json", data_files={"train": files}, split="train", streaming=True)
            root = data_args.video_root or os.path.dirname(os.path.abspath(files[0]))
            dataset = _resolve_video_paths(dataset, root)
    first = next(iter(dataset), None)
    if first is None:
        raise ValueError(f"DataArguments: the streamed {split} data has no rows.")
    missing = [name for name in _REQUIRED_COLUMNS[task] if name not in first]
    if missing:
        raise ValueError(f"the streamed {split} data has no {missing} field(s) needed for {task!r} "
                         f"(fields of its first row: {sorted(first)}).")  # fmt: skip
    if task == "video":
        dataset = dataset.select_columns(["video"])
    limit = data_args.max_train_samples if split == "train" else data_args.max_eval_samples
    if limit is not None:
        dataset = dataset.take(limit)
    if split == "train" and data_args.shuffle_buffer_size > 0:
        dataset = dataset.shuffle(seed=data_args.shuffle_seed, buffer_size=data_args.shuffle_buffer_size)
    logger.info("%s split: streaming %d shard(s)", split, dataset.num_shards)
    return dataset


_VIDEO_EXTENSIONS = ("mp4", "webm", "mkv", "avi", "mov", "m4v", "gif")


def _webdataset_row(example: dict[str, Any]) -> dict[str, Any]:
    """A webdataset sample (``__key__``, ``mp4``: ``{"bytes", "path"}``, ``json`` / ``txt``) as an annotation row."""
    fields = {name.lower(): value for name, value in example.items()}
    video = next((fields[ext] for ext in _VIDEO_EXTENSIONS if fields.get(ext) is not None), None)
    if video is None:
        raise ValueError(f"webdataset sample {example.get('__key__')!r} ({example.get('__url__')}) has no video "
                         f"file ({'/'.join(_VIDEO_EXTENSIONS)}); its files: {sorted(example)}.")  # fmt: skip
    row = dict(fields["json"]) if isinstance(fields.get("json"), Mapping) else {}
    if "caption" not in row and isinstance(fields.get("txt"), (str, bytes)):
        text = fields["txt"]
        row["caption"] = (text.decode("utf-8") if isinstance(text, bytes) else text).strip()
    row["video"] = video["bytes"] if isinstance(video, Mapping) else video
    row["key"] = example.get("__key__")
    return row


def _check_columns(dataset: datasets.Dataset, task: str, split: str) -> None:
    missing = [name for name in _REQUIRED_COLUMNS[task] if name not in dataset.column_names]
    if missing:
        raise ValueError(
            f"the {split} data has no {missing} column(s) needed for {task!r} (columns: {dataset.column_names})."
        )


def _resolve_video_paths(dataset: Any, video_root: str | None) -> Any:
    columns = dataset.column_names
    if video_root is None or (columns is not None and "video" not in columns):
        return dataset

    def resolve(row: dict[str, Any]) -> dict[str, Any]:
        video = row["video"]
        if not isinstance(video, str) or os.path.isabs(video):
            return {"video": video}
        return {"video": os.path.join(video_root, video)}

    return dataset.map(resolve)


def _load_video_list(path: str, video_root: str | None) -> datasets.Dataset:
    """Videos named by an annotation file of any task (only the ``"video"`` key is read)."""
    file = Path(path)
    text = file.read_text(encoding="utf-8")
    records = json.loads(text) if file.suffix == ".json" else [json.loads(line) for line in text.splitlines()
                                                              if line.strip()]  # fmt: skip
    root = Path(video_root) if video_root is not None else file.parent
    videos = []
    for index, record in enumerate(records):
        if not isinstance(record, Mapping) or not isinstance(record.get("video"), str):
            raise ValueError(f"{path}: record {index} has no string 'video' field.")
        video = Path(record["video"])
        resolved = video if video.is_absolute() else root / video
        if not resolved.is_file():
            raise FileNotFoundError(f"{path}: record {index}: video {str(video)!r} not found (looked for {resolved}).")
        videos.append(str(resolved.absolute()))
    if not videos:
        raise ValueError(f"{path}: no annotations in file.")
    return datasets.Dataset.from_dict({"video": videos})


def _distinct_videos(dataset: datasets.Dataset) -> datasets.Dataset:
    seen: set[str] = set()
    keep = [i for i, video in enumerate(dataset["video"]) if not (video in seen or seen.add(video))]
    return dataset.select(keep).select_columns(["video"])


# ---------------------------------------------------------------------------------------------------- model


def load_config(model_args: ModelArguments, **overrides: Any) -> UmtConfig:
    """The UmtConfig of a new model: ``--config_name`` or ``--preset`` (overrides replace top-level fields)."""
    if model_args.config_name is not None:
        return UmtConfig.from_pretrained(model_args.config_name).with_overrides(**overrides)
    if model_args.preset is not None:
        return UmtConfig.from_preset(model_args.preset, **overrides)
    raise ValueError("ModelArguments: pass --model_name_or_path (a UMT checkpoint), --config_name or --preset.")


def checkpoint_config(model_args: ModelArguments, **overrides: Any) -> UmtConfig:
    """The config of ``--model_name_or_path`` with ``overrides``, validated again (``UmtConfig.with_overrides``)."""
    return UmtConfig.from_pretrained(model_args.model_name_or_path).with_overrides(**overrides)


def finetuning_config(model_args: ModelArguments, **overrides: Any) -> UmtConfig:
    """A stage-2 checkpoint's config for fine-tuning (``UmtConfig.for_finetuning``: no teacher, no UTA, no masking;
    UMT §4.1: fine-tuning sees whole videos)."""
    if model_args.model_name_or_path is None:
        raise ValueError("ModelArguments: fine-tuning needs --model_name_or_path (a stage-2 UMT checkpoint).")
    config = UmtConfig.from_pretrained(model_args.model_name_or_path)
    if config.pretraining_stage != 2:
        raise ValueError(
            f"{model_args.model_name_or_path} is a stage-{config.pretraining_stage} checkpoint; fine-tuning needs the "
            "text side of a stage-2 checkpoint (run umt_pretrain_stage2.py first)."
        )
    return config.for_finetuning(**overrides)


def build_processor(
    model_args: ModelArguments, data_args: DataArguments, config: UmtConfig, default_num_frames: int
) -> UmtProcessor:
    """The checkpoint's saved processor when there is one, else a new ``UmtProcessor`` sized to ``config``."""
    saved = model_args.model_name_or_path
    if model_args.tokenizer_name is None and saved is not None and _has_processor(saved):
        processor = UmtProcessor.from_pretrained(saved)
    else:
        source = model_args.tokenizer_name or saved
        if source is None:
            raise ValueError("ModelArguments: pass --tokenizer_name (a BERT tokenizer), the processor needs one.")
        vision = config.vision_config
        processor = UmtProcessor(
            AutoTokenizer.from_pretrained(source),
            image_size=vision.image_size,
            patch_size=vision.patch_size,
            mlm_probability=config.text_mask_ratio,
        )
    num_frames = data_args.num_frames or default_num_frames
    if num_frames > config.vision_config.num_frames:
        raise ValueError(
            f"--num_frames {num_frames} exceeds the model's position table ({config.vision_config.num_frames} "
            "frames, vision_config.num_frames)."
        )
    return processor.with_num_frames(num_frames)


def _has_processor(path: str) -> bool:
    return not os.path.isdir(path) or os.path.isfile(os.path.join(path, "processor_config.json"))


def load_teacher_if_given(model: torch.nn.Module, model_args: ModelArguments) -> None:
    if model_args.teacher_name_or_path is not None:
        logger.info("loading the CLIP teacher from %s", model_args.teacher_name_or_path)
        model.load_teacher(model_args.teacher_name_or_path)


# ---------------------------------------------------------------------------------------------------- collators


class VideoOnlyCollator(VideoTextCollator):
    """A :class:`VideoTextCollator` for video-only rows (stage 1): ``pixel_values`` (and processor masks), no text."""

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> BatchFeature:
        if not rows:
            raise ValueError("cannot collate an empty list of rows")
        if not self.training:
            return self.processor(videos=[row["video"] for row in rows], return_masks=self.return_masks)
        # One generator per row (VideoTextCollator.row_generator): the same frames and masks on any rank.
        parts = [self.processor(videos=[row["video"]], training=True, return_masks=self.return_masks,
                                generator=self.row_generator(row)) for row in rows]  # fmt: skip
        return BatchFeature({key: torch.cat([part[key] for part in parts]) for key in parts[0]}, tensor_type="pt")


# ---------------------------------------------------------------------------------------------------- saving


def save(model: Any, processor: UmtProcessor, output_dir: str, metrics: Mapping[str, float] | None = None) -> None:
    """``save_pretrained`` the model and the processor into ``output_dir``, and the metrics as ``metrics.json``."""
    os.makedirs(output_dir, exist_ok=True)
    model.save_pretrained(output_dir)
    processor.save_pretrained(output_dir)
    if metrics:
        with open(os.path.join(output_dir, "metrics.json"), "w") as handle:
            json.dump(dict(metrics), handle, indent=2)
    logger.info("saved the model and processor to %s", output_dir)


def train_and_report(trainer: Any, training_args: Any, loss_names: Sequence[str] = ()) -> dict[str, float]:
    """Train (resuming if asked), log the train metrics, and return ``train_loss`` plus the last logged value of
    each loss term in ``loss_names`` that was logged."""
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.log_metrics("train", result.metrics)
    metrics = {"train_loss": result.training_loss}
    for name in loss_names:
        values = [entry[name] for entry in trainer.state.log_history if name in entry]
        if values:
            metrics[name] = values[-1]
    return metrics


def retrieval_eval_metrics(
    model: Any, processor: Any, eval_set: datasets.Dataset, training_args: Any, **kwargs: Any
) -> dict[str, float]:
    """Retrieval metrics of ``model`` (a dual encoder) on ``eval_set``, prefixed ``eval_``; ``kwargs`` go to
    :func:`~hf_videolang.evaluation.retrieval.evaluate_retrieval` (e.g. ``rerank_top_k``).

    Under several processes each rank encodes its share of the videos and texts and the embeddings are gathered
    once; VTM re-ranking (``rerank_top_k``) needs every pair in one process, so it runs whole on every rank."""
    from hf_videolang.evaluation.retrieval import evaluate_retrieval

    kwargs.setdefault("shard_across_ranks", kwargs.get("rerank_top_k") is None)
    result = evaluate_retrieval(
        model, processor, eval_set, batch_size=training_args.per_device_eval_batch_size, device=training_args.device,
        progress=not training_args.disable_tqdm, **kwargs,
    )  # fmt: skip
    return {f"eval_{name}": float(value) for name, value in result.metrics.items()}


def qa_eval_metrics(
    model: Any,
    processor: Any,
    train_set: datasets.Dataset,
    eval_set: datasets.Dataset,
    training_args: Any,
    **forward_kwargs: Any,
) -> dict[str, float]:
    """QA accuracy of ``model`` on ``eval_set``, prefixed ``eval_``: overall, on the multi-frame questions (column
    ``needs_multiple_frames``) and per question type (column ``type``) where the annotations have those columns,
    each next to its blind prior (``eval_prior_*``: the most frequent training answer of the question's type) and
    chance (``eval_chance_*``); the per-type table is logged too. ``forward_kwargs`` go to the model (``top_k``)."""
    from hf_videolang.evaluation.qa import evaluate_qa, qa_baselines

    subsets = {"multi_frame": "needs_multiple_frames"} if "needs_multiple_frames" in eval_set.column_names else {}
    group_by = "type" if "type" in eval_set.column_names and "type" in train_set.column_names else None
    result = evaluate_qa(model, processor, eval_set, training_args.per_device_eval_batch_size, subsets=subsets,
                         group_by=group_by, progress=not training_args.disable_tqdm, **forward_kwargs)  # fmt: skip
    metrics = {f"eval_{name}": float(value) for name, value in result.metrics.items()}
    if group_by is None:
        return metrics
    baselines = qa_baselines(model.config.answer_list, train_set, eval_set, subsets, group_by=group_by)
    for kind in ("prior", "chance"):
        metrics.update({f"eval_{kind}_{name}": float(value) for name, value in baselines[kind].items()})
    lines = [f"{'QA':<28}{'model':>8}{'prior':>8}{'chance':>8}{'questions':>11}"]
    for name, value in result.metrics.items():
        size = result.subset_sizes.get(name.removeprefix("accuracy_"), len(eval_set))
        lines.append(f"{name:<28}{value:>8.2f}{baselines['prior'][name]:>8.2f}{baselines['chance'][name]:>8.2f}"
                     f"{size:>11}")  # fmt: skip
    logger.info("QA accuracy next to the blind per-type prior:\n%s", "\n".join(lines))
    return metrics


def report_and_save(
    trainer: Any,
    model: Any,
    processor: Any,
    metrics: dict[str, float],
    eval_metrics: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Log ``eval_metrics`` and add them to ``metrics``, then save model, processor and metrics on the main process
    into ``trainer.args.output_dir``; returns ``metrics``."""
    if eval_metrics:
        trainer.log_metrics("eval", dict(eval_metrics))
        metrics.update(eval_metrics)
    if trainer.is_world_process_zero():
        save(model, processor, trainer.args.output_dir, metrics)
    return metrics
