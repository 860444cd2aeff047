"""Validates the timing model against kernel measurements.

``python -m experiments.validate_timing --gpu=h100 --measurements=CSV --out=CSV``

Reads kernel measurements in the column format of ``shared/measurements/h100_cudnn_conv.csv``
(extra columns are ignored; a missing required column is an error naming it), predicts every row
with the calibrated model (:func:`secnn_jax.timing.calibration.predict_us`: the layer shape in,
microseconds out — no lookup of measured values), writes the same rows plus ``pred_us`` to
``--out`` (atomically), logs the error per precision and batch, and prints the mean absolute
percentage error of ``pred_us`` against ``us_median`` as its last line: ``MAPE <number>%``.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path

import numpy as np
from absl import app, flags, logging

_GPU = flags.DEFINE_string("gpu", "h100", "GPU configuration (secnn_jax.timing.GPUS key).")
_MEASUREMENTS = flags.DEFINE_string("measurements", None, "Measurement CSV to validate against.")
_OUT = flags.DEFINE_string("out", None, "Output CSV: the measurement rows plus pred_us.")
_PARAMS = flags.DEFINE_string("params", None,
                              "Model parameters JSON (default: the committed calibration).")
_LAYOUT = flags.DEFINE_enum("layout", "NCHW", ["NCHW", "NHWC"],
                            "Tensor layout of the measured kernels.")
flags.mark_flag_as_required("measurements")
flags.mark_flag_as_required("out")


def _gpu_known(value: str) -> bool:
    from secnn_jax.timing import gpus  # noqa: PLC0415

    try:
        gpus.get_gpu(value)
    except ValueError:
        return False
    return True


flags.register_validator("gpu", _gpu_known,
                         message="--gpu must name a known GPU (see secnn_jax.timing.GPUS)")
flags.register_validator("measurements", lambda v: v is None or Path(v).is_file(),
                         message="--measurements must be an existing CSV file")


def run(measurements: str | Path, out: str | Path, gpu: str = "h100",
        params_path: str | Path | None = None, layout: str = "NCHW") -> float:
    """Predicts every row, writes ``out``, returns the MAPE (percent)."""
    from secnn_jax.timing import calibration, schemes  # noqa: PLC0415

    columns, ms = calibration.read_measurements(measurements)
    params = schemes.load_params(params_path)
    pred = calibration.predict_us(ms, gpu, params, layout=layout)
    meas = np.array([m.us_median for m in ms])
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=[*columns, "pred_us"], lineterminator="\n")
    wr.writeheader()
    for m, p in zip(ms, pred, strict=True):
        wr.writerow({**m.row, "pred_us": f"{p:.3f}"})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, out)
    prec = np.array([m.precision for m in ms])
    batch = np.array([m.batch for m in ms])
    for p in sorted(set(prec.tolist())):
        for b in sorted(set(batch.tolist())):
            sel = (prec == p) & (batch == b)
            if sel.any():
                logging.info("%s batch %d: %d rows, MAPE %.1f%%", p, b, int(sel.sum()),
                             calibration.mape(pred[sel], meas[sel]))
    return calibration.mape(pred, meas)


def main(argv: list[str]) -> None:
    """absl entry point."""
    del argv
    from secnn_jax.timing.calibration import MeasurementError  # noqa: PLC0415

    try:
        value = run(_MEASUREMENTS.value, _OUT.value, _GPU.value, _PARAMS.value, _LAYOUT.value)
    except (MeasurementError, FileNotFoundError) as e:
        logging.error("%s", e)
        sys.exit(f"validate_timing: {e}")
    print(f"MAPE {value:.2f}%", flush=True)


if __name__ == "__main__":
    app.run(main)
