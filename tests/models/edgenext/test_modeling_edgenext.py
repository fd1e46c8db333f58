"""EdgeNeXt: sizes of the paper's EdgeNeXt-S, parity with the EdgeNeXt authors' code, and the checkpoint loader."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hf_videolang.models.edgenext import (
    EdgeNextConfig,
    EdgeNextForImageClassification,
    EdgeNextModel,
    convert_edgenext_state_dict,
)

sys.path.insert(0, str(Path(__file__).parent))
import reference_edgenext_authors as reference  # noqa: E402

TINY = dict(depths=[1, 1, 2, 1], hidden_sizes=[16, 32, 48, 64], num_attention_heads=[4] * 4)


def _randomize(module: torch.nn.Module, seed: int = 0) -> None:
    # Layer scale starts at 1e-6, which would make every block an identity: random values everywhere make the
    # comparison see every layer, temperatures and layer scales included.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 0.2)


@pytest.fixture(scope="module")
def authors_small():
    torch.manual_seed(0)
    model = reference.edgenext_small(classifier_dropout=0.0).eval()
    _randomize(model)
    return model


def test_edgenext_small_has_the_papers_parameter_count_and_macs():
    """E-ViLM §4 / EdgeNeXt Table: EdgeNeXt-S has 5.59 M parameters and 1.26 GMACs at 256 px (with its head)."""
    with torch.device("meta"):
        model = EdgeNextForImageClassification(EdgeNextConfig(num_labels=1000))
    params = sum(p.numel() for p in model.parameters())
    assert abs(params / 1e6 - 5.59) / 5.59 < 0.01, params
    model = EdgeNextForImageClassification(EdgeNextConfig(num_labels=1000)).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 256, 256))
    gmacs = counter.get_total_flops() / 2e9  # FlopCounterMode counts a multiply-add as 2 FLOPs
    assert abs(gmacs - 1.26) / 1.26 < 0.05, gmacs


def test_authors_checkpoint_layout_converts_and_matches_their_model(authors_small):
    state_dict, report = convert_edgenext_state_dict({"model": authors_small.state_dict()})
    assert report.layout == "authors" and report.ignored == []
    ours = EdgeNextForImageClassification(EdgeNextConfig(num_labels=1000)).eval()
    ours.load_state_dict(state_dict, strict=True)
    pixels = torch.randn(2, 3, 128, 160, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = authors_small(pixels)
        logits = ours(pixels).logits
        features = ours.edgenext(pixels).pooler_output
    assert expected.abs().max() > 1.0  # the random weights give a non-trivial output
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-4)
    torch.testing.assert_close(features, authors_small.forward_features(pixels), rtol=0, atol=1e-4)


def test_sdpa_and_eager_transposed_attention_agree(authors_small):
    state_dict, _ = convert_edgenext_state_dict(authors_small.state_dict())
    outputs = {}
    for backend in ("sdpa", "eager"):
        model = EdgeNextForImageClassification(EdgeNextConfig(num_labels=1000, attn_implementation=backend)).eval()
        model.load_state_dict(state_dict)
        with torch.no_grad():
            outputs[backend] = model(torch.ones(1, 3, 64, 64)).logits
    torch.testing.assert_close(outputs["sdpa"], outputs["eager"], rtol=0, atol=1e-4)


def test_backbone_conversion_reports_the_dropped_classifier(authors_small):
    state_dict, report = convert_edgenext_state_dict(authors_small.state_dict(), with_classifier=False)
    assert report.ignored == ["head.weight", "head.bias"]
    backbone = EdgeNextModel(EdgeNextConfig())
    backbone.load_state_dict(state_dict, strict=True)


def test_conversion_refuses_a_foreign_state_dict_by_name():
    with pytest.raises(ValueError, match="neither a timm EdgeNeXt state dict"):
        convert_edgenext_state_dict({"encoder.weight": torch.zeros(1)})


def test_grid_hidden_states_and_attentions_have_the_stage_shapes():
    torch.manual_seed(0)
    model = EdgeNextModel(EdgeNextConfig(**TINY, attn_implementation="eager")).eval()
    out = model(torch.randn(2, 3, 64, 64), output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.shape == (2, 64, 2, 2) and out.pooler_output.shape == (2, 64)
    assert [h.shape[1:] for h in out.hidden_states] == [(16, 16, 16), (16, 16, 16), (32, 8, 8), (48, 4, 4), (64, 2, 2)]
    # one SDTA block in stages 1-3, each a (heads, C/heads, C/heads) channel attention whose rows sum to 1
    assert [a.shape for a in out.attentions] == [(2, 4, 8, 8), (2, 4, 12, 12), (2, 4, 16, 16)]
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(2, 4, 8))
    as_tuple = model(torch.randn(2, 3, 64, 64), return_dict=False)
    assert isinstance(as_tuple, tuple) and as_tuple[0].shape == (2, 64, 2, 2)


def test_config_rejects_inconsistent_stage_lists():
    with pytest.raises(ValueError, match="one entry per stage"):
        EdgeNextConfig(depths=[3, 3, 9])
    with pytest.raises(ValueError, match="global_block_counts"):
        EdgeNextConfig(depths=[1, 1, 1, 1], global_block_counts=[0, 2, 1, 1])


def test_auto_classes_round_trip_bit_for_bit(tmp_path):
    from transformers import AutoModel, AutoModelForImageClassification

    import hf_videolang  # noqa: F401  (registers the Auto classes)

    torch.manual_seed(0)
    model = EdgeNextForImageClassification(EdgeNextConfig(**TINY, num_labels=3)).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    again = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    pixels = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(pixels).logits, again(pixels).logits)
    assert type(AutoModel.from_pretrained(tmp_path)) is EdgeNextModel


from models.test_modeling_common import ModelTesterMixin  # noqa: E402


class TestEdgeNextModels(ModelTesterMixin):
    """Hidden states are the stem's and the stages' 4-d maps, one shape per stage (checked above in
    test_grid_hidden_states_and_attentions_have_the_stage_shapes), not the mixin's single (B, L, D) shape."""

    all_model_classes = (EdgeNextModel, EdgeNextForImageClassification)
    remote_code_entry = "default"
    test_hidden_states = False
    test_resize_embeddings = False  # an image model: no token embeddings

    def prepare_config_and_inputs(self, model_class):
        pixels = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        inputs = {"pixel_values": pixels}
        if model_class is EdgeNextForImageClassification:
            inputs["labels"] = torch.tensor([0, 2])
        return EdgeNextConfig(**TINY, num_labels=3), inputs
