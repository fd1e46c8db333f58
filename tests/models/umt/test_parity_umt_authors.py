"""Parity with the authors' code: their UMT (vendored in ``reference_umt_authors.py``) with random weights, converted by
``convert_umt_original_to_hf``, gives the same outputs as hf_videolang's UMT.

Unlike ``test_convert_umt.py`` (which round-trips our own inverse key mapping), the reference here is the authors'
module tree: its ``state_dict()`` *is* their checkpoint layout, and its forward *is* their math (per-frame
``keep_temporal`` pooling, ``criterions.get_sim``, xbert's text / fusion modes, the ITM head on ``[CLS]``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from hf_videolang.models.umt import UmtConfig, UmtForPreTraining, UmtForVideoQuestionAnswering, UmtForVideoTextRetrieval
from hf_videolang.models.umt.convert_umt_original_to_hf import (
    ConversionReport,
    convert_checkpoint,
    main,
    map_original_key,
)

sys.path.insert(0, str(Path(__file__).parent))
import reference_umt_authors as authors  # noqa: E402

TOLERANCE = 1e-4
SIZE, PATCH, FRAMES = 32, 8, 4
WIDTH, DEPTH, HEADS = 32, 3, 4
TEXT_LAYERS, FUSION_LAYERS, VOCAB, MAX_LEN = 2, 1, 60, 12
TEACHER_WIDTH, TEACHER_LAYERS, TEACHER_HEADS = 24, 3, 2
UTA_LAYERS, CLIP_DIM, EMBED_DIM, TEMP = 2, 16, 16, 0.05
HEADLESS = ("vision_proj.", "text_proj.", "itm_head.")


def _authors_config() -> SimpleNamespace:
    """The fields of the authors' stage-2 config (``exp/pretraining/b16_25m.py`` layout) their code reads."""
    vision = SimpleNamespace(
        d_model=WIDTH, img_size=SIZE, patch_size=PATCH, encoder_embed_dim=WIDTH, encoder_depth=DEPTH,
        encoder_num_heads=HEADS, drop_path_rate=0.1, num_frames=FRAMES, tubelet_size=1,
        clip_decoder_embed_dim=WIDTH, clip_output_dim=CLIP_DIM, clip_return_layer=UTA_LAYERS,
        clip_student_return_interval=1, clip_img_size=SIZE, clip_return_interval=1, keep_temporal=True,
        video_mask_type="attention", video_mask_ratio=0.8, image_mask_type="attention", image_mask_ratio=0.5,
    )  # fmt: skip
    bert = dict(vocab_size=VOCAB, hidden_size=WIDTH, num_hidden_layers=TEXT_LAYERS + FUSION_LAYERS,
                num_attention_heads=HEADS, intermediate_size=2 * WIDTH, max_position_embeddings=MAX_LEN,
                layer_norm_eps=1e-12, type_vocab_size=2, pad_token_id=0)  # fmt: skip
    text = SimpleNamespace(d_model=WIDTH, fusion_layer=TEXT_LAYERS, bert_config=bert)
    teacher = SimpleNamespace(patch_size=PATCH, width=TEACHER_WIDTH, layers=TEACHER_LAYERS, heads=TEACHER_HEADS)
    model = SimpleNamespace(vision_encoder=vision, text_encoder=text, teacher=teacher, embed_dim=EMBED_DIM, temp=0.07)
    # MLM off in their forward: it draws its masks with a tokenizer; the MLM test gives the masked ids instead.
    criterion = SimpleNamespace(loss_weight=SimpleNamespace(vtc=1.0, mlm=0.0, vtm=1.0, uta=1.0), vtm_hard_neg=True,
                                mlm_masking_prob=0.5, uta_norm_type="l2", uta_loss_type="l2")  # fmt: skip
    return SimpleNamespace(model=model, criterion=criterion)


def _our_config() -> UmtConfig:
    """The same model in hf_videolang terms (what ``--preset`` provides for the released sizes)."""
    text = dict(vocab_size=VOCAB, hidden_size=WIDTH, num_hidden_layers=TEXT_LAYERS, num_attention_heads=HEADS,
                intermediate_size=2 * WIDTH, max_position_embeddings=MAX_LEN)  # fmt: skip
    return UmtConfig(
        vision_config=dict(image_size=SIZE, patch_size=PATCH, num_frames=FRAMES, hidden_size=WIDTH,
                           num_hidden_layers=DEPTH, num_attention_heads=HEADS, intermediate_size=4 * WIDTH),
        text_config=text,
        multimodal_config=dict(text, num_hidden_layers=FUSION_LAYERS),
        teacher_config=dict(hidden_size=TEACHER_WIDTH, intermediate_size=4 * TEACHER_WIDTH,
                            num_hidden_layers=TEACHER_LAYERS, num_attention_heads=TEACHER_HEADS, patch_size=PATCH,
                            image_size=SIZE, projection_dim=CLIP_DIM),
        uta_num_layers=UTA_LAYERS,
        projection_dim=EMBED_DIM,
        pretraining_stage=2,
    )  # fmt: skip


def _randomize(model: torch.nn.Module, seed: int) -> None:
    """Every parameter random, LayerNorm weights and biases included, at scales that keep activations sane; the
    temperature (if any) at ``TEMP``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.ndim >= 2 and not name.endswith("pos_embed"):
                parameter.copy_(noise / parameter[0].numel() ** 0.5)
            elif name.endswith("weight"):  # LayerNorm scales: around 1, sign kept
                parameter.copy_(1.0 + 0.3 * noise)
            else:
                parameter.copy_(0.3 * noise)
        if hasattr(model, "temp"):  # UMT_QA deletes it
            model.temp.fill_(TEMP)


@pytest.fixture(scope="module")
def reference() -> authors.UMT:
    torch.manual_seed(0)
    model = authors.UMT(_authors_config())
    _randomize(model, seed=1)
    return model.eval()


def _save_authors_checkpoint(model: authors.UMT, path: Path, drop: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The authors' training scripts save ``{"model": state_dict, ...}``."""
    state_dict = {key: value.clone() for key, value in model.state_dict().items() if not key.startswith(drop)}
    torch.save({"model": state_dict, "epoch": 9, "global_step": 1234}, path)
    return state_dict


@pytest.fixture(scope="module")
def converted(reference, tmp_path_factory) -> tuple[UmtForPreTraining, ConversionReport, dict]:
    path = tmp_path_factory.mktemp("authors") / "umt_b16_random.pth"
    original = _save_authors_checkpoint(reference, path)
    report = ConversionReport("multi")
    model = convert_checkpoint(path, kind="multi", config=_our_config(), report=report)
    return model.eval(), report, original


@pytest.fixture(scope="module")
def retrieval(converted, tmp_path_factory) -> UmtForVideoTextRetrieval:
    """The converted weights in the retrieval head, through save_pretrained / from_pretrained (safetensors)."""
    folder = tmp_path_factory.mktemp("converted")
    converted[0].save_pretrained(folder)
    return UmtForVideoTextRetrieval.from_pretrained(folder).eval()


@pytest.fixture(scope="module")
def inputs() -> dict[str, torch.Tensor]:
    return make_inputs()


def make_inputs() -> dict[str, torch.Tensor]:
    """Two 4-frame clips and three captions, two of them padded."""
    generator = torch.Generator().manual_seed(2)
    pixel_values = torch.randn(2, FRAMES, 3, SIZE, SIZE, generator=generator)
    input_ids = torch.randint(3, VOCAB, (3, 8), generator=generator)
    input_ids[:, 0] = 1  # a [CLS]-like first token
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 5:] = 0  # one padded caption
    attention_mask[2, 3:] = 0
    input_ids[attention_mask == 0] = 0
    return dict(pixel_values=pixel_values, input_ids=input_ids, attention_mask=attention_mask)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


def _assert_close(name: str, got: torch.Tensor, expected: torch.Tensor) -> None:
    diff = _max_diff(got, expected)
    print(f"{name}: max abs diff {diff:.2e}" + (f" (value {got.item():.6f})" if got.numel() == 1 else ""))
    assert diff < TOLERANCE, f"{name}: max abs diff {diff:.3e} >= {TOLERANCE}"


def _authors_text(reference: authors.UMT, inputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
    text = SimpleNamespace(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    return reference.encode_text(text)


# ---------------------------------------------------------------------------------------------------- conversion report


def test_random_authors_checkpoint_converts_with_every_head_found(converted):
    _, report, _ = converted
    assert report.missing == {}
    assert set(report.found) == {"student", "text_encoder", "multimodal_encoder", "vision_projection",
                                 "text_projection", "logit_scale", "vtm_head", "mlm_head", "uta_head", "teacher"}
    # Only the buffer and the tied decoder, which carry no weights of their own, are not converted.
    assert set(report.ignored) == {"text_encoder.bert.embeddings.position_ids",
                                   "text_encoder.cls.predictions.decoder.weight"}  # fmt: skip


def test_temperature_becomes_logit_scale(converted):
    model, _, _ = converted
    torch.testing.assert_close(model.umt.logit_scale.exp(), torch.tensor(1 / TEMP), rtol=1e-6, atol=0)


def test_every_layer_norm_has_the_authors_epsilon(reference, converted):
    """A wrong eps moves outputs by ~1e-5 only, below the tolerance; so compare them module by module (the student
    and pool_norm 1e-6, the UTA head's Linear_Decoder 1e-5, BERT 1e-12, CLIP 1e-5)."""
    model, _, _ = converted
    checked = {}
    for name, module in reference.named_modules():
        if not isinstance(module, torch.nn.LayerNorm):
            continue
        (ours_key,) = map_original_key(f"{name}.weight", module.weight, "multi", TEXT_LAYERS)
        ours = model.get_submodule(ours_key.rsplit(".", 1)[0])
        assert ours.eps == module.eps, f"{name} (eps {module.eps}) -> {ours_key} (eps {ours.eps})"
        checked[module.eps] = checked.get(module.eps, 0) + 1
    assert checked == {1e-6: 2 * DEPTH + 2, 1e-5: UTA_LAYERS + 2 * TEACHER_LAYERS + 2,
                       1e-12: 2 * (TEXT_LAYERS + FUSION_LAYERS) + FUSION_LAYERS + 2}  # fmt: skip


# ---------------------------------------------------------------------------------------------------- (a) vision


@torch.no_grad()
def test_vision_encoder_tokens_and_pooled_features_match_the_authors(reference, converted, inputs):
    model, _, _ = converted
    pixel_values = inputs["pixel_values"]
    tokens, per_frame = reference.encode_vision(pixel_values, test=True)  # keep_temporal=True
    ours = model.umt.vision_model(pixel_values)
    _assert_close("vision tokens", ours.last_hidden_state, tokens)
    _assert_close("per-frame pooled", model.umt.vision_model.pool_per_frame(ours.last_hidden_state, FRAMES), per_frame)
    # keep_temporal=False: one pooled token over the whole clip.
    _, pooled_global, _ = reference.vision_encoder(pixel_values.permute(0, 2, 1, 3, 4), None, False, False)
    _assert_close("global pooled", ours.pooler_output, pooled_global[:, 0])
    # An image is a 1-frame video: the authors switch to img_pos_embed (the first h*w rows of the same table).
    image_tokens, image_pooled = reference.encode_vision(pixel_values[:, :1], test=True)
    ours_image = model.umt.vision_model(pixel_values[:, :1])
    _assert_close("image tokens", ours_image.last_hidden_state, image_tokens)
    _assert_close("image pooled", model.umt.vision_model.pool_per_frame(ours_image.last_hidden_state, 1), image_pooled)


# ---------------------------------------------------------------------------------------------------- (b) embeddings


@torch.no_grad()
def test_projected_per_frame_video_and_text_embeddings_match_the_authors(reference, converted, inputs):
    model, _, _ = converted
    _, per_frame = reference.encode_vision(inputs["pixel_values"], test=True)
    text_tokens, text_cls = _authors_text(reference, inputs)
    video_expected = F.normalize(reference.vision_proj(per_frame), dim=-1)  # as get_sim normalizes
    text_expected = F.normalize(reference.text_proj(text_cls), dim=-1)

    _assert_close("per-frame video embeds", model.umt.get_video_features(inputs["pixel_values"], per_frame=True),
                  video_expected)  # fmt: skip
    _assert_close("text tokens", model.umt.encode_text(inputs["input_ids"], inputs["attention_mask"]), text_tokens)
    _assert_close("text embeds", model.umt.get_text_features(inputs["input_ids"], inputs["attention_mask"]),
                  text_expected)  # fmt: skip


# ---------------------------------------------------------------------------------------------------- (c) similarity


@torch.no_grad()
def test_video_text_similarities_equal_the_authors_get_sim_per_frame(reference, converted, retrieval, inputs):
    model, _, _ = converted
    _, per_frame = reference.encode_vision(inputs["pixel_values"], test=True)
    _, text_cls = _authors_text(reference, inputs)
    sim_v2t, sim_t2v = authors.get_sim(reference.vision_proj(per_frame), reference.text_proj(text_cls), reference.temp)
    # Per-frame scoring is not the global one on this model: the comparison below tells them apart.
    assert _max_diff(sim_v2t, _global_similarity(reference, inputs, text_cls)) > 100 * TOLERANCE

    output = model.umt(**inputs)
    _assert_close("UmtModel logits_per_video", output.logits_per_video, sim_v2t)
    _assert_close("UmtModel logits_per_text", output.logits_per_text, sim_t2v)

    scored = retrieval(**inputs, return_loss=False)
    _assert_close("retrieval logits_per_text", scored.logits_per_text, sim_t2v)
    _assert_close("retrieval logits_per_video", scored.logits_per_video, sim_v2t)
    # The authors' evaluation ranks with get_sim at temp=1 (retrieval_utils.evaluation): the same order.
    i2t, _ = authors.get_sim(reference.vision_proj(per_frame), reference.text_proj(text_cls))
    _assert_close("retrieval video @ text features", retrieval.get_video_features(inputs["pixel_values"])
                  @ retrieval.get_text_features(inputs["input_ids"], inputs["attention_mask"]).T, i2t)  # fmt: skip


def _global_similarity(reference: authors.UMT, inputs: dict, text_cls: torch.Tensor) -> torch.Tensor:
    _, pooled, _ = reference.vision_encoder(inputs["pixel_values"].permute(0, 2, 1, 3, 4), None, False, False)
    return authors.get_sim(reference.vision_proj(pooled), reference.text_proj(text_cls), reference.temp)[0]


# ---------------------------------------------------------------------------------------------------- (d) VTM / MLM


@torch.no_grad()
def test_multimodal_encoder_and_itm_head_match_the_authors_fusion_mode(reference, converted, retrieval, inputs):
    model, _, _ = converted
    pixel_values = inputs["pixel_values"][[0, 1, 0]]  # three (video, text) pairs
    tokens, _ = reference.encode_vision(pixel_values, test=True)
    text_tokens, _ = _authors_text(reference, inputs)
    fused = reference.get_text_encoder()(
        encoder_embeds=text_tokens,
        attention_mask=inputs["attention_mask"],
        encoder_hidden_states=tokens,
        encoder_attention_mask=torch.ones(tokens.shape[:-1], dtype=torch.long),
        return_dict=True,
        mode="fusion",
    ).last_hidden_state  # as criterions.VTC_VTM_Loss.vtm_loss and retrieval_utils.evaluation
    itm_expected = reference.itm_head(fused[:, 0])

    video_states = model.umt.vision_model(pixel_values).last_hidden_state
    ours_fused = model.umt.encode_multimodal(text_tokens, inputs["attention_mask"], video_states)
    _assert_close("fused tokens", ours_fused, fused)
    _assert_close("ITM logits", retrieval.matching_logits(video_states, inputs["input_ids"], inputs["attention_mask"]),
                  itm_expected)  # fmt: skip
    _assert_close("ITM rerank score", retrieval.rerank(video_states, inputs), itm_expected[:, 1])
    # The MLM head reads the same fused tokens (the authors' BertForMaskedLM in mode="fusion").
    mlm_expected = reference.text_encoder(
        encoder_embeds=text_tokens, attention_mask=inputs["attention_mask"], encoder_hidden_states=tokens,
        encoder_attention_mask=None, return_dict=True, mode="fusion", return_logits=True,
    )  # fmt: skip
    _assert_close("MLM logits", model.mlm_head(ours_fused), mlm_expected)


@torch.no_grad()
def test_multiple_choice_scores_equal_the_authors_retrieval_mc(reference, retrieval):
    """0.7 * p_vtm + 0.3 * softmax over the options of the per-frame VTC score (their MSR-VTT MC evaluation)."""
    generator = torch.Generator().manual_seed(4)
    pixel_values = torch.randn(2, FRAMES, 3, SIZE, SIZE, generator=generator)
    input_ids = torch.randint(3, VOCAB, (2, 5, 7), generator=generator)
    input_ids[..., 0] = 1
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, 1, 4:] = attention_mask[1, 3, 2:] = 0
    input_ids[attention_mask == 0] = 0
    text = SimpleNamespace(input_ids=input_ids.flatten(0, 1), attention_mask=attention_mask.flatten(0, 1))
    expected = authors.multiple_choice_scores(reference, pixel_values, text, num_options_per_q=5)
    ours = retrieval.score_candidates(pixel_values, input_ids, attention_mask)
    _assert_close("multiple-choice scores", ours.exp(), expected)
    assert torch.equal(ours.argmax(-1), expected.argmax(-1))


# ---------------------------------------------------------------------------------------------------- UTA and teacher


@torch.no_grad()
def test_masked_student_uta_head_and_clip_teacher_match_the_authors(reference, converted, inputs):
    model, _, _ = converted
    pixel_values = inputs["pixel_values"]
    generator = torch.Generator().manual_seed(3)
    tokens_per_frame = (SIZE // PATCH) ** 2
    visible = tokens_per_frame - int(tokens_per_frame * 0.8)  # the authors' count: N - int(N * ratio)
    order = torch.rand(2 * FRAMES, tokens_per_frame, generator=generator).argsort(dim=1)
    mask = torch.ones(2 * FRAMES, tokens_per_frame, dtype=torch.bool)
    mask[torch.arange(2 * FRAMES)[:, None], order[:, :visible]] = False
    mask = mask.view(2, -1)

    tokens, _, aligned = reference.vision_encoder(pixel_values.permute(0, 2, 1, 3, 4), mask, False, False)
    ours = model.umt.vision_model(pixel_values, bool_masked_pos=mask, output_layers=model.config.uta_student_layers)
    _assert_close("masked vision tokens", ours.last_hidden_state, tokens)
    _assert_close("UTA head", model.uta_head(ours.alignment_hidden_states, mask), aligned)

    clip_tokens, clip_attention = reference.clip_teacher(pixel_values.permute(0, 2, 1, 3, 4))
    teacher = model.teacher(pixel_values)
    _assert_close("teacher tokens", teacher.hidden_states, clip_tokens)
    _assert_close("teacher [CLS] attention", teacher.cls_attention.flatten(0, 1), clip_attention)


# ---------------------------------------------------------------------------------------------------- losses


def _authors_mask(reference: authors.UMT, pixel_values: torch.Tensor, seed: int) -> torch.Tensor:
    """The semantic mask the authors' forward draws (encode_teacher: multinomial over the teacher's [CLS] attention)."""
    torch.manual_seed(seed)
    mask, _ = reference.encode_teacher(pixel_values.permute(0, 2, 1, 3, 4))
    return mask


@torch.no_grad()
def test_pretraining_losses_match_the_authors_forward(reference, converted, inputs):
    """UTA, VTC and VTM of the authors' UMT.forward on their own semantic mask. Two distinct videos: each has one
    negative, so VTM's hard-negative draw is the same in both implementations."""
    model, _, _ = converted
    pixel_values, idx = inputs["pixel_values"], torch.tensor([0, 1])
    text = SimpleNamespace(input_ids=inputs["input_ids"][:2], attention_mask=inputs["attention_mask"][:2])
    mask = _authors_mask(reference, pixel_values, seed=5)
    torch.manual_seed(5)
    expected = reference(pixel_values, text, idx)
    tokens_per_frame = (SIZE // PATCH) ** 2
    visible = tokens_per_frame - int(tokens_per_frame * 0.8)  # their N_vis, 4 of 16 (round() would keep 3)
    assert (~mask).view(2, FRAMES, -1).sum(-1).eq(visible).all()
    ours_mask = model._draw_mask(model.teacher(pixel_values), FRAMES, torch.Generator().manual_seed(0))
    assert (~ours_mask).view(2, FRAMES, -1).sum(-1).eq(visible).all()

    ours = model(pixel_values, text.input_ids, text.attention_mask, bool_masked_pos=mask, video_ids=idx)
    for name in ("uta", "vtc", "vtm"):
        _assert_close(f"loss_{name}", getattr(ours, f"loss_{name}"), expected[f"loss_{name}"])


@torch.no_grad()
def test_mlm_loss_matches_the_authors_mlm_loss_on_the_same_masked_tokens(reference, converted, inputs):
    model, _, _ = converted
    pixel_values = inputs["pixel_values"]
    input_ids, attention_mask = inputs["input_ids"][:2], inputs["attention_mask"][:2]
    masked = torch.zeros_like(input_ids, dtype=torch.bool)
    masked[0, [2, 4]] = masked[1, 1] = True
    mlm_input_ids = input_ids.masked_fill(masked, 2)  # a [MASK]-like id
    mlm_labels = input_ids.masked_fill(~masked, -100)
    mask = _authors_mask(reference, pixel_values, seed=6)
    vision_embeds = reference.vision_encoder(pixel_values.permute(0, 2, 1, 3, 4), mask, False, False)[0]
    # MLMLoss.mlm_loss verbatim, with its random draw (MLMLoss.mask) replaced by the tokens chosen above.
    reference.criterion_mlm.mask = lambda *args, **kwargs: (mlm_input_ids.clone(), mlm_labels.clone())
    try:
        text = SimpleNamespace(input_ids=input_ids, attention_mask=attention_mask)
        expected = reference.criterion_mlm.mlm_loss(reference.text_encoder, text, vision_embeds, None)
    finally:
        del reference.criterion_mlm.mask
    ours = model(pixel_values, input_ids, attention_mask, bool_masked_pos=mask, mlm_input_ids=mlm_input_ids,
                 mlm_labels=mlm_labels, video_ids=torch.tensor([0, 1]))  # fmt: skip
    _assert_close("loss_mlm", ours.loss_mlm, expected)


# ---------------------------------------------------------------------------------------------------- headless file


def test_checkpoint_without_projection_and_itm_heads_converts_and_reports_them_missing(reference, tmp_path, inputs):
    """The released b16_25m holds no vision_proj / text_proj / itm_head (OpenGVLab/unmasked_teacher issue #26)."""
    path = tmp_path / "b16_25m_like.pth"
    original = _save_authors_checkpoint(reference, path, drop=HEADLESS)
    assert not any(key.startswith(HEADLESS) for key in original)
    report = ConversionReport("multi")
    model = convert_checkpoint(path, kind="multi", config=_our_config(), report=report)

    assert report.missing == {
        "vision_projection": ["umt.vision_projection.bias", "umt.vision_projection.weight"],
        "text_projection": ["umt.text_projection.bias", "umt.text_projection.weight"],
        "vtm_head": ["vtm_head.bias", "vtm_head.weight"],
    }
    assert set(report.found) == {"student", "text_encoder", "multimodal_encoder", "logit_scale", "mlm_head",
                                 "uta_head", "teacher"}  # fmt: skip
    assert set(report.ignored) == {"text_encoder.bert.embeddings.position_ids",
                                   "text_encoder.cls.predictions.decoder.weight"}  # fmt: skip
    text = str(report)
    for name in ("vision_projection", "text_projection", "vtm_head", "umt.vision_projection.weight"):
        assert name in text
    # What the file holds is converted all the same.
    with torch.no_grad():
        tokens, _ = reference.encode_vision(inputs["pixel_values"], test=True)
        ours = model.umt.vision_model(inputs["pixel_values"]).last_hidden_state
    _assert_close("headless vision tokens", ours, tokens)


@torch.no_grad()
def test_fine_tuned_retrieval_checkpoint_with_a_plain_bert_model_converts(tmp_path, inputs):
    """The released fine-tuned files (ret_msrvtt_b16_25m.pth, ...) come from UMT(is_pretrain=False): their text side
    is a BertModel (``text_encoder.encoder.layer.N``, no ``bert.`` and no MLM head)."""
    torch.manual_seed(0)
    reference = authors.UMT(_authors_config(), is_pretrain=False)
    _randomize(reference, seed=7)
    reference.eval()
    path = tmp_path / "ret_msrvtt_like.pth"
    original = _save_authors_checkpoint(reference, path)
    assert "text_encoder.encoder.layer.0.attention.self.query.weight" in original
    report = ConversionReport("multi")
    model = convert_checkpoint(path, kind="multi", config=_our_config(), report=report)
    assert report.missing.keys() == {"mlm_head"}  # a fine-tuned file holds none
    assert set(report.ignored) == {"text_encoder.embeddings.position_ids"}

    _, per_frame = reference.encode_vision(inputs["pixel_values"], test=True)
    _, text_cls = _authors_text(reference, inputs)
    sim_v2t, _ = authors.get_sim(reference.vision_proj(per_frame), reference.text_proj(text_cls), reference.temp)
    _assert_close("fine-tuned logits_per_video", model.umt(**inputs).logits_per_video, sim_v2t)

    # Retrieval fine-tuning losses (tasks/retrieval.py: UMT.forward without UTA, so no mask and per-frame VTC/VTM).
    reference.loss_weight = SimpleNamespace(vtc=1.0, mlm=0.0, vtm=1.0, uta=0.0)
    text = SimpleNamespace(input_ids=inputs["input_ids"][:2], attention_mask=inputs["attention_mask"][:2])
    idx = torch.tensor([0, 1])
    expected = reference(inputs["pixel_values"], text, idx)
    folder = tmp_path / "retrieval"
    model.save_pretrained(folder)
    retrieval = UmtForVideoTextRetrieval.from_pretrained(folder).eval()
    ours = retrieval(inputs["pixel_values"], text.input_ids, text.attention_mask, video_ids=idx, return_loss=True)
    _assert_close("fine-tuning loss_vtc", ours.loss_vtc, expected["loss_vtc"])
    _assert_close("fine-tuning loss_vtm", ours.loss_vtm, expected["loss_vtm"])


@torch.no_grad()
def test_fine_tuned_qa_checkpoint_converts_and_ranks_answers_as_the_authors(tmp_path, inputs):
    """UMT_QA (qa_msrvtt_b16_25m.pth's layout): question states, the answer decoder's ranking (first-token top k,
    then the chain-rule re-ranking of rank_answer) and the training loss."""
    torch.manual_seed(0)
    reference = authors.UMT_QA(_authors_config(), SimpleNamespace(pad_token_id=0))
    _randomize(reference, seed=8)
    reference.eval()
    path = tmp_path / "qa_msrvtt_like.pth"
    _save_authors_checkpoint(reference, path)
    report = ConversionReport("qa")
    model = convert_checkpoint(path, kind="qa", config=_our_config(), report=report)
    assert type(model).__name__ == "UmtForVideoQuestionAnswering"
    assert report.missing == {
        "student": ["umt.vision_model.pool_norm.bias", "umt.vision_model.pool_norm.weight"],
        "logit_scale": ["umt.logit_scale"],
        "text_projection": ["umt.text_projection.bias", "umt.text_projection.weight"],
        "vision_projection": ["umt.vision_projection.bias", "umt.vision_projection.weight"],
        "vtm_head": ["vtm_head.bias", "vtm_head.weight"],
    }
    assert {"text_encoder", "multimodal_encoder", "answer_decoder"} <= set(report.found)
    assert {key for key in report.ignored if not key.startswith("vision_encoder.clip_decoder.")} == {
        "text_encoder.embeddings.position_ids", "text_decoder.bert.embeddings.position_ids",
        "text_decoder.cls.predictions.decoder.weight",
    }  # fmt: skip

    # Six answers "[CLS] tokens [SEP] [SEP]" with distinct first tokens (so the top-k cut has no ties).
    answers = [[1, 10, 3, 3], [1, 11, 12, 3, 3], [1, 13, 3, 3], [1, 14, 15, 3, 3], [1, 16, 3, 3], [1, 17, 18, 3, 3]]
    model.config.answer_list = [f"answer {i}" for i in range(len(answers))]
    model.config.answer_token_ids = answers
    answer_ids = torch.zeros(len(answers), 5, dtype=torch.long)
    for row, ids in enumerate(answers):
        answer_ids[row, : len(ids)] = torch.tensor(ids)
    answer = SimpleNamespace(input_ids=answer_ids, attention_mask=(answer_ids != 0).long())
    question = SimpleNamespace(input_ids=inputs["input_ids"][:2], attention_mask=inputs["attention_mask"][:2])
    pixel_values = inputs["pixel_values"]

    video = reference.encode_vision(pixel_values)
    expected_states = reference.text_encoder(
        question.input_ids, attention_mask=question.attention_mask, encoder_hidden_states=video,
        encoder_attention_mask=torch.ones(video.shape[:-1], dtype=torch.long), return_dict=True,
    ).last_hidden_state  # fmt: skip
    _assert_close("QA question states", model.encode_question(pixel_values, question.input_ids,
                  question.attention_mask), expected_states)  # fmt: skip

    k = 4
    topk_ids, topk_probs = reference(pixel_values, question, answer, k=k, train=False)
    logits = model(pixel_values, question.input_ids, question.attention_mask, top_k=k).logits
    assert torch.equal(logits.topk(k, dim=1).indices, topk_ids)
    _assert_close("QA re-ranked top-k probabilities", logits.gather(1, topk_ids).softmax(-1), topk_probs)

    targets = SimpleNamespace(input_ids=answer_ids[[1, 4]], attention_mask=answer.attention_mask[[1, 4]])
    weights = torch.tensor([0.7, 1.0])
    expected_loss = reference(pixel_values, question, targets, k=[1, 1], weights=weights, train=True)
    ours = model(pixel_values, question.input_ids, question.attention_mask, answer_input_ids=targets.input_ids,
                 answer_attention_mask=targets.attention_mask, answer_weights=weights)  # fmt: skip
    _assert_close("QA loss", ours.loss, expected_loss)

    # The command line converts the same file and saves a folder that loads back with its answer decoder.
    _our_config().save_pretrained(tmp_path / "config")
    main(["--checkpoint", str(path), "--config", str(tmp_path / "config"), "--kind", "qa", "--output",
          str(tmp_path / "out")])  # fmt: skip
    reloaded = UmtForVideoQuestionAnswering.from_pretrained(tmp_path / "out")
    for key, value in model.answer_decoder.state_dict().items():
        assert torch.equal(reloaded.answer_decoder.state_dict()[key], value), key


@torch.no_grad()
def test_fine_tuned_classifier_converts_and_classifies_as_the_authors(tmp_path):
    """single_modality/models/modeling_finetune.py: fc_norm after the mean, no final norm, head; at a size other than
    their 8 x 14 x 14 the sinusoid table is resized and becomes a learnable ``pos_embed`` saved in the file."""
    from functools import partial

    torch.manual_seed(0)
    # The arguments of their vit_base_patch16_224, at tiny sizes.
    reference = authors.FinetuneVisionTransformer(
        img_size=SIZE, patch_size=PATCH, num_classes=5, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, mlp_ratio=4,
        qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), all_frames=FRAMES, tubelet_size=1,
        use_mean_pooling=True,
    )  # fmt: skip
    _randomize(reference, seed=9)
    reference.eval()
    path = tmp_path / "k400_like.pth"
    torch.save({"model": reference.state_dict()}, path)
    config = UmtConfig(
        vision_config=dict(image_size=SIZE, patch_size=PATCH, num_frames=FRAMES, hidden_size=WIDTH,
                           num_hidden_layers=DEPTH, num_attention_heads=HEADS, intermediate_size=4 * WIDTH,
                           use_final_norm=False),
        teacher_config=_our_config().teacher_config.to_dict(), uta_num_layers=UTA_LAYERS, pretraining_stage=1,
        num_labels=5,
    )  # fmt: skip
    report = ConversionReport("classification")
    model = convert_checkpoint(path, kind="classification", config=config, report=report)
    assert report.missing == {} and report.ignored == {}
    assert model.config.vision_config.position_embedding_type == "learnable"

    pixel_values = torch.randn(2, FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(9))
    expected = reference(pixel_values.permute(0, 2, 1, 3, 4))
    _assert_close("classifier logits", model(pixel_values).logits, expected)


@torch.no_grad()
def test_stage1_checkpoint_converts_and_aligns_as_the_authors(tmp_path):
    """single_modality/models/modeling_pretrain_umt.py (stage 1): the masked student and its UTA projections."""
    from functools import partial

    torch.manual_seed(0)
    # The arguments of their pretrain_umt_base_patch16_224, at tiny sizes.
    reference = authors.SinglePretrainVisionTransformer(
        img_size=SIZE, patch_size=PATCH, encoder_embed_dim=WIDTH, encoder_depth=DEPTH, encoder_num_heads=HEADS,
        encoder_num_classes=0, mlp_ratio=4, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_frames=FRAMES, tubelet_size=1, clip_decoder_embed_dim=WIDTH, clip_output_dim=CLIP_DIM,
        clip_norm_type="l2", clip_return_layer=UTA_LAYERS, clip_student_return_interval=1,
    )  # fmt: skip
    _randomize(reference, seed=10)
    reference.eval()
    path = tmp_path / "b16_ptk710_like.pth"
    torch.save({"model": reference.state_dict()}, path)
    config = UmtConfig(
        vision_config=_our_config().vision_config.to_dict(), teacher_config=_our_config().teacher_config.to_dict(),
        uta_num_layers=UTA_LAYERS, pretraining_stage=1,
    )  # fmt: skip
    report = ConversionReport("single")
    model = convert_checkpoint(path, kind="single", config=config, report=report)
    # A stage-1 file holds no teacher (loaded separately) and its encoder no pool_norm.
    assert set(report.missing) == {"teacher", "student"}
    assert report.missing["student"] == ["umt.vision_model.pool_norm.bias", "umt.vision_model.pool_norm.weight"]
    assert report.ignored == {}

    generator = torch.Generator().manual_seed(11)
    pixel_values = torch.randn(2, FRAMES, 3, SIZE, SIZE, generator=generator)
    tokens_per_frame = (SIZE // PATCH) ** 2
    order = torch.rand(2 * FRAMES, tokens_per_frame, generator=generator).argsort(dim=1)
    mask = torch.ones(2 * FRAMES, tokens_per_frame, dtype=torch.bool)
    mask[torch.arange(2 * FRAMES)[:, None], order[:, : tokens_per_frame - int(tokens_per_frame * 0.8)]] = False
    mask = mask.view(2, -1)
    video = pixel_values.permute(0, 2, 1, 3, 4)
    tokens, _ = reference.encoder.forward_features(video, mask)
    aligned = reference(video, mask)  # L2-normalized by their Linear_Decoder

    ours = model.umt.vision_model(pixel_values, bool_masked_pos=mask, output_layers=model.config.uta_student_layers)
    _assert_close("stage-1 masked tokens", ours.last_hidden_state, tokens)
    projected = model.uta_head(ours.alignment_hidden_states, mask)
    _assert_close("stage-1 UTA head (normalized)", F.normalize(projected, dim=-1), aligned)

