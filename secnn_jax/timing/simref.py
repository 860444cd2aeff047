"""The timing model's side of the GPGPU-Sim comparison: each simulated kernel predicted from the
same building blocks the replayer uses (:mod:`.kernels`, :mod:`.sm`), on the simulator's own
machine configuration.

The simulated kernels (``experiments/gpgpusim/secnn_kernels.cu``) are 1x1-convolution GEMMs
``y [M, N] = x [M, K] W [K, N]`` over real event codes (``[M, K]``), tiled ``BM x BN`` per CTA
(one thread per position, ``BN`` accumulators, ``K`` in steps of ``BK`` through shared memory), and
elementwise passes of ``EW_THREADS x EW_PER_THREAD`` neurons per CTA. The model predicts:

* ``dense_simt`` / ``zero_skip`` / ``amend`` — :func:`~.kernels.sparse_grid` over the per-position
  count of inputs each lane processes (all ``K``; the firing inputs; the mispredicted inputs),
  with the kernel's own tile and occupancy, CTAs dealt to SMs (:func:`~.sm.dealt_makespan`), at
  least the bytes over the bandwidth (:func:`~.sm.mem_cycles`);
* ``compare`` / ``compact`` / ``detect`` — :func:`~.kernels.elementwise_cost` with the bytes each
  kernel moves and its SIMT instructions;
* ``serial`` — the layers' ``zero_skip`` kernels one after another; ``parallel`` — the same
  kernels as SE-CNN's parallel phase, timed by the replayer's scheduler (:func:`parallel_cycles`).

Machine mapping (``SIM_GPUS``): GPGPU-Sim's ``SM6_TITANX`` is the replayer's ``titanx`` with the
simulator's core clock (1417 MHz) and DRAM (12 channels x 4 B x 2500 MHz x 4 = 480 GB/s);
``SM7_QV100`` is ``v100`` at 1132 MHz with 32 x 16 B x 850 MHz x 2 = 870.4 GB/s. Cycles are
compared, so the clock only enters through memory time. Kernel launch latency is set to 0 in the
simulator (the replayer's launch models are validated separately).
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import kernels as K
from secnn_jax.timing import scheduler as SCH
from secnn_jax.timing.errors import ReplayError
from secnn_jax.timing.gpus import GPU, get_gpu
from secnn_jax.timing.params import ModelParams, load_params
from secnn_jax.timing.sm import Tile, bandwidth, dealt_makespan, mem_cycles

__all__ = ["GEMM_TILE", "SIM_CASES", "SIM_CSV", "SIM_GPUS", "SimComparison", "compare_rows",
           "gemm_breakdown", "lane_union", "load_cases", "markdown", "overlap_on_simulated",
           "parallel_cycles", "predict"]

#: The committed simulator rows and their event-code cases.
SIM_CSV = Path(__file__).with_name("measurements") / "gpgpusim.csv"
SIM_CASES = Path(__file__).with_name("measurements") / "gpgpusim_cases.npz"

#: The simulated GEMM kernel's tile (``BM``, ``BN``, ``BK``; 64 threads; 87 registers per
#: thread as ptxas reports for sm_61; one shared-memory stage).
GEMM_TILE = Tile(bm=64, bn=16, bk=16, threads=64, regs=87, stages=1, unit="simt")
#: SIMT instructions per neuron of the elementwise kernels (compare: compare, select code,
#: delta; detect: two compares, select; compact: ballot, popc, atomic share).
ELEMENTWISE_OPS: Mapping[str, float] = {"compare": 4.0, "detect": 3.0, "compact": 3.0}


def _sim_gpu(key: str, clock_mhz: float, dram_gbps: float, l2_bytes: int) -> GPU:
    g = get_gpu(key)
    src = dict(g.sources)
    src.update(clock_mhz="GPGPU-Sim config core clock", dram_gbps="GPGPU-Sim config DRAM",
               l2_bytes="GPGPU-Sim config L2")
    return dataclasses.replace(g, key=f"gpgpusim_{key}", clock_mhz=clock_mhz,
                               dram_gbps=dram_gbps, l2_bytes=l2_bytes, sources=src)


#: The simulator's configurations as replayer GPUs (see the module docstring).
SIM_GPUS: Mapping[str, GPU] = {
    "titanx": _sim_gpu("titanx", 1417.0, 480.0, 3 * 1024 * 1024),
    "qv100": _sim_gpu("v100", 1132.0, 870.4, 6 * 1024 * 1024),
}


def load_cases(path: str | Path) -> dict[str, tuple[np.ndarray, int]]:
    """``{case: (codes [M, K] uint8, N)}`` from a cases file (``<case>|codes``, ``<case>|N``)."""
    path = Path(path)
    if not path.is_file():
        raise ReplayError(f"GPGPU-Sim cases file not found: {path}")
    with np.load(path) as z:
        names = sorted({k.rpartition("|")[0] for k in z.files})
        return {n: (z[f"{n}|codes"], int(z[f"{n}|N"])) for n in names}


def _geom(m: int, k: int, n: int) -> LayerGeom:
    return LayerGeom(name="gemm", kind="conv", n=1, h=m, w=1, cin=k, ho=m, wo=1, cout=n)


def _gemm(count: np.ndarray, k: int, n: int, gpu: GPU, params: ModelParams,
          nbytes: float) -> tuple[float, np.ndarray, np.ndarray, int]:
    m = count.shape[0]
    grid = K.sparse_grid(count.reshape(1, m, 1).astype(np.int64), _geom(m, k, n), gpu, "fp32",
                         params, K.SparseTile(GEMM_TILE))
    comp = float(dealt_makespan(grid.w, grid.d, gpu.sms, grid.occupancy)[0])
    return (max(comp, float(mem_cycles(gpu, nbytes, params))), grid.w[0], grid.d[0],
            grid.occupancy)


def predict(kernel_class: str, codes: np.ndarray, n_out: int, gpu: GPU,
            params: ModelParams | None = None) -> float:
    """Predicted cycles of one simulated single-layer kernel over ``codes [M, K]``."""
    params = load_params() if params is None else params
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.dtype != np.uint8 or codes.size == 0 or codes.max() > 3:
        raise ReplayError(f"codes: expected non-empty uint8 [M, K] event codes (0-3), got "
                          f"{codes.dtype} {codes.shape}")
    m, k = codes.shape
    fires = codes != 0
    missed = (codes & 1) == 1
    n = codes.size
    io = 4.0 * (m * k + k * n_out + m * n_out)
    if kernel_class == "dense_simt":
        return _gemm(np.full(m, k), k, n_out, gpu, params, io)[0]
    if kernel_class == "zero_skip":
        return _gemm(fires.sum(1), k, n_out, gpu, params, io)[0]
    if kernel_class == "amend":  # delta in, y read and written
        return _gemm(missed.sum(1), k, n_out, gpu, params, io + 4.0 * m * n_out)[0]
    if kernel_class in ELEMENTWISE_OPS:
        nbytes = {"compare": n * (4 + 4 + 1 + 4 + 4),  # x, p in; code, delta, p out
                  "detect": n * (4 + 4 + 4) + 4 * int(missed.sum()),  # x, acc in; delta out
                  "compact": n + 4 * int(missed.sum())}[kernel_class]
        kc = K.elementwise_cost(n, nbytes, ELEMENTWISE_OPS[kernel_class] * n, gpu, "fp32",
                                params)
        return float(kc.cycles)
    raise ReplayError(f"kernel_class={kernel_class!r}: one of dense_simt, zero_skip, amend, "
                      f"{', '.join(ELEMENTWISE_OPS)}")


def parallel_cycles(layers: Sequence[tuple[np.ndarray, int]], gpu: GPU,
                    params: ModelParams | None = None) -> tuple[float, float]:
    """``(serial, parallel)`` cycles of the layers' ``zero_skip`` kernels: one after another,
    and all released at once as SE-CNN's parallel phase, timed by the replayer's own scheduler
    (:func:`~.scheduler.schedule`: independent kernels sharing the SMs and the bandwidth
    work-conservingly, none faster than alone)."""
    params = load_params() if params is None else params
    alone, ws, ds, occs, nbytes = [], [], [], [], []
    for codes, n_out in layers:
        m, k = codes.shape
        io = 4.0 * (m * k + k * n_out + m * n_out)
        cyc, w, d, occ = _gemm((codes != 0).sum(1), k, n_out, gpu, params, io)
        alone.append(cyc)
        ws.append(w[None])
        ds.append(d[None])
        occs.append(occ)
        nbytes.append(io)
    # An empty chain (one zero-length kernel) and every layer released at time 0.
    zero = np.zeros((1, 1))
    chain = SCH.Chain(duration=zero, busy=zero, nbytes=zero, gap=np.zeros(1),
                      issue=np.zeros(1), dep=np.full(1, -1), labels=("start",))
    pool = SCH.Pool(w=ws, d=ds, occupancy=occs, nbytes=np.asarray([nbytes]),
                    release=np.zeros(len(layers)))
    fs = SCH.schedule(chain, pool, gpu.sms, bandwidth(gpu, np.sum(nbytes), params)[None])
    return float(sum(alone)), float(fs.total[0])


def overlap_on_simulated(kernels: Sequence[tuple[float, int]], gpu: GPU) -> float:
    """The scheduler's parallel-phase time of kernels given their *simulated* durations.

    ``kernels`` holds each kernel's ``(cycles, ctas)`` as the simulator ran it alone. Each CTA
    becomes a unit of ``cycles / waves`` work and latency (``waves`` = the kernel's CTAs over the
    SMs), so the kernel alone takes its simulated time, and :func:`~.scheduler.schedule` runs them
    all released at once: what the scheduler alone predicts for the overlap, with the kernel model
    taken out of the comparison. Bandwidth is left unbounded (the simulated durations include
    each kernel's memory time).
    """
    ws, occs = [], []
    for cycles, ctas in kernels:
        n = max(1, int(ctas))
        waves = -(-n // gpu.sms)
        ws.append(np.full((1, n), float(cycles) / waves))
        occs.append(1)
    zero = np.zeros((1, 1))
    chain = SCH.Chain(duration=zero, busy=zero, nbytes=zero, gap=np.zeros(1),
                      issue=np.zeros(1), dep=np.full(1, -1), labels=("start",))
    pool = SCH.Pool(w=ws, d=ws, occupancy=occs, nbytes=np.zeros((1, len(ws))),
                    release=np.zeros(len(ws)))
    return float(SCH.schedule(chain, pool, gpu.sms, np.full(1, np.inf)).total[0])


def gemm_breakdown(row: Mapping[str, str], cases: Mapping[str, tuple[np.ndarray, int]]
                   ) -> dict[str, float]:
    """Where a simulated GEMM kernel's cycles go, from the runner's row and its case.

    Returns the thread FMAs the kernel performs per launched thread (``K * BN`` for
    ``dense_simt``), the simulated instructions per thread (GPGPU-Sim counts thread
    instructions), their ratio ``instructions_per_fma``, the simulated cycles per k-step of the
    tile (``BK`` inputs) and per warp instruction (``cycles / instructions per thread``: the
    kernels run one or two CTAs per SM, so each warp has a scheduler to itself), and the model's
    latency floor per k-step (``latency_cycles / stages``) for comparison.
    """
    codes, _ = cases[row["layers"].split("+")[0]]
    k = codes.shape[1]
    threads = int(row["ctas"]) * GEMM_TILE.threads
    per_thread = float(row["instructions"]) / threads
    fmas = float(k * GEMM_TILE.bn)
    steps = -(-k // GEMM_TILE.bk)
    return {"fmas_per_thread": fmas, "instructions_per_thread": per_thread,
            "instructions_per_fma": per_thread / fmas,
            "cycles_per_kstep": float(row["cycles"]) / steps,
            "cycles_per_warp_instruction": float(row["cycles"]) / per_thread}


def lane_union(codes: np.ndarray, warp: int = 32) -> dict[str, float]:
    """How much of K a zero-skipping warp steps through: one thread per position (row), ``warp``
    consecutive rows per warp. ``union`` is the mean share of K at which *some* lane of a warp
    has a non-zero input (the steps a warp executes when lanes skip zeros: a warp issues an
    instruction when any lane needs it); ``busiest`` the mean share of the warp's busiest lane
    (what the model's SIMT ``zero_skip`` costs); ``dense`` is 1."""
    fires = np.asarray(codes) != 0
    m, k = fires.shape
    pad = -m % warp
    f = np.pad(fires, [(0, pad), (0, 0)]).reshape(-1, warp, k)
    return {"union": float(f.any(1).sum(-1).mean() / k),
            "busiest": float(f.sum(-1).max(-1).mean() / k)}


@dataclasses.dataclass(frozen=True)
class SimComparison:
    """Simulated against predicted cycles, row by row, and the MAPE per kernel class."""

    rows: tuple[dict, ...]
    mape: Mapping[str, float]

    def table(self) -> str:
        """The per-class table and the overall figure (``GPGPU-Sim MAPE <x>%`` last)."""
        lines = [f"{'class':<12} {'rows':>4} {'MAPE %':>8}"]
        for cls, v in self.mape.items():
            if cls != "all":
                n = sum(r["kernel_class"] == cls for r in self.rows)
                lines.append(f"{cls:<12} {n:>4} {v:>8.1f}")
        conc = [r for r in self.rows if "sim_over_serial" in r]
        if conc:
            lines.append("parallel / serial (concurrent_kernel_sm, layers: simulated vs model; "
                         "scheduler on the simulated kernel times)")
            for r in conc:
                sched = r.get("scheduler_over_serial")
                lines.append(f"  {r['concurrent_kernel_sm']} {r['layers']}: "
                             f"{r['sim_over_serial']:.2f} vs {r['model_over_serial']:.2f}"
                             + (f"; {sched:.2f}" if sched is not None else ""))
        lines.append(f"GPGPU-Sim MAPE {self.mape['all']:.1f}%")
        return "\n".join(lines)


def compare_rows(csv_path: str | Path, cases: Mapping[str, tuple[np.ndarray, int]],
                 config: str, params: ModelParams | None = None) -> SimComparison:
    """Predicts every row of the runner's CSV for ``config`` (``parallel`` rows with
    ``concurrent_kernel_sm`` 0 and 1 are both compared against the same prediction)."""
    if config not in SIM_GPUS:
        raise ReplayError(f"config={config!r}: one of {sorted(SIM_GPUS)}")
    gpu = SIM_GPUS[config]
    path = Path(csv_path)
    if not path.is_file():
        raise ReplayError(f"GPGPU-Sim CSV not found: {path}")
    with open(path, newline="") as fh:
        raw = [r for r in csv.DictReader(fh) if r["config"] == config]
    if not raw:
        raise ReplayError(f"{path}: no rows for config {config!r}")
    out = []
    for r in raw:
        names = r["layers"].split("+")
        missing = [n for n in names if n not in cases]
        if missing:
            raise ReplayError(f"{path}: row {r['kernel_class']} names cases {missing} that the "
                              "cases file lacks")
        if r["kernel_class"] in ("serial", "parallel"):
            ser, par = parallel_cycles([cases[n] for n in names], gpu, params)
            pred = ser if r["kernel_class"] == "serial" else par
        else:
            pred = predict(r["kernel_class"], *cases[names[0]], gpu, params)
        sim = float(r["cycles"])
        out.append({**r, "predicted": pred, "error_pct": 100.0 * (pred - sim) / sim})
    # Concurrency: each parallel row's time over its layers' serial row, simulated and modelled.
    serial = {r["layers"]: r for r in out if r["kernel_class"] == "serial"}
    for r in out:
        s_row = serial.get(r["layers"])
        if r["kernel_class"] == "parallel" and s_row is not None:
            r["sim_over_serial"] = float(r["cycles"]) / float(s_row["cycles"])
            r["model_over_serial"] = r["predicted"] / s_row["predicted"]
            alone = [next((x for x in out if x["kernel_class"] == "zero_skip"
                           and x["layers"] == name and x["concurrent_kernel_sm"] == "0"), None)
                     for name in r["layers"].split("+")]
            if all(a is not None for a in alone):
                par = overlap_on_simulated([(float(a["cycles"]), int(a["ctas"])) for a in alone],
                                           gpu)
                r["scheduler_over_serial"] = par / sum(float(a["cycles"]) for a in alone)
    classes = sorted({r["kernel_class"] for r in out})
    mape = {c: float(np.mean([abs(r["error_pct"]) for r in out if r["kernel_class"] == c]))
            for c in classes}
    mape["all"] = float(np.mean([abs(r["error_pct"]) for r in out]))
    return SimComparison(rows=tuple(out), mape=mape)


def params_or_default(params: ModelParams | None) -> ModelParams:
    """``params``, else the shipped calibration."""
    return load_params() if params is None else params


def markdown(csv_path: str | Path = SIM_CSV, cases_path: str | Path = SIM_CASES,
             params: ModelParams | None = None) -> list[str]:
    """The ``VALIDATION.md`` section of the committed simulator rows: per configuration the
    per-class MAPE, the concurrency rows and the overall figure (no lines without the files)."""
    csv_path, cases_path = Path(csv_path), Path(cases_path)
    if not (csv_path.is_file() and cases_path.is_file()):
        return []
    cases = load_cases(cases_path)
    with open(csv_path, newline="") as fh:
        configs = sorted({r["config"] for r in csv.DictReader(fh)})
    lines = ["## GPGPU-Sim (a second reference, no GPU)", "",
             "Our CUDA kernels of SE-CNN's pieces (`experiments/gpgpusim/secnn_kernels.cu`) on "
             "real Lite0/HED event codes, simulated by GPGPU-Sim in PTX mode "
             f"(`{csv_path.name}`; `python -m experiments.gpgpusim`) and predicted by "
             "`secnn_jax.timing.simref` from the replayer's building blocks on the simulator's "
             "machine (`python -m experiments.validate_timing --gpu=titanx --gpgpusim=CSV`).", ""]
    for config in configs:
        cmp = compare_rows(csv_path, cases, config, params)
        lines += [f"### {config}", "", "| class | rows | simulated cycles | predicted | MAPE |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for cls in sorted({r["kernel_class"] for r in cmp.rows}):
            rs = [r for r in cmp.rows if r["kernel_class"] == cls]
            sim = np.mean([float(r["cycles"]) for r in rs])
            pred = np.mean([r["predicted"] for r in rs])
            lines.append(f"| {cls} | {len(rs)} | {sim:,.0f} | {pred:,.0f} | "
                         f"{cmp.mape[cls]:.1f}% |")
        lines.append(f"| **all** | {len(cmp.rows)} | | | **{cmp.mape['all']:.1f}%** |")
        conc = [r for r in cmp.rows if "sim_over_serial" in r]
        if conc:
            lines += ["", "Parallel over serial (the same layers' kernels on independent streams "
                      "against one stream):", "",
                      "| layers | concurrent_kernel_sm | simulated | model | scheduler on "
                      "simulated kernels |", "| --- | ---: | ---: | ---: | ---: |"]
            lines += [f"| {r['layers']} | {r['concurrent_kernel_sm']} | "
                      f"{r['sim_over_serial']:.2f} | {r['model_over_serial']:.2f} | "
                      + (f"{r['scheduler_over_serial']:.2f} |" if "scheduler_over_serial" in r
                         else "- |") for r in conc]
            lines += ["", "*Scheduler on simulated kernels*: the replayer's scheduler given each "
                      "kernel's simulated time alone (`overlap_on_simulated`), i.e. the overlap "
                      "model with the kernel model taken out; where it matches *simulated* and "
                      "*model* does not, the difference is in the kernels' modelled durations, "
                      "not in how they share the machine."]
        dense = [r for r in cmp.rows if r["kernel_class"] == "dense_simt"]
        if dense:
            lines += ["", "Where a dense SIMT GEMM's simulated cycles go (`gemm_breakdown`; "
                      f"model latency floor per k-step: "
                      f"{params_or_default(params).latency_cycles / GEMM_TILE.stages:,.0f} "
                      "cycles):", "",
                      "| case | FMAs / thread | instructions / thread | instructions / FMA | "
                      "cycles / k-step | cycles / warp instruction | predicted / simulated |",
                      "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
            for r in dense:
                b = gemm_breakdown(r, cases)
                lines.append(f"| {r['case']} | {b['fmas_per_thread']:,.0f} | "
                             f"{b['instructions_per_thread']:,.0f} | "
                             f"{b['instructions_per_fma']:.1f} | {b['cycles_per_kstep']:,.0f} | "
                             f"{b['cycles_per_warp_instruction']:.1f} | "
                             f"{r['predicted'] / float(r['cycles']):.2f} |")
            skips = [r for r in cmp.rows if r["kernel_class"] == "zero_skip"]
            lines += ["", "A zero-skipping warp (`lane_union`: share of K stepped through):", "",
                      "| case | warp union | busiest lane (model) | simulated zero_skip / "
                      "dense_simt |", "| --- | ---: | ---: | ---: |"]
            for r in skips:
                u = lane_union(cases[r["layers"].split("+")[0]][0])
                d = next((x for x in dense if x["case"] == r["case"]), None)
                ratio = f"{float(r['cycles']) / float(d['cycles']):.2f}" if d else "-"
                lines.append(f"| {r['case']} | {u['union']:.2f} | {u['busiest']:.2f} | "
                             f"{ratio} |")
            ipf = [gemm_breakdown(r, cases)["instructions_per_fma"] for r in dense]
            cpi = [gemm_breakdown(r, cases)["cycles_per_warp_instruction"] for r in dense]
            lines += ["", "Why the classes differ by more than 25% (stated as limits; the model "
                      "is not changed to match the simulator):", "",
                      f"- *GEMM classes* (`dense_simt`, `zero_skip`, `amend`, `serial`, "
                      f"`parallel`): the simulator executes PTX, not the SASS that ptxas would "
                      f"emit: {min(ipf):.1f}-{max(ipf):.1f} instructions per FMA where an "
                      "optimised inner loop issues about one (intermediate-language simulation "
                      "misstates instruction counts: Gutierrez et al., HPCA 2018; Jain et al., "
                      "SIGMETRICS 2018; Khairy et al., ISCA 2020), and with one or two warps per "
                      f"SM each warp issues once every {min(cpi):.1f}-{max(cpi):.1f} cycles. The "
                      "model's SIMT kernels are calibrated on cuDNN's SASS on an H100; the "
                      "simulator is not evidence about real GPUs' absolute cycles here.",
                      "- *Zero skipping* (`zero_skip`, `amend`, and the parallel rows built "
                      "from them): a warp steps through the union of its lanes' non-zero inputs "
                      "and every step still loads and tests its input, so the simulated kernel "
                      "takes as long as the dense one (last column above); the model charges "
                      "the busiest lane. A kernel that compacts each lane's non-zero inputs first "
                      "(what `sw_compaction` models) does not step through the union; ours does "
                      "not compact, so this row measures the naive kernel, and which one a "
                      "real implementation would be is a limit of both sides.",
                      "- *Elementwise classes* (`compare`, `detect`, `compact`): a few CTAs of "
                      "dependent load-then-store work; both sides are latency-bound and the "
                      "simulator pays more than the model's one memory latency and CTA overhead "
                      "per CTA (consistent with two dependent DRAM round trips).",
                      "- *Concurrency*: given the simulated kernel times, the scheduler "
                      "reproduces the simulated overlap (table above); the model's overlap "
                      "differs only through the kernels' modelled durations."]
        lines.append("")
    return lines
