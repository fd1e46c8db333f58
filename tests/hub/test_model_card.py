"""Tests of model-card rendering from the card sources in model_cards/."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from hf_videolang.hub.model_card import CardSourceError, default_cards_dir, render_model_card

RESULTS = [dict(task_type="text-to-video-retrieval", dataset_type="hf-videolang/moving-shapes",
                dataset_name="moving shapes (synthetic)", dataset_split="test", metric_type="recall@1",
                metric_value=0.4375)]  # fmt: skip


@pytest.mark.parametrize("name", ["umt-b16", "umt-l16"])
def test_card_front_matter_fields_and_deviations_without_results(name):
    card = render_model_card(name)
    assert isinstance(card, ModelCard)
    data = card.data.to_dict()
    assert data["library_name"] == "transformers"
    # The Hub task the source's video-question-answering maps to.
    assert data["pipeline_tag"] == "visual-question-answering"
    assert data["base_model"].startswith("openai/clip-vit-")
    assert "umt" in data["tags"] and data["license"] == "apache-2.0"
    assert "model-index" not in data and "model-index" not in card.content
    assert "## Deviations" in card.text
    # The rendered README round-trips through huggingface_hub's parser.
    reparsed = ModelCard(str(card))
    assert reparsed.data.pipeline_tag == "visual-question-answering"


def test_model_index_and_table_only_from_given_results():
    card = render_model_card("umt-b16", results=RESULTS, card_data={"datasets": ["hf-videolang/moving-shapes"]})
    data = card.data.to_dict()
    assert data["datasets"] == ["hf-videolang/moving-shapes"]
    (entry,) = data["model-index"]
    (result,) = entry["results"]
    assert result["metrics"] == [{"type": "recall@1", "value": 0.4375}]
    assert result["dataset"]["split"] == "test"
    assert "| text-to-video-retrieval | moving shapes (synthetic) | test | recall@1 | 0.4375 |" in card.text
    # Exactly the given number, nothing else that looks like a result.
    assert card.content.count("0.4375") == 2


def test_bad_results_and_hand_written_numbers_are_refused(tmp_path):
    with pytest.raises(CardSourceError, match=r"results\[0\]: missing \['metric_value'\]"):
        render_model_card("umt-b16", results=[{k: v for k, v in RESULTS[0].items() if k != "metric_value"}])
    with pytest.raises(CardSourceError, match="evaluation numbers go in `results`"):
        render_model_card("umt-b16", card_data={"eval_results": []})
    (tmp_path / "x.md").write_text("# X\n")
    (tmp_path / "x.yaml").write_text("pipeline_tag: video-question-answering\n")
    with pytest.raises(CardSourceError, match="Deviations"):
        render_model_card(tmp_path / "x.md")
    (tmp_path / "x.md").write_text("# X\n\n## Deviations\n\nNone.\n")
    (tmp_path / "x.yaml").write_text("model-index: []\n")
    with pytest.raises(CardSourceError, match="may not be written by hand"):
        render_model_card("x", cards_dir=tmp_path)
    with pytest.raises(CardSourceError, match="no body file"):
        render_model_card("does-not-exist")


def test_default_cards_dir_holds_umt_sources():
    folder = default_cards_dir()
    expected = {"umt-b16.md", "umt-b16.yaml", "umt-l16.md", "umt-l16.yaml", "README.md"}
    assert expected <= {p.name for p in folder.iterdir()}
