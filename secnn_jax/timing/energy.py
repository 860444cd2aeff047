"""Energy per frame and the area of SE-CNN's additions, from the replay's work counts.

Every scheme's graph counts, per kernel of its schedule, the work it executes
(:data:`WORK_KEYS`; :attr:`~.schemes.SchemeTimes.span_work`), and a frame's work is their sum
(:func:`graph_work`):
fused multiply-adds on the SIMT lanes and on the tensor cores, SE-CNN's compares, shared-memory
(tile) traffic, and the bytes each kernel moves, counted as L2 traffic when the kernel's bytes fit
in L2 and as DRAM traffic otherwise (the same rule the time model uses). :func:`energy_parts`
prices them with per-event energies and adds static power times the frame time:

    compute = fma_simt * e_fma_simt + fma_tensor * e_mac_tensor + compares * e_compare
    on_chip = (fma_simt * 4 + fma_tensor * RF_BYTES_PER_TENSOR_MAC / eb) * eb * e_rf_byte
              + smem_bytes * e_smem_byte + l2_bytes * e_l2_byte
    dram    = dram_bytes * e_dram_byte
    issue   = (fma_simt + compare_instructions) * e_issue_simt + fma_tensor * e_issue_tensor
    static  = static_w * frame_time

**Sources and scaling** (:class:`EnergyParams`, one per GPU, every number sourced): arithmetic
and SRAM energies are M. Horowitz, "Computing's energy problem (and what we can do about it)",
ISSCC 2014, Fig. 1.1.9 (45 nm, 0.9 V): 32-bit FP add 0.9 pJ + multiply 3.7 pJ, 16-bit FP add
0.4 pJ + multiply 1.1 pJ, 8 KB SRAM 64-bit read 10 pJ, 1 MB SRAM 64-bit read 100 pJ; 32-bit
integer add 0.1 pJ for a compare. They are scaled to each GPU's process with the stated rule
``E(node) = E(45 nm) * (node / 45) * (V / 0.9)^2`` (capacitance linear in the feature size,
dynamic energy in V^2); the node and voltage of each GPU are in its sources. DRAM energy per bit
is the memory technology's (O'Connor et al., "Fine-Grained DRAM", MICRO 2017: HBM2 3.9 pJ/bit,
GDDR5 14 pJ/bit) — not scaled with the logic process. Static power is an assumed fraction of the
board power (TDP), stated per GPU.

**Issue overhead** (``issue``): arithmetic and SRAM reads are a small part of what an executed
operation costs a GPU; instruction fetch, decode and scheduling, operand collection and delivery
to the lanes and tensor cores, pipeline registers and the clock tree cost more (Horowitz's figure
puts an instruction's overhead at tens of times its add). No per-GPU circuit figure for it is
public, so it is calibrated from two datasheet numbers under one stated premise: *at its peak
dense rate a GPU runs at its board-power limit* (the GPU boost governor holds the clock where
the board draws TDP). Per operation kind (SIMT FMA per precision; tensor-core MAC per precision)

    e_issue = (TDP - static_w) / peak_rate - (arithmetic + register-file energy of the op)

with ``peak_rate`` from the GPU configuration (:meth:`GPU.simt_fma_per_clk`,
``tensor_fma_per_clk``, SMs and clock); a SIMT precision slower than FP32 (Pascal's FP16) gets
FP32's per-op overhead, the premise not holding for it. It is an upper bound for the op's
all-in energy (a peak kernel may throttle below the clock the rate assumes), charged per
executed MAC, so a scheme that skips work saves it and one that adds work (SE-CNN's re-executed
layers) pays it. Compares executed as SIMT instructions (``secnn_sw``, the stock peers' change
detection) pay the FP32 SIMT overhead per instruction; ``secnn_hw``'s (and the peers' on the
extended GPU, ``peer_extension``) run on its added comparators and pay none.

These are first-order numbers: they bound, they do not measure.

**Area** (:func:`secnn_area`): SE-CNN's comparators (one 32-bit comparator per lane per SM,
scaled from Horowitz's 32-bit adder area, 137 um^2 at 45 nm, with area ~ node^2) and its
prediction/state buffers per layer, placed on chip (SRAM: the node's published high-density
bitcell area times an array-overhead factor) or off chip (no area; the replay then charges their
DRAM traffic).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from secnn_jax.geometry import LayerGeom
from secnn_jax.timing.errors import ReplayError
from secnn_jax.timing.gpus import ELEMENT_BYTES, GPUS, PRECISIONS, canonical_precision

#: Work counts every scheme reports per frame.
WORK_KEYS: tuple[str, ...] = ("fma_simt", "fma_tensor", "compares", "compare_instructions",
                              "smem_bytes", "l2_bytes", "dram_bytes")
#: Register-file bytes per tensor-core MAC, in elements of the precision: an m16n8k16 MMA reads
#: 16x16 + 16x8 operands and accumulates 16x8 for 2,048 MACs (~0.25 element per MAC; assumption
#: rounded up to 0.5). A SIMT FMA reads three operands and writes one (4 elements).
RF_BYTES_PER_TENSOR_MAC = 0.5
#: Energy components, in report order.
COMPONENTS: tuple[str, ...] = ("compute", "on_chip", "dram", "issue", "static")

_HOROWITZ = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC "
             "2014, Fig. 1.1.9 (45 nm, 0.9 V)")
_RULE = "scaled by (node/45) x (V/0.9)^2"
_FGDRAM = "M. O'Connor et al., 'Fine-Grained DRAM', MICRO 2017, Table 1"


@dataclasses.dataclass(frozen=True)
class EnergyParams:
    """Per-event energies (picojoules) and static power of one GPU, each with its source.

    Attributes:
      gpu: GPU key.
      node_nm, volts: process node and core voltage the 45 nm figures are scaled to.
      fma_pj: per precision, one FMA on the SIMT lanes (add + multiply).
      tensor_mac_pj: per precision, one tensor-core MAC (its operands come from registers or
        shared memory once per tile, so the arithmetic dominates: the same add + multiply).
      compare_pj: one 32-bit compare (an integer-add-sized comparator).
      rf_byte_pj: one byte of register-file access (a small SRAM: 8 KB, per byte).
      smem_byte_pj: one byte of shared-memory/L1 traffic (8 KB SRAM, per byte).
      l2_byte_pj: one byte of L2 traffic (1 MB SRAM bank, per byte).
      dram_byte_pj: one byte of DRAM traffic.
      issue_simt_pj: per precision, the issue overhead of one SIMT FMA (module docstring).
      issue_tensor_pj: per precision, the issue overhead of one tensor-core MAC (0 where the
        GPU has no tensor cores for the precision).
      static_w: static (leakage and idle) power.
      tdp_w: board power, for the sanity check.
      sources: where every number comes from.
    """

    gpu: str
    node_nm: float
    volts: float
    fma_pj: Mapping[str, float]
    tensor_mac_pj: Mapping[str, float]
    compare_pj: float
    rf_byte_pj: float
    smem_byte_pj: float
    l2_byte_pj: float
    dram_byte_pj: float
    issue_simt_pj: Mapping[str, float]
    issue_tensor_pj: Mapping[str, float]
    static_w: float
    tdp_w: float
    sources: Mapping[str, str] = dataclasses.field(repr=False, compare=False)


def _scaled(pj_45: float, node: float, volts: float) -> float:
    return pj_45 * (node / 45.0) * (volts / 0.9) ** 2


def _params(gpu: str, node: float, volts: float, dram_pj_bit: float, dram_src: str,
            tdp: float, static_frac: float, proc_src: str, tdp_src: str) -> EnergyParams:
    s = lambda e: _scaled(e, node, volts)
    fp32, fp16 = s(0.9 + 3.7), s(0.4 + 1.1)
    fma = {"fp32": fp32, "tf32": fp32, "fp16": fp16}
    tensor = {"fp32": fp32, "tf32": s(0.4 + 1.1) * 1.3, "fp16": fp16}
    rf = s(10.0 / 8)
    g = GPUS[gpu]
    dynamic_w = tdp * (1.0 - static_frac)
    clock_hz = g.clock_mhz * 1e6

    def issue(rate_per_sm_clk: float, counted_pj: float) -> float:
        if rate_per_sm_clk <= 0:
            return 0.0
        all_in_pj = dynamic_w / (rate_per_sm_clk * g.sms * clock_hz) * 1e12
        return max(all_in_pj - counted_pj, 0.0)

    issue_simt = {p: issue(g.simt_fma_per_clk(p), fma[p] + 4 * ELEMENT_BYTES[p] * rf)
                  for p in PRECISIONS}
    # The premise holds for the SIMT lanes' main datapath (FP32). A precision the lanes run
    # slower (Pascal's FP16 at 1/64 rate) does not make the board draw TDP at its peak, and an
    # instruction's overhead does not grow because its datapath is narrow: cap it at FP32's.
    issue_simt = {p: min(v, issue_simt["fp32"]) for p, v in issue_simt.items()}
    issue_tensor = {p: issue(g.tensor_fma_per_clk.get(p, 0),
                             tensor[p] + RF_BYTES_PER_TENSOR_MAC * ELEMENT_BYTES[p] * rf)
                    for p in PRECISIONS}
    premise = (f"calibrated: (TDP - static) / peak rate - counted arithmetic and register-file "
               f"energy, premise: at its peak dense rate the board draws its power limit; peak "
               f"rate from the GPU configuration ({g.sms} SMs x {g.clock_mhz:g} MHz x the "
               f"per-SM rate: {g.sources.get('sms', 'see secnn_jax.timing.gpus')})")
    return EnergyParams(
        gpu=gpu, node_nm=node, volts=volts,
        fma_pj=MappingProxyType(fma), tensor_mac_pj=MappingProxyType(tensor),
        compare_pj=s(0.1), rf_byte_pj=rf, smem_byte_pj=s(10.0 / 8),
        l2_byte_pj=s(100.0 / 8), dram_byte_pj=dram_pj_bit * 8,
        issue_simt_pj=MappingProxyType(issue_simt), issue_tensor_pj=MappingProxyType(issue_tensor),
        static_w=static_frac * tdp, tdp_w=tdp,
        sources=MappingProxyType({
            "node_nm": proc_src, "volts": proc_src,
            "fma_pj": f"{_HOROWITZ}: 32-bit FP add 0.9 + mult 3.7 pJ, 16-bit 0.4 + 1.1 pJ; "
                      f"{_RULE}",
            "tensor_mac_pj": f"{_HOROWITZ}: 16-bit FP add + mult (TF32: x1.3 for its 10-bit "
                             f"mantissa datapath, an assumption); {_RULE}",
            "compare_pj": f"{_HOROWITZ}: 32-bit integer add 0.1 pJ; {_RULE}",
            "rf_byte_pj": f"{_HOROWITZ}: 8 KB SRAM 64-bit read 10 pJ (a register-file bank); "
                          f"{_RULE}",
            "smem_byte_pj": f"{_HOROWITZ}: 8 KB SRAM 64-bit read 10 pJ; {_RULE}",
            "l2_byte_pj": f"{_HOROWITZ}: 1 MB SRAM 64-bit read 100 pJ; {_RULE}",
            "dram_byte_pj": dram_src,
            "issue_simt_pj": premise, "issue_tensor_pj": premise,
            "static_w": f"assumption: {static_frac:.0%} of the board power is static/idle",
            "tdp_w": tdp_src,
        }))


_HBM = f"{_FGDRAM}: HBM2 3.9 pJ/bit (HBM2e/HBM3 assumed the same)"
_GDDR = f"{_FGDRAM}: GDDR5 14 pJ/bit (GDDR5X assumed the same)"

#: Energy parameters per GPU key (the GPUs of :data:`secnn_jax.timing.GPUS`).
ENERGY: Mapping[str, EnergyParams] = MappingProxyType({p.gpu: p for p in (
    _params("gtx1080ti", 16, 1.05, 14.0, _GDDR, 250, 0.15,
            "TSMC 16 nm FinFET (GP102); ~1.05 V at boost (assumption)",
            "GeForce GTX 1080 Ti product page: 250 W"),
    _params("titanx", 16, 1.05, 14.0, _GDDR, 250, 0.15,
            "TSMC 16 nm FinFET (GP102); ~1.05 V at boost (assumption)",
            "TITAN X (Pascal) product page: 250 W"),
    _params("titanv", 12, 1.0, 3.9, _HBM, 250, 0.15,
            "TSMC 12 nm FFN (GV100); ~1.0 V (assumption)", "TITAN V product page: 250 W"),
    _params("v100", 12, 1.0, 3.9, _HBM, 300, 0.15,
            "TSMC 12 nm FFN (GV100); ~1.0 V (assumption)",
            "Tesla V100 SXM2 datasheet: 300 W"),
    _params("a100", 7, 0.9, 3.9, _HBM, 400, 0.15,
            "TSMC 7 nm (GA100); ~0.9 V (assumption)", "A100 SXM4 datasheet: 400 W"),
    _params("h100", 5, 0.8, 3.9, _HBM, 700, 0.15,
            "TSMC 4N, a 5 nm-class process (GH100); ~0.8 V (assumption)",
            "H100 SXM5 datasheet: up to 700 W"),
    _params("h200", 5, 0.8, 3.9, _HBM, 700, 0.15,
            "TSMC 4N, a 5 nm-class process (GH100); ~0.8 V (assumption)",
            "H200 SXM datasheet: up to 700 W"),
)})


def get_energy_params(gpu: str) -> EnergyParams:
    """The energy parameters of GPU key ``gpu`` (a copy of the H100's for an unknown key)."""
    if gpu in ENERGY:
        return ENERGY[gpu]
    return dataclasses.replace(ENERGY["h100"], gpu=gpu)


def graph_work(span_work: Mapping[str, Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``{key: [T]}``: a frame's work, the sum over the schedule's kernels of the work each
    counted (``span_work[track][key]``: ``[T, n]``, one column per kernel of the track, as the
    schemes' graphs hold it: :attr:`~.schemes.SchemeTimes.span_work`). What
    :func:`energy_parts` prices."""
    out = {}
    for k in WORK_KEYS:
        cols = [np.asarray(w[k], np.float64) for w in span_work.values() if k in w]
        out[k] = (np.concatenate(cols, axis=1).sum(1) if cols
                  else np.zeros(0))
    return out


def energy_parts(work: Mapping[str, np.ndarray], time_us: np.ndarray, gpu: str,
                 precision: str) -> dict[str, np.ndarray]:
    """``{component: [T] microjoules}`` of one scheme's frames (see the module docstring)."""
    p = get_energy_params(gpu)
    prec = canonical_precision(precision)
    eb = ELEMENT_BYTES[prec]
    w = {k: np.asarray(work.get(k, 0.0), np.float64) for k in WORK_KEYS}
    pj = 1e-6  # picojoules -> microjoules
    rf_bytes = (4.0 * w["fma_simt"] + RF_BYTES_PER_TENSOR_MAC * w["fma_tensor"]) * eb
    return {
        "compute": pj * (w["fma_simt"] * p.fma_pj[prec] + w["fma_tensor"] * p.tensor_mac_pj[prec]
                         + w["compares"] * p.compare_pj),
        "on_chip": pj * (rf_bytes * p.rf_byte_pj + w["smem_bytes"] * p.smem_byte_pj
                         + w["l2_bytes"] * p.l2_byte_pj),
        "dram": pj * w["dram_bytes"] * p.dram_byte_pj,
        "issue": pj * (w["fma_simt"] * p.issue_simt_pj[prec]
                       + w["compare_instructions"] * p.issue_simt_pj["fp32"]
                       + w["fma_tensor"] * p.issue_tensor_pj[prec]),
        "static": p.static_w * np.asarray(time_us, np.float64),  # W x us = uJ
    }


@dataclasses.dataclass(frozen=True)
class Area:
    """SE-CNN's silicon additions on one GPU for one network.

    Attributes:
      comparators_mm2: the comparators of all SMs.
      buffer_bytes: prediction and state bytes of all layers (one frame).
      buffer_mm2: their SRAM area if placed on chip.
      sm_mm2, die_mm2: the reference areas.
      placement_shares: ``{placement: share of the die}`` for ``on_chip`` and ``off_chip``.
    """

    comparators_mm2: float
    buffer_bytes: int
    buffer_mm2: float
    sm_mm2: float
    die_mm2: float
    placement_shares: Mapping[str, float]


#: Published high-density SRAM bitcell areas (um^2) by node, and the array overhead assumed.
BITCELL_UM2: Mapping[float, float] = MappingProxyType({16: 0.074, 12: 0.074, 7: 0.027, 5: 0.021})
BITCELL_SOURCES = ("TSMC 16FF+ 0.074 um^2 (ISSCC 2014); N7 0.027 um^2 (IEDM 2016); N5 0.021 um^2 "
                   "(IEDM 2019); array overhead (decoders, sense amps, redundancy) x1.6, an "
                   "assumption")
ARRAY_OVERHEAD = 1.6
#: Die areas (mm^2) and the share of the die the SMs take (assumption).
DIE_MM2: Mapping[str, float] = MappingProxyType(
    {"gtx1080ti": 471, "titanx": 471, "titanv": 815, "v100": 815, "a100": 826, "h100": 814,
     "h200": 814})
SM_SHARE = 0.6


def buffer_bytes(layers: Sequence[Any], precision: str, state_values: int = 2) -> int:
    """Bytes of SE-CNN's per-input-neuron storage: ``state_values`` values (the prediction and,
    for the paper's predictor, its firing state) per input neuron of every layer."""
    eb = ELEMENT_BYTES[canonical_precision(precision)]
    return int(sum(LayerGeom.from_layer(g).n_inputs for g in layers) * eb * state_values)


#: Per method, the values kept per input and per output neuron of every layer between frames:
#: SE-CNN the prediction and the firing state per input; DeltaCNN the accumulated (last
#: propagated) input and the output buffer; CBinfer the stored input and the previous output.
METHOD_BUFFERS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"secnn": (2, 0), "deltacnn": (1, 1), "cbinfer": (1, 1)})


def method_buffer_bytes(layers: Sequence[Any], precision: str, method: str) -> int:
    """Bytes a method keeps between frames (:data:`METHOD_BUFFERS`) for one stream."""
    if method not in METHOD_BUFFERS:
        raise ReplayError(f"unknown method {method!r}; known: {', '.join(METHOD_BUFFERS)}")
    per_in, per_out = METHOD_BUFFERS[method]
    eb = ELEMENT_BYTES[canonical_precision(precision)]
    geoms = [LayerGeom.from_layer(g) for g in layers]
    return int(eb * sum(per_in * g.n_inputs + per_out * g.n_outputs for g in geoms))


def secnn_area(layers: Sequence[Any], gpu: Any, precision: str = "fp32",
               comparators_per_sm: int | None = None, state_values: int = 2) -> Area:
    """Area of the comparators and of the prediction/state buffers (see the module docstring)."""
    p = get_energy_params(gpu.key)
    node = p.node_nm
    comp_um2 = 137.0 * (node / 45.0) ** 2
    n_comp = (comparators_per_sm or gpu.fp32_lanes) * gpu.sms
    nbytes = buffer_bytes(layers, precision, state_values)
    cell = BITCELL_UM2.get(node, BITCELL_UM2[5])
    buf_mm2 = nbytes * 8 * cell * ARRAY_OVERHEAD / 1e6
    die = DIE_MM2.get(gpu.key, 814)
    comp_mm2 = n_comp * comp_um2 / 1e6
    return Area(comparators_mm2=comp_mm2, buffer_bytes=nbytes, buffer_mm2=buf_mm2,
                sm_mm2=die * SM_SHARE / gpu.sms, die_mm2=die,
                placement_shares=MappingProxyType({"on_chip": (comp_mm2 + buf_mm2) / die,
                                                   "off_chip": comp_mm2 / die}))
