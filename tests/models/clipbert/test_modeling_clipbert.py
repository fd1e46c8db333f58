"""Tests of the ClipBERT models: paper defaults, grid encoder, 2D positions, padded pixels kept, G aggregation (Eq. 5),
pre-training losses, multi-clip task heads, Auto classes; the shared checks (gradients, save / load, SDPA,
checkpointing, optional outputs, tuples, resized embeddings, remote code, torch.compile) through `ModelTesterMixin`.
Parity with the authors' code is in ``test_convert_clipbert.py``."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoModelForVisualQuestionAnswering

from hf_videolang.models.clipbert import (
    ClipBertConfig,
    ClipBertForPreTraining,
    ClipBertForVideoQuestionAnswering,
    ClipBertForVideoTextRetrieval,
    ClipBertModel,
    aggregate_clip_scores,
    sample_feature_pixels,
)
from hf_videolang.pipelines.video_question_answering import aggregate_clip_logits as pipeline_aggregate
from models.test_modeling_common import ModelTesterMixin

IMAGE = 128  # 2x2 feature pixels after the stride-32 ResNet and the 2x2 max-pool


def tiny_config(**overrides) -> ClipBertConfig:
    """ResNet of 4 one-block stages (widths 8-32), 2-layer BERT of width 32, 128 px frames (4 visual tokens)."""
    settings = dict(
        vision_config=dict(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
        text_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                         vocab_size=99, max_position_embeddings=32),
        image_size=IMAGE, frames_per_clip=2, num_train_clips=2, num_test_clips=3, answer_list=["a", "b", "c"],
        pixel_random_sampling_size=3,
    )  # fmt: skip
    settings.update(overrides)
    return ClipBertConfig(**settings)


def text_inputs(batch: int = 2, length: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, 99, (batch, length), generator=generator)
    input_ids[:, 0] = 2
    attention_mask = torch.ones_like(input_ids)
    attention_mask[-1, -2:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def clips(batch: int = 2, num_clips: int = 2, frames: int = 2, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, num_clips * frames, 3, IMAGE, IMAGE, generator=generator)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------------- config


def test_defaults_follow_the_paper_and_the_authors_code():
    config = ClipBertConfig()
    vision, text = config.vision_config, config.text_config
    assert (vision.depths, vision.hidden_sizes) == ([3, 4, 6, 3], [256, 512, 1024, 2048])
    assert vision.layer_type == "bottleneck"
    assert vision.downsample_in_bottleneck and not vision.downsample_in_first_stage  # detectron2 STRIDE_IN_1X1
    assert (text.num_hidden_layers, text.hidden_size, text.num_attention_heads) == (12, 768, 12)
    assert (config.image_size, config.grid_size, config.num_visual_tokens) == (448, 7, 49)
    assert (config.num_train_clips, config.frames_per_clip, config.num_test_clips) == (8, 2, 16)
    assert (config.clip_duration, config.clip_aggregation) == (1.0, "logsumexp")
    assert config.pixel_random_sampling_size == 100
    assert (config.mlm_probability, config.itm_negative_probability) == (0.15, 0.5)
    assert config.max_text_length == 20 and config.classifier_hidden_scale == 2
    assert ClipBertConfig(image_size=768).num_visual_tokens == 144  # §3: "the resulting feature map [...] 144 pixels"
    preset = ClipBertConfig.from_preset("clipbert-base", num_train_clips=4)
    assert preset.vision_config.downsample_in_bottleneck and preset.num_train_clips == 4
    # detectron2's FrozenBN: frozen in the preset (and in converted checkpoints), trainable for a CNN from scratch.
    assert preset.frozen_batch_norm and not config.frozen_batch_norm
    assert (preset.num_frozen_stages, config.num_frozen_stages) == (2, 0)  # detectron2's FREEZE_AT=2
    # A partial vision dict keeps grid-feat's stride placement.
    assert tiny_config().vision_config.downsample_in_bottleneck


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(clip_aggregation="sum"), "clip_aggregation must be one of"),
        (dict(image_size=100), "multiple of 64"),
        (dict(num_test_clips=0), "num_test_clips must be a positive integer"),
        (dict(itm_negative_probability=1.5), "itm_negative_probability must be in"),
        (dict(answer_list=["a", "a"]), "duplicate answers"),
        (dict(mlm_loss_weight=-1.0), "mlm_loss_weight must be >= 0"),
        (dict(num_frozen_stages=6), "num_frozen_stages must be an integer in"),
    ],
)
def test_config_rejects_bad_values_with_a_fix(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**overrides)
    with pytest.raises(ValueError, match="unknown preset"):
        ClipBertConfig.from_preset("clipbert-huge")


# ---------------------------------------------------------------------------------------------------- aggregation


def test_logsumexp_softmax_is_eq5_by_hand_and_its_loss_is_the_authors():
    g = torch.tensor([[[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], [[2.0, 2.0, 2.0], [-1.0, 0.0, 4.0]]])  # (B=2, N=2, K=3)
    p = aggregate_clip_scores(g, "logsumexp").softmax(-1)
    exp_sum = g.exp().sum(dim=1)  # sum_i e^{g_i}
    assert torch.allclose(p, exp_sum / exp_sum.sum(-1, keepdim=True), atol=1e-6)  # appendix Eq. 5
    labels = torch.tensor([1, 2])
    ours = F.cross_entropy(aggregate_clip_scores(g, "logsumexp"), labels, reduction="none")
    # src/tasks/run_video_qa.py: logsumexp over clips and answers, minus logsumexp over clips, at the label.
    authors = torch.logsumexp(g.view(2, -1), -1, keepdim=True) - torch.logsumexp(g, dim=1)
    assert torch.allclose(ours, authors.gather(1, labels[:, None]).squeeze(1), atol=1e-6)
    assert torch.allclose(ours, -torch.log(p[torch.arange(2), labels]), atol=1e-6)  # Eq. 6
    assert torch.allclose(aggregate_clip_scores(g[:, :1], "logsumexp"), g[:, 0])  # one clip: identity


@pytest.mark.parametrize("method", ["mean", "max", "logsumexp"])
def test_model_aggregation_is_the_pipelines(method):
    g = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
    ours = aggregate_clip_scores(g, method)
    for video in range(3):
        assert torch.allclose(ours[video], pipeline_aggregate(g[video], method), atol=1e-6)
    expected = {"mean": g.mean(1), "max": g.max(1).values, "logsumexp": torch.logsumexp(g, 1) - math.log(4)}[method]
    assert torch.allclose(ours, expected)


# ---------------------------------------------------------------------------------------------------- base model


def test_grid_encoder_shapes_and_temporal_mean_pooling():
    torch.manual_seed(0)
    model = ClipBertModel(tiny_config()).eval()
    frame = torch.randn(1, 1, 3, IMAGE, IMAGE)
    other = torch.randn(1, 1, 3, IMAGE, IMAGE)
    with torch.no_grad():
        single = model.encode_clips(frame)
        assert single.shape == (1, 2, 2, 32)
        assert torch.allclose(model.encode_clips(frame.repeat(1, 3, 1, 1, 1)), single, atol=1e-6)
        pair = model.encode_clips(torch.cat([frame, other], dim=1))
        # M is the mean of the T feature maps after the CNN (ReLU last), not of the pixels.
        assert torch.allclose(pair, (single + model.encode_clips(other)) / 2, atol=1e-6)
        assert (single >= 0).all()  # the ReLU comes after the max-pool


def test_2d_position_embeddings_differ_by_row_and_by_column():
    torch.manual_seed(0)
    embeddings = ClipBertModel(tiny_config()).visual_embeddings
    grid = torch.zeros(1, 3, 4, 32)
    out = embeddings.add_2d_position_embeddings(grid)[0]
    rows, cols = embeddings.row_position_embeddings.weight, embeddings.col_position_embeddings.weight
    for i in range(3):
        for j in range(4):
            assert torch.equal(out[i, j], rows[i] + cols[j])
    assert torch.allclose(out[1, 2] - out[0, 2], rows[1] - rows[0])  # moving down a row adds the row difference
    assert torch.allclose(out[1, 3] - out[1, 0], cols[3] - cols[0])  # moving right a column, the column one
    assert not torch.allclose(out[0, 1], out[1, 0])  # transposed positions differ


def test_sequence_is_text_then_visual_tokens_with_hidden_states_and_attentions():
    torch.manual_seed(0)
    model = ClipBertModel(tiny_config()).eval()
    text = text_inputs()
    with torch.no_grad():
        out = model(pixel_values=clips(num_clips=1), **text, output_attentions=True, output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 6 + 4, 32) and out.pooler_output.shape == (2, 32)
    assert len(out.hidden_states) == 3 and len(out.attentions) == 2
    assert out.attentions[0].shape == (2, 4, 10, 10)
    # Text padding is masked out; every visual token is attended to.
    assert out.attentions[0][1, :, :, 4:6].abs().max() == 0
    assert (out.attentions[0][:, :, :, 6:] > 0).all()
    assert torch.allclose(out.attentions[0].sum(-1), torch.ones(2, 4, 10), atol=1e-5)
    with torch.no_grad():
        as_tuple = model(pixel_values=clips(num_clips=1), **text, return_dict=False)
    # (the first call ran eager to return attentions; this one SDPA)
    assert torch.allclose(as_tuple[0], out.last_hidden_state, atol=1e-5) and len(as_tuple) == 2


def test_padded_feature_pixels_are_kept_in_attention_as_in_the_authors_code():
    """The authors pad frames with zeros and never mask the padded feature pixels (``visual_attention_mask`` is all
    ones): changing only the padded area changes the [CLS] state, and its tokens get attention."""
    torch.manual_seed(0)
    model = ClipBertModel(tiny_config()).eval()
    frames = torch.randn(1, 1, 3, IMAGE, IMAGE)
    frames[..., :, IMAGE // 2 :] = -2.0  # a frame of half the width, padded on the right (normalized zeros)
    changed = frames.clone()
    changed[..., :, IMAGE // 2 + 48 :] = 3.0  # only inside the padding, far from the content's receptive field edge
    text = text_inputs(batch=1)
    with torch.no_grad():
        out = model(pixel_values=frames, **text, output_attentions=True)
        other = model(pixel_values=changed, **text)
    assert not torch.allclose(out.last_hidden_state[:, 0], other.last_hidden_state[:, 0])
    right_column = [6 + 1, 6 + 3]  # visual tokens (0, 1) and (1, 1) lie in the padding
    assert (out.attentions[-1][0, :, 0, right_column] > 0).all()


# ---------------------------------------------------------------------------------------------------- pre-training


def test_pretraining_loss_is_the_weighted_sum_and_a_zero_weight_term_is_none():
    torch.manual_seed(0)
    model = ClipBertForPreTraining(tiny_config(mlm_loss_weight=0.5, itm_loss_weight=2.0)).train()
    text = text_inputs(batch=4)
    labels = torch.full_like(text["input_ids"], -100)
    labels[:, 2] = text["input_ids"][:, 2]
    masked = text["input_ids"].clone()
    masked[:, 2] = 4
    out = model(pixel_values=clips(batch=4, num_clips=1, frames=1), **text, mlm_input_ids=masked, mlm_labels=labels,
                generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.allclose(out.loss, 0.5 * out.loss_mlm + 2.0 * out.loss_itm)
    assert out.mlm_logits.shape == (4, 6, 99) and out.itm_logits.shape == (4, 2)
    model.config.mlm_loss_weight = 0.0
    out = model(pixel_values=clips(batch=4, num_clips=1, frames=1), **text, itm_labels=torch.tensor([1, 0, 1, 1]))
    assert out.loss_mlm is None and torch.allclose(out.loss, 2.0 * out.loss_itm)
    assert torch.allclose(out.loss_itm, F.cross_entropy(out.itm_logits, torch.tensor([1, 0, 1, 1])))


def test_itm_negatives_replace_captions_with_probability_one_half_and_carry_their_mlm_labels():
    model = ClipBertForPreTraining(tiny_config())
    ids = torch.arange(2000).view(1000, 2)
    source, itm_labels, replaced = model.make_itm_negatives(ids, torch.ones_like(ids), torch.Generator().manual_seed(0))
    assert torch.equal(itm_labels, (~replaced).long())
    assert torch.equal(source[~replaced], torch.arange(1000)[~replaced])
    assert (source[replaced] != torch.arange(1000)[replaced]).all()  # a negative is always another caption
    assert 440 < int(replaced.sum()) < 560
    with pytest.raises(ValueError, match="at least 2"):
        model.make_itm_negatives(ids[:1], torch.ones_like(ids[:1]))


def test_pixel_random_sampling_keeps_100_pixels_in_pretraining_training_only():
    indices = sample_feature_pixels(144, 100, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert indices.shape == (100,) and indices.unique().numel() == 100 and torch.equal(indices, indices.sort().values)
    assert sample_feature_pixels(49, 100, torch.device("cpu")) is None  # fewer pixels than asked: keep them all
    torch.manual_seed(0)
    model = ClipBertForPreTraining(tiny_config(pixel_random_sampling_size=3))
    inputs = dict(pixel_values=clips(num_clips=1, frames=1), **text_inputs(), itm_labels=torch.tensor([1, 1]))
    model.train()
    assert model(**inputs, output_hidden_states=True).hidden_states[-1].shape[1] == 6 + 3
    model.eval()
    with torch.no_grad():
        assert model(**inputs, output_hidden_states=True).hidden_states[-1].shape[1] == 6 + 4
    # Downstream models never sample.
    qa = ClipBertForVideoQuestionAnswering(tiny_config(pixel_random_sampling_size=3)).train()
    assert qa(pixel_values=clips(), **text_inputs(), output_hidden_states=True).hidden_states[-1].shape[1] == 10


# ---------------------------------------------------------------------------------------------------- task heads


@pytest.mark.parametrize("method", ["mean", "max", "logsumexp"])
def test_task_models_aggregate_their_clip_logits_in_training(method):
    torch.manual_seed(0)
    model = ClipBertForVideoQuestionAnswering(tiny_config(clip_aggregation=method)).train()
    labels = torch.tensor([0, 2])
    out = model(pixel_values=clips(num_clips=3), **text_inputs(), labels=labels)
    assert out.clip_logits.shape == (2, 3, 3) and out.logits.shape == (2, 3)
    assert torch.allclose(out.logits, aggregate_clip_scores(out.clip_logits, method))
    assert torch.allclose(out.loss, F.cross_entropy(out.logits, labels))


def test_each_clip_is_scored_alone_and_six_dim_inputs_work():
    torch.manual_seed(0)
    model = ClipBertForVideoTextRetrieval(tiny_config()).eval()
    pixels, text = clips(num_clips=3), text_inputs()
    with torch.no_grad():
        out = model(pixel_values=pixels, **text)
        six = model(pixel_values=pixels.view(2, 3, 2, 3, IMAGE, IMAGE), **text)
        second = model(pixel_values=pixels[:, 2:4], **text)
        one_frame = model(pixel_values=pixels[:, :3], **text, frames_per_clip=1)
    assert torch.allclose(out.clip_logits, six.clip_logits)
    assert torch.allclose(out.clip_logits[:, 1], second.clip_logits[:, 0], atol=1e-5)
    assert one_frame.clip_logits.shape == (2, 3, 2)
    with pytest.raises(ValueError, match="multiple of frames_per_clip"):
        model(pixel_values=pixels[:, :5], **text)


def test_retrieval_scores_candidates_with_the_aggregated_matching_head():
    torch.manual_seed(0)
    model = ClipBertForVideoTextRetrieval(tiny_config()).eval()
    pixels = clips(batch=1, num_clips=2)
    text = text_inputs(batch=3)
    with torch.no_grad():
        scores = model.score_candidates(pixels, text["input_ids"][None], text["attention_mask"][None])
        pairs = model(pixel_values=pixels.expand(3, -1, -1, -1, -1), **text).logits
    assert scores.shape == (1, 3)
    assert torch.allclose(scores[0], pairs.log_softmax(-1)[:, 1], atol=1e-5)
    labels = torch.tensor([1, 0, 0])
    loss = model(pixel_values=pixels.expand(3, -1, -1, -1, -1), **text, labels=labels).loss
    assert torch.allclose(loss, F.cross_entropy(pairs, labels), atol=1e-5)


def test_question_answering_needs_an_answer_list():
    with pytest.raises(ValueError, match="answer_list"):
        ClipBertForVideoQuestionAnswering(tiny_config(answer_list=None))


# ---------------------------------------------------------------------------------------------------- save / load


def test_saved_models_reload_through_their_auto_classes(tmp_path):
    """Bit-exact save / load and remote code are the mixin's; this pins which Auto class gives which ClipBERT model."""
    torch.manual_seed(0)
    model = ClipBertForVideoQuestionAnswering(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is ClipBertConfig
    reloaded = AutoModelForVisualQuestionAnswering.from_pretrained(tmp_path)
    assert type(reloaded) is ClipBertForVideoQuestionAnswering and reloaded.config.answer_list == ["a", "b", "c"]
    base = AutoModel.from_pretrained(tmp_path)
    assert type(base) is ClipBertModel
    assert torch.equal(base.visual_embeddings.row_position_embeddings.weight,
                       model.clipbert.visual_embeddings.row_position_embeddings.weight)  # fmt: skip
    pretraining = ClipBertForPreTraining(tiny_config())
    pretraining.save_pretrained(tmp_path / "pt")
    again = AutoModelForPreTraining.from_pretrained(tmp_path / "pt")
    assert again.cls.predictions.decoder.weight is again.clipbert.embeddings.word_embeddings.weight  # tied


# ---------------------------------------------------------------------------------------------------- shared checks


class TestClipBertModels(ModelTesterMixin):
    """The shared checks (gradients, save / load, SDPA = eager, checkpointing, optional outputs, tuples, resized
    embeddings, remote code, torch.compile) on the base model, pre-training and the two multi-clip task models."""

    all_model_classes = (ClipBertModel, ClipBertForPreTraining, ClipBertForVideoTextRetrieval,
                         ClipBertForVideoQuestionAnswering)  # fmt: skip
    remote_code_entry = "default"  # QA via AutoModelForVisualQuestionAnswering, pre-training via ...ForPreTraining

    def prepare_config_and_inputs(self, model_class):
        config = tiny_config(mlm_loss_weight=0.5, itm_loss_weight=2.0)
        text = text_inputs(batch=3)
        if model_class is ClipBertModel:  # one clip of T = 2 frames per row
            return config, dict(pixel_values=clips(batch=3, num_clips=1), **text)
        if model_class is ClipBertForPreTraining:  # images: 1-frame clips; 3 of the 4 feature pixels sampled
            masked = text["input_ids"].clone()
            masked[:, 2] = 4
            labels = torch.full_like(masked, -100)
            labels[:, 2] = text["input_ids"][:, 2]
            return config, dict(pixel_values=clips(batch=3, num_clips=1, frames=1), **text, mlm_input_ids=masked,
                                mlm_labels=labels, itm_labels=torch.tensor([1, 0, 1]))  # fmt: skip
        labels = torch.tensor([1, 0, 1]) if model_class is ClipBertForVideoTextRetrieval else torch.tensor([0, 2, 1])
        return config, dict(pixel_values=clips(batch=3, num_clips=2), **text, labels=labels)

    def loss_weights(self, config, model_class):
        if model_class is ClipBertForPreTraining:
            return {"loss_mlm": 0.5, "loss_itm": 2.0}
        return None  # the task models: one cross-entropy of the aggregated logits
