"""The peers study's result and its part of the report: :class:`PeersResult` (what
:func:`experiments.peers.peers` returns and ``results/peers.json`` holds), :func:`claims` (its
verdict rows) and :func:`section` (its ``report.md`` lines).

They live apart from :mod:`experiments.peers` (which re-exports them) because the report imports
them while the peers command renders its report through :mod:`experiments.report`: one module
would make an import circle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from experiments.records import RecordResult
from experiments.reporting import band_range as _fmt_band
from experiments.reporting import pct as _fmt_pct
from experiments.reporting import table as _table
from experiments.reporting import times as _fmt_x
from experiments.studyresult import claim_row

__all__ = ["MACHINES", "PeerExtension", "PeersResult", "claims", "section"]

#: How the peers' claim names each machine.
MACHINES = {"stock": "on a stock GPU (secnn_sw against the stock peers)",
            "extended": "with the SM extension (secnn_hw against the peers given it too)"}


@dataclasses.dataclass(frozen=True)
class PeerExtension:
    """What the extended GPU changes in the peers' configuration (``changed``; ``knobs``:
    ``{field: [stock, extended]}``) and what the extended peers take from the extension on
    the run's configuration (``given``, one line each)."""

    changed: bool
    knobs: Mapping[str, Any]
    given: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class PeersResult(RecordResult):
    """The peers study's result (``results/peers.json``), as :func:`experiments.peers.peers`
    returns it; its fields are the JSON's keys (:mod:`experiments.records`), a file missing
    one is a :class:`~experiments.studyresult.StaleResultError`.

    Attributes:
      launch: the launch model every method ran under.
      frames: the frames per stream asked for.
      taus: the global thresholds compared.
      points: one row per (model, stream, method, tau): ``hardware``, ``speedup`` over dense,
        ``agreement`` on the declared ``metric`` (all frames, the calibration half and the
        held-out half) and the held-out speedup.
      verdicts: one row per (model, stream, machine): the chosen tau per method, the fastest
        method meeting the floor, the same-events ratio and the verdict with its band.
      buffers: per model, the bytes each method keeps between frames.
      sanity: the peers at the largest tau on :data:`experiments.peers.SANITY_STREAM` beside
        their published figures (empty when the clip could not be opened).
      peer_extension: what the extended GPU gives the peers (:class:`PeerExtension`).
    """

    STUDY: ClassVar[str] = "peers"
    VERSION: ClassVar[int] = 1

    launch: str
    frames: int
    taus: tuple[float, ...]
    points: tuple[dict[str, Any], ...]
    verdicts: tuple[dict[str, Any], ...]
    buffers: tuple[dict[str, Any], ...]
    sanity: tuple[dict[str, Any], ...]
    peer_extension: PeerExtension


# --- the report's rows and section ----------------------------------------------------------

def _in_order(v: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """A verdict row's chosen methods in its ``methods`` order (the study's), whatever the
    order of the ``chosen`` mapping (a JSON file's keys are sorted)."""
    return [(k, v["chosen"][k]) for k in v["methods"] if k in v["chosen"]]


def claims(result: PeersResult | Mapping[str, Any]) -> list[dict[str, str]]:
    """The claim rows (:func:`experiments.studyresult.claim_row`) of ``result`` (or its JSON
    form): one per (model, stream, machine), SE-CNN against the peers on the same machine."""
    rows = []
    for v in PeersResult.of(result).verdicts:
        hw = v["hardware"]
        parts = "; ".join(f"{k} {_fmt_x(c['heldout_speedup'])} at tau={c['tau']:g} "
                          f"({_fmt_pct(c['heldout_agreement'])})" for k, c in _in_order(v))
        key = f"SE-CNN beats change-based peers {MACHINES.get(hw, hw)}"
        rows.append(claim_row(
            key, f"{key} at >= {_fmt_pct(v['floor'])} agreement "
                 f"({v['metric']}; {v['model']}, {v['stream']}, {v['gpu']})",
            "(not claimed; DeltaCNN/CBinfer are later work)",
            f"fastest: {v['fastest'] or 'none meets the floor'}; held-out: "
            f"{parts or 'no method meets the floor on the calibration half'}"
            + (f"; band {_fmt_band(v['band'])}" if v["band"] else ""),
            v["verdict"], model=v["model"], stream=v["stream"], gpu=v["gpu"]))
    return rows


def section(result: PeersResult | Mapping[str, Any]) -> list[str]:
    """The peers study's report section (Markdown lines) of ``result`` (or its JSON form):
    ``python -m experiments.peers`` prints it."""
    pe = PeersResult.of(result)
    given = "; ".join(pe.peer_extension.given)
    given = (f": on this run's configuration they take {given}" if given else
             ": not run (no replay configuration)")
    out = ["## Peers: SE-CNN, DeltaCNN and CBinfer on the same events and timing model", "",
           f"Every method under the `{pe.launch}` launch model, speedup over `dense`, on the "
           f"first {pe.frames} frames; DeltaCNN and CBinfer replay the `accumulated` "
           "predictor's events (DeltaCNN's rule). Like for like: on a stock GPU `secnn_sw` "
           "(and `secnn_sw(accumulated)`, SE-CNN on the peers' events) against `deltacnn` and "
           "`cbinfer`; with the SM extension `secnn_hw` (and `secnn_hw(accumulated)`) against "
           "`deltacnn+ext` and `cbinfer+ext`, the peers given the extension where it helps "
           "them (`secnn_jax.timing.schemes.extended_peer_config`)" + given + ".", ""]
    rows = [[p["model"], p["stream"], p["hardware"], p["method"], f"{p['tau']:g}",
             _fmt_x(p["speedup"]), _fmt_pct(p["agreement"]), p["metric"]] for p in pe.points]
    out += [_table(["model", "stream", "hardware", "method", "tau", "speedup over dense",
                    "agreement", "metric"], rows), "", "![peers](figures/peers.png)", ""]
    rows = [[v["model"], v["stream"], v["hardware"], v["fastest"] or "none",
             _fmt_x(v["fastest_speedup"]), " / ".join(v["same_events"]),
             _fmt_x(v["parallel_phase_effect"]), _fmt_band(v["band"]), v["verdict"]]
            for v in pe.verdicts]
    out += ["Per machine, its methods only: the fastest meeting the floor on the held-out half "
            "(tau chosen on the first half); *same events* = SE-CNN over DeltaCNN on the same "
            "events at tau = 0 on that machine (above 1: SE-CNN's parallel phase beats cached "
            "outputs); *band*: SE-CNN's best over the best peer over the timing model's "
            "uncertainty.", "",
            _table(["model", "stream", "hardware", "fastest", "its speedup",
                    "same events (SE-CNN / peer)", "ratio", "band", "verdict"], rows), ""]
    out += _sanity_lines(pe.sanity)
    rows = [[b["model"], *[f"{b[k] / 2**20:.1f} MiB" for k in ("secnn", "deltacnn",
                                                                "cbinfer")]]
            for b in pe.buffers]
    out += ["Extra buffers per stream kept between frames (predictions and firing state; "
            "accumulated inputs and output buffers; stored inputs and previous outputs):", "",
            _table(["model", "SE-CNN", "DeltaCNN", "CBinfer"], rows), ""]
    return out


def _sanity_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The sanity rows (modelled peers at tau > 0 beside their published figures) and one
    sentence per peer on what differs, from the rows themselves."""
    if not rows:
        return ["Sanity rows: not measured (the sanity clip could not be opened).", ""]
    table = [[r["model"], r["stream"], r["gpu"], r["method"], f"{r['tau']:g}", r["frames"],
              r["input"], _fmt_x(r["ours"]), _fmt_pct(r["agreement"]), r["published"]["figure"],
              r["published"]["source"]] for r in rows]
    out = ["Sanity: the modelled peers over dense at tau > 0 on the clip closest to their "
           "published setting, beside the published figures; *ours* over the frames after the "
           "first (which every peer runs dense), *agreement* over all frames:", "",
           _table(["model", "stream", "gpu", "peer", "tau", "frames", "input", "ours",
                   "agreement", "published", "source"], table), ""]
    for meth in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == meth]
        pub = mine[0]["published"]
        ours = "; ".join(dict.fromkeys(
            f"{r['model']} at {r['input']} on {r['gpu']} ({r['precision']})" for r in mine))
        out += [f"What differs for {meth}: published {pub['figure']} ({pub['source']}) on "
                f"{pub['setting']}; ours: {ours}, {mine[0]['frames']} frames of "
                f"{mine[0]['clip']}, tau in "
                + ", ".join(dict.fromkeys(f"{r['tau']:g}" for r in mine)) + ".", ""]
    return out
