"""Tests of ClipBertProcessor: paper defaults, N_train x T random clips in training, N_test uniform clips at inference,
longer-side resize + zero padding, the authors' pixel normalization, save / load."""

from __future__ import annotations

import torch

from hf_videolang.models.clipbert import ClipBertConfig, ClipBertProcessor


def test_defaults_follow_the_paper(tiny_tokenizer):
    processor = ClipBertProcessor(tiny_tokenizer)
    assert (processor.train_sampling, processor.eval_sampling) == ("clips", "clips")
    assert (processor.num_clips, processor.frames_per_clip, processor.num_test_clips) == (8, 2, 16)
    assert (processor.clip_duration, processor.image_size, processor.resize_mode) == (1.0, 448, "pad")
    assert (processor.max_length, processor.mlm_probability, processor.mask_ratio) == (20, 0.15, 0.0)
    # (x / 255 - mean) / (1 / 255) = x - 255 * mean: the authors' img_pixel_mean, std 1 on the 0-255 scale.
    assert [round(255 * m, 3) for m in processor.mean] == [123.675, 116.28, 103.53]
    assert all(abs(s * 255 - 1) < 1e-9 for s in processor.std)
    assert processor.clips_per_video(training=True) == 8 and processor.clips_per_video(training=False) == 16


def test_training_samples_n_train_random_clips_and_inference_n_test_uniform_ones(tiny_tokenizer, small_video):
    path, _ = small_video  # 24 frames at 8 fps: a 1-second clip spans 8 frames
    processor = ClipBertProcessor(tiny_tokenizer, num_clips=2, frames_per_clip=2, num_test_clips=3, image_size=64)
    train = processor.sampler(training=True)
    first = train(processor_metadata(path), training=True, generator=torch.Generator().manual_seed(0))
    second = train(processor_metadata(path), training=True, generator=torch.Generator().manual_seed(1))
    assert len(first) == 2 and all(len(clip) == 2 for clip in first)
    assert first != second  # random clips
    for clip in first:
        assert clip[1] - clip[0] <= 8  # the T frames lie inside one 1-second clip
    test = processor.sampler(training=False)(processor_metadata(path), training=False)
    assert len(test) == 3 and all(len(clip) == 2 for clip in test)
    assert test == processor.sampler(training=False)(processor_metadata(path), training=False)  # deterministic
    starts = [clip[0] for clip in test]
    assert starts == sorted(starts) and starts[0] < 8 and starts[-1] >= 16 - 1  # spread over the 3 seconds
    batch = processor(videos=[path], text=["a dog runs"], training=True, generator=torch.Generator().manual_seed(0))
    assert batch["pixel_values"].shape == (1, 2 * 2, 3, 64, 64)
    batch = processor(videos=[path], text=["a dog runs"])
    assert batch["pixel_values"].shape == (1, 3 * 2, 3, 64, 64)


def test_frames_keep_their_aspect_ratio_and_are_zero_padded_bottom_right(tiny_tokenizer, small_video):
    path, _ = small_video  # 96 wide x 64 high
    processor = ClipBertProcessor(tiny_tokenizer, num_test_clips=1, frames_per_clip=1, image_size=64)
    pixels = processor(videos=[path])["pixel_values"][0, 0]  # (3, 64, 64): content 64 x 43 on top
    padded = pixels[:, 43:, :]
    # A zero pixel after normalization is -255 * mean, per channel.
    expected = torch.tensor([-255 * m for m in processor.mean])[:, None, None]
    assert torch.allclose(padded, expected.expand_as(padded), atol=1e-3)
    assert not torch.allclose(pixels[:, :42, :], expected.expand(3, 42, 64), atol=1e-3)


def test_from_config_and_save_reload(tiny_tokenizer, tmp_path):
    config = ClipBertConfig(image_size=256, frames_per_clip=1, num_train_clips=4, num_test_clips=6, max_text_length=12)
    processor = ClipBertProcessor.from_config(config, tiny_tokenizer)
    assert (processor.image_size, processor.frames_per_clip, processor.num_clips) == (256, 1, 4)
    assert (processor.num_test_clips, processor.max_length) == (6, 12)
    processor.save_pretrained(tmp_path)
    reloaded = ClipBertProcessor.from_pretrained(tmp_path)
    assert reloaded.num_test_clips == 6 and reloaded.num_clips == 4 and reloaded.image_size == 256
    assert reloaded.sampler(training=False).num_clips == 6


def processor_metadata(path):
    from hf_videolang.video.io import read_video_metadata

    return read_video_metadata(path)


def test_pipeline_answers_from_the_answer_list_with_logsumexp_over_clips(tiny_tokenizer, small_video):
    from transformers import pipeline

    import hf_videolang  # noqa: F401  (registers the pipeline)
    from hf_videolang.models.clipbert import ClipBertForVideoQuestionAnswering, aggregate_clip_scores

    path, _ = small_video
    torch.manual_seed(0)
    config = ClipBertConfig(
        vision_config=dict(embedding_size=8, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1]),
        text_config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37,
                         vocab_size=len(tiny_tokenizer), max_position_embeddings=32),
        image_size=64, frames_per_clip=1, num_train_clips=2, num_test_clips=3, answer_list=["a", "b", "c"],
    )  # fmt: skip
    model = ClipBertForVideoQuestionAnswering(config).eval()
    processor = ClipBertProcessor.from_config(config, tiny_tokenizer)
    vqa = pipeline("video-question-answering", model=model, tokenizer=tiny_tokenizer, processor=processor)
    answers = vqa(path, "what runs ?", num_clips=3, num_frames=1, clip_aggregation="logsumexp", top_k=3)
    assert sorted(a["answer"] for a in answers) == ["a", "b", "c"]
    # The same numbers as the model's own multi-clip forward on the processor's 3 test clips.
    batch = processor(videos=[path], text=["what runs ?"])
    with torch.no_grad():
        out = model(pixel_values=batch["pixel_values"], input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"])  # fmt: skip
    probabilities = aggregate_clip_scores(out.clip_logits, "logsumexp").softmax(-1)[0]
    for answer in answers:
        index = config.answer_list.index(answer["answer"])
        assert abs(answer["score"] - probabilities[index].item()) < 1e-4
