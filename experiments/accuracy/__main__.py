"""``python -m experiments.accuracy``: runs the accuracy study (see :mod:`experiments.accuracy`)
and writes ``results/accuracy.json``, its figures and ``report.md``."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import app

from experiments import accuracy as accuracy_lib


def main(argv: Sequence[str]) -> None:
    """Runs the accuracy study, prints its claims and tables, and writes
    results/accuracy.json, its figures and report.md (its claims and sections)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from experiments import cli, figures, report  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite,
                   studies=("accuracy",))
    res = accuracy_lib.run_from_config(st.ws, cfg)
    accuracy_lib.record_effective(st.run, cfg, res)
    st.run.write_json("results/accuracy.json", res.to_json())
    figures.accuracy_curves(res, st.run.path("figures", "accuracy.png"))
    panels = figures.dense_map_panels(st.ws, res)
    if panels:
        figures.dense_maps(panels, st.run.path("figures", "dense_maps.png"))
    md, printed = report.study_output({"accuracy": res}, cfg.to_dict(), "experiments.accuracy")
    st.run.write_text("report.md", md)
    st.run.finish(**st.ws.stats)
    sys.stdout.write(printed)


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    # absl's --help prints the __main__ module's docstring: the study's.
    __doc__ = accuracy_lib.__doc__
    _cli.run(main, "runs/accuracy", _FIELDS["accuracy"])
