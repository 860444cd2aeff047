"""Fits the timing model to measurements: your own GPU's, or the packaged H100's.

**Your GPU.** ``python -m experiments.calibrate_timing --measurements=DIR --gpu=NAME
--out=NAME.json`` reads a directory written by ``python -m experiments.measure_gpu``, builds the
GPU configuration ``NAME`` from its measured ceilings over a built-in GPU of the same
architecture (``--base_gpu``, guessed from the device name), fits the per-layer kernel
parameters on ``conv.csv`` (all rows and leave-one-network-out) and ``graph_kernel_us`` on the
jitted whole networks of ``e2e.csv``, validates the op-kernel, concurrency and software SE-CNN
rows, logs per-layer and end-to-end MAPE, and writes the GPU file ``--out`` (use it with
``secnn_jax.timing.load_gpu_file(FILE)`` then ``replay(..., gpus=["NAME"])``) and its
validation report ``--validation_out`` (default: ``--out`` with ``.md``). A ``--dry_run``
directory (XLA:CPU, not a GPU measurement) is refused unless ``--allow_cpu``.

**The packaged H100 calibration.** Without ``--measurements`` it refits the per-layer
parameters on ``h100_cudnn_conv.csv`` and ``graph_kernel_us`` on ``h100_e2e.csv`` and logs the
errors; it rewrites the shipped ``secnn_jax/timing/params_h100.json`` and ``VALIDATION.md`` only
with ``--write`` (``--out``/``--validation_out`` write copies elsewhere).

Every flag is checked before any fit; ``--restarts`` must be >= 1 (with none no fit runs).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from absl import app, flags, logging

from secnn_jax.timing.calibration import CalibrationError

_GPU = flags.DEFINE_string("gpu", None, "With --measurements: the name of your GPU's entry "
                           "(any new name, e.g. 'rtx4090_mine'). Without: the packaged "
                           "measurements' GPU configuration (default h100).")
_MEASUREMENTS = flags.DEFINE_string("measurements", None, "Directory written by python -m "
                                    "experiments.measure_gpu (default: the packaged H100 "
                                    "measurements).")
_BASE = flags.DEFINE_string("base_gpu", None, "Built-in GPU of the same architecture that "
                            "supplies the per-SM figures no benchmark measures (default: "
                            "guessed from the measured device name).")
_OUT = flags.DEFINE_string("out", None, "GPU file to write (default with --measurements: "
                           "DIR/gpu_NAME.json).")
_VAL_OUT = flags.DEFINE_string("validation_out", None, "Validation report (markdown) to write "
                               "(default: --out with the suffix .md).")
_WRITE = flags.DEFINE_boolean("write", False, "Without --measurements: rewrite the shipped "
                              "secnn_jax/timing/params_h100.json and VALIDATION.md.")
_ALLOW_CPU = flags.DEFINE_boolean("allow_cpu", False, "Fit a --dry_run directory (XLA:CPU; not "
                                  "a GPU measurement) anyway.")
_RESTARTS = flags.DEFINE_integer("restarts", 3, "Nelder-Mead restarts of the per-layer fit "
                                 "(>= 1).")

#: Built-in GPU guessed from a measured device name (first match wins).
_BASE_GUESS: tuple[tuple[str, str], ...] = (("h200", "h200"), ("h100", "h100"),
                                             ("a100", "a100"), ("v100", "v100"),
                                             ("titan v", "titanv"), ("1080 ti", "gtx1080ti"),
                                             ("titan x", "titanx"))


def calibrate(gpu: str = "h100", restarts: int = 3, *, write: bool = False,
              out: str | Path | None = None, validation_out: str | Path | None = None
              ) -> tuple[Any, Any]:
    """Refits the packaged H100 measurements; returns ``(per-layer report, e2e report)``.

    Writes the shipped ``params_h100.json`` and ``VALIDATION.md`` only when ``write``;
    ``out``/``validation_out`` receive the parameters and the report instead.

    Raises:
      CalibrationError: ``restarts < 1`` or an unknown ``gpu`` (before any fit).
    """
    from experiments.zoo_networks import network, zoo_names  # noqa: PLC0415
    from secnn_jax.timing import calibration as C  # noqa: PLC0415
    from secnn_jax.timing import e2e  # noqa: PLC0415
    from secnn_jax.timing import params as P  # noqa: PLC0415

    _check_restarts(restarts)
    _known_gpu(gpu)
    report = C.validate(C.default_measurements(), gpu, restarts=restarts)
    _, rows = e2e.read_e2e(C.default_measurements("h100_e2e.csv"), known_nets=zoo_names())
    nets = {(r.net, r.batch, r.size): network(r.net, r.batch, r.size) for r in rows}
    e2e_report = e2e.validate_e2e(rows, nets, report.params, report.folds, gpu)
    s, es = report.summary(), e2e_report.summary()
    logging.info("per-layer MAPE %.1f%% fitted, %.1f%% CV; E2E graph %.1f%% fitted, %.1f%% CV, "
                 "eager %.1f%%; graph_kernel_us %.2f", s["mape_fit"], s["mape_cv"],
                 es["mape_graph_fit"], es["mape_graph_cv"], es["mape_eager_fit"],
                 es["graph_kernel_us"])
    if write:
        C.write_outputs(report, e2e=e2e_report)
        logging.info("wrote %s and %s", P.PARAMS_PATH, C.VALIDATION_PATH)
    elif out or validation_out:
        params_path = Path(out) if out else None
        md_path = Path(validation_out) if validation_out else (
            params_path.with_suffix(".md") if params_path else None)
        C.write_outputs(report, params_path=params_path or Path(md_path).with_suffix(".json"),
                        markdown_path=md_path, e2e=e2e_report)
        logging.info("wrote %s and %s", params_path, md_path)
    else:
        logging.info("nothing written: pass --write to update the shipped params_h100.json "
                     "and VALIDATION.md, or --out=FILE for a copy")
    return report, e2e_report


def _check_restarts(restarts: int) -> None:
    if restarts < 1:
        raise CalibrationError(f"--restarts must be >= 1 (got {restarts}): with none the fit "
                               "does not run and the starting guess would be written as fitted")


def _known_gpu(gpu: str) -> None:
    from secnn_jax.timing.gpus import get_gpu  # noqa: PLC0415

    try:
        get_gpu(gpu)
    except ValueError as e:
        raise CalibrationError(str(e)) from e


@dataclasses.dataclass(frozen=True)
class DirCalibration:
    """A GPU calibrated from a measurement directory (see :func:`calibrate_dir`).

    Attributes:
      gpu: the GPU configuration built from the ceilings.
      params: the fitted parameters (``graph_kernel_us`` from the whole networks, when any).
      report: the per-layer :class:`~secnn_jax.timing.calibration.ValidationReport`.
      e2e: the whole-network report, or ``None`` without ``e2e.csv``.
      probes: per probe file present (``ops``, ``concurrency``, ``secnn_sw``), its numbers.
      markdown: the validation report.
      meta: provenance and validation numbers (written into the GPU file).
    """

    gpu: Any
    params: Any
    report: Any
    e2e: Any
    probes: Mapping[str, Any]
    markdown: str
    meta: Mapping[str, Any]


def read_ceilings(directory: str | Path, allow_cpu: bool = False) -> dict[str, Any]:
    """``DIR/ceilings.json``; refuses a run that is not a GPU measurement unless ``allow_cpu``.

    Raises:
      MeasurementError: missing or unreadable file.
      CalibrationError: a ``--dry_run`` (CPU) directory without ``allow_cpu``.
    """
    from secnn_jax.timing.calibration import MeasurementError  # noqa: PLC0415

    d = Path(directory)
    if not d.is_dir():
        raise MeasurementError(f"measurement directory not found: {d}")
    path = d / "ceilings.json"
    if not path.is_file():
        raise MeasurementError(f"{path} is missing: run python -m experiments.measure_gpu "
                               f"--out={d} (its ceilings section)")
    try:
        ceil = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MeasurementError(f"{path} is not valid JSON: {e}") from e
    dev = {}
    if (d / "device.json").is_file():
        try:
            dev = json.loads((d / "device.json").read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise MeasurementError(f"{d / 'device.json'} is not valid JSON: {e}") from e
    gpu_run = ceil.get("gpu_measurement", True) and dev.get("gpu_measurement", True)
    if not gpu_run and not allow_cpu:
        raise CalibrationError(f"{d} is a --dry_run on {ceil.get('platform', 'CPU')}, not a "
                               "GPU measurement; pass --allow_cpu to fit it anyway")
    return ceil


def guess_base(ceilings: Mapping[str, Any]) -> str:
    """The built-in GPU whose name the measured device's matches.

    Raises:
      CalibrationError: no match (pass ``--base_gpu``).
    """
    name = str((ceilings.get("device") or {}).get("name") or "").lower()
    for pat, key in _BASE_GUESS:
        if pat in name:
            return key
    raise CalibrationError(f"cannot tell which built-in GPU device {name!r} resembles; pass "
                           "--base_gpu (one of the secnn_jax.timing.GPUS keys) with the same "
                           "architecture")


def _check_rows_platform(rows: Sequence[Mapping[str, str]], path: Path, allow_cpu: bool) -> None:
    bad = {str(r.get("platform")) for r in rows if r.get("platform") not in (None, "", "gpu")}
    if bad and not allow_cpu:
        raise CalibrationError(f"{path} holds rows measured on {', '.join(sorted(bad))}, not a "
                               "GPU; pass --allow_cpu to fit them anyway")


def calibrate_dir(directory: str | Path, name: str, *, base: str | None = None,
                  restarts: int = 3, allow_cpu: bool = False) -> DirCalibration:
    """Fits and validates GPU ``name`` on the measurements in ``directory``.

    Raises:
      CalibrationError: ``restarts < 1``, a CPU dry run without ``allow_cpu``, a built-in
        ``name``, an unknown ``base``.
      MeasurementError: a missing or malformed file.
    """
    from experiments.zoo_networks import network, zoo_names  # noqa: PLC0415
    from secnn_jax.timing import calibration as C  # noqa: PLC0415
    from secnn_jax.timing import e2e as E  # noqa: PLC0415
    from secnn_jax.timing import probes as PR  # noqa: PLC0415
    from secnn_jax.timing.gpufile import gpu_from_ceilings  # noqa: PLC0415
    from secnn_jax.timing.gpus import GPUS, gpu_key  # noqa: PLC0415

    _check_restarts(restarts)
    d = Path(directory)
    ceil = read_ceilings(d, allow_cpu)
    key = gpu_key(name or "")
    if not key:
        raise CalibrationError("--gpu must name your GPU's entry (e.g. --gpu=rtx4090_mine)")
    if key in GPUS:
        raise CalibrationError(f"--gpu={name}: {key!r} is a built-in configuration; name your "
                               f"GPU's entry differently (e.g. {key + '_mine'!r})")
    base = base or guess_base(ceil)
    _known_gpu(base)
    gpu = gpu_from_ceilings(ceil, key, base, source=f"measured ({d.name}/ceilings.json)")
    conv = d / "conv.csv"
    _, conv_rows = C.read_csv(conv, C.REQUIRED_COLUMNS)
    _check_rows_platform(conv_rows, conv, allow_cpu)
    report = C.validate(conv, gpu, restarts=restarts)
    s = report.summary()
    for net, v in s["per_net"].items():
        logging.info("%s per-layer MAPE %s: %.1f%% fitted, %.1f%% leave-one-network-out",
                     key, net, v["mape_fit"], v["mape_cv"])
    for cls, v in s["classes"].items():
        logging.info("%s per-layer MAPE, %s layers (%d rows): %.1f%% fitted, %.1f%% CV", key,
                     cls, v["rows"], v["mape_fit"], v["mape_cv"])
    params = report.params
    sections: list[str] = []
    meta: dict[str, Any] = {"measurements": str(d), "base_gpu": base, "restarts": restarts,
                            "sha256_conv": report.sha256,
                            "generator": "python -m experiments.calibrate_timing",
                            "gpu_measurement": bool(ceil.get("gpu_measurement", True)),
                            "validation": {"rows": s["rows"], "mape_fit": s["mape_fit"],
                                           "mape_cv": s["mape_cv"], "per_net": s["per_net"],
                                           "classes": s["classes"]}}
    e2e_report = None
    if (d / "e2e.csv").is_file():
        _, rows = E.read_e2e(d / "e2e.csv", known_nets=zoo_names())
        _check_rows_platform([r.row for r in rows], d / "e2e.csv", allow_cpu)
        nets = {(r.net, r.batch, r.size): network(r.net, r.batch, r.size) for r in rows}
        e2e_report = E.validate_e2e(rows, nets, report.params, report.folds, gpu)
        es = e2e_report.summary()
        params = dataclasses.replace(params, graph_kernel_us=e2e_report.graph_kernel_us)
        sections += e2e_report.markdown()
        meta["validation"]["e2e"] = es
        logging.info("%s end-to-end MAPE (jitted = graph): %.1f%% fitted, %.1f%% "
                     "leave-one-network-out; graph_kernel_us %.2f", key, es["mape_graph_fit"],
                     es["mape_graph_cv"], es["graph_kernel_us"])
    probes: dict[str, Any] = {}
    for kind, fn in (("ops", PR.ops_markdown), ("concurrency", PR.concurrency_markdown),
                     ("secnn_sw", PR.sw_markdown)):
        path = d / f"{kind}.csv"
        if not path.is_file():
            continue
        rows = PR.read_probe(path, kind)
        _check_rows_platform([r.row for r in rows], path, allow_cpu)
        lines, nums = fn(rows, gpu, params)
        sections += lines
        probes[kind] = nums
        logging.info("%s %s: %s", key, kind, json.dumps(nums, default=float)[:300])
    meta["validation"]["probes"] = probes
    md = report.markdown(
        sections, kernel="one XLA kernel (JAX, NHWC) timed alone on the wall clock until its "
        "result is ready", ceilings=str(d / "ceilings.json"),
        open_items=[f"GPU `{key}` built from base `{base}`: per-SM rates, registers, shared "
                    "memory and occupancy limits are the base's, not measured.",
                    "L2 size is the base's unless the ceilings give it (JAX does not report "
                    "it)."] + ([] if meta["gpu_measurement"] else
                               ["**Not a GPU measurement**: a --dry_run on XLA:CPU, fitted "
                                "with --allow_cpu; the figures say nothing about a GPU."]))
    params = dataclasses.replace(params, provenance=f"fitted by python -m "
                                 f"experiments.calibrate_timing on {d} (gpu {key}, base {base})")
    return DirCalibration(gpu=gpu, params=params, report=report, e2e=e2e_report, probes=probes,
                          markdown=md, meta=meta)


def main(argv: Sequence[str]) -> None:
    """absl entry point."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    _check_restarts(_RESTARTS.value)
    if not _MEASUREMENTS.value:
        if _BASE.value or _ALLOW_CPU.value:
            raise CalibrationError("--base_gpu and --allow_cpu apply to --measurements=DIR only")
        calibrate(_GPU.value or "h100", _RESTARTS.value, write=_WRITE.value, out=_OUT.value,
                  validation_out=_VAL_OUT.value)
        return
    if _WRITE.value:
        raise CalibrationError("--write rewrites the shipped H100 calibration; with "
                               "--measurements=DIR use --out=FILE")
    if not _GPU.value:
        raise CalibrationError("--measurements=DIR needs --gpu=NAME (your GPU entry's name)")
    from secnn_jax import fileio  # noqa: PLC0415
    from secnn_jax.timing.gpufile import write_gpu_file  # noqa: PLC0415
    from secnn_jax.timing.gpus import gpu_key  # noqa: PLC0415

    out = Path(_OUT.value or Path(_MEASUREMENTS.value) / f"gpu_{gpu_key(_GPU.value)}.json")
    md = Path(_VAL_OUT.value) if _VAL_OUT.value else out.with_suffix(".md")
    cal = calibrate_dir(_MEASUREMENTS.value, _GPU.value, base=_BASE.value,
                        restarts=_RESTARTS.value, allow_cpu=_ALLOW_CPU.value)
    write_gpu_file(out, cal.gpu, cal.params, cal.meta)
    fileio.atomic_write(md, cal.markdown)
    s = cal.report.summary()
    logging.info("%s: per-layer MAPE %.1f%% fitted, %.1f%% leave-one-network-out; wrote %s "
                 "and %s; use it with secnn_jax.timing.load_gpu_file(%r) then "
                 "replay(..., gpus=[%r])", cal.gpu.key, s["mape_fit"], s["mape_cv"], out, md,
                 str(out), cal.gpu.key)


if __name__ == "__main__":
    from models._cli import run as _run

    _run(main)
