"""Check the zoo's converters against torchvision itself (run where torchvision is installed).

torchvision cannot be installed beside the development environment's torch, so this script is
meant for the GPU machine of the ``device`` tool (which has torch, torchvision and timm). For
each of the nine ILSVRC models with a torchvision version (all but ZFNet) it

1. builds the torchvision model with random weights (``weights=None``; GoogLeNet/Inception-v3
   with ``aux_logits=True, transform_input=True, init_weights=True``), eval mode, and gives every
   BatchNorm non-trivial statistics (fresh ones would hide BN conversion mistakes);
2. saves its state dict with ``torch.save`` and writes its key/shape manifest to
   ``<out_dir>/manifests/<model>.json`` (``"source": "torchvision"``), diffing it against the
   committed ``models/manifests/<model>.json``;
3. converts the file with ``models.convert`` (torch-free reader + converter + Orbax checkpoint)
   and restores it with ``models.load``;
4. compares torchvision's logits with ours on fixed random inputs (seed 0) at the model's
   native resolution, and also converts the aux-less state dict torchvision's pretrained
   builders produce (GoogLeNet, Inception-v3);
5. writes ``<out_dir>/torchvision_check.json`` (max absolute / relative error, top-1 agreement,
   manifest differences, versions) and exits non-zero if any model fails.

Usage (repository root)::

    python -m models.scripts.torchvision_check --out_dir=$OUT [--models=resnet50,vgg16]

Then copy ``$OUT/manifests/*.json`` over ``models/manifests/`` and commit them together with
``torchvision_check.json`` (e.g. as ``models/manifests/torchvision_check.json``).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import torch
from absl import app, flags, logging

import models
from models.conversion import convert_state_dict
from models.scripts import torch_reference
from models.scripts.make_manifests import manifest, write
from models.torch_reader import load_state_dict

FLAGS = flags.FLAGS
TORCHVISION_MODELS = ("alexnet", "vgg16", "vgg19", "googlenet", "inception_v3", "resnet50",
                      "resnet101", "resnet152")
flags.DEFINE_string("out_dir", None, "Where results and regenerated manifests are written.")
flags.DEFINE_list("models", list(TORCHVISION_MODELS), "Models to check.")
flags.DEFINE_integer("batch", 2, "Random inputs per model.")
flags.DEFINE_float("tolerance", 1e-4, "Maximum relative logit error (to the logit scale).")
flags.mark_flag_as_required("out_dir")

COMMITTED = Path(__file__).resolve().parent.parent / "manifests"


@dataclasses.dataclass
class Result:
    """The outcome for one model."""

    model: str
    input_shape: list[int]
    max_abs_error: float = float("nan")
    relative_error: float = float("nan")
    logit_scale: float = float("nan")
    top1_agree: bool = False
    aux_free_state_dict_converts: bool | None = None
    manifest_keys: int = 0
    manifest_diff: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    passed: bool = False


def build_torchvision(name: str, aux: bool = True) -> torch.nn.Module:
    """torchvision's ``name`` with random weights, eval mode."""
    import torchvision

    kwargs = {}
    if name in ("googlenet", "inception_v3"):
        kwargs = {"aux_logits": aux, "transform_input": True, "init_weights": True}
    model = getattr(torchvision.models, name)(weights=None, **kwargs)
    torch_reference.randomize_batch_norm(model, torch.Generator().manual_seed(1))
    return model.eval()


def manifest_diff(name: str, regenerated: dict) -> list[str]:
    """Differences between the committed manifest and torchvision's keys/shapes."""
    path = COMMITTED / f"{name}.json"
    if not path.exists():
        return [f"no committed manifest {path}"]
    committed = {e["key"]: e["shape"] for e in json.loads(path.read_text())["keys"]}
    fresh = {e["key"]: e["shape"] for e in regenerated["keys"]}
    diff = [f"only in torchvision: {k} {fresh[k]}" for k in fresh if k not in committed]
    diff += [f"only in committed: {k} {committed[k]}" for k in committed if k not in fresh]
    diff += [f"shape of {k}: committed {committed[k]} vs torchvision {fresh[k]}"
             for k in fresh if k in committed and committed[k] != fresh[k]]
    if list(fresh) != list(committed) and not diff:
        diff.append("same keys, different order")
    return diff


def check(name: str, work: Path, out_dir: Path) -> Result:
    """Run steps 1-4 for one model."""
    spec = models.get_spec(name)
    size = spec.input_size
    result = Result(model=name, input_shape=[FLAGS.batch, size, size, 3])
    start = time.time()
    try:
        torch.manual_seed(0)
        model = build_torchvision(name)
        state_dict = model.state_dict()
        regenerated = manifest(name, state_dict, "torchvision",
                               f"torchvision {_version('torchvision')} {name}(weights=None), "
                               "written by models/scripts/torchvision_check.py")
        write(out_dir / "manifests", regenerated)
        result.manifest_keys = regenerated["num_keys"]
        result.manifest_diff = manifest_diff(name, regenerated)

        source = work / f"{name}.pth"
        torch.save(state_dict, source)
        cache = work / "cache"
        models.convert(name, source, cache_dir=cache)
        apply_fn, variables = models.load(name, cache_dir=cache)

        x = np.random.default_rng(0).standard_normal((FLAGS.batch, size, size, 3))
        x = x.astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
        ours = np.asarray(jax.jit(apply_fn)(variables, x))
        scale = float(np.abs(ref).max())
        result.max_abs_error = float(np.abs(ours - ref).max())
        result.logit_scale = scale
        result.relative_error = result.max_abs_error / max(scale, 1e-12)
        result.top1_agree = bool((ours.argmax(-1) == ref.argmax(-1)).all())

        if name in ("googlenet", "inception_v3"):
            # torchvision's pretrained builders delete the aux heads: their state_dict() lacks
            # them, and the converter must accept that.
            aux_free = {k: v for k, v in state_dict.items()
                        if k.split(".")[0] not in ("aux1", "aux2", "AuxLogits")}
            arrays = {k: v.detach().numpy() for k, v in aux_free.items()}
            convert_state_dict(spec, arrays)
            result.aux_free_state_dict_converts = True
        # The file read by our reader equals torch's own view of it.
        ours_sd = load_state_dict(source)
        assert list(ours_sd) == list(state_dict)
        result.passed = (result.relative_error <= FLAGS.tolerance and result.top1_agree
                         and not result.manifest_diff)
    except Exception as err:  # report and continue with the next model
        logging.exception("%s failed", name)
        result.error = f"{type(err).__name__}: {err}"
    result.seconds = round(time.time() - start, 1)
    return result


def _version(package: str) -> str:
    try:
        return __import__(package).__version__
    except Exception:
        return "unavailable"


def main(argv: list[str]) -> None:
    """Check every requested model and write the results JSON."""
    del argv
    jax.config.update("jax_default_matmul_precision", "highest")  # no TF32 on GPUs
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_grad_enabled(False)
    out_dir = Path(FLAGS.out_dir)
    (out_dir / "manifests").mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in FLAGS.models:
            if name not in TORCHVISION_MODELS:
                raise app.UsageError(f"{name} has no torchvision version")
            result = check(name, Path(tmp), out_dir)
            logging.info("%s: rel err %.2e, top-1 %s, manifest diff %d, %s", name,
                         result.relative_error, result.top1_agree, len(result.manifest_diff),
                         "PASS" if result.passed else f"FAIL {result.error}")
            results.append(result)
            (Path(tmp) / f"{name}.pth").unlink(missing_ok=True)
    report = {
        "versions": {"torch": torch.__version__, "torchvision": _version("torchvision"),
                     "jax": jax.__version__, "backend": jax.default_backend(),
                     "python": platform.python_version()},
        "tolerance": FLAGS.tolerance,
        "zfnet": "not checked: ZFNet has no torchvision version",
        "results": [dataclasses.asdict(r) for r in results],
    }
    (out_dir / "torchvision_check.json").write_text(json.dumps(report, indent=1) + "\n")
    failed = [r.model for r in results if not r.passed]
    logging.info("%d/%d passed%s", len(results) - len(failed), len(results),
                 f"; failed: {failed}" if failed else "")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    app.run(main)
