"""Hostile containers, written here: for every file and 20 random index sets, ``read_frames`` equals a full decode
(rotated as displayed) or raises a VideoError naming the file. Never a neighbouring frame instead."""

from __future__ import annotations

import io
import os
import re
import resource
import subprocess
import sys
import textwrap
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from hf_videolang.errors import VideoDecodeError, VideoError, VideoTooLargeError
from hf_videolang.video import io as io_module
from hf_videolang.video.io import read_frames, read_video_metadata
from hf_videolang.video.sampling import sample_uniform

HEIGHT, WIDTH = 48, 64


def _frames(count: int, height: int = HEIGHT, width: int = WIDTH) -> list[np.ndarray]:
    """Distinct frames: a textured background, a square moving right and a brightness code in the corner."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
    out = []
    for t in range(count):
        frame = base.copy()
        x = t * (width - 12) // max(count - 1, 1)
        frame[16:28, x : x + 12] = (220, 40, 40)
        frame[:8, :8] = (t * 5) % 256
        out.append(frame)
    return out


def _write(path, codec="libx264", count=48, gop=8, fps=8, fmt=None, options=None, b_frames=None, pts=None,
           time_base=None, rotation=None):
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"threads": "1", **(options or {})}
        stream.codec_context.gop_size = gop
        if b_frames is not None:
            stream.codec_context.max_b_frames = b_frames
        if time_base is not None:
            stream.codec_context.time_base = time_base
            stream.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for t, frame in enumerate(_frames(count)):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if pts is not None:
                video_frame.pts, video_frame.time_base = pts[t], time_base
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def _full_decode(path: str) -> np.ndarray:
    """The reference: every frame in decoding order from the start, turned as its display matrix says."""
    frames = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            array = frame.to_ndarray(format="rgb24")
            turns = int(round((frame.rotation or 0) / 90)) % 4
            frames.append(np.rot90(array, k=turns) if turns else array)
    return np.stack(frames)


MS = Fraction(1, 1000)
VFR_PTS = [40 * i for i in range(12)] + [440 + 500 * (i + 1) for i in range(12)]  # 12 at 40 ms, 12 at 500 ms
GAP_PTS = [125 * i for i in range(23)] + [22 * 125 + 100_000]  # one 100 s gap before the last frame


@pytest.fixture(scope="module")
def tricky(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tricky")
    files = {
        "ts_b_frames": _write(folder / "b.ts", options={"bf": "3"}),
        "ts_short_gop": _write(folder / "gop8.ts", gop=8, options={"bf": "0"}),
        "ts_mpeg4": _write(folder / "mpeg4.ts", codec="mpeg4", gop=12, b_frames=2),
        "vfr_mkv": _write(folder / "vfr.mkv", count=24, pts=VFR_PTS, time_base=MS),
        "vfr_mp4": _write(folder / "vfr.mp4", count=24, pts=VFR_PTS, time_base=MS),
        "gap_mkv": _write(folder / "gap.mkv", count=24, pts=GAP_PTS, time_base=MS),
        "rotated_mp4": _write(folder / "rotated.mp4", count=16, rotation=90),
        "rotated_270_mp4": _write(folder / "rotated270.mp4", count=16, rotation=-90),
        "raw_h264": _write(folder / "raw.h264", fmt="h264", options={"bf": "2"}),
        "colon_name": _write(folder / "10:00.mp4", count=16),
        "open_gop_mp4": _write(folder / "open_gop.mp4", gop=12, options={"bf": "3", "x264-params": "open-gop=1"}),
        "avi_mpeg4": _write(folder / "clip.avi", codec="mpeg4", gop=12, b_frames=2),
    }
    return {name: (path, _full_decode(path)) for name, path in files.items()}


TRICKY = ["ts_b_frames", "ts_short_gop", "ts_mpeg4", "vfr_mkv", "vfr_mp4", "gap_mkv", "rotated_mp4",
          "rotated_270_mp4", "raw_h264", "colon_name", "open_gop_mp4", "avi_mpeg4"]


@pytest.mark.parametrize("name", TRICKY)
def test_twenty_random_index_sets_equal_a_full_decode(tricky, name):
    path, reference = tricky[name]
    assert read_video_metadata(path).num_frames == len(reference)
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    index_sets = [list(range(len(reference))), [len(reference) - 1, 0]]
    index_sets += [rng.integers(0, len(reference), size=int(rng.integers(1, 9))).tolist() for _ in range(18)]
    for indices in index_sets:
        try:
            frames = read_frames(path, indices)
        except VideoError as error:  # allowed, if it names the file; never a wrong frame
            assert path in str(error)
            continue
        np.testing.assert_array_equal(frames, reference[indices], err_msg=f"{name} {indices}")


def test_the_tricky_files_are_what_their_names_say(tricky):
    with av.open(tricky["ts_b_frames"][0]) as container:
        packets = [p for p in container.demux(video=0) if p.size]
        assert any(p.pts != p.dts for p in packets)  # B-frames: presentation order differs from decoding order
    rotated_path, rotated = tricky["rotated_mp4"]
    assert rotated.shape[1:3] == (WIDTH, HEIGHT)
    metadata = read_video_metadata(rotated_path)
    assert (metadata.width, metadata.height) == (HEIGHT, WIDTH)
    # 90 degrees counter-clockwise: the top row of the stored frame becomes the left column, read bottom-up.
    stored, shown = _frames(16)[3].astype(float), read_frames(rotated_path, [3])[0].astype(float)
    error_ccw = np.abs(shown - np.rot90(stored)).mean()
    assert error_ccw < 20 and error_ccw < 0.6 * np.abs(shown - np.rot90(stored, k=-1)).mean()


def test_variable_frame_rate_indices_follow_timestamps_and_sampling_reaches_the_end(tricky):
    path, reference = tricky["vfr_mkv"]
    np.testing.assert_array_equal(read_frames(path, [23]), reference[[23]])
    metadata = read_video_metadata(path)
    assert metadata.num_frames == 24
    assert metadata.duration == pytest.approx(6.44 * 24 / 23, rel=1e-6)  # span 6.44 s plus one mean interval
    indices = sample_uniform(metadata.num_frames, 4)
    assert indices[-1] >= 20  # uniform over the frames reaches the slow part (6 s in), not only 2.5 s
    gap_path, gap_reference = tricky["gap_mkv"]
    np.testing.assert_array_equal(read_frames(gap_path, [23, 22]), gap_reference[[23, 22]])


def test_mpeg_ts_b_frames_decode_only_one_gop_per_far_frame(tricky):
    path, reference = tricky["ts_b_frames"]
    np.testing.assert_array_equal(read_frames(path, [47, 0, 24]), reference[[47, 0, 24]])
    stats = io_module.last_decode_stats()
    assert stats.runs == 3 and stats.retries == 0
    assert stats.decoded <= 3 * 8 + 3 * 4  # three GOPs of 8 (plus reordering delay), not 48 frames


def test_frames_sharing_one_timestamp_are_read_in_decoding_order(tmp_path):
    path = _write(tmp_path / "same_pts.mkv", count=6, pts=[0] * 6, time_base=MS, options={"bf": "0"})
    reference = _full_decode(path)
    assert len(reference) == read_video_metadata(path).num_frames
    np.testing.assert_array_equal(read_frames(path, [5, 0, 3]), reference[[5, 0, 3]])


def test_relative_path_with_a_colon(tricky, monkeypatch):
    path, reference = tricky["colon_name"]
    monkeypatch.chdir(os.path.dirname(path))
    np.testing.assert_array_equal(read_frames("10:00.mp4", [15, 1]), reference[[15, 1]])


def test_non_seekable_file_object_gives_metadata_then_frames(tricky):
    path, reference = tricky["ts_b_frames"]

    class Pipe(io.RawIOBase):  # like a socket or stdin: read only, no seek
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            chunk = self._data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    pipe = io.BufferedReader(Pipe(open(path, "rb").read()))
    assert not pipe.seekable()
    assert read_video_metadata(pipe).num_frames == 48
    np.testing.assert_array_equal(read_frames(pipe, [40, 2]), reference[[40, 2]])


# ------------------------------------------------------------------------------------------------------- images


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_images_read_as_one_frame_videos(tmp_path, suffix):
    image = Image.fromarray(_frames(1)[0])
    path = tmp_path / f"picture{suffix}"
    image.save(path)
    expected = np.asarray(Image.open(path).convert("RGB"))
    metadata = read_video_metadata(str(path))
    assert (metadata.num_frames, metadata.width, metadata.height) == (1, WIDTH, HEIGHT)
    np.testing.assert_array_equal(read_frames(str(path), [0, 0]), np.stack([expected, expected]))
    np.testing.assert_array_equal(read_frames(path.read_bytes(), [0]), expected[None])
    with pytest.raises(IndexError, match=re.escape(str(path)) + r": frame index 1 .* 1 frames"):
        read_frames(str(path), [1])


def test_jpeg_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(_frames(1)[0])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif)
    metadata = read_video_metadata(str(path))
    assert (metadata.width, metadata.height) == (HEIGHT, WIDTH)
    assert read_frames(str(path), [0]).shape == (1, WIDTH, HEIGHT, 3)


# ------------------------------------------------------------------------------------------------------- memory


def test_pixel_limit_frame_cap_and_downscale(tricky):
    path, reference = tricky["ts_short_gop"]
    with pytest.raises(VideoTooLargeError, match=re.escape(path) + r": frames are 64x48 = 3072 pixels, more than "
                                                               r"the limit of 3000; pass max_pixels="):
        read_frames(path, [0], max_pixels=3000)
    with pytest.raises(VideoError, match=re.escape(path) + r": 10 frames requested, more than max_frames=9"):
        read_frames(path, [0] * 10, max_frames=9)
    with pytest.raises(VideoError, match="more than max_frames=4096"):
        read_frames(path, [0] * 192_000)
    small = read_frames(path, [5], downscale_to=24)
    assert small.shape == (1, 24, 32, 3)
    # FFmpeg's area scaler (in YUV, before the RGB conversion): close to the full-size frame averaged over 2x2.
    pooled = reference[5].reshape(24, 2, 32, 2, 3).astype(float).mean(axis=(1, 3))
    assert np.abs(small[0].astype(float) - pooled).mean() < 8
    assert abs(small.mean() - reference[5].mean()) < 1


BIG_SCRIPT = textwrap.dedent("""
    import resource, sys
    import av, numpy as np
    path = sys.argv[1]
    with av.open(path, "w") as container:  # 2 frames of 8192x8192, about 200 KB
        stream = container.add_stream("libx264", rate=8)
        stream.width = stream.height = 8192
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "40", "threads": "1"}
        for t in range(2):
            frame = av.VideoFrame(8192, 8192, "yuv420p")
            for plane, value in zip(frame.planes, (60 + 100 * t, 128, 128)):
                np.frombuffer(plane, dtype=np.uint8)[:] = value
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
""")

MEASURE_SCRIPT = textwrap.dedent("""
    import gc, os, resource, sys
    from hf_videolang.models.umt import UmtProcessor
    from transformers import BertTokenizerFast
    from hf_videolang.demos.minilm import minilm_path
    processor = UmtProcessor(BertTokenizerFast.from_pretrained(minilm_path()), num_frames=2)
    processor(videos=sys.argv[2], text="warm up")  # imports, allocator pools: not part of the video's cost
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = processor(videos=sys.argv[1], text="a huge video")
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(tuple(out["pixel_values"].shape), (after - before) / 1024)
""")


def test_8192x8192_video_through_the_processor_adds_under_300_mb(tmp_path, tricky):
    big = tmp_path / "huge.mp4"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", BIG_SCRIPT, str(big)], check=True, env=env)
    assert big.stat().st_size < 1_000_000
    result = subprocess.run([sys.executable, "-c", MEASURE_SCRIPT, str(big), tricky["ts_short_gop"][0]],
                            check=True, env=env, capture_output=True, text=True)
    shape, added_mb = result.stdout.strip().rsplit(" ", 1)
    assert shape == "(1, 2, 3, 224, 224)"
    assert float(added_mb) < 300, f"peak RSS grew by {added_mb} MB"
    with pytest.raises(VideoTooLargeError, match=re.escape(str(big))):
        read_frames(str(big), [0], max_pixels=4096 * 4096)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss > 0


def test_corrupt_packets_raise_naming_the_file(tricky, tmp_path):
    data = bytearray(open(tricky["ts_b_frames"][0], "rb").read())
    rng = np.random.default_rng(0)
    for offset in rng.integers(2000, len(data) - 2000, size=40):  # damage the payload, keep the TS headers
        if offset % 188 > 8:
            data[offset] ^= 0xFF
    path = tmp_path / "damaged.ts"
    path.write_bytes(bytes(data))
    try:
        metadata = read_video_metadata(str(path))
    except VideoDecodeError as error:
        assert str(path) in str(error)
        return
    for indices in ([0], [metadata.num_frames - 1], list(range(metadata.num_frames))):
        try:
            read_frames(str(path), indices)
        except VideoError as error:
            assert str(path) in str(error)
