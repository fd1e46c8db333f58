"""Model cards rendered from the card sources in ``model_cards/`` with huggingface_hub's ``ModelCard``.

A card source is a pair of files named after a preset: ``<name>.md`` (the Markdown body, no front matter) and
``<name>.yaml`` (the card data: ``ModelCardData`` fields such as ``pipeline_tag``, ``base_model``, ``datasets``,
``tags``, ``license``). Numbers never come from the source: ``eval_results`` (and so the ``model-index``) are built
only from the ``results`` given to :func:`render_model_card`, i.e. numbers this package reproduced. Every body must
have a "Deviations" section saying where the implementation departs from the paper.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

#: Environment variable naming the folder of card sources (default: ``model_cards/`` of the source checkout).
CARDS_DIR_ENV = "HF_VIDEOLANG_MODEL_CARDS"
_REQUIRED_RESULT_KEYS = ("task_type", "dataset_type", "dataset_name", "metric_type", "metric_value")
#: Card-data keys that would carry numbers not produced by this package.
_FORBIDDEN_DATA_KEYS = ("eval_results", "model-index", "model_index")
_DEVIATIONS_HEADING = re.compile(r"^#{1,6}\s+Deviations\b", flags=re.MULTILINE)
_HOW_TO_USE_HEADING = re.compile(r"^#{1,6}\s+How to use\b", flags=re.MULTILINE)
#: Written in card bodies where the repository id goes; replaced when a card is rendered for one repository.
REPO_ID_PLACEHOLDER = "<repo id>"

#: The Hub's task ids (``pipeline_tag`` values it files models under), from huggingface.js ``packages/tasks``.
HUB_TASKS = frozenset("""
    any-to-any audio-classification audio-text-to-text audio-to-audio automatic-speech-recognition depth-estimation
    document-question-answering feature-extraction fill-mask graph-ml image-classification image-feature-extraction
    image-segmentation image-text-to-image image-text-to-text image-text-to-video image-to-3d image-to-image
    image-to-text image-to-video keypoint-detection mask-generation multiple-choice object-detection other
    question-answering reinforcement-learning robotics sentence-similarity summarization table-question-answering
    table-to-text tabular-classification tabular-regression tabular-to-text text-classification text-generation
    text-ranking text-retrieval text-to-3d text-to-audio text-to-image text-to-speech text-to-video
    time-series-forecasting token-classification translation unconditional-image-generation video-classification
    video-text-to-text video-to-video visual-document-retrieval visual-question-answering voice-activity-detection
    zero-shot-classification zero-shot-image-classification zero-shot-object-detection
""".split())
#: Task names of this package that the Hub does not list, and the Hub task a model card files them under.
#: ``video-question-answering`` (the pipeline shipped with the models) answers a question about visual input by
#: ranking an answer list, as the Hub's ``visual-question-answering`` models do (same ``[{"answer", "score"}]``
#: output); ``video-text-to-text`` is for models that generate free text, which these do not.
PIPELINE_TAG_ALIASES = {"video-question-answering": "visual-question-answering"}


class CardSourceError(ValueError):
    """A card source is missing, malformed or dishonest (the message names the file and the problem)."""


def hub_pipeline_tag(tag: str) -> str:
    """The Hub task for a card's ``pipeline_tag`` (see :data:`PIPELINE_TAG_ALIASES`); raises when the Hub has none."""
    tag = PIPELINE_TAG_ALIASES.get(tag, tag)
    if tag not in HUB_TASKS:
        raise CardSourceError(f"pipeline_tag {tag!r} is not a task of the Hub; use one of {sorted(HUB_TASKS)}.")
    return tag


def default_cards_dir() -> Path:
    """``$HF_VIDEOLANG_MODEL_CARDS``, else the card sources installed with the package (``hf_videolang/model_cards``,
    package data built from the top-level ``model_cards/``), else the ``model_cards/`` of the source checkout."""
    if os.environ.get(CARDS_DIR_ENV):
        return Path(os.environ[CARDS_DIR_ENV])
    installed = Path(__file__).resolve().parents[1] / "model_cards"
    if installed.is_dir():
        return installed
    for parent in Path(__file__).resolve().parents:
        if (parent / "model_cards").is_dir():
            return parent / "model_cards"
    raise CardSourceError(
        f"no model_cards/ folder found above {Path(__file__).parent}; set {CARDS_DIR_ENV} or pass a card path."
    )


def find_card_source(source: str | os.PathLike, cards_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """The ``(body .md, data .yaml)`` paths of a card source.

    Args:
        source: a preset name (``"umt-b16"``, looked up in ``cards_dir``) or a path to the ``.md`` body (or to the
            path without suffix); the data file is the sibling ``.yaml`` / ``.yml`` / ``.json`` of the same stem.
        cards_dir: folder of card sources; :func:`default_cards_dir` when None.
    """
    path = Path(source)
    if path.suffix == ".md" or path.parent != Path("."):
        stem = path.with_suffix("") if path.suffix == ".md" else path
    else:
        stem = Path(cards_dir if cards_dir is not None else default_cards_dir()) / str(source)
    body = stem.with_suffix(".md")
    if not body.is_file():
        raise CardSourceError(f"card source {source!r}: no body file {body}.")
    for suffix in (".yaml", ".yml", ".json"):
        if stem.with_suffix(suffix).is_file():
            return body, stem.with_suffix(suffix)
    raise CardSourceError(f"card source {source!r}: no card data {stem}.yaml (or .yml / .json) beside {body.name}.")


def load_card_data(path: str | os.PathLike) -> dict[str, Any]:
    """The card data of a source's ``.yaml`` / ``.json`` file (refused when it writes numbers by hand)."""
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}  # JSON is a subset of YAML
    if not isinstance(data, dict):
        raise CardSourceError(f"{path}: card data must be a mapping, got {type(data).__name__}.")
    forbidden = [key for key in _FORBIDDEN_DATA_KEYS if key in data]
    if forbidden:
        raise CardSourceError(
            f"{path}: {forbidden} may not be written by hand; pass numbers this package reproduced as `results`."
        )
    return data


def _eval_results(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[EvalResult]:
    """``EvalResult``s from ``[{task_type, dataset_type, dataset_name, metric_type, metric_value, ...}, ...]`` or
    ``{"eval_results": [...]}`` (the other keys of each entry are ``EvalResult`` fields, e.g. ``dataset_split``)."""
    entries = results.get("eval_results") if isinstance(results, Mapping) else results
    if not isinstance(entries, Sequence) or isinstance(entries, str) or not entries:
        raise CardSourceError("results: expected a non-empty list of result entries (or {'eval_results': [...]}).")
    out = []
    for i, entry in enumerate(entries):
        missing = [key for key in _REQUIRED_RESULT_KEYS if key not in entry]
        if missing:
            raise CardSourceError(f"results[{i}]: missing {missing}; every result needs {list(_REQUIRED_RESULT_KEYS)}.")
        try:
            out.append(EvalResult(**entry))
        except TypeError as error:
            raise CardSourceError(f"results[{i}]: {error}") from None
    return out


def _results_section(results: list[EvalResult], package_version: str) -> str:
    rows = [
        f"| {r.task_name or r.task_type} | {r.dataset_name} | {r.dataset_split or ''} | "
        f"{r.metric_name or r.metric_type} | {r.metric_value} |"
        for r in results
    ]
    return "\n".join([
        "## Evaluation results",
        "",
        f"Reproduced with hf-videolang {package_version}; these are the only numbers on this card.",
        "",
        "| Task | Dataset | Split | Metric | Value |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ])  # fmt: skip


def render_model_card(
    source: str | os.PathLike,
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    *,
    cards_dir: str | os.PathLike | None = None,
    card_data: Mapping[str, Any] | None = None,
    extra_tags: Sequence[str] = (),
    sections: Sequence[str] = (),
    repo_id: str | None = None,
) -> ModelCard:
    """Render a card source into a ``huggingface_hub.ModelCard``.

    Args:
        source: preset name or path of a card source (see :func:`find_card_source`).
        results: results reproduced by this package, as ``EvalResult`` keyword dicts; they fill ``eval_results``
            (the ``model-index``) and an "Evaluation results" table. None: the card carries no numbers.
        cards_dir: folder of card sources for a preset name.
        card_data: fields that override the source's card data for this upload, e.g. ``datasets`` the weights
            were trained on or ``base_model`` they were fine-tuned from (not numbers: those go in ``results``).
        extra_tags: tags added to the source's (kept once each, in order).
        sections: Markdown sections for one upload (e.g. a "Quick start" snippet for its repository), inserted
            before the source's "How to use" section, else appended.
        repo_id: the repository the card is for; replaces the sources' ``<repo id>`` placeholder.

    Returns:
        The card; ``card.data`` holds ``library_name="transformers"`` and the source's card data.
    """
    from .. import __version__

    body_path, data_path = find_card_source(source, cards_dir)
    body = body_path.read_text(encoding="utf-8").strip() + "\n"
    if body.startswith("---"):
        raise CardSourceError(
            f"{body_path}: the body must not have YAML front matter; put card data in {data_path.name}."
        )
    if not _DEVIATIONS_HEADING.search(body):
        raise CardSourceError(f"{body_path}: a card must have a 'Deviations' section (a '## Deviations' heading).")
    data = {**load_card_data(data_path), **(card_data or {})}
    if any(key in data for key in _FORBIDDEN_DATA_KEYS):
        raise CardSourceError("card_data: evaluation numbers go in `results`, not in the card data.")
    data.setdefault("library_name", "transformers")
    if data.get("pipeline_tag"):
        data["pipeline_tag"] = hub_pipeline_tag(data["pipeline_tag"])
    if extra_tags:
        data["tags"] = list(dict.fromkeys([*(data.get("tags") or []), *extra_tags]))
    if repo_id is not None:
        body = body.replace(REPO_ID_PLACEHOLDER, repo_id)
    for section in sections:
        match = _HOW_TO_USE_HEADING.search(body)
        at = match.start() if match else len(body)
        body = body[:at].rstrip("\n") + "\n\n" + section.strip() + "\n\n" + body[at:].lstrip("\n")
    data.setdefault("model_name", body_path.stem)
    if results is not None:
        evals = _eval_results(results)
        data["eval_results"] = evals
        body += "\n" + _results_section(evals, __version__)
    card_data = ModelCardData(**data)
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")


__all__ = [
    "CARDS_DIR_ENV",
    "HUB_TASKS",
    "PIPELINE_TAG_ALIASES",
    "CardSourceError",
    "default_cards_dir",
    "find_card_source",
    "hub_pipeline_tag",
    "load_card_data",
    "render_model_card",
]
