"""read_video_metadata / read_frames: exact frames at any indices, every source type, clear errors on bad input."""

from __future__ import annotations

import io
import os
import re

import av
import numpy as np
import pytest
import torch
from PIL import Image

from hf_videolang.errors import VideoDecodeError, VideoError, VideoNotFoundError
from hf_videolang.video import io as io_module
from hf_videolang.video.io import FrameIndexError, VideoMetadata, read_frames, read_video_metadata
from hf_videolang.video.writer import write_video

NUM_FRAMES, HEIGHT, WIDTH, FPS = 40, 48, 64, 8


def make_moving_square_frames(num_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``(T, H, W, 3)`` uint8: a textured background and a square moving right, so every frame is distinct."""
    rng = np.random.default_rng(seed)
    frames = np.repeat(rng.integers(0, 80, size=(1, height, width, 3), dtype=np.uint8), num_frames, axis=0)
    side = height // 4
    for t in range(num_frames):
        x = t * (width - side) // max(num_frames - 1, 1)
        frames[t, height // 3 : height // 3 + side, x : x + side] = (220, 40, 40)
    return frames


def _sequential_decode(path: str) -> np.ndarray:
    """The reference: every frame, decoded in order from the start."""
    with av.open(path) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def _write_faststart(path, frames: np.ndarray, fps: int, gop_size: int) -> str:
    """An mp4 with its index (moov) before the data, so a file cut short still opens."""
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.gop_size = gop_size
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two 40-frame 64x48 mp4s of the same content: keyframe every 3 frames, and one keyframe for the whole video."""
    folder = tmp_path_factory.mktemp("io_videos")
    frames = make_moving_square_frames(NUM_FRAMES, HEIGHT, WIDTH, seed=1)
    paths = {
        "short_gop": write_video(folder / "short_gop.mp4", frames, fps=FPS, gop_size=3),
        "long_gop": write_video(folder / "long_gop.mp4", frames, fps=FPS, gop_size=250),
    }
    return {name: (path, _sequential_decode(path)) for name, path in paths.items()}


# ----------------------------------------------------------------------------------------------------- metadata


def test_metadata_comes_from_the_container(videos):
    path, reference = videos["short_gop"]
    metadata = read_video_metadata(path)
    assert metadata == VideoMetadata(NUM_FRAMES, float(FPS), NUM_FRAMES / FPS, WIDTH, HEIGHT, path)
    assert metadata.num_frames == len(reference)  # the header count is the number of decodable frames


def test_metadata_counts_packets_when_the_container_has_no_frame_count(tmp_path):
    # Matroska stores no per-stream frame count, so the frames are counted by demuxing.
    frames = make_moving_square_frames(10, HEIGHT, WIDTH)
    path = write_video(tmp_path / "clip.mkv", frames, fps=FPS)
    with av.open(path) as container:
        assert container.streams.video[0].frames == 0
    assert read_video_metadata(path).num_frames == 10
    assert np.array_equal(read_frames(path, [9, 0]), _sequential_decode(path)[[9, 0]])


# ------------------------------------------------------------------------------------------- exact frame access


@pytest.mark.parametrize("gop", ["short_gop", "long_gop"])
def test_read_frames_equals_a_full_sequential_decode(videos, gop):
    path, reference = videos[gop]
    rng = np.random.default_rng(0)
    cases = [
        list(range(NUM_FRAMES)),  # sorted, every frame (crosses every keyframe boundary)
        rng.permutation(NUM_FRAMES).tolist(),  # unsorted
        [7, 7, 0, 39, 7, 38, 0],  # duplicates, unsorted
        [39],
        [0, 20, 39],  # far apart: one seek per frame
        *[rng.integers(0, NUM_FRAMES, size=6).tolist() for _ in range(5)],
    ]
    for indices in cases:
        frames = read_frames(path, indices)
        assert frames.dtype == np.uint8 and frames.shape == (len(indices), HEIGHT, WIDTH, 3)
        np.testing.assert_array_equal(frames, reference[indices], err_msg=f"{gop} {indices}")


def test_reseek_does_not_change_the_frames(videos):
    path, reference = videos["short_gop"]
    indices = [30, 2, 17, 17, 38]
    np.testing.assert_array_equal(read_frames(path, indices, reseek=False), reference[indices])


def test_empty_indices_give_an_empty_batch(videos):
    path, _ = videos["short_gop"]
    assert read_frames(path, []).shape == (0, HEIGHT, WIDTH, 3)


def test_indices_can_be_numpy_or_torch(videos):
    path, reference = videos["short_gop"]
    np.testing.assert_array_equal(read_frames(path, np.array([5, 1])), reference[[5, 1]])
    np.testing.assert_array_equal(read_frames(path, torch.tensor([5, 1])), reference[[5, 1]])


# ----------------------------------------------------------------------------------------------------- sources


def test_bytes_and_file_like_sources_give_the_same_frames(videos):
    path, reference = videos["short_gop"]
    data = open(path, "rb").read()
    indices = [3, 31, 3]
    assert read_video_metadata(data).source == "<bytes>"
    np.testing.assert_array_equal(read_frames(data, indices), reference[indices])
    stream = io.BytesIO(data)
    # Metadata, then frames, from the same object: each call puts it back where it was (reading moves it).
    assert read_video_metadata(stream).num_frames == NUM_FRAMES
    assert stream.tell() == 0
    np.testing.assert_array_equal(read_frames(stream, indices), reference[indices])
    with open(path, "rb") as file:
        assert read_video_metadata(file).source == f"<file-like {path!r}>"


@pytest.mark.parametrize("kind", ["numpy", "tensor_thwc", "tensor_tchw", "pil", "array_list"])
def test_decoded_frames_are_indexed_directly(kind):
    frames = make_moving_square_frames(6, 16, 24)
    source = {
        "numpy": frames,
        "tensor_thwc": torch.from_numpy(frames),
        "tensor_tchw": torch.from_numpy(frames).permute(0, 3, 1, 2),
        "pil": [Image.fromarray(frame) for frame in frames],
        "array_list": list(frames),
    }[kind]
    metadata = read_video_metadata(source)
    assert (metadata.num_frames, metadata.height, metadata.width, metadata.fps) == (6, 16, 24, 0.0)
    out = read_frames(source, [5, 0, 5])
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, frames[[5, 0, 5]])


def test_decoded_frames_are_validated():
    with pytest.raises(VideoError, match=r"<array>: decoded frames must be uint8"):
        read_frames(np.zeros((2, 8, 8, 3), dtype=np.float32), [0])
    with pytest.raises(VideoError, match=r"<tensor>: decoded frames must have shape"):
        read_frames(torch.zeros(2, 8, 8, dtype=torch.uint8), [0])
    with pytest.raises(VideoError, match=r"<array>: the video has no frames"):
        read_video_metadata(np.zeros((0, 8, 8, 3), dtype=np.uint8))


# ----------------------------------------------------------------------------------------------------- errors


def test_missing_path(tmp_path):
    path = str(tmp_path / "nope.mp4")
    with pytest.raises(VideoNotFoundError, match=re.escape(path) + ": no such file"):
        read_video_metadata(path)
    with pytest.raises(FileNotFoundError, match=re.escape(path)):  # also a FileNotFoundError
        read_frames(path, [0])


def test_zero_byte_file_and_empty_bytes(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match=re.escape(str(path)) + r": the file is empty \(0 bytes\)"):
        read_frames(str(path), [0])
    with pytest.raises(VideoDecodeError, match=r"<bytes>: the video is empty"):
        read_video_metadata(b"")


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    with pytest.raises(VideoDecodeError, match=re.escape(str(path)) + ": cannot be read as a video"):
        read_video_metadata(str(path))


def test_audio_only_file(tmp_path):
    path = tmp_path / "tone.wav"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        samples = (np.sin(np.arange(8000) / 5) * 3000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(VideoDecodeError, match=re.escape(str(path)) + r": has no video stream \(found: audio\)"):
        read_frames(str(path), [0])


def test_truncated_mp4_with_index_at_the_end_is_an_error(videos, tmp_path):
    data = open(videos["short_gop"][0], "rb").read()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])  # the moov atom (written last) is lost
    with pytest.raises(VideoDecodeError, match=re.escape(str(path)) + ": .*truncated or corrupt"):
        read_video_metadata(str(path))


def test_truncated_mp4_with_index_first_gives_the_decodable_frames_and_raises_beyond(tmp_path):
    frames = make_moving_square_frames(NUM_FRAMES, HEIGHT, WIDTH, seed=2)
    full = _write_faststart(tmp_path / "full.mp4", frames, FPS, gop_size=4)
    reference = _sequential_decode(full)
    data = open(full, "rb").read()
    path = tmp_path / "cut_faststart.mp4"
    path.write_bytes(data[: len(data) // 2])
    # The header still lists 40 frames; the metadata counts the frames a full decode of what is left gives.
    decodable = read_video_metadata(str(path)).num_frames
    assert 0 < decodable < NUM_FRAMES
    partial = read_frames(str(path), list(range(decodable)))  # every frame that is there, exactly
    np.testing.assert_array_equal(partial, reference[:decodable])
    with pytest.raises(VideoDecodeError, match=re.escape(str(path)) + ".*truncated or corrupt"):
        read_frames(str(path), [NUM_FRAMES - 1])


def test_one_frame_video(tmp_path):
    frames = make_moving_square_frames(1, HEIGHT, WIDTH)
    path = write_video(tmp_path / "still.mp4", frames, fps=FPS)
    assert read_video_metadata(path).num_frames == 1
    np.testing.assert_array_equal(read_frames(path, [0, 0]), _sequential_decode(path)[[0, 0]])
    with pytest.raises(FrameIndexError, match=re.escape(path) + r": frame index 1 is out of range: .* 1 frames"):
        read_frames(path, [1])


def test_out_of_range_indices_name_the_count(videos):
    path, _ = videos["short_gop"]
    for bad in (NUM_FRAMES, -1):
        with pytest.raises(IndexError, match=re.escape(path) + rf": frame index {bad} .* has {NUM_FRAMES} frames"):
            read_frames(path, [0, bad])
    with pytest.raises(FrameIndexError, match=r"<array>: frame index 3 .* has 3 frames"):
        read_frames(np.zeros((3, 4, 4, 3), dtype=np.uint8), [3])
    assert issubclass(FrameIndexError, VideoError)


def test_decode_timeout_raises_instead_of_hanging(videos):
    path, _ = videos["long_gop"]
    with pytest.raises(VideoDecodeError, match=re.escape(path) + ": decoding timed out"):
        read_frames(path, list(range(NUM_FRAMES)), timeout=1e-6)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        read_frames(path, [0], timeout=0)


def test_unsupported_source_type():
    with pytest.raises(TypeError, match="cannot read a video from int"):
        read_video_metadata(3)


def test_bad_inputs_are_video_errors_and_nothing_leaks(tmp_path):
    # Every failure above is a VideoError (a ValueError), so callers can catch one type.
    path = tmp_path / "junk.mp4"
    path.write_bytes(os.urandom(2048))
    with pytest.raises(VideoError, match=re.escape(str(path))):
        read_frames(str(path), [0])


# ------------------------------------------------------------------------------------------------- decoding cost


def _decoded_frame_count(path: str, indices: list[int], reseek: bool = True) -> int:
    """How many frames read_frames decodes for ``indices`` (non-reference frames it skips do not count)."""
    read_frames(path, indices, reseek=reseek)
    return io_module.last_decode_stats().decoded


def test_decoding_stops_after_the_last_wanted_frame_and_seeks_over_gaps(videos):
    path, _ = videos["short_gop"]  # keyframe every 3 frames
    # Only as far as the last wanted frame (plus the decoder's reordering delay), not the whole video.
    assert _decoded_frame_count(path, [1, 2]) < 10
    # Far-apart frames: one seek each, so about one GOP per frame instead of everything up to frame 39.
    assert _decoded_frame_count(path, [39, 0, 20]) <= 3 * 3 + 6
    assert io_module.last_decode_stats().runs == 3
    assert _decoded_frame_count(path, [39, 0, 20], reseek=False) >= NUM_FRAMES - 1 - 15  # non-ref B-frames skipped
