"""Figures of the studies (matplotlib, Agg backend, deterministic PNGs).

* :func:`sparsity_bars` — per layer, the fraction of input neurons that fire; rectified (post-ReLU)
  and signed inputs coloured apart, the paper's 10% line drawn.
* :func:`event_stacks` — per layer, the event-code mix (ZZ, ZN, VH, VM) for each predictor.
* :func:`ladder_bars` — the attribution ladder (one mechanism per step).
* :func:`schedule` — what runs when in one frame, per scheme.
* :func:`pareto` — accuracy against speedup per method over tau (peers study).
* :func:`speedup_bars` — SE-CNN's replayed speedup over each baseline, per GPU, model and stream,
  with the paper's averages marked.
* :func:`accuracy_curves` — each model's declared metric (top-1 agreement, edge-map F1, region
  F1) against replayed speedup over tau, the tuners' held-out results and the 95% floor; and the
  metric with its second field against tau.
* :func:`dense_maps` — HED's edge map and CRAFT's region score on one frame, exact against
  SE-CNN at the tuned thresholds.

Every function takes the study's result dict and an output path and returns the path. PNGs carry
no timestamp or software metadata, so equal results give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from experiments.paper import PAPER, SPEEDUP_BASELINES
from experiments.studyresult import StudyResult
from secnn_jax.fileio import atomic_write
from secnn_jax.timing.names import SECNN

if TYPE_CHECKING:
    from experiments.accuracy.result import AccuracyResult, SweepRow

__all__ = ["accuracy_curves", "dense_maps", "event_stacks", "fit_titles", "save",
           "sparsity_bars", "speedup_bars"]

CODE_COLOURS = {"ZZ": "#d9d9d9", "ZN": "#d62728", "VH": "#2ca02c", "VM": "#ff7f0e"}
DPI = 110


def fit_titles(fig: Any, *, margin: float = 0.96) -> int:
    """Wraps every axes title wider than ``margin`` times its axes (a title wider than its
    panel is cut off at the figure's edge or runs into the next panel); call it before
    ``tight_layout``. Returns how many titles were wrapped."""
    import textwrap  # noqa: PLC0415

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    wrapped = 0
    for ax in fig.axes:
        title = ax.title
        text = original = title.get_text()
        limit = ax.get_window_extent(renderer).width * margin
        for _ in range(4):  # wrap until it fits (a font's widths are not proportional)
            width = title.get_window_extent(renderer).width
            if not text or width <= limit:
                break
            longest = max(len(line) for line in text.split("\n"))
            chars = max(12, int(longest * limit / width) - 1)
            text = "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))
            title.set_text(text)
        wrapped += title.get_text() != original
    return wrapped


def save(fig: Any, path: str | Path) -> Path:
    """Saves ``fig`` as a metadata-free PNG, atomically, and closes it."""
    import io  # noqa: PLC0415

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return atomic_write(path, buf.getvalue())


def _short(name: str) -> str:
    """``blocks_3/depthwise_conv`` -> ``3/dw``: compact tick labels."""
    s = name.replace("blocks_", "").replace("depthwise_conv", "dw")
    return s.replace("expand_conv", "exp").replace("project_conv", "proj").replace("/conv", "")


def _layer_ticks(ax: Any, names: list[str]) -> None:
    n = len(names)
    step = max(1, n // 40)
    idx = list(range(0, n, step))
    ax.set_xticks(idx)
    ax.set_xticklabels([_short(names[i]) for i in idx], rotation=90, fontsize=6)
    ax.set_xlim(-0.7, n - 0.3)


def sparsity_bars(res: Any, path: str | Path) -> Path:
    """Per-layer firing fraction, one panel per (model, stream), from an
    :class:`experiments.sparsity.SparsityResult` (the studies import this module, so their
    result types are not imported here)."""
    cells = res.cells
    fig, axes = plt.subplots(len(cells), 1, figsize=(11, 3.2 * len(cells)), squeeze=False)
    claim = res.claim["fired_below"]
    for ax, cell in zip(axes[:, 0], cells, strict=True):
        rows = cell.layers
        names = [r.name for r in rows]
        vals = np.array([r.fired for r in rows])
        rect = np.array([r.role == "rectified" for r in rows])
        x = np.arange(len(rows))
        ax.bar(x[rect], 100 * vals[rect], color="#1f77b4", label="rectified input (post-ReLU)")
        ax.bar(x[~rect], 100 * vals[~rect], color="#ff7f0e",
               label="signed input (image, BN output, residual sum)")
        ax.axhline(100 * claim, color="k", ls="--", lw=1, label=f"paper: < {100 * claim:g}% fire")
        sm = cell.summary
        rect_txt = (f", rectified layers {100 * sm.fired_rectified:.1f}%"
                    if sm.fired_rectified is not None else "")
        ax.set_title(f"{cell.model} on {cell.stream} ({sm.frames} frames): "
                     f"{100 * sm.fired_all:.1f}% of input neurons fire{rect_txt}", fontsize=9)
        ax.set_ylabel("input neurons != 0 (%)")
        ax.set_ylim(0, 122)
        ax.set_yticks(range(0, 101, 20))
        _layer_ticks(ax, names)
        ax.legend(fontsize=7, loc="upper left", ncol=3, frameon=False)
    fit_titles(fig)
    fig.tight_layout()
    return save(fig, path)


def event_stacks(res: Any, path: str | Path, tau: float | None = None) -> Path:
    """Event-code mix per layer: rows (model, stream), columns predictors, at one tau, from an
    :class:`experiments.prediction.PredictionResult`."""
    cells = res.cells
    if tau is None:
        tau = min(c.tau for c in cells)
    cells = [c for c in cells if c.tau == tau]
    keys = list(dict.fromkeys((c.model, c.stream) for c in cells))
    preds = list(dict.fromkeys(c.predictor for c in cells))
    fig, axes = plt.subplots(len(keys), len(preds), figsize=(5.2 * len(preds), 3.0 * len(keys)),
                             squeeze=False, sharey=True)
    codes = res.codes
    for i, key in enumerate(keys):
        for j, p in enumerate(preds):
            ax = axes[i, j]
            cell = next(c for c in cells if (c.model, c.stream) == key and c.predictor == p)
            rates = np.array([r.rates for r in cell.layers])
            x = np.arange(len(rates))
            bottom = np.zeros(len(rates))
            for k, code in enumerate(codes):
                ax.bar(x, 100 * rates[:, k], bottom=bottom, color=CODE_COLOURS[code], width=1.0,
                       label=code)
                bottom += 100 * rates[:, k]
            ax.set_title(f"{key[0]} / {key[1]}\n{p}, tau={tau:g}: "
                         f"{100 * cell.mispredicted:.1f}% mispredicted", fontsize=8)
            _layer_ticks(ax, [r.name for r in cell.layers])
            ax.set_ylim(0, 100)
            if j == 0:
                ax.set_ylabel("input neurons (%)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    meaning = {"ZZ": "ZZ: predicted 0, is 0 (free)", "ZN": "ZN: zero misprediction",
               "VH": "VH: value hit", "VM": "VM: value miss"}
    fig.legend(handles, [meaning.get(x, x) for x in labels], loc="upper center", ncol=4,
               fontsize=8, frameon=False)
    fit_titles(fig)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (3.0 * len(keys))))
    return save(fig, path)


def speedup_bars(res: Any, path: str | Path) -> Path:
    """SE-CNN speedup over each baseline, one panel per GPU; paper averages as black marks
    (from an :class:`experiments.speedup.SpeedupResult`)."""
    gpus = res.gpus
    cells = res.cells
    n_series = len({(c.model, c.stream) for c in cells}) * len(SECNN)
    fig, axes = plt.subplots(1, len(gpus), figsize=(6.2 * len(gpus), 4.4 + 0.12 * n_series),
                             squeeze=False)
    for ax, gpu in zip(axes[0], gpus, strict=True):
        mine = [c for c in cells if c.gpu == gpu]
        bases = [b for b in SPEEDUP_BASELINES if any(b in c.speedups.get(v, {})
                                             for c in mine for v in SECNN)]
        series = [(c, v) for c in mine for v in SECNN if v in c.speedups]
        width = 0.8 / max(len(series), 1)
        for k, (c, v) in enumerate(series):
            vals = [c.speedups[v].get(b, {}).get("mean", np.nan) for b in bases]
            xs = np.arange(len(bases)) + (k - (len(series) - 1) / 2) * width
            ax.bar(xs, vals, width=width * 0.95, hatch="//" if v == "secnn_sw" else None,
                   edgecolor="white", label=f"{v}: {c.model} / {c.stream}")
            for x, val in zip(xs, vals, strict=True):
                if np.isfinite(val):
                    ax.text(x, val, f"{val:.2f}", ha="center", va="bottom", fontsize=6)
        first = True
        for i, b in enumerate(bases):
            if b in PAPER:
                ax.hlines(PAPER[b][0], i - 0.45, i + 0.45, color="k", lw=2,
                          label="paper's average" if first else None)
                ax.text(i, PAPER[b][0] * 1.04, f"paper {PAPER[b][0]:g}x", ha="center",
                        va="bottom", fontsize=7)
                first = False
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_ylim(top=max(30.0, ax.get_ylim()[1]))
        ax.set_xticks(range(len(bases)))
        ax.set_xticklabels(bases)
        ax.set_ylabel("speedup over baseline (x, log)")
        ax.set_title(f"replayed on {gpu}, every scheme {res.launch}, fusion "
                     f"{res.fusion} ({res.predictor}, tau={res.tau:g})",
                     fontsize=8)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2,
                  frameon=False)
    fit_titles(fig)
    fig.tight_layout()
    return save(fig, path)


def accuracy_curves(res: AccuracyResult, path: str | Path) -> Path:
    """Each model's declared metric vs speedup over tau (left) and the metric and its second
    field (top-5 overlap, edge MAE as 1 - MAE, region IoU) vs tau (right), from the accuracy
    study's result (:class:`experiments.accuracy.AccuracyResult`)."""
    rows = res.sweep
    floor = res.claim_floor
    obj = res.target
    keys = list(dict.fromkeys((r.model, r.stream) for r in rows))
    # Every GPU timed (one line style each; the first: the tuner's objective).
    gpus = list(res.gpus or [res.gpu_name or f"GPU #{obj.gpu}"])
    styles = ("-", "--", ":", "-.")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    second = {"top1": ("top5_overlap", "top-5 overlap"), "edge_f1": ("edge_mae", "1 - edge MAE"),
              "region_f1": ("region_iou", "region IoU")}
    for i, key in enumerate(keys):
        mine = [r for r in rows if (r.model, r.stream) == key]
        col = colours[i % len(colours)]
        taus = [r.tau for r in mine]
        agr = [100 * r.score for r in mine]
        label = res.label(key[0])
        for j, gpu in enumerate(gpus):
            sp = [_gpu_speedup(r, gpu, j == 0) for r in mine]
            ax1.plot(sp, agr, "o" + styles[j % len(styles)], color=col,
                     alpha=1.0 if j == 0 else 0.6,
                     label=f"{key[0]} / {key[1]} ({label})" + (f", {gpu}" if len(gpus) > 1
                                                               else ""))
            for x, y, t in zip(sp, agr, taus, strict=True):
                if np.isfinite(x):
                    ax1.annotate(f"{t:g}", (x, y), textcoords="offset points", xytext=(3, 3),
                                 fontsize=6, color=col)
        ax2.plot(taus, agr, "o-", color=col, label=f"{label}: {key[0]} / {key[1]}")
        field, name = second.get(mine[0].metric, second["top1"])
        vals = [r.scores.field(field) for r in mine]
        if all(v is not None for v in vals):
            vals = [100 * (1 - v if field == "edge_mae" else v) for v in vals]
            ax2.plot(taus, vals, "s--", color=col, alpha=0.6, label=f"{name}: {key[1]}")
    markers = "*PXD^v"
    methods = list(dict.fromkeys(t.method for t in res.tuned))
    labelled: set[str] = set()
    for t in res.tuned:
        mk = markers[methods.index(t.method) % len(markers)]
        for e in t.evaluation:
            if e.heldout is not None and e.speedup is not None:
                ax1.plot(e.speedup, 100 * e.heldout.score, mk, ms=10, color="k",
                         alpha=0.7, zorder=5,
                         label=None if t.method in labelled else f"tuned {t.method}, held out")
                labelled.add(t.method)
    ax1.axhline(100 * floor, color="k", ls="--", lw=1, label=f"floor {100 * floor:g}%")
    on = ", ".join(f"{g} {'solid' if j == 0 else 'dashed' if j == 1 else styles[j % 4]}"
                   for j, g in enumerate(gpus)) if len(gpus) > 1 else gpus[0]
    ax1.set_xlabel(f"replayed speedup of {obj.scheme} over {obj.baseline} ({on})")
    labels = sorted({res.label(k[0]) for k in keys})
    ax1.set_ylabel(f"{' / '.join(labels)} vs exact model (%)", fontsize=8)
    ax1.set_title("declared metric vs speedup over tau (labels: global tau)", fontsize=9)
    ax1.legend(fontsize=6, loc="lower left")
    ax2.axhline(100 * floor, color="k", ls="--", lw=1)
    ax2.set_xlabel("global tau")
    ax2.set_ylabel("%")
    ax2.set_title("declared metric and its second field vs tau", fontsize=9)
    ax2.legend(fontsize=6, loc="lower left")
    for ax in (ax1, ax2):
        ax.set_ylim(-2, 102)
    fit_titles(fig)
    fig.tight_layout()
    return save(fig, path)


def _gpu_speedup(row: SweepRow, gpu: str, objective: bool) -> float:
    """A sweep row's speedup on ``gpu`` (``speedup_by_gpu``; rows without it: ``speedup`` on
    the objective's GPU), NaN when not timed."""
    by = row.speedup_by_gpu
    v = by.get(gpu) if by else (row.speedup if objective else None)
    return float(v) if v is not None else np.nan


def dense_map_panels(ws: Any, result: AccuracyResult, stream: str | None = None,
                     frame: int | None = None) -> list[dict[str, Any]]:
    """Exact and SE-CNN output maps of one frame for each dense-prediction model tuned.

    For every model whose metric is ``edge_f1`` or ``region_f1`` and that was tuned, the map
    the metric binarises (HED's edge probabilities; CRAFT's region score) of ``frame`` of
    ``stream`` (default: ``photos`` if the workspace has it, else the tuning stream; by default
    the frame whose exact map has the most pixels on, the last on ties), exact and at each
    tuning method's thresholds.

    Returns:
      One dict per model: ``model``, ``metric``, ``threshold``, ``stream``, ``frame``,
      ``image`` (the stream's uint8 frame), ``exact`` ``[H, W]`` and ``secnn``: a list of
      ``{"method", "map", "score"}`` (the frame's primary score).
    """
    import itertools  # noqa: PLC0415

    import jax  # noqa: PLC0415

    from experiments import metrics as metrics_lib  # noqa: PLC0415

    thresholds = {"edge_f1": 0.5, "region_f1": 0.4}
    out = []
    for m in dict.fromkeys(t.model for t in result.tuned):
        metric = result.metrics[m].name
        if metric not in thresholds:
            continue
        mine = [t for t in result.tuned if t.model == m]
        s = stream or ("photos" if "photos" in ws.streams else mine[0].stream)
        x = ws.frames(m, s)
        ref = ws.reference(m, s)
        if frame is None:
            on = metrics_lib.frame_scores(metric, ref.logits, ref.logits)[
                "edge_on" if metric == "edge_f1" else "region_on"]
            k = int(len(on) - 1 - np.argmax(on[::-1]))
        else:
            k = int(frame)
        h = ws.model(m)
        shape = jax.eval_shape(h.apply_fn, h.variables, jax.ShapeDtypeStruct(
            x.shape[1:], x.dtype)).shape[1:]
        channel = 0

        def plane(flat: np.ndarray, shape: tuple[int, ...] = shape,
                  channel: int = channel) -> np.ndarray:
            return np.asarray(flat, np.float64).reshape(shape)[..., channel]

        exact = plane(ref.logits[k])
        panels = []
        for t in mine:
            cell = ws.run(m, s, t.predictor, dict(t.tau), timed=False)
            score = metrics_lib.summarize(metric, metrics_lib.frame_scores(
                metric, cell.logits[k:k + 1], ref.logits[k:k + 1]))["score"]
            panels.append({"method": t.method, "map": plane(cell.logits[k]),
                           "score": score})
        image = next(itertools.islice(iter(ws.streams[s]), k, k + 1), None)
        out.append({"model": m, "metric": metric, "label": result.metrics[m].label,
                    "threshold": thresholds[metric], "stream": s, "frame": k,
                    "image": None if image is None else np.asarray(image), "exact": exact,
                    "secnn": panels})
    return out


def dense_maps(panels: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Dense-prediction outputs of one frame: per model a row with the input frame, the exact
    model's map and SE-CNN's map at each tuning method's thresholds (the maps
    :func:`dense_map_panels` returns: HED's edge probability, CRAFT's
    region score), each titled with the frame's score on the model's metric and the
    binarisation threshold drawn as a contour."""
    if not panels:
        raise ValueError("dense_maps: no panels (no dense-prediction model was tuned)")
    cols = 2 + max(len(p["secnn"]) for p in panels)
    fig, axes = plt.subplots(len(panels), cols, figsize=(3.4 * cols, 3.0 * len(panels)),
                             squeeze=False)
    for row, p in zip(axes, panels, strict=True):
        for ax in row:
            ax.axis("off")
        if p.get("image") is not None:
            row[0].imshow(p["image"])
        row[0].set_title(f"{p['model']}: {p['stream']} frame {p['frame']}", fontsize=8)
        what = "edge probability" if p["metric"] == "edge_f1" else "region score"
        maps = [(f"exact {what}", p["exact"])] + [
            (f"SE-CNN, {s['method']}\n{p['label'].split(' (')[0]} {100 * s['score']:.1f}%",
             s["map"]) for s in p["secnn"]]
        for ax, (title, m) in zip(row[1:], maps, strict=False):
            ax.imshow(np.clip(m, 0, 1), cmap="gray_r" if p["metric"] == "edge_f1" else "magma",
                      vmin=0, vmax=1, interpolation="nearest")
            if np.nanmin(m) < p["threshold"] < np.nanmax(m):
                ax.contour(m, levels=[p["threshold"]], colors="#1f77b4", linewidths=0.5)
            ax.set_title(title, fontsize=7)
    fit_titles(fig)
    fig.tight_layout()
    return save(fig, path)


def ladder_bars(res: Any, path: str | Path) -> Path:
    """The attribution ladder: mean frame time of each step, one panel per (model, stream,
    GPU), each bar labelled with its speedup over the step before (one mechanism each), from
    an :class:`experiments.speedup.SpeedupResult`."""
    cells = [c for c in res.cells if c.ladder.mean_us]
    n = max(len(cells), 1)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.6), squeeze=False)
    for ax, c in zip(axes[0], cells, strict=False):
        lad = c.ladder
        keys = list(lad.mean_us)
        vals = [lad.mean_us[k] for k in keys]
        colours = ["#bbbbbb"] * 3 + ["#8da0cb", "#fc8d62", "#66c2a5", "#1b9e77"]
        ax.barh(range(len(keys)), vals, color=colours[:len(keys)])
        for i, k in enumerate(keys):
            r = lad.step_ratio[k]
            ax.text(vals[i], i, f" {vals[i]:.0f} us ({r:.2f}x)" if i else f" {vals[i]:.0f} us",
                    va="center", fontsize=7)
        ax.set_yticks(range(len(keys)))
        ax.set_yticklabels([k.replace("secnn_hw/persistent:", "secnn_hw/pers. ") for k in keys],
                           fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("mean frame time (us)")
        ax.set_xlim(right=max(vals) * 1.45)
        vp, of = (float("nan") if x is None else x
                  for x in (lad.value_prediction_factor, lad.oracle_factor))
        ax.set_title(f"{c.model} / {c.stream} on {c.gpu}\nvalue prediction {vp:.2f}x, oracle "
                     f"{of:.2f}x (fusion {res.fusion})", fontsize=8)
    fit_titles(fig)
    fig.tight_layout()
    return save(fig, path)


def schedule(result: Any, path: str | Path, gpu: str, frame: int = 0) -> Path:
    """What runs when in one frame, one panel per scheme of a ``ReplayResult``: the kernels
    exactly as its Chrome trace holds them (``result.kernel_slices``: one row per
    concurrently running kernel), coloured by kind — a layer's kernel or amendment (dark), its
    compare or compaction (mid), its parallel work (light), op kernels (grey); gaps are
    launches, graph gaps or barriers. Each bar's ``gid`` is its kernel's name."""
    colours = {"rail_load": "#c6dbef", "thread_state_running": "#2171b5",
               "rail_response": "#2171b5", "yellow": "#6baed6", "olive": "#6baed6",
               "generic_work": "#999999"}
    schemes = list(result.schemes)
    slices = {s: result.kernel_slices(gpu, s, frame) for s in schemes}
    rows = {s: max((sl.track for sl in v), default=0) + 1 for s, v in slices.items()}
    height = 0.9 + sum(0.7 + 0.15 * min(n, 16) for n in rows.values())
    fig, axes = plt.subplots(len(schemes), 1, figsize=(9.0, height), squeeze=False)
    for ax, s in zip(axes[:, 0], schemes, strict=True):
        r = result.get(gpu, s)
        for sl in slices[s]:
            bar = ax.barh(sl.track, (sl.end_ns - sl.start_ns) / 1e3, left=sl.start_ns / 1e3,
                          height=0.8, color=colours.get(sl.cname, "#999999"), linewidth=0)
            bar.patches[0].set_gid(sl.name)
        ax.set_xlim(0, float(r.total_us[frame]) * 1.02)
        ax.set_ylim(rows[s] - 0.5, -0.5)
        ax.set_yticks([])
        ax.set_ylabel("kernels at once", fontsize=7)
        ax.set_title(f"{s} on {gpu}: {float(r.total_us[frame]):.0f} us ({result.launch}, "
                     f"fusion {result.fusion})", fontsize=8)
    axes[-1, 0].set_xlabel("time in the frame (us)")
    fit_titles(fig)
    fig.tight_layout()
    return save(fig, path)


def pareto(res: Any, path: str | Path) -> Path:
    """Accuracy against replayed speedup, one curve per method over tau, one panel per
    (model, stream): the methods' Pareto fronts (peers study; ``res`` an
    :class:`experiments.peersresult.PeersResult` or its JSON form)."""
    pe = res.to_json() if isinstance(res, StudyResult) else res
    keys = sorted({(p["model"], p["stream"]) for p in pe["points"]})
    n = max(len(keys), 1)
    fig, axes = plt.subplots(1, n, figsize=(5.0 * n, 4.0), squeeze=False)
    for ax, (m, s) in zip(axes[0], keys, strict=False):
        pts = [p for p in pe["points"] if p["model"] == m and p["stream"] == s]
        for meth in dict.fromkeys(p["method"] for p in pts):
            mine = sorted((p for p in pts if p["method"] == meth), key=lambda p: p["tau"])
            agr = [p["agreement"] for p in mine]
            ax.plot([p["speedup"] for p in mine], agr, marker="o", label=meth)
            for p, a in zip(mine, agr, strict=True):
                ax.annotate(f"{p['tau']:g}", (p["speedup"], a), fontsize=6)
        ax.axhline(0.95, color="grey", ls="--", lw=0.8)
        ax.axvline(1.0, color="grey", ls=":", lw=0.8)
        ax.set_xlabel(f"speedup over dense ({pe['launch']})")
        ax.set_ylabel(f"{pts[0]['metric']} agreement with the exact model")
        ax.set_title(f"{m} / {s} (labels: tau)", fontsize=8)
        ax.legend(fontsize=7)
    fit_titles(fig)
    fig.tight_layout()
    return save(fig, path)
