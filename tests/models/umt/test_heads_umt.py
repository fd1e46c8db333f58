"""Tests of UMT's task heads (retrieval, QA, classification) and their Auto-class registration, on tiny configs."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForVideoClassification,
    AutoModelForVisualQuestionAnswering,
    AutoProcessor,
    pipeline,
)

import hf_videolang  # noqa: F401  (registers the Auto classes and the pipeline)
from hf_videolang.models.umt import (
    UmtConfig,
    UmtForPreTraining,
    UmtForVideoClassification,
    UmtForVideoQuestionAnswering,
    UmtForVideoTextRetrieval,
    UmtModel,
    UmtProcessor,
)
from hf_videolang.video.io import read_frames

SIZE, PATCH, FRAMES, VOCAB = 32, 8, 2, 80
ANSWERS = ["red", "blue", "green square", "left", "cat"]


def tiny_config(**overrides) -> UmtConfig:
    """Stage-2 UMT without teacher: hidden 32, 2 student layers, 2 frames of 32 px, BERT 1 + 1 layers."""
    vision = dict(image_size=SIZE, patch_size=PATCH, num_frames=FRAMES, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64, drop_path_rate=0.0)  # fmt: skip
    text = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=40, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # fmt: skip
    kwargs = dict(vision_config=vision, text_config=text, multimodal_config=text, teacher_config=None,
                  uta_loss_weight=0.0, projection_dim=16)  # fmt: skip
    kwargs.update(overrides)
    return UmtConfig(**kwargs)


def build(cls, seed: int = 0, **overrides):
    torch.manual_seed(seed)
    return cls(tiny_config(**overrides)).eval()


def videos(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, FRAMES, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def texts(batch: int, length: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.randint(5, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))
    ids[:, 0] = 2
    mask = torch.ones_like(ids)
    mask[0, 4:] = 0
    return ids, mask


@pytest.fixture(scope="module")
def processor(tiny_tokenizer):
    return UmtProcessor(tiny_tokenizer, image_size=SIZE, patch_size=PATCH, num_frames=FRAMES)


@pytest.fixture(scope="module")
def qa_model(tiny_tokenizer):
    torch.manual_seed(0)
    config = tiny_config()
    config.text_config.vocab_size = config.multimodal_config.vocab_size = len(tiny_tokenizer)
    model = UmtForVideoQuestionAnswering(config).eval()
    model.set_answer_list(ANSWERS, tiny_tokenizer)
    return model


# ---------------------------------------------------------------------------------------------------- retrieval


def test_retrieval_scores_are_the_mean_of_per_frame_cosines_and_hooks_agree():
    model = build(UmtForVideoTextRetrieval)
    pixel_values, (ids, mask) = videos(3), texts(4)
    with torch.no_grad():
        out = model(pixel_values, ids, mask)
        video = model.get_video_features(pixel_values)
        frames = model.umt.get_video_features(pixel_values, per_frame=True)
        text = model.get_text_features(ids, mask)
    assert out.logits_per_text.shape == (4, 3) and out.reranked_logits_per_text is None
    assert frames.shape == (3, FRAMES, 16)
    torch.testing.assert_close(frames.norm(dim=-1), torch.ones(3, FRAMES))
    # The authors' get_sim: einsum over frames of normalized embeddings, then the mean over frames.
    per_frame_cos = torch.einsum("vtd,nd->vtn", frames, text).mean(dim=1)
    torch.testing.assert_close(out.logits_per_text, model.umt.logit_scale.exp() * per_frame_cos.T)
    torch.testing.assert_close(out.logits_per_text, model.umt.logit_scale.exp() * text @ video.T)
    torch.testing.assert_close(out.logits_per_video, out.logits_per_text.T)


def test_global_scoring_is_the_cosine_of_one_pooled_embedding():
    model = build(UmtForVideoTextRetrieval, keep_temporal=False)
    pixel_values, (ids, mask) = videos(3), texts(4)
    with torch.no_grad():
        out = model(pixel_values, ids, mask)
        video = model.get_video_features(pixel_values)
        text = model.get_text_features(ids, mask)
    torch.testing.assert_close(video.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(out.logits_per_text, model.umt.logit_scale.exp() * text @ video.T)


def test_retrieval_returns_the_vtc_plus_vtm_loss_in_training_and_accepts_video_ids():
    model = build(UmtForVideoTextRetrieval).train()
    pixel_values, (ids, mask) = videos(4), texts(4)
    video_ids = torch.tensor([0, 1, 1, 2])
    out = model(pixel_values, ids, mask, video_ids=video_ids, generator=torch.Generator().manual_seed(0))
    assert out.loss_vtc is not None and out.loss_vtm is not None
    torch.testing.assert_close(out.loss, out.loss_vtc + out.loss_vtm)
    out.loss.backward()
    assert model.vtm_head.weight.grad.abs().sum() > 0 and model.umt.vision_projection.weight.grad.abs().sum() > 0
    assert model.eval()(pixel_values, ids, mask).loss is None
    # VTC on the per-frame scores, as the authors' VTC_VTM_Loss.vtc_loss with keep_temporal.
    with torch.no_grad():
        frames = model.umt.get_video_features(pixel_values, per_frame=True)
        text = model.get_text_features(ids, mask)
        sim = model.umt.logit_scale.exp() * torch.einsum("vtd,nd->vtn", frames, text).mean(dim=1)
        targets = (video_ids[:, None] == video_ids[None]).float()
        targets = targets / targets.sum(1, keepdim=True)
        expected = (-(sim.log_softmax(1) * targets).sum(1).mean() - (sim.T.log_softmax(1) * targets).sum(1).mean()) / 2
        got = model(pixel_values, ids, mask, video_ids=video_ids, return_loss=True).loss_vtc
    torch.testing.assert_close(got, expected)


def test_rerank_changes_order_only_within_the_top_k():
    model = build(UmtForVideoTextRetrieval, seed=3)
    torch.nn.init.normal_(model.vtm_head.weight, std=2.0)  # make VTM disagree with VTC
    pixel_values, (ids, mask) = videos(5), texts(4)
    k = 2
    with torch.no_grad():
        out = model(pixel_values, ids, mask, rerank_top_k=k)
        states = model.get_video_states(pixel_values)
    vtc, reranked = out.logits_per_text, out.reranked_logits_per_text
    assert reranked.shape == vtc.shape and out.reranked_logits_per_video.shape == vtc.T.shape
    changed = False
    for row in range(4):
        top = set(vtc[row].topk(k).indices.tolist())
        order = reranked[row].argsort(descending=True).tolist()
        assert set(order[:k]) == top  # the top k stay the top k
        assert order[k:] == [i for i in vtc[row].argsort(descending=True).tolist() if i not in top]
        # The top k are ordered by VTM, computed pair by pair through the rerank hook.
        cols = sorted(top)
        with torch.no_grad():
            vtm = model.rerank(states[cols], {"input_ids": ids[[row] * k], "attention_mask": mask[[row] * k]})
        torch.testing.assert_close(reranked[row, cols], vtm)
        changed |= order[:k] != vtc[row].argsort(descending=True).tolist()[:k]
    assert changed, "VTM should reorder at least one top-k list"
    for video in range(5):  # video-to-text: the k best texts of each video
        assert set(out.reranked_logits_per_video[video].topk(k).indices.tolist()) == set(
            vtc[:, video].topk(k).indices.tolist()
        )


def test_score_candidates_mixes_vtm_and_vtc_and_masks_padding():
    model = build(UmtForVideoTextRetrieval, seed=1)
    ids, mask = texts(6)
    ids, mask = ids.view(2, 3, -1), mask.view(2, 3, -1).clone()
    mask[1, 2] = 0  # a padded candidate
    pixel_values = videos(2)
    scores = model.score_candidates(pixel_values, ids, mask)
    assert scores.shape == (2, 3) and scores[1, 2] == float("-inf") and torch.isfinite(scores[0]).all()
    with torch.no_grad():
        states = model.get_video_states(pixel_values[:1]).expand(3, -1, -1)
        p_vtm = model.matching_logits(states, ids[0], mask[0]).softmax(-1)[:, 1]
        sim = model.umt.logit_scale.exp() * model.get_text_features(ids[0], mask[0]) @ model.get_video_features(
            pixel_values[:1]
        ).T
    expected = (0.7 * p_vtm + 0.3 * sim[:, 0].softmax(0)).log()
    torch.testing.assert_close(scores[0], expected)


# ---------------------------------------------------------------------------------------------------- QA


def test_qa_logits_are_answer_log_likelihoods(qa_model, tiny_tokenizer):
    encoding = tiny_tokenizer(["what color is the square ?", "which direction ?"], padding=True, return_tensors="pt")
    pixel_values = videos(2)
    with torch.no_grad():
        out = qa_model(pixel_values, encoding["input_ids"], encoding["attention_mask"])
        assert out.logits.shape == (2, len(ANSWERS)) and (out.logits < 0).all()
        # Recompute answer 2 ("green square", 2 words) of question 1 token by token from the decoder.
        answer = torch.tensor([qa_model.config.answer_token_ids[2]])
        assert answer[0, 0] == tiny_tokenizer.cls_token_id and answer[0, -1] == tiny_tokenizer.sep_token_id
        states = out.question_states[1:]
        log_p = 0.0
        for t in range(1, answer.shape[1]):
            logits = qa_model.answer_decoder(
                input_ids=answer[:, :t], encoder_hidden_states=states,
                encoder_attention_mask=encoding["attention_mask"][1:],
            ).logits[0, -1]  # fmt: skip
            token_log_p = logits.log_softmax(-1)[answer[0, t]]
            log_p = log_p + token_log_p * (2 if t == 1 else 1)  # the authors' score counts the first token twice
    torch.testing.assert_close(out.logits[1, 2], log_p, rtol=1e-4, atol=1e-4)


def test_qa_top_k_keeps_the_best_first_tokens(qa_model, tiny_tokenizer):
    encoding = tiny_tokenizer(["what color is the square ?"], return_tensors="pt")
    with torch.no_grad():
        full = qa_model(videos(1), encoding["input_ids"], encoding["attention_mask"]).logits
        top2 = qa_model(videos(1), encoding["input_ids"], encoding["attention_mask"], top_k=2).logits
    kept = (top2 > -1e4).nonzero()[:, 1]
    assert len(kept) == 2
    torch.testing.assert_close(top2[0, kept], full[0, kept])
    # The kept answers are those whose first token the decoder finds most likely after [CLS].
    with torch.no_grad():
        states = qa_model.encode_question(videos(1), encoding["input_ids"], encoding["attention_mask"])
        first = qa_model.answer_decoder(
            input_ids=torch.tensor([[tiny_tokenizer.cls_token_id]]), encoder_hidden_states=states,
            encoder_attention_mask=encoding["attention_mask"],
        ).logits[0, 0]  # fmt: skip
    first_tokens = torch.tensor([ids[1] for ids in qa_model.config.answer_token_ids])
    assert set(kept.tolist()) == set(first[first_tokens].topk(2).indices.tolist())


def test_qa_training_loss_is_the_answer_nll(qa_model, tiny_tokenizer):
    question = tiny_tokenizer(["what color is the square ?"] * 2, return_tensors="pt")
    answer = tiny_tokenizer(["red", "green square"], padding=True, return_tensors="pt")
    pixel_values = videos(2)
    targets = dict(answer_input_ids=answer["input_ids"], answer_attention_mask=answer["attention_mask"])
    model = qa_model.train()
    try:
        out = model(pixel_values, question["input_ids"], question["attention_mask"], **targets)
        out.loss.backward()
        assert model.answer_decoder.cls.predictions.transform.dense.weight.grad is not None
        assert model.umt.vision_model.blocks[0].attn.qkv.weight.grad is not None
        assert model.umt.text_model.embeddings.word_embeddings.weight.grad is not None
    finally:
        model.zero_grad()
        model.eval()
    with torch.no_grad():
        states = model.encode_question(pixel_values, question["input_ids"], question["attention_mask"])
        token_log_p = model.answer_token_log_probs(
            states, question["attention_mask"], answer["input_ids"], answer["attention_mask"]
        )
        weighted = model(pixel_values, question["input_ids"], question["attention_mask"], **targets,
                         answer_weights=torch.tensor([1.0, 0.0])).loss  # fmt: skip
    nll = -token_log_p.sum(dim=1)
    assert token_log_p[0, 2:].abs().sum() == 0  # "red" is [CLS] red [SEP]: padding adds nothing
    torch.testing.assert_close(out.loss.detach(), nll.mean())
    torch.testing.assert_close(weighted, nll[0] / 2)  # the authors' sum(weight * nll) / B


def test_qa_pipeline_returns_sorted_answers_from_the_answer_list(qa_model, processor, small_video):
    vqa = pipeline("video-question-answering", model=qa_model, processor=processor)
    result = vqa(small_video[0], question="what color is the square ?", top_k=3)
    assert len(result) == 3 and all(item["answer"] in ANSWERS for item in result)
    scores = [item["score"] for item in result]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1 + 1e-6
    # Same answer order as the model's own logits on the same frames.
    frames = processor(videos=small_video[0], text="what color is the square ?")
    with torch.no_grad():
        logits = qa_model(**{k: frames[k] for k in ("pixel_values", "input_ids", "attention_mask")}).logits[0]
    expected = [ANSWERS[i] for i in logits.topk(3).indices.tolist()]
    assert [item["answer"] for item in result] == expected
    mc = vqa(small_video[0], question="what color is the square ?", candidates=["red", "blue"])
    assert {item["answer"] for item in mc} == {"red", "blue"}


def test_qa_needs_an_answer_list(tiny_tokenizer):
    model = build(UmtForVideoQuestionAnswering)
    ids, mask = texts(1)
    with pytest.raises(ValueError, match="set_answer_list"):
        model(videos(1), ids, mask)
    with pytest.raises(ValueError, match="answer_token_ids has 1 entries"):
        tiny_config(answer_list=["a", "b"], answer_token_ids=[[2, 7, 3]])


# ---------------------------------------------------------------------------------------------------- classification


def test_classification_logits_and_loss():
    model = build(UmtForVideoClassification, num_labels=3)
    assert not hasattr(model.umt, "text_model")  # the text side is not built
    pixel_values, labels = videos(2), torch.tensor([0, 2])
    out = model(pixel_values, labels=labels)
    pooled = model.umt.vision_model(pixel_values).pooler_output
    torch.testing.assert_close(out.logits, model.classifier(pooled))
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))


def test_transformers_video_classification_pipeline_runs_umt(processor, small_video):
    model = build(UmtForVideoClassification, num_labels=3, id2label={0: "left", 1: "right", 2: "up"})
    classify = pipeline("video-classification", model=model, video_processor=processor)
    result = classify(small_video[0], num_frames=FRAMES, top_k=3)
    assert {item["label"] for item in result} == {"left", "right", "up"}
    with torch.no_grad():
        probs = model(processor(videos=small_video[0])["pixel_values"]).logits[0].softmax(-1)
    assert result[0]["score"] == pytest.approx(probs.max().item(), abs=1e-5)
    assert result[0]["label"] == model.config.id2label[int(probs.argmax())]


def test_video_classification_pipeline_loads_a_saved_folder_as_saved(processor, small_video, tmp_path):
    model = build(UmtForVideoClassification, num_labels=3, id2label={0: "left", 1: "right", 2: "up"})
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert model.config.num_frames == FRAMES  # the pipeline's default frame count

    classify = pipeline("video-classification", model=str(tmp_path))
    assert type(classify.image_processor).__name__ == "VideoFramesImageProcessor"
    result = classify(small_video[0], top_k=3)
    # transformers' pipeline decodes the first num_frames frames; the saved processor's evaluation transform follows.
    decoded = torch.from_numpy(read_frames(small_video[0], list(range(FRAMES))))
    with torch.no_grad():
        probs = model(processor.transform(decoded, training=False)[None]).logits[0].softmax(-1)
    assert [item["label"] for item in result] == [model.config.id2label[int(i)] for i in probs.argsort(descending=True)]
    assert [item["score"] for item in result] == pytest.approx(probs.sort(descending=True).values.tolist(), abs=1e-5)
    # The processor folder still loads as the package's processor, and the new file did not change it.
    assert UmtProcessor.from_pretrained(tmp_path).to_dict() == processor.to_dict()


# ---------------------------------------------------------------------------------------------------- Auto classes


def test_pretraining_checkpoint_loads_into_every_head(tmp_path):
    pretrained = build(UmtForPreTraining, seed=5)
    pretrained.save_pretrained(tmp_path)
    for cls in (UmtForVideoTextRetrieval, UmtForVideoQuestionAnswering):
        head = cls.from_pretrained(tmp_path)
        torch.testing.assert_close(head.vtm_head.weight, pretrained.vtm_head.weight, rtol=0, atol=0)
    classifier = UmtForVideoClassification.from_pretrained(tmp_path, num_labels=4)
    torch.testing.assert_close(
        classifier.umt.vision_model.patch_embed.proj.weight, pretrained.umt.vision_model.patch_embed.proj.weight
    )


def test_qa_answer_decoder_starts_from_the_pretraining_decoder_and_mlm_head(tmp_path):
    pretrained = build(UmtForPreTraining, seed=6)
    torch.nn.init.normal_(pretrained.mlm_head.predictions.bias)  # zero at init: make the copy visible
    pretrained.save_pretrained(tmp_path)
    plain = UmtForVideoQuestionAnswering.from_pretrained(tmp_path)
    qa = UmtForVideoQuestionAnswering.from_pretraining(tmp_path)
    fusion = pretrained.umt.multimodal_encoder.layer[0]
    decoder = qa.answer_decoder.bert.encoder.layer[0]
    for name in ("attention.self.query.weight", "crossattention.self.value.weight", "output.dense.weight"):
        expected = fusion.get_parameter(name)
        torch.testing.assert_close(decoder.get_parameter(name), expected, rtol=0, atol=0)
        # Without from_pretraining the decoder is a fresh initialization.
        assert not torch.equal(plain.answer_decoder.bert.encoder.layer[0].get_parameter(name), expected)
    torch.testing.assert_close(
        qa.answer_decoder.bert.embeddings.word_embeddings.weight,
        pretrained.umt.text_model.embeddings.word_embeddings.weight, rtol=0, atol=0,
    )
    head, source = qa.answer_decoder.cls.predictions, pretrained.mlm_head.predictions
    torch.testing.assert_close(head.transform.dense.weight, source.transform.dense.weight, rtol=0, atol=0)
    torch.testing.assert_close(head.bias, source.bias, rtol=0, atol=0)
    torch.testing.assert_close(head.decoder.weight, qa.answer_decoder.bert.embeddings.word_embeddings.weight)


@pytest.mark.parametrize(
    ("auto_class", "expected"),
    [
        (AutoModel, UmtModel),
        (AutoModelForPreTraining, UmtForPreTraining),
        (AutoModelForVideoClassification, UmtForVideoClassification),
        (AutoModelForVisualQuestionAnswering, UmtForVideoQuestionAnswering),
    ],
)
def test_auto_round_trip_is_bit_exact(tmp_path, auto_class, expected, tiny_tokenizer):
    config = tiny_config(num_labels=3)
    config.text_config.vocab_size = config.multimodal_config.vocab_size = len(tiny_tokenizer)
    torch.manual_seed(0)
    model = auto_class.from_config(config).eval()
    assert type(model) is expected
    if expected is UmtForVideoQuestionAnswering:
        model.set_answer_list(ANSWERS, tiny_tokenizer)
    model.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is UmtConfig
    loaded = auto_class.from_pretrained(tmp_path).eval()
    assert type(loaded) is expected
    ids, mask = texts(2)
    inputs = {"pixel_values": videos(2)}
    if expected is not UmtForVideoClassification:
        inputs.update(input_ids=ids % len(tiny_tokenizer), attention_mask=mask)
    with torch.no_grad():
        a, b = model(**inputs), loaded(**inputs)
    for key, value in a.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, b[key]), key


def test_auto_processor_round_trip(tmp_path, processor):
    tiny_config().save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded) is UmtProcessor and loaded.num_frames == FRAMES and loaded.image_size == SIZE


# ---------------------------------------------------------------------------------------------------- standard I/O


def _io_inputs(cls):
    pixel_values, (ids, mask) = videos(2), texts(2)
    if cls is UmtForVideoClassification:
        return dict(pixel_values=pixel_values, labels=torch.tensor([0, 1]))
    return dict(pixel_values=pixel_values, input_ids=ids, attention_mask=mask)


@pytest.mark.parametrize("cls", [UmtModel, UmtForVideoTextRetrieval, UmtForVideoClassification])
def test_every_model_returns_hidden_states_attentions_and_tuples(cls):
    model = build(cls, num_labels=2)
    inputs = _io_inputs(cls)
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True, output_attentions=True)
        as_tuple = model(**inputs, return_dict=False)
    vision = out.vision_model_output if cls is UmtModel else out
    assert len(vision.hidden_states) == 3 and vision.hidden_states[0].shape == (2, FRAMES * 16, 32)
    assert len(vision.attentions) == 2 and vision.attentions[0].shape == (2, 4, FRAMES * 16, FRAMES * 16)
    assert isinstance(as_tuple, tuple)
    if cls is UmtModel:
        first = out.logits_per_video
    else:
        first = out.logits_per_text if cls is UmtForVideoTextRetrieval else out.loss
    torch.testing.assert_close(as_tuple[0], first)


def test_vision_model_takes_return_dict_false():
    model = build(UmtModel)
    with torch.no_grad():
        out = model.vision_model(videos(2), return_dict=False)
    assert isinstance(out, tuple) and out[0].shape == (2, FRAMES * 16, 32)


def test_resize_token_embeddings_resizes_the_text_encoder_and_the_tied_mlm_decoder():
    model = build(UmtForPreTraining)
    model.resize_token_embeddings(VOCAB + 7)
    assert model.umt.text_model.embeddings.word_embeddings.weight.shape[0] == VOCAB + 7
    assert model.mlm_head.predictions.decoder.weight.shape[0] == VOCAB + 7
    assert model.config.text_config.vocab_size == VOCAB + 7
    retrieval = build(UmtForVideoTextRetrieval)
    retrieval.resize_token_embeddings(VOCAB + 3)
    assert retrieval.get_input_embeddings().weight.shape[0] == VOCAB + 3


def test_qa_answers_are_tokenized_with_the_authors_trailing_sep(qa_model, tiny_tokenizer):
    from hf_videolang.models.umt.modeling_umt import tokenize_answers

    ids = tokenize_answers(tiny_tokenizer, ["red"])["input_ids"][0]
    assert ids[0] == tiny_tokenizer.cls_token_id and ids[-2:] == [tiny_tokenizer.sep_token_id] * 2
    assert qa_model.config.answer_token_ids[0] == ids


def test_qa_trains_from_answer_index_labels():
    torch.manual_seed(0)
    model = build(UmtForVideoQuestionAnswering)
    model.config.answer_list = ["a", "b"]
    model.config.answer_token_ids = [[2, 10, 3, 3], [2, 11, 3, 3]]
    pixel_values, (ids, mask) = videos(2), texts(2)
    out = model(pixel_values, ids, mask, labels=torch.tensor([1, -100]), video_ids=torch.tensor([0, 1]))
    direct = model(pixel_values, ids, mask, answer_input_ids=torch.tensor([[2, 11, 3, 3], [2, 10, 3, 3]]),
                   answer_weights=torch.tensor([1.0, 0.0]))  # fmt: skip
    torch.testing.assert_close(out.loss, direct.loss)
