"""Refits the timing model on the packaged H100 measurements and regenerates its validation.

``python -m experiments.calibrate_timing`` fits the per-layer kernel parameters on
``h100_cudnn_conv.csv`` (all rows and leave-one-network-out), then ``graph_kernel_us`` on the
whole-network CUDA-graph latencies of ``h100_e2e.csv`` (zoo VGG-16 and ResNet-50 built from
shapes), and rewrites ``secnn_jax/timing/params_h100.json`` and ``VALIDATION.md``. A maintenance
command: the committed files are what every replay uses.
"""

from __future__ import annotations

from collections.abc import Sequence

from absl import app, flags, logging

_GPU = flags.DEFINE_string("gpu", "h100", "GPU configuration the measurements were taken on.")
_RESTARTS = flags.DEFINE_integer("restarts", 3, "Nelder-Mead restarts of the per-layer fit.")


def calibrate(gpu: str = "h100", restarts: int = 3) -> tuple[object, object]:
    """Fits and writes the committed parameters; returns ``(per-layer report, e2e report)``."""
    from experiments.zoo_networks import network, zoo_names  # noqa: PLC0415
    from secnn_jax.timing import calibration as C  # noqa: PLC0415
    from secnn_jax.timing import e2e  # noqa: PLC0415

    report = C.validate(C.default_measurements(), gpu, restarts=restarts)
    _, rows = e2e.read_e2e(C.default_measurements("h100_e2e.csv"), known_nets=zoo_names())
    nets = {(r.net, r.batch, r.size): network(r.net, r.batch, r.size) for r in rows}
    e2e_report = e2e.validate_e2e(rows, nets, report.params, report.folds, gpu)
    C.write_outputs(report, e2e=e2e_report)
    s, es = report.summary(), e2e_report.summary()
    logging.info("per-layer MAPE %.1f%% fitted, %.1f%% CV; E2E graph %.1f%% fitted, %.1f%% CV, "
                 "eager %.1f%%; graph_kernel_us %.2f", s["mape_fit"], s["mape_cv"],
                 es["mape_graph_fit"], es["mape_graph_cv"], es["mape_eager_fit"],
                 es["graph_kernel_us"])
    return report, e2e_report


def main(argv: Sequence[str]) -> None:
    """absl entry point."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    calibrate(_GPU.value, _RESTARTS.value)


if __name__ == "__main__":
    app.run(main)
