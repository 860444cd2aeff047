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

The result is an :class:`EnergyResult` (``results/energy.json``); :func:`claims` and
:func:`section` (with the speedup study's energy tables) render it for the report.

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

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from absl import app

from experiments.cells import Workspace
from experiments.paper import MARGINAL_AREA_SHARE, MARGINAL_ENERGY_RATIO
from experiments.records import RecordResult, optional
from experiments.reporting import pct, study_output, table, times
from experiments.studyresult import claim_row
from experiments.timer import ladder_variant

if TYPE_CHECKING:
    from experiments.speedup import SensitivityResult, SpeedupResult

__all__ = ["PLAUSIBLE_POWER", "Anchors", "AreaRow", "EnergyResult", "EnergyVerdict", "claims",
           "energy_area", "energy_terms", "main", "sanity_anchors", "section", "verdict"]

#: The share of the board power a large-batch dense inference run must model to be plausible.
#: Below: an idle H100 SXM draws about a tenth of its 700 W (nvidia-smi idle readings), and a
#: GPU kept busy by a batch of 16 draws clearly more than idle; above: the board limit itself.
#: A judgement, stated so that the anchor can fail.
PLAUSIBLE_POWER: tuple[float, float] = (0.2, 1.0)


@dataclasses.dataclass(frozen=True)
class AreaRow:
    """SE-CNN's additions on one model and GPU: buffer bytes, comparator, buffer (on chip),
    SM and die areas (mm^2), and the additions' share of the die per buffer placement."""

    model: str
    gpu: str
    buffer_bytes: int
    comparators_mm2: float
    buffer_mm2: float
    sm_mm2: float
    die_mm2: float
    on_chip_share: float
    off_chip_share: float


@dataclasses.dataclass(frozen=True)
class EnergyVerdict:
    """The verdict on "marginal overheads" for one (model, stream, GPU, buffer placement):
    the area share of the die and SE-CNN's energy per frame over the lower-energy
    baseline's."""

    model: str
    stream: str
    gpu: str
    placement: str
    area_share: float
    energy_ratio: float
    verdict: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Anchors:
    """The sanity anchors (:func:`sanity_anchors`): dense ResNet-50's modelled power and
    energy per image beside the board power and, where measured, the latency's bound."""

    model: str
    precision: str
    batch: int
    modelled_us: float
    modelled_power_w: float
    board_power_w: float
    power_fraction: float
    plausible_band: tuple[float, float]
    plausible: bool
    modelled_mj_per_image: float
    parts_mj_per_image: Mapping[str, float]
    measured_graph_us: float | None = optional()
    bound_mj_per_image: float | None = optional()


@dataclasses.dataclass(frozen=True)
class EnergyResult(RecordResult):
    """The energy and area study's result (``results/energy.json``): area per model and GPU,
    verdicts per buffer placement, and the sanity anchors."""

    STUDY: ClassVar[str] = "energy"
    VERSION: ClassVar[int] = 1

    area: tuple[AreaRow, ...]
    verdicts: tuple[EnergyVerdict, ...]
    anchors: Anchors


def sanity_anchors(precision: str = "fp16", batch: int = 16) -> Anchors:
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
    return Anchors(
        model="resnet50", precision=precision, batch=batch,
        modelled_us=float(res.total_us[0]), modelled_power_w=float(res.power_w[0]),
        board_power_w=tdp, power_fraction=fraction, plausible_band=PLAUSIBLE_POWER,
        plausible=bool(PLAUSIBLE_POWER[0] <= fraction <= PLAUSIBLE_POWER[1]),
        modelled_mj_per_image=float(res.energy_uj[0]) / batch / 1000,
        parts_mj_per_image={k: float(v[0]) / batch / 1000 for k, v in res.energy_parts.items()},
        measured_graph_us=None if meas is None else meas.graph_us,
        bound_mj_per_image=None if meas is None else tdp * meas.graph_us / batch / 1000)


def verdict(area_share: float, energy_ratio: float) -> str:
    """``holds`` (area below :data:`~experiments.paper.MARGINAL_AREA_SHARE` of the die and no
    more energy than the strongest baseline: :data:`~experiments.paper.MARGINAL_ENERGY_RATIO`),
    ``partly`` (one of the two), ``does not hold`` (neither)."""
    small = area_share < MARGINAL_AREA_SHARE
    cheap = energy_ratio <= MARGINAL_ENERGY_RATIO
    return "holds" if small and cheap else "partly" if small or cheap else "does not hold"


def energy_area(ws: Workspace, su: SpeedupResult, models: Sequence[str],
                streams: Sequence[str], sens: SensitivityResult | None = None) -> EnergyResult:
    """Area per model and GPU, sanity anchors, and verdicts per buffer placement (energies from
    the sensitivity study ``sens``, which replays both placements; the energy tables
    themselves are in the speedup study ``su``)."""
    from secnn_jax.timing import get_gpu  # noqa: PLC0415
    from secnn_jax.timing.energy import secnn_area  # noqa: PLC0415

    precision = ws.timer.precision if ws.timer is not None else "fp32"
    area = []
    for m in models:
        layers = ws.layers(m, streams[0])
        for g in su.gpus:
            a = secnn_area(layers, get_gpu(g), precision)
            area.append(AreaRow(model=m, gpu=g, buffer_bytes=a.buffer_bytes,
                                comparators_mm2=a.comparators_mm2, buffer_mm2=a.buffer_mm2,
                                sm_mm2=a.sm_mm2, die_mm2=a.die_mm2,
                                on_chip_share=a.placement_shares["on_chip"],
                                off_chip_share=a.placement_shares["off_chip"]))
    verdicts = []
    # Per placement, energy from the sensitivity replays (the prediction buffers' traffic in
    # DRAM off chip, in SRAM on chip), against the lower-energy baseline of the same replay.
    for c in sens.cells if sens is not None else ():
        rows = {r.end: r for r in c.rows if r.parameter == "buffer_placement"}
        a = next((x for x in area if x.model == c.model and x.gpu == c.gpu), None)
        if a is None:
            continue
        for placement in ("on_chip", "off_chip"):
            r = rows.get(placement)
            if r is None:
                continue
            share = getattr(a, f"{placement}_share")
            ratio = r.secnn_hw_uj / r.baseline_uj
            verdicts.append(EnergyVerdict(model=c.model, stream=c.stream, gpu=c.gpu,
                                          placement=placement, area_share=share,
                                          energy_ratio=ratio, verdict=verdict(share, ratio)))
    return EnergyResult(area=tuple(area), verdicts=tuple(verdicts), anchors=_anchors(ws))


def _anchors(ws: Workspace) -> Anchors:
    """:func:`sanity_anchors`, memoised in the cell cache (:meth:`experiments.cells.Workspace.
    memo`): they read no model nor stream, only the code (in the cell directory's key), so a
    rerun reads them instead of building ResNet-50 again. The value goes through its JSON form
    on a fresh run too, so both give the same result."""
    import json  # noqa: PLC0415

    from experiments.records import from_plain, to_plain  # noqa: PLC0415

    if not ws.models or not ws.streams:
        return sanity_anchors()
    got = ws.memo(next(iter(ws.models)), next(iter(ws.streams)), "energy_anchors",
                  {"study": "energy_anchors", "precision": "fp16", "batch": 16},
                  lambda: to_plain(sanity_anchors()))
    return from_plain(Anchors, json.loads(json.dumps(got)))


def claims(result: EnergyResult) -> list[dict[str, str]]:
    """The claim rows on "marginal hardware overheads in area and power", per model, stream,
    GPU and buffer placement."""
    return [claim_row(
        "marginal hardware overheads in area and power",
        f"marginal hardware overheads in area and power ({v.model}, {v.stream}, {v.gpu}, "
        f"buffers {v.placement.replace('_', '-')})",
        "marginal",
        f"{pct(v.area_share)} of the die; energy per frame {times(v.energy_ratio)} the "
        f"lower-energy baseline's",
        v.verdict, model=v.model, stream=v.stream, gpu=v.gpu) for v in result.verdicts]


def energy_terms() -> str:
    """What the energy model counts, from its own lists (:data:`secnn_jax.timing.energy.WORK_KEYS`,
    the work counted per frame, and :data:`~secnn_jax.timing.energy.COMPONENTS`, the terms it
    is priced into)."""
    from secnn_jax.timing.energy import COMPONENTS, WORK_KEYS  # noqa: PLC0415

    return ("Energy per frame from the replay's work counts, priced with per-event energies "
            "from published circuit figures scaled to each GPU's process "
            "(`secnn_jax/timing/energy.py`, every number sourced); every scheme under the same "
            "launch model and fusion as its time. Work counted per frame: "
            + ", ".join(f"`{k}`" for k in WORK_KEYS) + ". Energy terms: "
            + ", ".join(f"`{k}`" for k in COMPONENTS) + ". Nothing outside these terms is "
            "counted: first-order numbers, for comparing schemes.")


def section(su: SpeedupResult, result: EnergyResult) -> list[str]:
    """The energy study's report section (markdown lines) from the speedup study ``su`` (its
    energy tables) and the energy study ``result``, with its verdicts per buffer placement."""
    from secnn_jax.timing import LADDER  # noqa: PLC0415
    from secnn_jax.timing.energy import COMPONENTS  # noqa: PLC0415

    out = ["## Energy and area", "", energy_terms(), ""]
    rows = []
    for c in su.cells:
        e = c.energy_uj or {}
        for k in ("dense", "zero_skip", "secnn_sw", "secnn_hw"):
            if k in e:
                rows.append([c.model, c.stream, c.gpu, k, f"{e[k]['total']:.1f}",
                             *[f"{e[k][comp]:.1f}" for comp in COMPONENTS]])
    out += ["Energy per frame (uJ):", "",
            table(["model", "stream", "gpu", "scheme", "total", *COMPONENTS], rows), ""]
    rows = []
    for c in su.cells:
        e = c.energy_uj or {}
        vals = []
        for st in LADDER:
            key = ladder_variant(st)
            vals.append(f"{e[key]['total']:.0f}" if key in e else "")
        rows.append([c.model, c.stream, c.gpu, *vals])
    out += ["The attribution ladder in energy (uJ per frame):", "",
            table(["model", "stream", "gpu", *[st.key for st in LADDER]], rows), ""]
    rows = [[a.model, a.gpu, f"{a.buffer_bytes / 2**20:.1f} MiB", f"{a.buffer_mm2:.1f}",
             f"{a.comparators_mm2:.2f}", f"{a.sm_mm2:.2f}", pct(a.on_chip_share),
             pct(a.off_chip_share)] for a in result.area]
    out += ["Area of SE-CNN's additions: prediction + firing-state buffers (two values per "
            "input neuron of every layer) and one comparator per lane per SM; on chip the "
            "buffers are SRAM (published high-density bitcell x1.6 array overhead), off chip "
            "they cost no area but their traffic is DRAM traffic.", "",
            table(["model", "gpu", "buffers", "buffers mm^2 (on chip)", "comparators mm^2",
                   "one SM mm^2", "die share on chip", "die share off chip"], rows), ""]
    a = result.anchors
    out += [f"Sanity anchors (dense ResNet-50, batch {a.batch}, {a.precision}, H100 graph "
            f"launch): modelled power {a.modelled_power_w:.0f} W = {pct(a.power_fraction)} "
            f"of the {a.board_power_w:.0f} W board power — "
            + ("plausible" if a.plausible else "**not plausible**")
            + f" (band {pct(a.plausible_band[0])}-{pct(a.plausible_band[1])}); modelled "
            f"{a.modelled_mj_per_image:.1f} mJ per image (issue overhead "
            f"{a.parts_mj_per_image['issue']:.1f}, static "
            f"{a.parts_mj_per_image['static']:.1f})"
            + (f" against at most {a.bound_mj_per_image:.1f} mJ per image that the measured "
               f"{a.measured_graph_us:.0f} us latency at board power allows"
               if a.bound_mj_per_image is not None else "") + ". No MLPerf power figure was "
            "available offline to compare with.", ""]
    rows = [[v.model, v.stream, v.gpu, v.placement, pct(v.area_share), times(v.energy_ratio),
             v.verdict] for v in result.verdicts]
    out += ["Verdicts (marginal area and power): area share of the die, and SE-CNN's energy per "
            "frame over the lower-energy baseline's:", "",
            table(["model", "stream", "gpu", "placement", "area share", "energy ratio",
                   "verdict"], rows), ""]
    return out


def main(argv: Sequence[str]) -> None:
    """``python -m experiments.energy``: the speedup study and its sensitivity replays, then the
    energy and area study; prints the tables and writes ``results/{speedup,sensitivity,
    energy}.json`` and ``report.md`` (their claims and sections) into ``--out_dir``."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from experiments import cli  # noqa: PLC0415
    from experiments import speedup as speedup_lib  # noqa: PLC0415
    from experiments.cells import predictor_spec  # noqa: PLC0415

    cfg = cli.resolve()
    st = cli.setup(cfg, cli.FLAGS.out_dir, overwrite=cli.FLAGS.overwrite, studies=("energy",))
    ws, models, streams = st.ws, list(st.ws.models), list(st.ws.streams)
    secnn = predictor_spec("secnn", cfg.silence, cfg.decay)
    inputs = {m: speedup_lib.replay_inputs(ws, m, streams[0], secnn) for m in models}
    su = speedup_lib.speedup(ws, models, streams, secnn, launch=cfg.launch, inputs=inputs)
    sensitivity = speedup_lib.sensitivity_result([
        speedup_lib.sensitivity(ws, m, streams[0], secnn, gpu=ws.timer.gpus[0],
                                launch=cfg.launch, inputs=inputs[m]) for m in models])
    en = energy_area(ws, su, models, streams, sensitivity)
    for res in (su, sensitivity, en):
        st.run.write_json(f"results/{res.STUDY}.json", res.to_json())
    # The claims and sections of the three results, in the report's order.
    md, printed = study_output(
        cfg.to_dict(), speedup_lib.claims(su) + claims(en),
        speedup_lib.ladder_section(su) + speedup_lib.section(su)
        + speedup_lib.sensitivity_section(sensitivity) + section(su, en), "experiments.energy")
    st.run.write_text("report.md", md)
    st.run.finish(**ws.stats)
    sys.stdout.write(printed)


if __name__ == "__main__":
    from experiments import cli as _cli
    from experiments.config import COMMAND_FIELDS as _FIELDS

    _cli.run(main, "runs/energy", _FIELDS["energy"])
