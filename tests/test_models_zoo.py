"""The model zoo: registry, converters vs manifests, round trips vs torch, checkpoints, preprocess.

* Every converter consumes exactly its manifest's keys and shapes (a fake state dict built from
  ``models/manifests/<model>.json``): no key left over, no parameter unfilled; missing, unknown
  and wrong-shape keys fail naming the key.
* Round trip against an independent reference: ZFNet's hand-built torch replica
  (``models/scripts/torch_reference.py``) is saved with the real ``torch.save`` (zip and legacy
  formats), converted with ``models.convert``, loaded with ``models.load``, and its logits
  compared. The eight torchvision models are checked against torchvision itself in
  ``test_models_torchvision.py``; HED and CRAFT against their originals in
  ``test_models_hed_craft.py``.
* Checkpoints: atomic writes, missing / corrupt / truncated / stale checkpoints give clear
  errors naming the path or the command to run; cache directory precedence.
* ``models.preprocess``: shapes, values, validation and jit-friendliness.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _model_helpers import (  # noqa: F401
    fake_state_dict,
    manifest,
    relative_error,
    replica_state_dict_file,
    zoo_cache,
)
from flax import traverse_util

import models
from models import checkpoints
from models.conversion import ConversionError, convert_state_dict, expected_torch_keys

NAMES = ("alexnet", "zfnet", "vgg16", "vgg19", "googlenet", "inception_v3", "resnet50",
         "resnet101", "resnet152", "efficientnet_lite0", "efficientnet_lite1",
         "efficientnet_lite2", "hed_vgg16", "craft_vgg16_bn")
AUX = {"googlenet": ("aux1", "aux2"), "inception_v3": ("AuxLogits",)}


# ----------------------------------------------------------------------------- registry
def test_available_lists_the_fourteen():
    assert models.available() == NAMES


def test_unknown_name_lists_valid_names():
    with pytest.raises(models.UnknownModelError, match="resnet50") as err:
        models.load("resnet51")
    assert isinstance(err.value, ValueError)
    for name in NAMES:
        assert name in str(err.value)


@pytest.mark.parametrize("name", NAMES)
def test_every_conv_and_dense_has_a_readable_name(name):
    spec = models.get_spec(name)
    flat = traverse_util.flatten_dict(
        jax.eval_shape(spec.build().init, jax.random.PRNGKey(0),
                       jax.ShapeDtypeStruct((1, spec.input_size, spec.input_size, 3),
                                            jnp.float32))["params"])
    for path in flat:
        assert all(not part.startswith(("Conv_", "Dense_", "BatchNorm_")) for part in path), path


# ----------------------------------------------------------------------------- manifests
@pytest.mark.parametrize("name", NAMES)
def test_converter_consumes_exactly_the_manifest(name):
    spec = models.get_spec(name)
    entries = manifest(name)["keys"]
    wanted = {e["key"]: tuple(e["shape"]) for e in entries
              if not e["key"].endswith(".num_batches_tracked")}
    assert expected_torch_keys(spec) == wanted  # same keys and torch shapes, nothing extra
    variables = convert_state_dict(spec, fake_state_dict(name))
    expected = traverse_util.flatten_dict(
        jax.eval_shape(spec.build().init, jax.random.PRNGKey(0),
                       jax.ShapeDtypeStruct((1, spec.input_size, spec.input_size, 3),
                                            jnp.float32)))
    got = traverse_util.flatten_dict(variables)
    assert set(got) == set(expected)  # no parameter unfilled, none invented
    for path, leaf in expected.items():
        assert got[path].shape == leaf.shape and got[path].dtype == np.float32, path


def test_manifest_values_land_in_the_right_place():
    """Spot-check the transforms on real keys: conv OIHW->HWIO, BN, first dense after flatten."""
    sd = fake_state_dict("alexnet")
    variables = convert_state_dict(models.get_spec("alexnet"), sd)
    w = sd["features.3.weight"]  # conv2: (192, 64, 5, 5)
    np.testing.assert_array_equal(variables["params"]["conv2"]["kernel"][1, 2, 3, 4],
                                  w[4, 3, 1, 2])
    fc = sd["classifier.1.weight"]  # (4096, 256*6*6), torch flattens (c, h, w)
    c, h, x_ = 7, 2, 5
    ours_row = (h * 6 + x_) * 256 + c
    np.testing.assert_array_equal(variables["params"]["fc6"]["kernel"][ours_row, 11],
                                  fc[11, c * 36 + h * 6 + x_])
    sd = fake_state_dict("resnet50")
    variables = convert_state_dict(models.get_spec("resnet50"), sd)
    np.testing.assert_array_equal(variables["batch_stats"]["layer2_0"]["downsample_bn"]["var"],
                                  sd["layer2.0.downsample.1.running_var"])
    np.testing.assert_array_equal(variables["params"]["layer2_0"]["downsample_bn"]["scale"],
                                  sd["layer2.0.downsample.1.weight"])


@pytest.mark.parametrize("name", ["googlenet", "inception_v3"])
def test_aux_heads_are_optional_as_a_group(name):
    spec = models.get_spec(name)
    full = fake_state_dict(name)
    with_aux = convert_state_dict(spec, full)
    without = convert_state_dict(spec, {k: v for k, v in full.items()
                                        if k.split(".")[0] not in AUX[name]})
    assert not set(with_aux["params"]) & set(AUX[name])
    jax.tree.map(np.testing.assert_array_equal, with_aux, without)
    partial = dict(full)
    dropped = next(k for k in partial if k.startswith(AUX[name][-1]))
    del partial[dropped]
    with pytest.raises(ConversionError, match="auxiliary head"):
        convert_state_dict(spec, partial)


@pytest.mark.parametrize("name", ["resnet50", "googlenet", "efficientnet_lite0"])
def test_converter_errors_name_the_key(name):
    spec = models.get_spec(name)
    base = fake_state_dict(name)
    key = next(k for k in base if k.endswith(".weight") and base[k].ndim == 4)

    missing = dict(base)
    del missing[key]
    with pytest.raises(ConversionError, match=f"missing key '{key}'"):
        convert_state_dict(spec, missing)

    unknown = dict(base, **{"extra.layer.weight": np.zeros(3, np.float32)})
    with pytest.raises(ConversionError, match="unknown key 'extra.layer.weight'"):
        convert_state_dict(spec, unknown)

    wrong = dict(base, **{key: np.zeros(base[key].shape[:-1] + (9,), np.float32)})
    with pytest.raises(ConversionError, match=f"key '{key}' has shape"):
        convert_state_dict(spec, wrong)

    integer = dict(base, **{key: base[key].astype(np.int32)})
    with pytest.raises(ConversionError, match=f"key '{key}' has dtype int32"):
        convert_state_dict(spec, integer)


def test_num_batches_tracked_is_ignored_explicitly_and_nothing_else():
    spec = models.get_spec("resnet50")
    sd = fake_state_dict("resnet50")
    assert any(k.endswith("num_batches_tracked") for k in sd)
    convert_state_dict(spec, sd)  # accepted
    sd["bn1.num_batches_tracked_typo"] = np.zeros((), np.int64)
    with pytest.raises(ConversionError, match="num_batches_tracked_typo"):
        convert_state_dict(spec, sd)


# ----------------------------------------------------------------------------- round trips
def _round_trip(name: str, size: int, tmp_path: Path, zipfmt: bool = True,
                batch: int = 2) -> float:
    """Replica -> torch.save -> models.convert -> models.load; return the relative error."""
    torch = pytest.importorskip("torch")
    source = tmp_path / f"{name}.pth"
    replica = replica_state_dict_file(name, source, seed=1, zipfmt=zipfmt)
    cache = tmp_path / "cache"
    models.convert(name, source, cache_dir=cache)
    apply_fn, variables = models.load(name, cache_dir=cache)
    x = np.random.default_rng(0).standard_normal((batch, size, size, 3)).astype(np.float32)
    ours = np.asarray(jax.jit(apply_fn)(variables, x))
    with torch.no_grad():
        ref = replica(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    assert ours.shape == ref.shape == (batch, 1000)
    error = relative_error(ours, ref)
    print(f"round trip {name} {size}px: max abs {np.abs(ours - ref).max():.3e}, "
          f"relative {error:.3e}, logit scale {np.abs(ref).max():.3f}")
    assert error < 1e-4, f"{name}: relative logit error {error:.2e}"
    np.testing.assert_array_equal(ours.argmax(-1), ref.argmax(-1))
    meta = checkpoints.read_metadata(name, cache)
    assert meta.source_sha256 == checkpoints.sha256_file(source)
    return error


@pytest.mark.parametrize("zipfmt", [True, False])
def test_round_trip_vs_zfnet_replica_small(zipfmt, tmp_path):
    _round_trip("zfnet", 64, tmp_path, zipfmt)


@pytest.mark.slow
def test_round_trip_vs_zfnet_replica_full_resolution(tmp_path):
    _round_trip("zfnet", models.get_spec("zfnet").input_size, tmp_path, batch=1)


# ----------------------------------------------------------------------------- checkpoints
def _small_variables() -> dict:
    # 16 KiB of incompressible kernel: its own data file in the Orbax directory, and a flipped
    # byte there is a flipped byte of the array.
    kernel = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
    return {"params": {"fc": {"kernel": kernel,
                              "bias": np.ones(64, np.float32)}}}


def _save_small(cache: Path, name: str = "toy") -> Path:
    return checkpoints.save(name, _small_variables(), source="src.pth", source_sha256="ab",
                            converter_version=models.CONVERTER_VERSION, cache_dir=cache)


def test_checkpoint_round_trip_and_metadata(tmp_path):
    directory = _save_small(tmp_path)
    assert directory == tmp_path / "toy"
    variables, meta = checkpoints.restore("toy", tmp_path)
    jax.tree.map(np.testing.assert_array_equal, variables, _small_variables())
    assert meta.model == "toy" and meta.source == "src.pth" and meta.source_sha256 == "ab"
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]  # no temporary leftovers


def test_crash_during_save_leaves_no_checkpoint(tmp_path, monkeypatch):
    class Boom(RuntimeError):
        pass

    def crash(self, *args, **kwargs):
        raise Boom

    monkeypatch.setattr(checkpoints.CheckpointMetadata, "to_json", crash)
    with pytest.raises(Boom):
        _save_small(tmp_path)
    assert not checkpoints.exists("toy", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_directory_without_metadata_is_not_a_checkpoint(tmp_path):
    (tmp_path / "resnet50" / "state").mkdir(parents=True)
    assert not checkpoints.exists("resnet50", tmp_path)
    with pytest.raises(models.MissingCheckpointError) as err:
        models.load("resnet50", cache_dir=tmp_path)
    assert ("python -m models.convert --model=resnet50 --torch_weights=PATH/TO/resnet50.pth "
            f"--cache_dir={tmp_path}") in str(err.value)


def test_missing_checkpoint_message_has_the_exact_command(tmp_path, monkeypatch):
    monkeypatch.setenv(checkpoints.CACHE_ENV, str(tmp_path))
    with pytest.raises(models.MissingCheckpointError) as err:
        models.load("vgg16")
    assert "python -m models.convert --model=vgg16 --torch_weights=PATH/TO/vgg16.pth" in str(
        err.value)
    assert str(tmp_path / "vgg16") in str(err.value)


def _data_files(directory: Path) -> list[Path]:
    """The Orbax data files, smallest first (the largest holds the 16 KiB kernel)."""
    files = [p for p in (directory / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    return sorted(files, key=lambda p: p.stat().st_size)


def test_corrupt_checkpoint_is_detected(tmp_path):
    directory = _save_small(tmp_path)
    data = _data_files(directory)[-1]
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # flip a byte inside the array data
    data.write_bytes(bytes(raw))
    with pytest.raises(models.CheckpointError, match=str(directory)):
        checkpoints.restore("toy", tmp_path)


def test_truncated_checkpoint_is_detected(tmp_path):
    directory = _save_small(tmp_path)
    data = _data_files(directory)[-1]
    data.write_bytes(data.read_bytes()[:10])
    with pytest.raises(models.CheckpointError, match=str(directory)):
        checkpoints.restore("toy", tmp_path)


def test_garbled_metadata_is_detected(tmp_path):
    directory = _save_small(tmp_path)
    (directory / "metadata.json").write_text("{not json")
    with pytest.raises(models.CheckpointError, match="metadata.json"):
        checkpoints.restore("toy", tmp_path)


def test_checkpoint_for_another_model_is_rejected(tmp_path):
    checkpoints.save("resnet50", _small_variables(), source="x", source_sha256="",
                     converter_version=models.CONVERTER_VERSION, cache_dir=tmp_path)
    with pytest.raises(models.CheckpointError, match="do not match model resnet50"):
        models.load("resnet50", cache_dir=tmp_path)


def test_stale_converter_version_asks_to_convert_again(tmp_path):
    checkpoints.save("resnet50", _small_variables(), source="x", source_sha256="",
                     converter_version="0", cache_dir=tmp_path)
    with pytest.raises(models.CheckpointError, match="python -m models.convert --model=resnet50"):
        models.load("resnet50", cache_dir=tmp_path)


def test_overwrite_replaces_atomically(tmp_path):
    _save_small(tmp_path)
    bigger = {"params": {"fc": {"kernel": np.zeros((64, 64), np.float32),
                                "bias": np.zeros(64, np.float32)}}}
    checkpoints.save("toy", bigger, source="new.pth", source_sha256="cd",
                     converter_version=models.CONVERTER_VERSION, cache_dir=tmp_path,
                     overwrite=True)
    variables, meta = checkpoints.restore("toy", tmp_path)
    assert meta.source == "new.pth"
    assert float(np.abs(variables["params"]["fc"]["kernel"]).sum()) == 0.0
    assert [p.name for p in tmp_path.iterdir()] == ["toy"]


def test_cache_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv(checkpoints.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert checkpoints.cache_root() == tmp_path / "xdg" / "secnn_jax" / "checkpoints"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert checkpoints.cache_root() == Path.home() / ".cache" / "secnn_jax" / "checkpoints"
    monkeypatch.setenv(checkpoints.CACHE_ENV, str(tmp_path / "env"))
    assert checkpoints.cache_root() == tmp_path / "env"
    assert checkpoints.cache_root(tmp_path / "arg") == tmp_path / "arg"


def test_zfnet_without_weights_is_a_random_init(tmp_path):
    apply_fn, variables = models.load("zfnet", cache_dir=tmp_path)
    logits = apply_fn(variables, jnp.asarray(np.random.default_rng(0).standard_normal(
        (1, 64, 64, 3)), jnp.float32))
    assert logits.shape == (1, 1000) and float(jnp.abs(logits).max()) > 0


def test_random_init_is_seeded_and_follows_flax_defaults(tmp_path):
    _, variables = models.load("googlenet", cache_dir=tmp_path, pretrained=False, seed=3)
    assert not any(tmp_path.iterdir())  # no checkpoint needed or written
    again = models.init_variables("googlenet", seed=3)
    jax.tree.map(np.testing.assert_array_equal, variables, again)
    other = models.init_variables("googlenet", seed=4)
    assert not np.array_equal(other["params"]["fc"]["kernel"], again["params"]["fc"]["kernel"])
    kernel = np.asarray(variables["params"]["inception4a"]["branch2_1"]["conv"]["kernel"])
    assert abs(kernel.std() * np.sqrt(3 * 3 * 96) - 1) < 0.05  # LeCun normal: var 1 / fan_in
    assert np.abs(kernel).max() <= 2 / np.sqrt(3 * 3 * 96) / 0.8796 + 1e-6  # truncated at 2 sd
    assert not np.asarray(variables["params"]["fc"]["bias"]).any()
    np.testing.assert_array_equal(variables["batch_stats"]["conv1"]["bn"]["var"], 1.0)
    expected = traverse_util.flatten_dict(
        jax.eval_shape(models.build("googlenet").init, jax.random.PRNGKey(0),
                       jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)))
    got = traverse_util.flatten_dict(variables)
    assert {p: v.shape for p, v in got.items()} == {p: v.shape for p, v in expected.items()}
    shapes = traverse_util.flatten_dict(models.variable_shapes("googlenet"))
    assert {p: v.shape for p, v in shapes.items()} == {p: v.shape for p, v in expected.items()}


def test_convert_cli(tmp_path):
    """python -m models.convert end to end (ZFNet from its replica's file)."""
    import subprocess
    import sys

    source = tmp_path / "zfnet.pth"
    replica_state_dict_file("zfnet", source)
    cache = tmp_path / "cache"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-m", "models.convert", "--model=zfnet",
         f"--torch_weights={source}", f"--cache_dir={cache}"],
        capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parent.parent,
        check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    meta = json.loads((cache / "zfnet" / "metadata.json").read_text())
    assert meta["source"] == str(source.resolve())
    assert meta["source_sha256"] == checkpoints.sha256_file(source)
    assert meta["converter_version"] == models.CONVERTER_VERSION


# ----------------------------------------------------------------------------- preprocess
@pytest.mark.parametrize("name,size", [("resnet50", 224), ("inception_v3", 299),
                                       ("efficientnet_lite0", 224), ("efficientnet_lite1", 240),
                                       ("efficientnet_lite2", 260)])
def test_preprocess_shapes(name, size):
    image = np.random.default_rng(0).integers(0, 256, (300, 451, 3), dtype=np.uint8)
    out = models.preprocess(name, image)
    assert out.shape == (size, size, 3) and out.dtype == jnp.float32
    tall = models.preprocess(name, np.ascontiguousarray(image.transpose(1, 0, 2)))
    assert tall.shape == (size, size, 3)


def test_preprocess_torchvision_values():
    """At 256x256 the resize is the identity: output = normalised center 224 crop."""
    image = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    out = np.asarray(models.preprocess("resnet50", image))
    crop = image[16:240, 16:240].astype(np.float32) / 255
    expected = (crop - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_preprocess_efficientnet_values():
    """A uniform image maps to (v - 127) / 128, the Lite models' TF normalisation."""
    image = np.full((300, 400, 3), 200, np.uint8)
    out = np.asarray(models.preprocess("efficientnet_lite0", image))
    np.testing.assert_allclose(out, (200 - 127) / 128, atol=1e-5)


def test_preprocess_is_jittable():
    image = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    jitted = jax.jit(lambda im: models.preprocess("googlenet", im))(image)
    np.testing.assert_allclose(jitted, models.preprocess("googlenet", image), atol=1e-5)


@pytest.mark.parametrize("bad,error", [
    (np.zeros((32, 32, 3), np.float32), TypeError),
    (np.zeros((32, 32), np.uint8), ValueError),
    (np.zeros((32, 32, 4), np.uint8), ValueError),
    (np.zeros((2, 32, 32, 3), np.uint8), ValueError),
    ([[1, 2, 3]], TypeError),
])
def test_preprocess_validates_input(bad, error):
    with pytest.raises(error, match="image"):
        models.preprocess("resnet50", bad)


# ----------------------------------------------------------------------------- models.info
def test_info_layer_table():
    pytest.importorskip("secnn_jax")
    from models import info

    result = info.model_info("efficientnet_lite0", size=64)
    assert result.input_shape == (1, 64, 64, 3)
    assert (result.conv_layers, result.dense_layers) == (49, 1)
    assert result.layers[0].name == "stem/conv" and result.layers[-1].name == "fc"
    depthwise = next(r for r in result.layers if r.name == "blocks_1/depthwise_conv")
    assert depthwise.groups == 96 and depthwise.kernel_shape == (3, 3, 1, 96)
    assert depthwise.params == 3 * 3 * 96
    assert result.layers[-1].params == 1280 * 1000 + 1000  # kernel and bias
    assert result.linear_params == sum(r.params for r in result.layers)
    assert result.total_params == 4_652_008  # published EfficientNet-Lite0 size
    assert result.total_macs == sum(r.macs for r in result.layers) > 0
    table = info.format_table(result)
    assert "blocks_1/depthwise_conv" in table and "total: 50 linear layers" in table
    assert info.format_summary(result).startswith("efficientnet_lite0")
