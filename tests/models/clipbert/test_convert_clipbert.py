"""Tests of the ClipBERT converter: parity with the authors' model (vendored in ``reference_clipbert_authors.py``,
random weights) within 1e-4 for the base model and the QA, retrieval and pre-training heads, the report of found /
missing / ignored keys, and the CLI folder loading with the Auto classes."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

sys.path.insert(0, str(Path(__file__).parent))
import reference_clipbert_authors as authors_code  # noqa: E402

from hf_videolang.cli import main as cli_main  # noqa: E402
from hf_videolang.hub.convert import CONVERTERS, convert_and_push  # noqa: E402
from hf_videolang.hub.push import PushError  # noqa: E402
from hf_videolang.models.clipbert import (  # noqa: E402
    ClipBertConfig,
    ClipBertForPreTraining,
    ClipBertForVideoQuestionAnswering,
    ClipBertForVideoTextRetrieval,
    ClipBertModel,
    ClipBertProcessor,
)
from hf_videolang.models.clipbert.convert_clipbert_original_to_hf import (  # noqa: E402
    convert_checkpoint,
    convert_clipbert_state_dict,
    load_answer_list,
    main,
)
from hf_videolang.video.transforms import normalize, resize_longer_and_pad  # noqa: E402

IMAGE, HIDDEN, VOCAB = 128, 32, 99
STEM, STAGES, DEPTHS = 8, [16, 32, 48, 64], [2, 1, 2, 1]  # out / 4 bottlenecks, like R-50's; 2-block stages too
ATOL = 1e-4


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def authors_model(transformer_cls, num_labels: int = 3, seed: int = 0) -> authors_code.ClipBert:
    """The authors' ClipBert with every weight and FrozenBN statistic random (so that a wrong mapping shows)."""
    torch.manual_seed(seed)
    config = authors_code.authors_config(
        hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37, vocab_size=VOCAB,
        max_position_embeddings=32, backbone_channel_in_size=STAGES[-1], num_labels=num_labels,
    )  # fmt: skip
    model = authors_code.ClipBert(config, transformer_cls, STEM, STAGES, DEPTHS).eval()
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        authors_code.randomize_frozen_batch_norms(model, generator)
        for name, parameter in model.named_parameters():
            if parameter.ndim == 4:  # convs: detectron2's c2_msra_fill scale
                fan_out = parameter.shape[0] * parameter.shape[2] * parameter.shape[3]
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * math.sqrt(2 / fan_out))
            elif name.endswith("LayerNorm.weight"):
                parameter.copy_(1 + 0.2 * torch.randn(parameter.shape, generator=generator))
            else:  # linears, embeddings, biases: larger than BERT's 0.02 so that the outputs depend on the inputs
                parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))
    return model


def our_config(**overrides) -> ClipBertConfig:
    settings = dict(
        vision_config=dict(embedding_size=STEM, hidden_sizes=STAGES, depths=DEPTHS),
        text_config=dict(hidden_size=HIDDEN, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                         vocab_size=VOCAB, max_position_embeddings=32),
        image_size=IMAGE, frames_per_clip=2, answer_list=["a", "b", "c"], frozen_batch_norm=True,
    )  # fmt: skip
    settings.update(overrides)
    return ClipBertConfig(**settings)


def converted(source, model_class, kind: str, **config_overrides):
    config = our_config(**config_overrides)
    state_dict, report = convert_clipbert_state_dict(source.state_dict(), config, kind)
    model = model_class(config).eval()
    model.load_state_dict(state_dict, strict=True)  # raises on any missing or unexpected key
    return model, report


def raw_frames(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    """``(B, frames, 3, L, L)`` uint8 RGB: 128 x 80 frames, longer side L, zero-padded at the bottom (as the
    authors' ``ImageResize`` + ``ImagePad``)."""
    generator = torch.Generator().manual_seed(seed)
    content = torch.randint(0, 256, (batch * frames, 3, 80, IMAGE), generator=generator, dtype=torch.uint8)
    return resize_longer_and_pad(content, IMAGE).view(batch, frames, 3, IMAGE, IMAGE)


def both_pixels(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(authors' input: ImageNorm of the 0-255 frames, ours: ClipBertProcessor's normalization of the same frames)."""
    theirs = authors_code.ImageNorm()(raw.float())
    ours = normalize(raw.flatten(0, 1), ClipBertProcessor.mean, ClipBertProcessor.std).view(raw.shape)
    return theirs, ours


def text(batch: int, length: int = 7, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (batch, length), generator=generator)
    ids[:, 0] = 2
    mask = torch.ones_like(ids)
    mask[-1, -3:] = 0
    return ids, mask


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


# ---------------------------------------------------------------------------------------------------- parity


def test_normalization_matches_the_authors_imagenorm_and_padding_stays_in_the_sequence():
    raw = raw_frames(1, 2)
    theirs, ours = both_pixels(raw)
    assert max_diff(theirs, ours) < 1e-3  # (x / 255 - mean) / (1 / 255) vs x - 255 * mean, in float32
    assert torch.allclose(ours[0, 0, :, -1, 0], -255 * torch.tensor(ClipBertProcessor.mean), atol=1e-3)  # a pad pixel


def test_base_model_and_qa_head_match_the_authors_code_over_several_clips():
    source = authors_model(authors_code.ClipBertForSequenceClassification, num_labels=3)
    ours, report = converted(source, ClipBertForVideoQuestionAnswering, "qa")
    assert not report.missing
    num_clips, frames = 3, 2
    raw = raw_frames(2, num_clips * frames)
    theirs_pixels, our_pixels = both_pixels(raw)
    ids, mask = text(2)
    with torch.no_grad():
        out = ours(pixel_values=our_pixels, input_ids=ids, attention_mask=mask)
        # run_video_qa.validate: one forward per clip, then G over the clips.
        clips = theirs_pixels.view(2, num_clips, frames, 3, IMAGE, IMAGE)
        clip_logits = []
        for index in range(num_clips):
            batch = dict(visual_inputs=clips[:, index].clone(), text_input_ids=ids, text_input_mask=mask,
                         n_examples_list=[1, 1])  # fmt: skip
            clip_logits.append(source(batch)["logits"])
            # The base model: the same sequence (text, then the 2x2 visual tokens) and pooler output.
            grid = source.cnn(clips[:, index].clone())
            sequence, pooled = source.transformer.bert(ids, grid, mask)
            base = ours.clipbert(pixel_values=our_pixels.view(2, num_clips, frames, 3, IMAGE, IMAGE)[:, index],
                                 input_ids=ids, attention_mask=mask)  # fmt: skip
            assert base.last_hidden_state.shape == (2, 7 + 4, HIDDEN)
            assert max_diff(base.last_hidden_state, sequence) < ATOL
            assert max_diff(base.pooler_output, pooled) < ATOL
    clip_logits = torch.stack(clip_logits, dim=1)  # (B, N, answers)
    assert max_diff(out.clip_logits, clip_logits) < ATOL
    assert float(clip_logits.std(dim=1).min()) > 1e-2  # the clips differ, so the aggregation is tested
    # The authors' "lse": logsumexp over the clips; ours subtracts log N (the same softmax, argmax and loss).
    authors_lse = torch.logsumexp(clip_logits, dim=1)
    assert max_diff(out.logits, authors_lse - math.log(num_clips)) < ATOL
    assert torch.equal(out.logits.argmax(-1), authors_lse.argmax(-1))
    labels = torch.tensor([2, 0])
    authors_loss = torch.logsumexp(clip_logits.flatten(1), -1, keepdim=True) - torch.logsumexp(clip_logits, 1)
    loss = ours(pixel_values=our_pixels, input_ids=ids, attention_mask=mask, labels=labels).loss
    assert abs(float(loss.detach()) - float(authors_loss.gather(1, labels[:, None]).mean())) < ATOL


def test_retrieval_head_matches_the_authors_code():
    source = authors_model(authors_code.ClipBertForVideoTextRetrieval, num_labels=2, seed=3)
    ours, report = converted(source, ClipBertForVideoTextRetrieval, "retrieval", answer_list=None)
    assert "classifier" in report.found and not report.missing
    theirs_pixels, our_pixels = both_pixels(raw_frames(3, 2, seed=4))
    ids, mask = text(3, seed=5)
    with torch.no_grad():
        theirs = source(dict(visual_inputs=theirs_pixels, text_input_ids=ids, text_input_mask=mask,
                             n_examples_list=[1, 1, 1]))["logits"]  # fmt: skip
        out = ours(pixel_values=our_pixels, input_ids=ids, attention_mask=mask)
    assert max_diff(out.clip_logits[:, 0], theirs) < ATOL
    assert max_diff(out.logits, theirs) < ATOL  # one clip: G is the identity
    # run_video_retrieval.inference: per-clip logits, logsumexp over the clips, softmax(.)[:, 1] as the score.
    num_clips = 3
    theirs_pixels, our_pixels = both_pixels(raw_frames(1, num_clips * 2, seed=6))
    with torch.no_grad():
        clips = theirs_pixels.view(1, num_clips, 2, 3, IMAGE, IMAGE).expand(3, -1, -1, -1, -1, -1)
        clip_logits = torch.stack([
            source(dict(visual_inputs=clips[:, index].clone(), text_input_ids=ids, text_input_mask=mask,
                        n_examples_list=[1, 1, 1]))["logits"]
            for index in range(num_clips)
        ], dim=1)  # fmt: skip
        scores = ours.score_candidates(our_pixels, ids[None], mask[None])  # (1 video, 3 captions)
    authors_scores = torch.logsumexp(clip_logits, dim=1).softmax(-1)[:, 1]
    assert max_diff(scores[0].exp(), authors_scores) < ATOL


def test_pretraining_heads_match_the_authors_code_on_images():
    source = authors_model(authors_code.ClipBertForPreTraining, seed=6)
    heads = source.transformer.cls
    assert heads.predictions.decoder.weight is source.transformer.bert.embeddings.word_embeddings.weight
    ours, report = converted(source, ClipBertForPreTraining, "pretraining")
    assert {"mlm_head", "itm_head"} <= set(report.found) and not report.missing
    assert "transformer.cls.predictions.decoder.weight" in report.ignored  # tied, checked equal
    theirs_pixels, our_pixels = both_pixels(raw_frames(2, 1, seed=7))  # images are 1-frame clips
    ids, mask = text(2, seed=8)
    with torch.no_grad():
        theirs = source(dict(visual_inputs=theirs_pixels, text_input_ids=ids, text_input_mask=mask,
                             n_examples_list=[1, 1]))  # fmt: skip
        out = ours(pixel_values=our_pixels, input_ids=ids, attention_mask=mask, itm_labels=torch.tensor([1, 0]))
    assert max_diff(out.mlm_logits, theirs["mlm_scores"]) < ATOL
    assert max_diff(out.itm_logits, theirs["itm_scores"]) < ATOL


def test_parity_fails_without_the_bgr_fold_or_with_the_stride_in_the_3x3_conv():
    """The parity tests are not vacuous: the two details the converter and the config get right each matter."""
    source = authors_model(authors_code.ClipBertForVideoTextRetrieval, num_labels=2, seed=9)
    theirs_pixels, our_pixels = both_pixels(raw_frames(2, 2, seed=10))
    ids, mask = text(2, seed=11)
    with torch.no_grad():
        theirs = source(dict(visual_inputs=theirs_pixels, text_input_ids=ids, text_input_mask=mask,
                             n_examples_list=[1, 1]))["logits"]  # fmt: skip
        good, _ = converted(source, ClipBertForVideoTextRetrieval, "retrieval", answer_list=None)
        assert max_diff(good(pixel_values=our_pixels, input_ids=ids, attention_mask=mask).logits, theirs) < ATOL
        stem = good.clipbert.vision_model.backbone.embedder.embedder.convolution
        stem.weight.copy_(stem.weight[:, [2, 1, 0]])  # the authors' BGR weights read RGB frames
        assert max_diff(good(pixel_values=our_pixels, input_ids=ids, attention_mask=mask).logits, theirs) > 1e-3
        torchvision_layout, _ = converted(source, ClipBertForVideoTextRetrieval, "retrieval", answer_list=None,
                                          vision_config=dict(embedding_size=STEM, hidden_sizes=STAGES, depths=DEPTHS,
                                                             downsample_in_bottleneck=False))  # fmt: skip
        logits = torchvision_layout(pixel_values=our_pixels, input_ids=ids, attention_mask=mask).logits
        assert max_diff(logits, theirs) > 1e-3


def test_converted_cnn_trains_like_detectron2s_frozen_bn_and_freeze_at_2():
    source = authors_model(authors_code.ClipBertForVideoTextRetrieval, num_labels=2, seed=12)
    config = our_config(answer_list=None, frozen_batch_norm=False)  # convert_checkpoint sets the authors' training
    ours, _ = convert_checkpoint(source.state_dict(), "retrieval", config)
    assert type(ours) is ClipBertForVideoTextRetrieval
    norm = ours.clipbert.vision_model.backbone.embedder.embedder.normalization
    before = norm.running_mean.clone()
    ours.train()
    assert not norm.training and not norm.weight.requires_grad and not norm.bias.requires_grad
    _, our_pixels = both_pixels(raw_frames(2, 2, seed=13))
    ours(pixel_values=our_pixels, input_ids=text(2)[0], labels=torch.tensor([1, 0])).loss.backward()
    assert torch.equal(norm.running_mean, before) and norm.weight.grad is None
    assert ours.clipbert.vision_model.conv.weight.grad is not None  # the rest of the CNN trains end to end
    # detectron2's FREEZE_AT=2: the stem and res2 get no gradient, res3 on do.
    backbone = ours.clipbert.vision_model.backbone
    assert backbone.embedder.embedder.convolution.weight.grad is None
    assert all(p.grad is None for p in backbone.encoder.stages[0].parameters())
    assert backbone.encoder.stages[1].layers[0].layer[0].convolution.weight.grad is not None
    assert backbone.encoder.stages[1].layers[0].layer[0].normalization.weight.grad is None  # FrozenBN


# ---------------------------------------------------------------------------------------------------- report


def test_report_lists_missing_heads_and_ignored_keys():
    source = authors_model(authors_code.ClipBertForPreTraining, seed=14)
    state_dict = dict(source.state_dict())
    state_dict["transformer.bert.mystery_scale"] = torch.ones(1)
    # A pre-training checkpoint converted into a QA model: its heads are ignored, the classifier stays initialized.
    new, report = convert_clipbert_state_dict(state_dict, our_config(), "qa")
    assert report.missing == {"classifier": ["classifier.dense.bias", "classifier.dense.weight",
                                             "classifier.out_proj.bias", "classifier.out_proj.weight"]}  # fmt: skip
    assert {"resnet", "grid_conv", "text_embeddings", "visual_embeddings", "transformer", "pooler"} == set(report.found)
    assert "is --kind right?" in report.ignored["transformer.cls.seq_relationship.weight"]
    assert "transformer.bert.mystery_scale" in report.ignored
    assert "never used" in report.ignored["transformer.bert.visual_embeddings.position_embeddings.weight"]
    assert "detection head" in report.ignored["cnn.feature.roi_heads.box_predictor.cls_score.weight"]
    shown = str(report)
    assert shown.startswith("ClipBERT conversion report (qa checkpoint)") and "classifier.out_proj.weight" in shown
    missing, unexpected = ClipBertForVideoQuestionAnswering(our_config()).load_state_dict(new, strict=False)
    assert sorted(missing) == report.missing["classifier"] and not unexpected
    # A bare detectron2 / grid-feat file converts its ResNet only.
    detectron2 = {k[len("cnn.feature.") :]: v for k, v in source.state_dict().items() if k.startswith("cnn.feature.")}
    new, report = convert_clipbert_state_dict(detectron2, our_config(), "qa")
    assert report.found == ["resnet"] and "grid_conv" in report.missing
    assert "proposal_generator.rpn_head.conv.weight" in report.ignored
    res5_conv2 = "clipbert.vision_model.backbone.encoder.stages.3.layers.0.layer.1.normalization.running_var"
    assert torch.equal(new[res5_conv2], detectron2["backbone.res5.0.conv2.norm.running_var"])


def test_conversion_refuses_wrong_shapes_and_an_untied_decoder():
    source = authors_model(authors_code.ClipBertForSequenceClassification, num_labels=3, seed=15)
    with pytest.raises(ValueError, match="answer_list entry per answer logit"):
        convert_clipbert_state_dict(source.state_dict(), our_config(answer_list=["a", "b"]), "qa")
    with pytest.raises(ValueError, match="kind must be one of"):
        convert_clipbert_state_dict(source.state_dict(), our_config(), "captioning")
    pretraining = dict(authors_model(authors_code.ClipBertForPreTraining, seed=16).state_dict())
    pretraining["transformer.cls.predictions.decoder.weight"] = pretraining[
        "transformer.cls.predictions.decoder.weight"
    ].clone() + 1
    with pytest.raises(ValueError, match="ties them"):
        convert_clipbert_state_dict(pretraining, our_config(), "pretraining")


# ---------------------------------------------------------------------------------------------------- CLI


def test_cli_writes_a_folder_that_loads_with_automodel_and_from_pretrained(tmp_path):
    source = authors_model(authors_code.ClipBertForSequenceClassification, num_labels=3, seed=17)
    checkpoint = tmp_path / "msrvtt_qa.pt"
    torch.save(source.state_dict(), checkpoint)  # the authors' ModelSaver: a flat state dict
    config = our_config(answer_list=None, frozen_batch_norm=False)
    config.save_pretrained(tmp_path / "config")
    (tmp_path / "ans2label.json").write_text('{"yes": 1, "no": 0, "cat": 2}')
    assert load_answer_list(tmp_path / "ans2label.json") == ["no", "yes", "cat"]
    out = tmp_path / "converted"
    model = main(["--checkpoint", str(checkpoint), "--output_dir", str(out), "--kind", "qa",
                  "--config", str(tmp_path / "config"), "--answer_list", str(tmp_path / "ans2label.json")])  # fmt: skip
    assert (out / "model.safetensors").is_file() and (out / "modeling_clipbert.py").is_file()
    reloaded, info = ClipBertForVideoQuestionAnswering.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert reloaded.config.answer_list == ["no", "yes", "cat"]
    assert reloaded.config.frozen_batch_norm and reloaded.config.num_frozen_stages == 2
    base = AutoModel.from_pretrained(out).eval()
    assert type(base) is ClipBertModel
    theirs_pixels, our_pixels = both_pixels(raw_frames(2, 2, seed=18))
    ids, mask = text(2, seed=19)
    with torch.no_grad():
        theirs = source(dict(visual_inputs=theirs_pixels, text_input_ids=ids, text_input_mask=mask,
                             n_examples_list=[1, 1]))["logits"]  # fmt: skip
        assert max_diff(reloaded.eval()(pixel_values=our_pixels, input_ids=ids, attention_mask=mask).logits,
                        theirs) < ATOL  # fmt: skip
        assert torch.equal(base(pixel_values=our_pixels, input_ids=ids, attention_mask=mask).last_hidden_state,
                           model.clipbert(pixel_values=our_pixels, input_ids=ids,
                                          attention_mask=mask).last_hidden_state)  # fmt: skip


def test_hf_videolang_convert_knows_clipbert(tmp_path):
    assert "clipbert" in CONVERTERS
    source = authors_model(authors_code.ClipBertForVideoTextRetrieval, num_labels=2, seed=20)
    checkpoint = tmp_path / "msrvtt_ret.pt"
    torch.save(source.state_dict(), checkpoint)
    our_config(answer_list=None).save_pretrained(tmp_path / "config")
    out = convert_and_push("clipbert", checkpoint, kind="retrieval", preset="clipbert-base",
                           config=str(tmp_path / "config"), output=tmp_path / "converted")  # fmt: skip
    assert out["model_class"] == "ClipBertForVideoTextRetrieval"
    reloaded = ClipBertForVideoTextRetrieval.from_pretrained(tmp_path / "converted")
    assert torch.equal(reloaded.classifier.out_proj.weight, source.transformer.classifier[2].weight)
    # The command line: `hf-videolang convert clipbert ...`, and a UMT kind refused for a ClipBERT checkpoint.
    argv = ["convert", "clipbert", "--checkpoint", str(checkpoint), "--kind", "retrieval",
            "--config", str(tmp_path / "config"), "--output", str(tmp_path / "cli")]  # fmt: skip
    assert cli_main(argv) == 0 and (tmp_path / "cli" / "model.safetensors").is_file()
    with pytest.raises(PushError, match="--kind is one of"):
        convert_and_push("clipbert", checkpoint, kind="multi", output=tmp_path / "wrong")
