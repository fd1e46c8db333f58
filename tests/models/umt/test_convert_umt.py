"""Tests of the conversion of the authors' UMT checkpoints, on tiny configurations with the original key layout."""

from __future__ import annotations

import math
import re

import pytest
import torch

from hf_videolang.models.umt import UmtConfig, UmtForPreTraining, UmtForVideoClassification
from hf_videolang.models.umt.convert_umt_original_to_hf import (
    ConversionReport,
    convert_checkpoint,
    interpolate_position_table,
    load_original_state_dict,
    main,
)

SIZE, PATCH, FRAMES = 32, 8, 2
TEXT_LAYERS, FUSION_LAYERS = 2, 1


def _config(stage: int, **vision_overrides) -> UmtConfig:
    vision = dict(image_size=SIZE, patch_size=PATCH, num_frames=FRAMES, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64, drop_path_rate=0.0)  # fmt: skip
    vision.update(vision_overrides)
    text = dict(vocab_size=50, hidden_size=32, num_hidden_layers=TEXT_LAYERS, num_attention_heads=4,
                intermediate_size=64, max_position_embeddings=16)  # fmt: skip
    teacher = dict(hidden_size=24, intermediate_size=48, num_hidden_layers=3, num_attention_heads=2,
                   patch_size=PATCH, image_size=SIZE, projection_dim=16)  # fmt: skip
    kwargs = dict(vision_config=vision, teacher_config=teacher, uta_num_layers=2, projection_dim=16,
                  pretraining_stage=stage)  # fmt: skip
    if stage == 2:
        kwargs.update(text_config=text, multimodal_config=dict(text, num_hidden_layers=FUSION_LAYERS))
    return UmtConfig(**kwargs)


def _random_model(stage: int, seed: int = 0) -> UmtForPreTraining:
    """A model whose every parameter is random (LayerNorms and biases included), so a wrong mapping shows."""
    torch.manual_seed(seed)
    model = UmtForPreTraining(_config(stage))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter))
        if stage == 2:
            model.umt.logit_scale.fill_(2.5)
    return model


class PickledArgs:
    """Stands for the authors' pickled argparse / EasyDict training config."""


# ---------------------------------------------------------------------------------------------------- inverse mapping


def _to_original(hf: dict[str, torch.Tensor], kind: str) -> dict[str, torch.Tensor]:
    """Write an hf_videolang state dict in the authors' layout (the inverse of the conversion)."""
    out: dict[str, torch.Tensor] = {}
    vision_prefix = "encoder." if kind == "single" else "vision_encoder.encoder."
    decoder_prefix = "clip_decoder." if kind == "single" else "vision_encoder.clip_decoder."
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in hf.items():
        value = value.clone()
        if key.startswith("umt.vision_model.pool_norm."):
            if kind == "multi":
                out["vision_encoder." + key[len("umt.vision_model.") :]] = value
        elif key.startswith("umt.vision_model."):
            out[vision_prefix + key[len("umt.vision_model.") :]] = value
        elif key.startswith("uta_head.projections."):
            out[decoder_prefix + key[len("uta_head.projections.") :]] = value
        elif key.startswith("teacher."):
            if kind == "multi":
                _clip_to_original(key, value, out, qkv)
        elif key.startswith("umt.text_model."):
            out["text_encoder.bert." + key[len("umt.text_model.") :]] = value
        elif key.startswith("umt.multimodal_encoder.layer."):
            index, rest = key[len("umt.multimodal_encoder.layer.") :].split(".", 1)
            out[f"text_encoder.bert.encoder.layer.{int(index) + TEXT_LAYERS}.{rest}"] = value
        elif key.startswith("mlm_head."):
            out["text_encoder.cls." + key[len("mlm_head.") :]] = value
        elif key == "umt.logit_scale":
            out["temp"] = torch.exp(-value)
        else:
            names = {"umt.vision_projection": "vision_proj", "umt.text_projection": "text_proj", "vtm_head": "itm_head"}
            module, name = key.rsplit(".", 1)
            out[f"{names[module]}.{name}"] = value
    for (layer, kind_), parts in qkv.items():
        out[f"clip_teacher.transformer.resblocks.{layer}.attn.in_proj_{kind_}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]]
        )
    return out


def _clip_to_original(key: str, value: torch.Tensor, out: dict, qkv: dict) -> None:
    key = key.replace("teacher.clip.vision_model.", "")
    simple = {
        "embeddings.class_embedding": "class_embedding",
        "embeddings.position_embedding.weight": "positional_embedding",
        "pre_layrnorm.weight": "ln_pre.weight",
        "pre_layrnorm.bias": "ln_pre.bias",
        "post_layernorm.weight": "ln_post.weight",
        "post_layernorm.bias": "ln_post.bias",
    }
    if key in simple:
        out["clip_teacher." + simple[key]] = value
    elif key == "embeddings.patch_embedding.weight":
        out["clip_teacher.conv1.weight"] = value.unsqueeze(2)  # the authors' Conv3d
    elif key == "teacher.clip.visual_projection.weight":
        out["clip_teacher.proj"] = value.T.contiguous()
    else:
        layer, rest = re.fullmatch(r"encoder\.layers\.(\d+)\.(.+)", key).groups()
        match = re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest)
        if match:
            qkv.setdefault((layer, match.group(2)), {})[match.group(1)] = value
            return
        names = {"layer_norm1": "ln_1", "layer_norm2": "ln_2", "self_attn.out_proj": "attn.out_proj",
                 "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj"}  # fmt: skip
        module, name = rest.rsplit(".", 1)
        out[f"clip_teacher.transformer.resblocks.{layer}.{names[module]}.{name}"] = value


# ---------------------------------------------------------------------------------------------------- tests


def _assert_round_trip(source: UmtForPreTraining, converted: UmtForPreTraining, skipped: str | None) -> int:
    expected, got = source.state_dict(), converted.state_dict()
    assert expected.keys() == got.keys()
    checked = 0
    for key, value in expected.items():
        if skipped and re.fullmatch(skipped, key):
            continue
        if key == "umt.logit_scale":  # log(1 / exp(-x)) is exact only up to rounding
            torch.testing.assert_close(got[key], value)
        else:
            assert torch.equal(got[key], value), key
        checked += 1
    return checked


def test_multi_modality_checkpoint_round_trips_exactly(tmp_path):
    source = _random_model(stage=2)
    original = _to_original(source.state_dict(), "multi")
    # The authors' BERT stores the (tied) decoder weight and the old position_ids buffer too.
    word_embeddings = original["text_encoder.bert.embeddings.word_embeddings.weight"]
    original["text_encoder.cls.predictions.decoder.weight"] = word_embeddings
    original["text_encoder.bert.embeddings.position_ids"] = torch.arange(16).unsqueeze(0)
    path = tmp_path / "umt_multi.pth"
    torch.save({"model": original, "epoch": 3}, path)

    converted = convert_checkpoint(path, kind="multi", config=_config(2))
    assert _assert_round_trip(source, converted, skipped=None) == len(source.state_dict())
    assert converted.mlm_head.predictions.decoder.weight is converted.umt.text_model.embeddings.word_embeddings.weight


def test_hand_written_original_keys_land_on_the_right_parameters(tmp_path):
    source = _random_model(stage=2, seed=1)
    original = _to_original(source.state_dict(), "multi")
    # Pin the mapping with keys spelled as in the authors' code, independently of the inverse helper.
    pinned = {
        "vision_encoder.encoder.blocks.0.attn.q_bias": "umt.vision_model.blocks.0.attn.q_bias",
        "vision_encoder.encoder.blocks.1.attn.v_bias": "umt.vision_model.blocks.1.attn.v_bias",
        "vision_encoder.encoder.blocks.0.attn.qkv.weight": "umt.vision_model.blocks.0.attn.qkv.weight",
        "vision_encoder.encoder.norm.weight": "umt.vision_model.norm.weight",
        "vision_encoder.clip_decoder.1.head.weight": "uta_head.projections.1.head.weight",
        "text_encoder.bert.encoder.layer.1.attention.self.query.weight":
            "umt.text_model.encoder.layer.1.attention.self.query.weight",
        "text_encoder.bert.encoder.layer.2.crossattention.self.key.weight":
            "umt.multimodal_encoder.layer.0.crossattention.self.key.weight",
        "itm_head.bias": "vtm_head.bias",
        "text_encoder.cls.predictions.transform.dense.weight": "mlm_head.predictions.transform.dense.weight",
        "clip_teacher.ln_post.bias": "teacher.clip.vision_model.post_layernorm.bias",
    }  # fmt: skip
    for original_key in pinned:
        assert original_key in original, original_key
        original[original_key] = torch.full_like(original[original_key], 7.0)
    original["temp"] = torch.tensor(0.05)
    in_proj = original["clip_teacher.transformer.resblocks.2.attn.in_proj_weight"]
    in_proj.copy_(torch.arange(in_proj.numel(), dtype=torch.float32).view_as(in_proj))
    torch.save({"module": original}, tmp_path / "ckpt.pth")

    model = convert_checkpoint(tmp_path / "ckpt.pth", kind="multi", config=_config(2))
    state = model.state_dict()
    for target in pinned.values():
        assert bool((state[target] == 7.0).all()), target
    assert math.isclose(model.umt.logit_scale.item(), math.log(1 / 0.05), rel_tol=1e-6)
    attn = model.teacher.clip.vision_model.encoder.layers[2].self_attn
    width = attn.q_proj.weight.shape[0]
    assert torch.equal(attn.q_proj.weight, in_proj[:width])
    assert torch.equal(attn.k_proj.weight, in_proj[width : 2 * width])
    assert torch.equal(attn.v_proj.weight, in_proj[2 * width :])


def test_single_modality_checkpoint_round_trips_and_cli_saves(tmp_path):
    source = _random_model(stage=1, seed=2)
    original = _to_original(source.state_dict(), "single")
    assert "encoder.blocks.0.attn.q_bias" in original and "clip_decoder.0.norm.weight" in original
    path = tmp_path / "umt_single.pth"
    torch.save({"model": original}, path)
    _config(1).save_pretrained(tmp_path / "config")

    model = main(["--checkpoint", str(path), "--config", str(tmp_path / "config"), "--kind", "single",
                  "--output", str(tmp_path / "out"), "--safe-serialization"])  # fmt: skip
    # The teacher is not in single-modality checkpoints, nor is pool_norm (identity init); everything else is.
    skipped = r"teacher\..*|umt\.vision_model\.pool_norm\..*"
    assert _assert_round_trip(source, model, skipped) > 30
    assert (tmp_path / "out" / "model.safetensors").is_file()
    reloaded = UmtForPreTraining.from_pretrained(tmp_path / "out")
    for key, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key


def test_unexpected_key_is_ignored_and_reported_by_name():
    original = _to_original(_random_model(stage=1).state_dict(), "single")
    original["encoder.blocks.0.attn.mystery_scale"] = torch.ones(3)
    report = ConversionReport("single")
    convert_checkpoint(original, kind="single", config=_config(1), report=report)
    assert "encoder.blocks.0.attn.mystery_scale" in report.ignored
    assert "encoder.blocks.0.attn.mystery_scale" in str(report)


def test_checkpoint_without_heads_converts_and_the_report_lists_them():
    original = _to_original(_random_model(stage=2).state_dict(), "multi")
    for key in [k for k in original if k.startswith(("vision_proj.", "text_proj.", "itm_head."))]:
        del original[key]  # as the authors' b16_25m (their issue #26)
    report = ConversionReport("multi")
    convert_checkpoint(original, kind="multi", config=_config(2), report=report)
    assert set(report.missing) == {"vision_projection", "text_projection", "vtm_head"}
    assert report.missing["vtm_head"] == ["vtm_head.bias", "vtm_head.weight"]
    assert "student" in report.found and "text_encoder" in report.found
    assert "heads missing" in str(report) and "umt.vision_projection.weight" in str(report)


def test_wrong_shapes_are_rejected_and_finetuned_classifiers_convert():
    original = _to_original(_random_model(stage=1).state_dict(), "single")
    with pytest.raises(ValueError, match="shape mismatches"):
        convert_checkpoint(original, kind="single", config=_config(1, intermediate_size=48))
    vision = {k[len("encoder."):]: v for k, v in original.items() if k.startswith("encoder.") and "norm." != k[8:13]}
    vision = {k: v for k, v in vision.items() if not k.startswith("norm.")}
    vision.update({"fc_norm.weight": torch.randn(32), "fc_norm.bias": torch.randn(32),
                   "head.weight": torch.randn(5, 32), "head.bias": torch.randn(5)})  # fmt: skip
    config = _config(1, use_final_norm=False).with_overrides(num_labels=5)
    report = ConversionReport("classification")
    model = convert_checkpoint(vision, kind="classification", config=config, report=report)
    assert isinstance(model, UmtForVideoClassification) and not report.ignored
    assert torch.equal(model.classifier.weight, vision["head.weight"])
    assert torch.equal(model.umt.vision_model.pool_norm.weight, vision["fc_norm.weight"])
    assert isinstance(model.umt.vision_model.norm, torch.nn.Identity)


def test_learnable_positions_are_interpolated_in_time():
    tokens_per_frame = (SIZE // PATCH) ** 2
    original = _to_original(_random_model(stage=1).state_dict(), "single")
    # A 4-frame learnable table whose value is the frame index: linear resampling to 2 frames gives 0.5 and 2.5.
    table = torch.arange(4.0).repeat_interleave(tokens_per_frame)[None, :, None].expand(1, -1, 32).clone()
    original["encoder.pos_embed"] = table
    model = convert_checkpoint(original, kind="single", config=_config(1))
    assert model.config.vision_config.position_embedding_type == "learnable"
    resized = model.umt.vision_model.pos_embed.table
    assert resized.shape == (FRAMES * tokens_per_frame, 32)
    torch.testing.assert_close(resized[:tokens_per_frame], torch.full((tokens_per_frame, 32), 0.5))
    torch.testing.assert_close(resized[tokens_per_frame:], torch.full((tokens_per_frame, 32), 2.5))
    with pytest.raises(ValueError, match="not a multiple"):
        interpolate_position_table(torch.zeros(1, 17, 8), 2, tokens_per_frame)


def test_loader_unwraps_and_refuses_pickled_objects(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {"module.a": torch.ones(2)}}, path)
    assert list(load_original_state_dict(path)) == ["a"]
    torch.save({"model": {"a": torch.ones(2)}, "args": PickledArgs()}, tmp_path / "pickled.pth")
    with pytest.raises(ValueError, match="--allow-pickle"):
        load_original_state_dict(tmp_path / "pickled.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_original_state_dict(tmp_path / "nope.pth")
