"""Measures what the timing model needs on the local GPU, through JAX.

``python -m experiments.measure_gpu --out=DIR`` times, on the first JAX device, every distinct
conv/dense layer shape of the networks (batch 1 and 16; fp32, TF32, fp16; standard, depthwise,
grouped), the op kernels between the layers alone, the concurrency probe (n independent convs in
one program vs the same n chained), the software SE-CNN pieces (compare, compaction, sparse
amendment at event densities 1-60%), the whole networks jitted and eager, and the GPU's ceilings
(copy bandwidth, matmul peaks, tiny kernel, launch rate). It writes ``conv.csv``, ``ops.csv``,
``concurrency.csv``, ``secnn_sw.csv``, ``e2e.csv``, ``ceilings.json`` and ``device.json`` into
``DIR`` (columns in ``secnn_jax/timing/measurements/README.md``), one row at a time: a killed
run restarted with the same command resumes after its last finished row. Then

    python -m experiments.calibrate_timing --measurements=DIR --gpu=NAME --out=NAME.json

fits the timing model to them. The defaults measure thousands of kernels (tens of minutes on a
fast GPU: a run is resumable, and ``--time_budget_s`` stops it cleanly); a ~10-minute look:

    python -m experiments.measure_gpu --out=DIR --nets=efficientnet_lite0,hed_vgg16,resnet50,vgg16 \
        --modes=fp32_strict,fp16 --repeats=10 --warmup=2 --concurrency_n=1,2,4,8 \
        --densities=0.01,0.05,0.2,0.6 --sw_layers=3 --time_budget_s=480
 ``--dry_run`` runs the same code on XLA:CPU with tiny shapes
(the output is marked as not a GPU measurement; calibration refuses it unless told
``--allow_cpu``). Measurement logic: :mod:`experiments.gpu_measure`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from absl import app, flags, logging

_DEFAULT_NETS = ("efficientnet_lite0,hed_vgg16,alexnet,zfnet,vgg16,vgg19,googlenet,"
                 "inception_v3,resnet50,resnet101,resnet152")

_OUT = flags.DEFINE_string("out", None, "Output directory (created; a directory with earlier "
                           "rows of the same device is resumed).", required=True)
_NETS = flags.DEFINE_string("nets", _DEFAULT_NETS, "Comma-separated zoo models whose layers, "
                            "op kernels and whole networks are measured (default: the studies' "
                            "models and the nine ILSVRC CNNs).")
_SIZES = flags.DEFINE_string("sizes", "hed_vgg16=128,craft_vgg16_bn=128",
                             "Per-model input size, name=size comma-separated (default: the "
                             "studies' resolutions; others use the model's native size, or its "
                             "minimum under --dry_run).")
_BATCHES = flags.DEFINE_string("batches", "1,16", "Comma-separated batch sizes.")
_MODES = flags.DEFINE_string("modes", "fp32_strict,tf32,fp16",
                             "Comma-separated precisions: fp32_strict (TF32 off), tf32, fp16.")
_SECTIONS = flags.DEFINE_string("sections", "ceilings,conv,ops,concurrency,secnn_sw,e2e",
                                "Comma-separated sections to run (see the module docstring).")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Timed calls per kernel (median and minimum "
                                "are recorded).")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed calls after the compiling call.")
_DENSITIES = flags.DEFINE_string("densities", "0.01,0.02,0.05,0.1,0.2,0.4,0.6",
                                 "Event densities (fractions of mispredicted inputs) of the "
                                 "software SE-CNN probe.")
_SW_LAYERS = flags.DEFINE_integer("sw_layers", 4, "Layers per network (evenly spaced) of the "
                                  "software SE-CNN probe.")
_CONC_N = flags.DEFINE_string("concurrency_n", "1,2,4,8,16", "Numbers of convolutions of the "
                              "concurrency probe.")
_LIMIT = flags.DEFINE_integer("limit", 0, "Only the first this many rows of each section "
                               "(0: all); a quick look, resumable like a full run.")
_BUDGET = flags.DEFINE_float("time_budget_s", 0.0, "Stop starting new rows after this many "
                             "seconds (0: no limit); rerun the same command to resume.")
_DRY_RUN = flags.DEFINE_boolean("dry_run", False, "Run on XLA:CPU with tiny shapes; the output "
                                "is marked as not a GPU measurement.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the random inputs and weights.")
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar.")


def _numbers(text: str, flag: str, kind: type, ok: Any, what: str) -> tuple[Any, ...]:
    """``text`` as comma-separated numbers of ``kind``, each passing ``ok`` (else a
    ``flags.ValidationError`` naming ``--flag`` and ``what`` it must list)."""
    try:
        vals = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        noun = "integers" if kind is int else "numbers"
        raise flags.ValidationError(f"--{flag} must be comma-separated {noun}, got "
                                    f"{text!r}") from None
    if not vals or not all(ok(v) for v in vals):
        raise flags.ValidationError(f"--{flag} must list {what}, got {text!r}")
    return vals


def _ints(text: str, flag: str) -> tuple[int, ...]:
    return _numbers(text, flag, int, lambda v: v >= 1, "integers >= 1")


def _floats(text: str, flag: str) -> tuple[float, ...]:
    return _numbers(text, flag, float, lambda v: 0 < v <= 1, "fractions in (0, 1]")


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _check_nets(text: str) -> bool:
    import models  # noqa: PLC0415

    bad = [n for n in _names(text) if n not in models.available()]
    if bad or not _names(text):
        raise flags.ValidationError(f"--nets: unknown or no models {bad}; known: "
                                    f"{', '.join(models.available())}")
    return True


def _check_sizes(text: str) -> bool:
    import models  # noqa: PLC0415

    for name, size in _parse_sizes(text).items():
        if name not in models.available():
            raise flags.ValidationError(f"--sizes: unknown model {name!r}")
        if size < models.get_spec(name).min_size:
            raise flags.ValidationError(f"--sizes: {name} needs at least "
                                        f"{models.get_spec(name).min_size} pixels, got {size}")
    return True


def _parse_sizes(text: str) -> dict[str, int]:
    out = {}
    for item in _names(text):
        name, _, size = item.partition("=")
        if not size.strip().isdigit() or int(size) < 1:
            raise flags.ValidationError(f"--sizes: expected name=size, got {item!r}")
        out[name.strip()] = int(size)
    return out


def _subset(known: Sequence[str], flag: str) -> object:
    def check(text: str) -> bool:
        bad = [v for v in _names(text) if v not in known]
        if bad or not _names(text):
            raise flags.ValidationError(f"--{flag}: unknown or none {bad}; known: "
                                        f"{', '.join(known)}")
        return True
    return check


def _register_validators() -> None:
    from experiments import gpu_measure as G  # noqa: PLC0415

    flags.register_validator("out", lambda v: bool(v and v.strip()), "--out must be a path")
    flags.register_validator("nets", _check_nets)
    flags.register_validator("sizes", _check_sizes)
    flags.register_validator("batches", lambda v: bool(_ints(v, "batches")))
    flags.register_validator("concurrency_n", lambda v: bool(_ints(v, "concurrency_n")))
    flags.register_validator("densities", lambda v: bool(_floats(v, "densities")))
    flags.register_validator("modes", _subset(G.MODES, "modes"))
    flags.register_validator("sections", _subset(G.SECTIONS, "sections"))
    flags.register_validator("repeats", lambda v: v >= 1, "--repeats must be >= 1")
    flags.register_validator("warmup", lambda v: v >= 0, "--warmup must be >= 0")
    flags.register_validator("sw_layers", lambda v: v >= 1, "--sw_layers must be >= 1")
    flags.register_validator("limit", lambda v: v >= 0, "--limit must be >= 0")
    flags.register_validator("time_budget_s", lambda v: v >= 0, "--time_budget_s must be >= 0")


def main(argv: Sequence[str]) -> None:
    """absl entry point."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from experiments import gpu_measure as G  # noqa: PLC0415

    sizes = _parse_sizes(_SIZES.value)
    nets = _names(_NETS.value)
    cfg = G.MeasureConfig(
        out=_OUT.value, nets=nets, sizes=sizes, batches=_ints(_BATCHES.value, "batches"),
        modes=_names(_MODES.value), sections=_names(_SECTIONS.value), repeats=_REPEATS.value,
        warmup=_WARMUP.value, dry_run=_DRY_RUN.value,
        densities=_floats(_DENSITIES.value, "densities"), sw_layers=_SW_LAYERS.value,
        concurrency_n=_ints(_CONC_N.value, "concurrency_n"), limit=_LIMIT.value,
        time_budget_s=_BUDGET.value, seed=_SEED.value)
    added = G.measure(cfg, progress=_PROGRESS.value)
    logging.info("measure_gpu: new rows %s in %s (%s)", added, cfg.out,
                 "dry run on XLA:CPU, not a GPU measurement" if cfg.dry_run else "GPU")


if __name__ == "__main__":
    if any(a.partition("=")[0] == "--dry_run" and a.partition("=")[2].lower() not in
           ("false", "0") for a in sys.argv[1:]):
        os.environ.setdefault("JAX_PLATFORMS", "cpu")  # before JAX picks a backend
    _register_validators()
    from models._cli import run as _run

    _run(main)
