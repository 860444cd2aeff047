"""GPGPU-Sim as a second reference for the timing model (not run by CI; see README).

    python -m experiments.gpgpusim setup --dir=DIR [--source=CHECKOUT]
    python -m experiments.gpgpusim cases --cases=CASES.npz
    python -m experiments.gpgpusim run --dir=DIR --config=titanx|qv100 --cases=CASES.npz --out=CSV
    python -m experiments.gpgpusim compare --config=titanx --cases=CASES.npz --out=CSV

``setup`` downloads CUDA 11.8 from Debian's package registry into ``DIR`` (private apt state),
builds the simulator from ``--source`` (a checkout of accel-sim/gpgpu-sim_distribution, branch
dev; cloned when omitted and online) with our one-line fix, and checks it with a vector add.
``cases`` writes the event codes of real layers (EfficientNet-Lite0, HED's VGG-16 on bikes).
``run`` simulates every kernel class on every case (resumable, one CSV row per simulation).
``compare`` prints the timing model's prediction of every row and ``GPGPU-Sim MAPE <x>%`` last.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from absl import app, flags, logging

_DIR = flags.DEFINE_string("dir", None, "setup/run: folder of the CUDA toolkit and the simulator "
                           "build (created by setup).")
_SOURCE = flags.DEFINE_string("source", None, "setup: a local checkout of "
                              "accel-sim/gpgpu-sim_distribution (default: clone it; needs "
                              "network access to GitHub).")
_JOBS = flags.DEFINE_integer("jobs", 2, "setup: parallel make jobs.")
_CONFIG = flags.DEFINE_enum("config", "titanx", ["titanx", "qv100"],
                            "run/compare: simulator configuration (SM6_TITANX or SM7_QV100).")
_CASES = flags.DEFINE_string("cases", "secnn_jax/timing/measurements/gpgpusim_cases.npz",
                             "cases/run/compare: the event-code cases file (.npz).")
_OUT = flags.DEFINE_string("out", "secnn_jax/timing/measurements/gpgpusim.csv",
                           "run/compare: the CSV of simulated cycles (appended, resumable).")
_PROGRESS = flags.DEFINE_bool("progress", True, "run: show a progress bar over rows.")

_COMMANDS = ("setup", "cases", "run", "compare")


def main(argv: Sequence[str]) -> None:
    """absl entry point: ``argv[1]`` is the sub-command."""
    import experiments.gpgpusim as G  # noqa: PLC0415
    from secnn_jax.timing import simref  # noqa: PLC0415

    if len(argv) != 2 or argv[1] not in _COMMANDS:
        raise app.UsageError(f"expected one sub-command of {', '.join(_COMMANDS)}, got "
                             f"{list(argv[1:])}")
    cmd = argv[1]
    if cmd in ("setup", "run") and not _DIR.value:
        raise G.SimError(f"{cmd}: --dir is required")
    if cmd == "setup":
        paths = G.setup(Path(_DIR.value), Path(_SOURCE.value) if _SOURCE.value else None,
                        _JOBS.value)
        logging.info("gpgpusim: simulator ready under %s (vector add passed)", paths.root)
    elif cmd == "cases":
        arrays = G.build_cases(Path(_CASES.value))
        logging.info("gpgpusim: %d cases written to %s", len(arrays) // 2, _CASES.value)
    elif cmd == "run":
        cases = Path(_CASES.value)
        if not cases.is_file():
            raise G.SimError(f"--cases={cases}: not found (write it with the cases command)")
        paths = G.SimPaths(Path(_DIR.value).resolve())
        paths.libcudart()  # a missing build is one line before anything runs
        n = sum(1 for _ in G.run_cases(paths, _CONFIG.value, cases, Path(_OUT.value),
                                       progress=_PROGRESS.value))
        logging.info("gpgpusim: %d new rows in %s", n, _OUT.value)
    else:
        cmp = simref.compare_rows(Path(_OUT.value), G.load_cases(Path(_CASES.value)),
                                  _CONFIG.value)
        print(cmp.table())


if __name__ == "__main__":
    from models._cli import run as _run

    _run(main)
