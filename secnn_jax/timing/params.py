"""Parameters of the timing model: fitted efficiencies (:class:`ModelParams`) and the documented
knobs of the schemes (:class:`SchemeConfig`), with the sources and plausible ranges of SE-CNN's
physics parameters (:data:`PHYSICS`).

``ModelParams`` are *fitted* on real H100 measurements (:mod:`.calibration`): the per-layer cuDNN
kernels fix the kernel model, the whole-network CUDA-graph latencies fix ``graph_kernel_us``.
``SchemeConfig`` fields are *assumptions* — each documented, each with a range that the report's
sensitivity table sweeps.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from secnn_jax.errors import SecnnError
from secnn_jax.timing.gpus import GPU, canonical_precision
from secnn_jax.timing.names import COMPACTIONS

PARAMS_PATH = Path(__file__).with_name("params_h100.json")


#: Where SE-CNN's prediction buffers may live (:attr:`SchemeConfig.buffer_placement`).
PLACEMENTS: tuple[str, ...] = ("cache", "off_chip", "on_chip")


class TimingConfigError(SecnnError, ValueError):
    """A timing parameter or scheme option has an invalid value (the message names it)."""


@dataclasses.dataclass(frozen=True)
class ModelParams:
    """The few efficiency parameters fitted on measurements (:mod:`.calibration`).

    Attributes:
      efficiency: per precision, the fraction of the GPU's measured large-matmul ceiling a
        convolution's main loop reaches (SIMT kernels use the ``fp32`` value).
      latency_cycles: memory latency one main-loop step waits for, hidden over ``stages``.
      l2_bandwidth_factor: bandwidth multiplier over DRAM when a kernel's bytes fit in L2.
      extra_kernel_us: time each additional kernel of one layer's operation adds when the
        operation is timed alone (transposes, split-K reduction, transforms).
      cta_overhead_cycles: fixed cost per CTA with work (prologue/epilogue).
      graph_kernel_us: GPU-side cost of one more kernel in a CUDA-graph replay (the gap between
        dependent kernels: launch processing and the grid's ramp), fitted on whole-network
        CUDA-graph latencies (``h100_e2e.csv``).
      provenance: where the values come from.
    """

    efficiency: Mapping[str, float] = dataclasses.field(
        default_factory=lambda: MappingProxyType({"fp32": 0.6, "tf32": 0.8, "fp16": 0.8}))
    latency_cycles: float = 650.0
    l2_bandwidth_factor: float = 1.2
    extra_kernel_us: float = 7.0
    cta_overhead_cycles: float = 0.0
    graph_kernel_us: float = 2.0
    provenance: str = "uncalibrated defaults"

    def eff(self, precision: str) -> float:
        """Efficiency for ``precision``."""
        return float(self.efficiency[canonical_precision(precision)])

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["efficiency"] = dict(self.efficiency)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelParams:
        """Inverse of :meth:`as_dict` (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "efficiency" in kw:
            kw["efficiency"] = MappingProxyType({k: float(v) for k, v in kw["efficiency"].items()})
        return cls(**kw)


def load_params(path: str | Path | None = None) -> ModelParams:
    """The calibrated parameters (default: the committed ``params_h100.json``).

    Falls back to :class:`ModelParams` defaults when the default file does not exist.
    """
    p = Path(path) if path is not None else PARAMS_PATH
    if not p.is_file():
        if path is not None:
            raise TimingConfigError(f"timing parameters file not found: {p}")
        return ModelParams()
    try:
        data = json.loads(p.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TimingConfigError(f"timing parameters file {p} is not valid JSON: {e}") from e
    return ModelParams.from_dict(data.get("params", data))


@dataclasses.dataclass(frozen=True)
class Physics:
    """One assumed physical parameter: its default, plausible range and source."""

    field: str
    default: float | str
    low: float | str
    high: float | str
    unit: str
    source: str


#: SE-CNN's and the launch models' assumed parameters (the sensitivity table's rows). "low" and
#: "high" are the optimistic and pessimistic ends for SE-CNN where that is defined.
PHYSICS: Mapping[str, Physics] = MappingProxyType({p.field: p for p in (
    Physics("barrier_us", 1.5, 0.7, 4.0, "us",
            "grid-wide barrier of a persistent (cooperative) kernel: microsecond order, growing "
            "with the number of CTAs (L. Zhang et al., 'A Study of Single and Multi-device "
            "Synchronization Methods in Nvidia GPUs', IPDPS 2020, grid.sync on V100/P100); "
            "not measured on H100 here"),
    Physics("hw_dependency_us", 0.67, 0.33, 1.5, "us",
            "secnn_hw's hardware sequencer: layer l+1's correction starts after every SM has "
            "signalled layer l done — at least one atomic to L2 and one read back (2 x the "
            "calibrated memory latency of 663 cycles = 0.67 us at 1980 MHz); low end: one "
            "latency; high end: a software grid barrier"),
    Physics("compaction_bytes_per_miss", 8.0, 4.0, 16.0, "B",
            "software stream compaction writes each mispredicted input's index and delta "
            "(4 + 4 B at fp32) and the amendment reads them back; single-pass decoupled "
            "look-back scan (Merrill & Garland, NVIDIA TR 2016) adds one scan latency per layer"),
    Physics("compare_ops_per_neuron", 2.0, 1.0, 4.0, "ops",
            "secnn_sw: SIMT instructions per compared neuron, counted from the PTX ISA "
            "(NVIDIA PTX ISA manual: sub.f32 then setp.gt.f32 on the absolute difference, 2; "
            "low end: one fused compare, setp on the raw values; high end: with the predicate "
            "to mask conversion and a bit pack); loads counted as memory traffic"),
    Physics("hw_compaction", "software", "hardware", "software", "",
            "whether the SM extension compacts mispredicted inputs in hardware (the SE-CNN "
            "design's claim, optimistic end) or a software pass does (pessimistic end, costed "
            "as a single-pass decoupled look-back scan: Merrill & Garland, NVIDIA TR 2016)"),
)})


@dataclasses.dataclass(frozen=True)
class SchemeConfig:
    """Documented knobs of the schemes (defaults are the reference configuration).

    Attributes:
      layout: ``"NHWC"`` (JAX/Flax models) or ``"NCHW"`` (PyTorch; adds cuDNN's tensor-core
        transposes around convs that are not 1x1 stride 1).
      launch_us: host issue cost of one kernel under the ``eager`` launch model and of the one
        launch per frame of the others; ``None`` uses the GPU's measured back-to-back rate.
      graph_kernel_us: GPU-side cost per kernel under ``graph`` (and the device-side part of
        ``eager``); ``None`` uses the fitted :attr:`ModelParams.graph_kernel_us`.
      barrier_us: grid-wide barrier between the phases of a ``persistent`` kernel.
      split_k: split-K factors GEMMs may use (SIMT and tensor-core, as cuBLAS/cuDNN do).
      gemv: offer a GEMV kernel for GEMMs with at most :data:`~.kernels.GEMV_MAX_ROWS` rows.
      winograd_m: Winograd output tile ``m`` of F(m x m, 3 x 3).
      secnn_parallel: ``"auto"`` (cheaper of dense and zero-skipping per layer), ``"sparse"``
        or ``"dense"`` kernels for the SE-CNN parallel phase.
      compare_ops_per_neuron: SIMT instructions per compared neuron in ``secnn_sw``.
      comparators_per_sm: ``secnn_hw``'s comparators per SM (``None``: one per FP32 lane).
      hw_compaction: how ``secnn_hw`` compacts mispredicted inputs (:data:`COMPACTIONS`).
      sw_compaction: how every SIMT sparse kernel on a stock GPU balances its lanes: the
        amendment of ``secnn_sw``, ``zero_skip``'s kernel and the peers' sparse convolutions
        (one rule for all; ``auto``: compact where the costed pass pays off).
      hw_dependency_us: ``secnn_hw``'s per-layer dependency latency in its serial chain.
      compaction_bytes_per_miss: bytes a software compaction writes and the amendment reads
        per mispredicted input.
      buffer_placement: where SE-CNN's prediction buffers live: ``"cache"`` (ordinary memory:
        L2 when a layer's traffic fits, else DRAM), ``"off_chip"`` (always DRAM) or
        ``"on_chip"`` (dedicated SRAM in the SMs: no memory time, SRAM energy; its area is
        :func:`secnn_jax.timing.energy.secnn_area`'s).
      peer_extension: whether the change-based peers (``deltacnn``, ``cbinfer``) run on the
        GPU with SE-CNN's SM extension, taking each of its capabilities where it helps them
        (set by :func:`secnn_jax.timing.schemes.extended_peer_config`; what they take:
        :mod:`secnn_jax.timing.schemes`). No other scheme reads it.
    """

    layout: str = "NHWC"
    launch_us: float | None = None
    graph_kernel_us: float | None = None
    barrier_us: float = 1.5
    split_k: tuple[int, ...] = (1, 2, 4, 8, 16)
    gemv: bool = True
    winograd_m: int = 4
    secnn_parallel: str = "auto"
    compare_ops_per_neuron: float = 2.0
    comparators_per_sm: int | None = None
    hw_compaction: str = "software"
    sw_compaction: str = "auto"
    hw_dependency_us: float = 0.67
    compaction_bytes_per_miss: float = 8.0
    buffer_placement: str = "cache"
    peer_extension: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.peer_extension, bool):
            raise TimingConfigError(f"SchemeConfig.peer_extension={self.peer_extension!r}: "
                                    "must be True or False")
        if self.buffer_placement not in PLACEMENTS:
            raise TimingConfigError(f"SchemeConfig.buffer_placement={self.buffer_placement!r}: "
                                    f"must be one of {PLACEMENTS}")
        for f in ("hw_compaction", "sw_compaction"):
            if getattr(self, f) not in COMPACTIONS:
                raise TimingConfigError(f"SchemeConfig.{f}={getattr(self, f)!r}: must be one "
                                        f"of {COMPACTIONS}")
        if self.layout.upper() not in ("NHWC", "NCHW"):
            raise TimingConfigError(f"SchemeConfig.layout={self.layout!r}: NHWC or NCHW")
        if self.secnn_parallel not in ("auto", "sparse", "dense"):
            raise TimingConfigError(f"SchemeConfig.secnn_parallel={self.secnn_parallel!r}: "
                                    "auto, sparse or dense")
        for f in ("barrier_us", "hw_dependency_us", "compaction_bytes_per_miss",
                  "compare_ops_per_neuron"):
            v = float(getattr(self, f))
            if not v >= 0.0 or v == float("inf"):
                raise TimingConfigError(f"SchemeConfig.{f}={v!r}: must be finite and >= 0")
        for f in ("launch_us", "graph_kernel_us"):
            v = getattr(self, f)
            if v is not None and (not float(v) >= 0.0 or float(v) == float("inf")):
                raise TimingConfigError(f"SchemeConfig.{f}={v!r}: must be finite and >= 0")

    def launch(self, gpu: GPU) -> float:
        """Host issue cost of one kernel (microseconds)."""
        return gpu.launch_us if self.launch_us is None else float(self.launch_us)

    def graph_gap(self, params: ModelParams) -> float:
        """GPU-side cost per kernel of a graph replay (microseconds)."""
        return params.graph_kernel_us if self.graph_kernel_us is None \
            else float(self.graph_kernel_us)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields."""
        d = dataclasses.asdict(self)
        d["split_k"] = list(self.split_k)
        return d


#: The reference configuration (default argument of the cost functions).
DEFAULT_CONFIG = SchemeConfig()
