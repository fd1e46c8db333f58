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


class CardSourceError(ValueError):
    """A card source is missing, malformed or dishonest (the message names the file and the problem)."""


def default_cards_dir() -> Path:
    """``$HF_VIDEOLANG_MODEL_CARDS``, else the ``model_cards/`` folder of the checkout this package runs from."""
    if os.environ.get(CARDS_DIR_ENV):
        return Path(os.environ[CARDS_DIR_ENV])
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


def _load_card_data(path: Path) -> dict[str, Any]:
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
) -> ModelCard:
    """Render a card source into a ``huggingface_hub.ModelCard``.

    Args:
        source: preset name or path of a card source (see :func:`find_card_source`).
        results: results reproduced by this package, as ``EvalResult`` keyword dicts; they fill ``eval_results``
            (the ``model-index``) and an "Evaluation results" table. None: the card carries no numbers.
        cards_dir: folder of card sources for a preset name.
        card_data: fields that override the source's card data for this upload, e.g. ``datasets`` the weights
            were trained on or ``base_model`` they were fine-tuned from (not numbers: those go in ``results``).

    Returns:
        The card; ``card.data`` holds ``library_name="transformers"`` and the source's card data.
    """
    from .. import __version__

    body_path, data_path = find_card_source(source, cards_dir)
    body = body_path.read_text(encoding="utf-8").strip() + "\n"
    if body.startswith("---"):
        raise CardSourceError(f"{body_path}: the body must not have YAML front matter; put card data in {data_path.name}.")
    if not _DEVIATIONS_HEADING.search(body):
        raise CardSourceError(f"{body_path}: a card must have a 'Deviations' section (a '## Deviations' heading).")
    data = {**_load_card_data(data_path), **(card_data or {})}
    if any(key in data for key in _FORBIDDEN_DATA_KEYS):
        raise CardSourceError("card_data: evaluation numbers go in `results`, not in the card data.")
    data.setdefault("library_name", "transformers")
    data.setdefault("model_name", body_path.stem)
    if results is not None:
        evals = _eval_results(results)
        data["eval_results"] = evals
        body += "\n" + _results_section(evals, __version__)
    card_data = ModelCardData(**data)
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")


__all__ = ["CARDS_DIR_ENV", "CardSourceError", "default_cards_dir", "find_card_source", "render_model_card"]
