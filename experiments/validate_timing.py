"""Validates the timing model against kernel and whole-network measurements.

``python -m experiments.validate_timing --gpu=h100 --measurements=CSV --out=CSV``

Reads kernel measurements in the column format of ``h100_cudnn_conv.csv`` (extra columns are
ignored; a missing required column is an error naming it), predicts every row with the
calibrated model (:func:`secnn_jax.timing.calibration.predict_us`: the layer shape in,
microseconds out — no lookup of measured values), writes the same rows plus ``pred_us`` to
``--out`` (atomically), logs the error per precision and batch, and prints the mean absolute
percentage error of ``pred_us`` against ``us_median`` as its last line: ``MAPE <number>%``.

``python -m experiments.validate_timing --gpu=h100 --e2e=CSV --out=CSV``

Reads whole-network measurements in the column format of ``h100_e2e.csv`` (``net`` a zoo model
name, ``mode``, ``B``, ``size``, ``eager_us``, ``graph_us``; extra columns ignored), builds each
network from the zoo (shapes only: dense time does not depend on the weights), replays ``dense``
(fusion ``none``, NCHW like the PyTorch measurements) under the ``eager`` and ``graph`` launch
models, writes the same rows in the same order plus ``pred_eager_us`` and ``pred_graph_us``, and
prints as its last line ``E2E MAPE graph <x>% eager <y>%``.

``python -m experiments.validate_timing --gpu=titanx|v100 --gpgpusim=CSV``

Reads GPGPU-Sim cycle counts (``python -m experiments.gpgpusim run``; columns in
``secnn_jax/timing/measurements/README.md``) for the simulator configuration of ``--gpu``
(``titanx`` -> ``SM6_TITANX``, ``v100`` -> ``SM7_QV100``), predicts every row with the replayer's
model of the same kernel on the simulator's machine (:mod:`secnn_jax.timing.simref`), writes the
rows plus ``predicted`` and ``error_pct``, prints the per-class table, the concurrency rows
(parallel over serial, simulated vs modelled) and, last, ``GPGPU-Sim MAPE <x>%``.

Without ``--measurements``, ``--e2e`` and ``--gpgpusim`` it validates the packaged H100 kernel
measurements (``secnn_jax/timing/measurements``). Every input is checked before anything is written.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from absl import app, flags, logging

_GPU = flags.DEFINE_string("gpu", "h100", "GPU configuration (secnn_jax.timing.GPUS key).")
_MEASUREMENTS = flags.DEFINE_string(
    "measurements", None, "Kernel measurement CSV (default: the packaged H100 measurements, "
    "unless --e2e is given).")
_E2E = flags.DEFINE_string("e2e", None, "Whole-network measurement CSV (h100_e2e.csv format).")
_OUT = flags.DEFINE_string("out", "runs/validate_timing/predictions.csv",
                           "Output CSV: the measurement rows plus the predictions.")
_GPGPUSIM = flags.DEFINE_string("gpgpusim", None, "GPGPU-Sim cycle CSV (experiments.gpgpusim "
                                "run); --gpu titanx or v100 picks the simulator configuration.")
_GPGPUSIM_CASES = flags.DEFINE_string(
    "gpgpusim_cases", "secnn_jax/timing/measurements/gpgpusim_cases.npz",
    "The event-code cases the --gpgpusim rows were simulated on (experiments.gpgpusim cases).")
_PARAMS = flags.DEFINE_string("params", None,
                              "Model parameters JSON (default: the committed calibration).")
_LAYOUT = flags.DEFINE_enum("layout", None, ["NCHW", "NHWC"],
                            "Tensor layout of the measured kernels (default: each row's "
                            "'layout' column, NCHW where there is none).")


def _gpu_known(value: str) -> bool:
    from secnn_jax.timing import gpus  # noqa: PLC0415

    try:
        gpus.get_gpu(value)
    except ValueError:
        return False
    return True


flags.register_validator("gpu", _gpu_known,
                         message="--gpu must name a known GPU (see secnn_jax.timing.GPUS)")


def _write_csv(out: str | Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    from secnn_jax.fileio import atomic_write  # noqa: PLC0415

    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    wr.writeheader()
    wr.writerows(rows)
    atomic_write(out, buf.getvalue())


def run(measurements: str | Path, out: str | Path, gpu: str = "h100",
        params_path: str | Path | None = None, layout: str | None = None) -> float:
    """Predicts every kernel row, writes ``out``, returns the MAPE (percent)."""
    from secnn_jax.timing import calibration, params  # noqa: PLC0415

    columns, ms = calibration.read_measurements(measurements)
    par = params.load_params(params_path)
    pred = calibration.predict_us(ms, gpu, par, layout=layout)
    meas = np.array([m.us_median for m in ms])
    _write_csv(out, [*columns, "pred_us"],
               [{**m.row, "pred_us": f"{p:.3f}"} for m, p in zip(ms, pred, strict=True)])
    prec = np.array([m.precision for m in ms])
    batch = np.array([m.batch for m in ms])
    for p in sorted(set(prec.tolist())):
        for b in sorted(set(batch.tolist())):
            sel = (prec == p) & (batch == b)
            if sel.any():
                logging.info("%s batch %d: %d rows, MAPE %.1f%%", p, b, int(sel.sum()),
                             calibration.mape(pred[sel], meas[sel]))
    return calibration.mape(pred, meas)


def run_e2e(e2e_csv: str | Path, out: str | Path, gpu: str = "h100",
            params_path: str | Path | None = None) -> tuple[float, float]:
    """Predicts every whole-network row, writes ``out``; returns ``(graph MAPE, eager MAPE)``."""
    from experiments.zoo_networks import network, zoo_names  # noqa: PLC0415
    from secnn_jax.timing import calibration, e2e, params  # noqa: PLC0415

    columns, rows = e2e.read_e2e(e2e_csv, known_nets=zoo_names())
    par = params.load_params(params_path)
    nets = {(r.net, r.batch, r.size): network(r.net, r.batch, r.size) for r in rows}
    pe, pg = e2e.predict_e2e(rows, nets, par, gpu)
    _write_csv(out, [*columns, "pred_eager_us", "pred_graph_us"],
               [{**r.row, "pred_eager_us": f"{a:.1f}", "pred_graph_us": f"{b:.1f}"}
                for r, a, b in zip(rows, pe, pg, strict=True)])
    for r, a, b in zip(rows, pe, pg, strict=True):
        logging.info("%s %s B=%d: graph %.0f us (pred %.0f), eager %.0f us (pred %.0f)",
                     r.net, r.precision, r.batch, r.graph_us, b, r.eager_us, a)
    return (calibration.mape(pg, np.array([r.graph_us for r in rows])),
            calibration.mape(pe, np.array([r.eager_us for r in rows])))


#: Our GPU keys -> GPGPU-Sim configurations (:data:`secnn_jax.timing.simref.SIM_GPUS`).
SIM_CONFIGS = {"titanx": "titanx", "v100": "qv100"}


def run_gpgpusim(sim_csv: str | Path, cases: str | Path, out: str | Path, gpu: str = "titanx",
                 params_path: str | Path | None = None) -> object:
    """Predicts every simulated row, writes ``out``; returns the
    :class:`~secnn_jax.timing.simref.SimComparison`."""
    from experiments.gpgpusim import load_cases  # noqa: PLC0415
    from secnn_jax.timing import params, simref  # noqa: PLC0415
    from secnn_jax.timing.errors import ReplayError  # noqa: PLC0415

    if gpu not in SIM_CONFIGS:
        raise ReplayError(f"--gpu={gpu}: GPGPU-Sim rows are modelled for {sorted(SIM_CONFIGS)}")
    if not Path(cases).is_file():
        raise ReplayError(f"--gpgpusim_cases={cases}: not found")
    cmp = simref.compare_rows(sim_csv, load_cases(Path(cases)), SIM_CONFIGS[gpu],
                              params.load_params(params_path))
    cols = list(cmp.rows[0].keys())
    for r in cmp.rows:
        cols += [k for k in r if k not in cols]
    _write_csv(out, cols, [{k: (f"{v:.3f}" if isinstance(v, float) else v) for k, v in r.items()}
                           for r in cmp.rows])
    return cmp


def main(argv: list[str]) -> None:
    """absl entry point."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from secnn_jax.timing.calibration import default_measurements  # noqa: PLC0415

    if _GPGPUSIM.value:
        cmp = run_gpgpusim(_GPGPUSIM.value, _GPGPUSIM_CASES.value, _OUT.value, _GPU.value,
                           _PARAMS.value)
        print(cmp.table(), flush=True)
        return
    if _E2E.value:
        graph, eager = run_e2e(_E2E.value, _OUT.value, _GPU.value, _PARAMS.value)
        print(f"E2E MAPE graph {graph:.2f}% eager {eager:.2f}%", flush=True)
        return
    value = run(_MEASUREMENTS.value or default_measurements(), _OUT.value, _GPU.value,
                _PARAMS.value, _LAYOUT.value)
    print(f"MAPE {value:.2f}%", flush=True)


if __name__ == "__main__":
    from models._cli import run as _run

    _run(main)
