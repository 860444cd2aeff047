"""Energy and area study: the paper's "marginal hardware overheads in area and power", judged.

From the speedup study's cells (energy per frame per scheme and ladder step, every scheme under
one launch model and fusion policy: :mod:`secnn_jax.timing.energy`), this study adds

* **area** of SE-CNN's additions per model and GPU: comparators, and the prediction/state
  buffers (two values per input neuron of every layer at the model's resolution) placed on chip
  (SRAM area, share of the SM and of the die) or off chip (no area; their traffic is DRAM
  traffic, which the replay charges as bytes);
* **sanity anchors**: the modelled power of a large-batch dense ResNet-50 run on the H100 against
  the board power, and its energy per image against the bound the measured whole-network latency
  (``h100_e2e.csv``) times the board power gives;
* **verdicts** per model and placement.

Library: :func:`energy_area`. Command line (runs the speedup study and the sensitivity replays
it needs, prints the energy and area tables, writes ``results/energy.json`` beside the
``results/speedup.json`` and ``results/sensitivity.json`` it was computed from, with
``config.json``, ``environment.json`` and ``run_info.json``; a killed run resumes from its cached
chunks under ``cells/``)::

    python -m experiments.energy --out_dir=runs/energy --config.gpus=h100

Flags (every one validated before any model loads or anything is written):

* ``--out_dir``: output directory (default ``runs/energy``); ``--overwrite``: start over when it
  holds a run made with other flags (otherwise refused);
* ``--models``, ``--streams``, ``--frames``: the models (zoo names or ``pkg.module:factory``),
  stream specs (``bikes``, ``photos``, ``video:PATH``, ``images:PATH``, ...) and frame cap;
* ``--config.gpus``: the GPUs whose area and energy are modelled (the first one runs the
  sensitivity replays that judge each buffer placement); ``--config.launch``,
  ``--config.fusion``, ``--config.precision``, ``--config.schemes``: the timing replay;
* ``--config.silence``, ``--config.decay``: the SE-CNN predictor's parameters;
* ``--config.resolution``, ``--config.model_resolution``, ``--config.model_frames``,
  ``--config.chunk_size``: input sizes, per-model frame caps, frames per cached chunk.

Every ``--config.FIELD`` is described in :data:`experiments.config.FIELDS` (``--help`` lists
the ones this command reads).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from absl import app

from experiments.cells import Workspace

__all__ = ["PLAUSIBLE_POWER", "energy_area", "main", "sanity_anchors", "verdict"]

#: The share of the board power a large-batch dense inference run must model to be plausible.
#: Below: an idle H100 SXM draws about a tenth of its 700 W (nvidia-smi idle readings), and a
#: GPU kept busy by a batch of 16 draws clearly more than idle; above: the board limit itself.
#: A judgement, stated so that the anchor can fail.
PLAUSIBLE_POWER: tuple[float, float] = (0.2, 1.0)


def sanity_anchors(precision: str = "fp16", batch: int = 16) -> dict[str, Any]:
    """Modelled power and energy per image of dense ResNet-50 at ``batch`` on the H100 (graph
    launch, NCHW, fusion none, as measured) beside the board power and the measured latency."""
    from experiments.zoo_networks import network  # noqa: PLC0415
    from secnn_jax import timing  # noqa: PLC0415
    from secnn_jax.timing import calibration, e2e  # noqa: PLC0415
    from secnn_jax.timing.energy import get_energy_params  # noqa: PLC0415

    net = network("resnet50", batch, 224)
    ev = {g.name: np.ones((1, *g.in_nhwc), np.uint8) for g in net.geoms}
    r = timing.replay(net.geoms, ev, schemes=("dense",), ops=net.ops, precision=precision,
                      launch="graph", config=timing.SchemeConfig(layout="NCHW"))
    res = r.get("h100", "dense")
    _, rows = e2e.read_e2e(calibration.default_measurements("h100_e2e.csv"))
    meas = next((x for x in rows if x.net == "resnet50" and x.precision == precision
                 and x.batch == batch), None)
    tdp = get_energy_params("h100").tdp_w
    fraction = float(res.power_w[0] / tdp)
    out = {"model": "resnet50", "precision": precision, "batch": batch,
           "modelled_us": float(res.total_us[0]), "modelled_power_w": float(res.power_w[0]),
           "board_power_w": tdp, "power_fraction": fraction,
           "plausible_band": list(PLAUSIBLE_POWER),
           "plausible": bool(PLAUSIBLE_POWER[0] <= fraction <= PLAUSIBLE_POWER[1]),
           "modelled_mj_per_image": float(res.energy_uj[0]) / batch / 1000,
           "parts_mj_per_image": {k: float(v[0]) / batch / 1000
                                  for k, v in res.energy_parts.items()}}
    if meas is not None:
        out["measured_graph_us"] = meas.graph_us
        out["bound_mj_per_image"] = tdp * meas.graph_us / batch / 1000
    return out


def verdict(area_share: float, energy_ratio: float) -> str:
    """``holds`` (area below 1% of the die and no more energy than the strongest baseline),
    ``partly`` (one of the two), ``does not hold`` (neither)."""
    small, cheap = area_share < 0.01, energy_ratio <= 1.0
    return "holds" if small and cheap else "partly" if small or cheap else "does not hold"


def energy_area(ws: Workspace, su: dict[str, Any], models: Sequence[str],
                streams: Sequence[str], sens: dict[str, Any] | None = None) -> dict[str, Any]:
    """Area per model and GPU, sanity anchors, and verdicts per buffer placement (energies from
    the sensitivity study ``sens``, which replays both placements; the energy tables
    themselves are in the speedup study ``su``)."""
    from secnn_jax.timing import get_gpu  # noqa: PLC0415
    from secnn_jax.timing.energy import secnn_area  # noqa: PLC0415

    precision = ws.timer.precision if ws.timer is not None else "fp32"
    area = []
    for m in models:
        layers = ws.layers(m, streams[0])
        for g in su["gpus"]:
            a = secnn_area(layers, get_gpu(g), precision)
            area.append({"model": m, "gpu": g, "buffer_bytes": a.buffer_bytes,
                         "comparators_mm2": a.comparators_mm2, "buffer_mm2": a.buffer_mm2,
                         "sm_mm2": a.sm_mm2, "die_mm2": a.die_mm2,
                         "on_chip_share": a.placement_shares["on_chip"],
                         "off_chip_share": a.placement_shares["off_chip"]})
    verdicts = []
    # Per placement, energy from the sensitivity replays (the prediction buffers' traffic in
    # DRAM off chip, in SRAM on chip), against the lower-energy baseline of the same replay.
    for c in (sens or {}).get("cells", []):
        rows = {r.get("end"): r for r in c["rows"] if r["parameter"] == "buffer_placement"}
        a = next((x for x in area if x["model"] == c["model"] and x["gpu"] == c["gpu"]), None)
        if a is None:
            continue
        for placement in ("on_chip", "off_chip"):
            r = rows.get(placement)
            if r is None:
                continue
            share = a[f"{placement}_share"]
            ratio = r["secnn_hw_uj"] / r["baseline_uj"]
            verdicts.append({"model": c["model"], "stream": c["stream"], "gpu": c["gpu"],
                             "placement": placement, "area_share": share,
                             "energy_ratio": ratio, "verdict": verdict(share, ratio)})
    return {"study": "energy", "area": area, "verdicts": verdicts,
            "anchors": sanity_anchors()}


def main(argv: Sequence[str]) -> None:
    """``python -m experiments.energy``: the speedup study and its sensitivity replays, then the
    energy and area study; prints the tables and writes ``results/{speedup,sensitivity,
    energy}.json`` and ``report.md`` (their claims and sections) into ``--out_dir``."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from experiments import cli, report  # noqa: PLC0415
    from experiments import speedup as speedup_lib  # noqa: PLC0415
    from experiments.cells import predictor_spec  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite, studies=("energy",))
    ws, models, streams = st.ws, list(st.ws.models), list(st.ws.streams)
    secnn = predictor_spec("secnn", cfg.silence, cfg.decay)
    inputs = {m: speedup_lib.replay_inputs(ws, m, streams[0], secnn) for m in models}
    su = speedup_lib.speedup(ws, models, streams, secnn, launch=str(cfg.launch), inputs=inputs)
    sens = []
    for m in models:
        res = speedup_lib.sensitivity(ws, m, streams[0], secnn, gpu=ws.timer.gpus[0],
                                      launch=str(cfg.launch), inputs=inputs[m])
        res.pop("_replay_inputs")
        sens.append(res)
    sensitivity = {"study": "sensitivity", "cells": sens}
    en = energy_area(ws, su, models, streams, sensitivity)
    st.run.write_json("results/speedup.json", su)
    st.run.write_json("results/sensitivity.json", sensitivity)
    st.run.write_json("results/energy.json", en)
    md, printed = report.study_output({"speedup": su, "sensitivity": sensitivity, "energy": en},
                                      cfg.to_dict(), "experiments.energy")
    st.run.write_text("report.md", md)
    st.run.finish(**ws.stats)
    sys.stdout.write(printed)


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/energy", _FIELDS["energy"])
