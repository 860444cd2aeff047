"""GPU configurations as data, each number with its source.

Every :class:`GPU` holds the few hardware figures the cost models in
:mod:`secnn_jax.timing.schemes` need. ``GPU.sources`` names, for every field, where the value
comes from: a vendor datasheet or architecture whitepaper, the CUDA C++ Programming Guide's
per-compute-capability table, or the real H100 measurements in ``shared/measurements/``. Where a
value is an assumption (no published or measured figure), the source says so.

Conventions:
  * ``clock_mhz`` is the SM clock the cycle counts are converted with (the maximum boost clock).
  * rates are *per SM per clock*, counted in fused multiply-adds (1 FMA = 2 FLOP), for dense
    (non-sparse) math. ``tensor_fma_per_clk`` maps a precision to the tensor-core rate; a
    precision absent from it runs on the SIMT lanes.
  * ``ceiling_frac`` is the measured large-matmul throughput as a fraction of the peak that these
    figures imply (the "achievable ceiling"). Only the H100 was measured; the other GPUs reuse
    the H100 fractions, which is stated in their sources.
  * ``launch_us`` is the cost of one more kernel in a back-to-back sequence (host issue rate);
    ``event_overhead_us`` the time a minimal kernel shows when timed alone between two CUDA
    events (what single-kernel measurements such as ``h100_cudnn_conv.csv`` include).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from secnn_jax.timing.errors import ReplayError

#: Precisions the timing model knows; ``fp32`` is strict FP32 (TF32 off).
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "fp16")

#: Alternative spellings accepted for a precision (the measurement CSV's ``mode`` column).
PRECISION_ALIASES: Mapping[str, str] = MappingProxyType(
    {"fp32": "fp32", "fp32_strict": "fp32", "float32": "fp32", "tf32": "tf32",
     "fp16": "fp16", "float16": "fp16", "half": "fp16", "bf16": "fp16", "bfloat16": "fp16"}
)

#: Bytes per element of the tensors a kernel reads and writes, per precision.
ELEMENT_BYTES: Mapping[str, int] = MappingProxyType({"fp32": 4, "tf32": 4, "fp16": 2})



def canonical_precision(precision: str) -> str:
    """``precision`` in canonical form (``fp32``, ``tf32`` or ``fp16``).

    Raises:
      ReplayError: (a ``SecnnError`` and ``ValueError``) for an unknown precision name.
    """
    key = PRECISION_ALIASES.get(str(precision).lower())
    if key is None:
        raise ReplayError(
            f"unknown precision {precision!r}; known: {sorted(PRECISION_ALIASES)}"
        )
    return key


@dataclasses.dataclass(frozen=True)
class GPU:
    """One GPU configuration (see the module docstring for the conventions).

    Attributes:
      key: short lower-case identifier (``"h100"``).
      name: marketing name.
      arch: architecture and chip.
      compute_capability: CUDA compute capability.
      sms: streaming multiprocessors.
      clock_mhz: SM clock used to convert cycles to microseconds.
      fp32_lanes: FP32 FMA lanes per SM (= FP32 FMA per SM per clock).
      fp16_simt_fma_per_clk: FP16 FMA per SM per clock on the SIMT lanes (packed half2).
      tensor_fma_per_clk: dense tensor-core FMA per SM per clock, by precision.
      schedulers: warp schedulers (SM sub-partitions) per SM.
      max_threads: resident threads per SM.
      max_warps: resident warps per SM.
      max_ctas: resident CTAs (thread blocks) per SM.
      regs: 32-bit registers per SM.
      max_regs_per_thread: register limit of one thread.
      smem_bytes: shared memory per SM usable by CTAs.
      max_smem_per_cta: shared memory one CTA may allocate.
      l2_bytes: L2 cache size.
      dram_gbps: DRAM bandwidth, GB/s (read + write, 1e9 bytes).
      launch_us: cost of one more kernel launched back to back.
      event_overhead_us: minimal kernel timed alone with CUDA events.
      ceiling_frac: achievable fraction of the peak dense math rate, by precision.
      sources: where every field's value comes from.
    """

    key: str
    name: str
    arch: str
    compute_capability: str
    sms: int
    clock_mhz: float
    fp32_lanes: int
    fp16_simt_fma_per_clk: int
    tensor_fma_per_clk: Mapping[str, int]
    schedulers: int
    max_threads: int
    max_warps: int
    max_ctas: int
    regs: int
    max_regs_per_thread: int
    smem_bytes: int
    max_smem_per_cta: int
    l2_bytes: int
    dram_gbps: float
    launch_us: float
    event_overhead_us: float
    ceiling_frac: Mapping[str, float]
    sources: Mapping[str, str] = dataclasses.field(repr=False, compare=False)

    def simt_fma_per_clk(self, precision: str) -> int:
        """SIMT (CUDA-core) FMA per SM per clock for ``precision`` (TF32 runs as FP32)."""
        return self.fp16_simt_fma_per_clk if canonical_precision(precision) == "fp16" \
            else self.fp32_lanes

    def uses_tensor_cores(self, precision: str) -> bool:
        """Whether dense GEMMs of ``precision`` run on tensor cores on this GPU."""
        return self.tensor_fma_per_clk.get(canonical_precision(precision), 0) > 0

    def dense_fma_per_clk(self, precision: str) -> int:
        """Peak dense-GEMM FMA per SM per clock: tensor cores where they apply, else SIMT."""
        p = canonical_precision(precision)
        return self.tensor_fma_per_clk.get(p, 0) or self.simt_fma_per_clk(p)

    def peak_tflops(self, precision: str) -> float:
        """Peak dense TFLOP/s the per-SM figures imply at ``clock_mhz``."""
        return 2 * self.dense_fma_per_clk(precision) * self.sms * self.clock_mhz * 1e6 / 1e12

    def us(self, cycles: float) -> float:
        """Microseconds of ``cycles`` SM clocks."""
        return float(cycles) / self.clock_mhz

    def cycles(self, us: float) -> float:
        """SM clocks in ``us`` microseconds."""
        return float(us) * self.clock_mhz

    @property
    def dram_bytes_per_clk(self) -> float:
        """DRAM bytes per SM clock (whole GPU)."""
        return self.dram_gbps * 1e9 / (self.clock_mhz * 1e6)

    def replace(self, **changes: object) -> GPU:
        """A copy with some fields changed (e.g. ``sms`` for what-if studies)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, object]:
        """All fields as plain JSON-serialisable values (sources included)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["tensor_fma_per_clk"] = dict(self.tensor_fma_per_clk)
        d["ceiling_frac"] = dict(self.ceiling_frac)
        d["sources"] = dict(self.sources)
        return d


# --- sources ------------------------------------------------------------------------------
_CUDA_GUIDE = ("CUDA C++ Programming Guide, 'Technical Specifications per Compute Capability' "
               "table, compute capability {cc}")
_PASCAL_WP = "NVIDIA GP102/Pascal: GeForce GTX 1080 Ti and TITAN X (Pascal) product pages"
_VOLTA_WP = "NVIDIA Tesla V100 GPU Architecture whitepaper (2017), Table 1 and SM section"
_AMPERE_WP = "NVIDIA A100 Tensor Core GPU Architecture whitepaper (2020), Tables 1 and 3"
_HOPPER_WP = "NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022), Tables 2-3"
_H100_MEAS = "shared/measurements/h100_ceilings.json (measured 2026-11-27, H100 80GB HBM3)"
_ASSUMED_LAUNCH = ("assumption: no measurement for this GPU; the H100's measured value from "
                   + _H100_MEAS + " is reused")
_ASSUMED_CEIL = ("assumption: no measurement for this GPU; the H100's measured matmul "
                 "ceiling fractions from " + _H100_MEAS + " are reused")


#: The measured H100 figures, copied from ``shared/measurements/h100_ceilings.json`` so that the
#: configuration does not change with the working directory (a test checks the copy against the
#: file where it exists).
H100_MEASURED: Mapping[str, float] = MappingProxyType({
    "sms": 132,
    "l2": 52428800,
    "max_sm_clock_mhz": 1980.0,
    "copy_bandwidth_TBps_read_plus_write": 2.967,
    "matmul_8192_fp32_no_tf32_TFLOPs": 51.5,
    "matmul_8192_tf32_TFLOPs": 396.0,
    "matmul_8192_bf16_TFLOPs": 761.4,
    "tiny_kernel_cuda_event_us": 21.98,
    "back_to_back_launch_us_per_kernel": 9.87,
})

_M = H100_MEASURED


def _h100_ceilings() -> dict[str, float]:
    # Measured 8192^3 matmul throughput over the peak implied by 132 SMs at 1980 MHz.
    peak = {"fp32": 128, "tf32": 1024, "fp16": 2048}
    meas = {"fp32": _M["matmul_8192_fp32_no_tf32_TFLOPs"], "tf32": _M["matmul_8192_tf32_TFLOPs"],
            "fp16": _M["matmul_8192_bf16_TFLOPs"]}
    sms, clk = _M["sms"], _M["max_sm_clock_mhz"]
    return {p: round(meas[p] * 1e12 / (2 * peak[p] * sms * clk * 1e6), 4) for p in PRECISIONS}


_H100_CEIL = _h100_ceilings()


def _common(cc: str, wp: str, **extra: str) -> dict[str, str]:
    guide = _CUDA_GUIDE.format(cc=cc)
    base = {
        "compute_capability": guide,
        "schedulers": wp,
        "max_threads": guide,
        "max_warps": guide,
        "max_ctas": guide,
        "regs": guide,
        "max_regs_per_thread": guide,
        "smem_bytes": guide,
        "max_smem_per_cta": guide,
        "launch_us": _ASSUMED_LAUNCH,
        "event_overhead_us": _ASSUMED_LAUNCH.replace("value", "tiny-kernel value"),
        "ceiling_frac": _ASSUMED_CEIL,
    }
    base.update(extra)
    return base


def _gpu(**kw: object) -> GPU:
    kw["tensor_fma_per_clk"] = MappingProxyType(dict(kw["tensor_fma_per_clk"]))  # type: ignore[arg-type]
    kw["ceiling_frac"] = MappingProxyType(dict(kw.get("ceiling_frac", _H100_CEIL)))  # type: ignore[arg-type]
    kw["sources"] = MappingProxyType(dict(kw["sources"]))  # type: ignore[arg-type]
    return GPU(**kw)  # type: ignore[arg-type]


_PASCAL_SRC = _common(
    "6.1", _PASCAL_WP,
    sms="product page: 3584 CUDA cores / 128 per SM = 28 SMs",
    fp32_lanes="Pascal GP10x SM: 128 FP32 cores per SM (GTX 1080 whitepaper)",
    fp16_simt_fma_per_clk="CUDA Programming Guide arithmetic-instruction throughput table, "
                          "cc 6.1: FP16 at 2 results/clk/SM (1/64 of FP32)",
    tensor_fma_per_clk="Pascal has no tensor cores",
)

GTX_1080_TI = _gpu(
    key="gtx1080ti", name="GeForce GTX 1080 Ti", arch="Pascal GP102", compute_capability="6.1",
    sms=28, clock_mhz=1582.0, fp32_lanes=128, fp16_simt_fma_per_clk=2, tensor_fma_per_clk={},
    schedulers=4, max_threads=2048, max_warps=64, max_ctas=32, regs=65536,
    max_regs_per_thread=255, smem_bytes=96 * 1024, max_smem_per_cta=48 * 1024,
    l2_bytes=2816 * 1024, dram_gbps=484.0, launch_us=_M["back_to_back_launch_us_per_kernel"],
    event_overhead_us=_M["tiny_kernel_cuda_event_us"],
    sources={**_PASCAL_SRC,
             "clock_mhz": "GeForce GTX 1080 Ti product page: boost clock 1582 MHz",
             "l2_bytes": "GP102 in GTX 1080 Ti: 2816 KB L2 (11 of 12 memory partitions)",
             "dram_gbps": "product page: 11 Gbps GDDR5X x 352-bit = 484 GB/s"},
)

TITAN_X_PASCAL = _gpu(
    key="titanx", name="NVIDIA TITAN X (Pascal)", arch="Pascal GP102", compute_capability="6.1",
    sms=28, clock_mhz=1531.0, fp32_lanes=128, fp16_simt_fma_per_clk=2, tensor_fma_per_clk={},
    schedulers=4, max_threads=2048, max_warps=64, max_ctas=32, regs=65536,
    max_regs_per_thread=255, smem_bytes=96 * 1024, max_smem_per_cta=48 * 1024,
    l2_bytes=3 * 1024 * 1024, dram_gbps=480.0, launch_us=_M["back_to_back_launch_us_per_kernel"],
    event_overhead_us=_M["tiny_kernel_cuda_event_us"],
    sources={**_PASCAL_SRC,
             "clock_mhz": "TITAN X (Pascal) product page: boost clock 1531 MHz",
             "l2_bytes": "GP102 full chip: 3072 KB L2",
             "dram_gbps": "product page: 10 Gbps GDDR5X x 384-bit = 480 GB/s"},
)

_VOLTA_SRC = _common(
    "7.0", _VOLTA_WP,
    fp32_lanes=_VOLTA_WP + ": 64 FP32 cores per SM",
    fp16_simt_fma_per_clk=_VOLTA_WP + ": FP16 non-tensor at 2x FP32 (half2)",
    tensor_fma_per_clk=_VOLTA_WP + ": 8 tensor cores/SM x 64 FP16 FMA/clk = 512; no TF32",
    smem_bytes=_CUDA_GUIDE.format(cc="7.0") + ": up to 96 KB per SM",
)

TITAN_V = _gpu(
    key="titanv", name="NVIDIA TITAN V", arch="Volta GV100", compute_capability="7.0",
    sms=80, clock_mhz=1455.0, fp32_lanes=64, fp16_simt_fma_per_clk=128,
    tensor_fma_per_clk={"fp16": 512}, schedulers=4, max_threads=2048, max_warps=64, max_ctas=32,
    regs=65536, max_regs_per_thread=255, smem_bytes=96 * 1024, max_smem_per_cta=96 * 1024,
    l2_bytes=4608 * 1024, dram_gbps=652.8, launch_us=_M["back_to_back_launch_us_per_kernel"],
    event_overhead_us=_M["tiny_kernel_cuda_event_us"],
    sources={**_VOLTA_SRC,
             "sms": "TITAN V product page: 5120 CUDA cores / 64 per SM = 80 SMs",
             "clock_mhz": "TITAN V product page: boost clock 1455 MHz",
             "l2_bytes": "TITAN V: 4.5 MB L2 (3 of 4 HBM2 stacks enabled)",
             "dram_gbps": "TITAN V product page: 652.8 GB/s HBM2 (3072-bit)"},
)

V100 = _gpu(
    key="v100", name="Tesla V100 SXM2", arch="Volta GV100", compute_capability="7.0",
    sms=80, clock_mhz=1530.0, fp32_lanes=64, fp16_simt_fma_per_clk=128,
    tensor_fma_per_clk={"fp16": 512}, schedulers=4, max_threads=2048, max_warps=64, max_ctas=32,
    regs=65536, max_regs_per_thread=255, smem_bytes=96 * 1024, max_smem_per_cta=96 * 1024,
    l2_bytes=6 * 1024 * 1024, dram_gbps=900.0, launch_us=_M["back_to_back_launch_us_per_kernel"],
    event_overhead_us=_M["tiny_kernel_cuda_event_us"],
    sources={**_VOLTA_SRC,
             "sms": _VOLTA_WP + ": 80 SMs (Tesla V100)",
             "clock_mhz": _VOLTA_WP + ": GPU boost clock 1530 MHz (SXM2)",
             "l2_bytes": _VOLTA_WP + ": 6144 KB L2",
             "dram_gbps": _VOLTA_WP + ": 900 GB/s HBM2"},
)

A100 = _gpu(
    key="a100", name="A100 SXM4 80GB", arch="Ampere GA100", compute_capability="8.0",
    sms=108, clock_mhz=1410.0, fp32_lanes=64, fp16_simt_fma_per_clk=256,
    tensor_fma_per_clk={"tf32": 512, "fp16": 1024}, schedulers=4, max_threads=2048,
    max_warps=64, max_ctas=32, regs=65536, max_regs_per_thread=255, smem_bytes=164 * 1024,
    max_smem_per_cta=163 * 1024, l2_bytes=40 * 1024 * 1024, dram_gbps=2039.0,
    launch_us=_M["back_to_back_launch_us_per_kernel"],
    event_overhead_us=_M["tiny_kernel_cuda_event_us"],
    sources={**_common("8.0", _AMPERE_WP),
             "sms": _AMPERE_WP + ": 108 SMs",
             "clock_mhz": _AMPERE_WP + ": boost clock 1410 MHz",
             "fp32_lanes": _AMPERE_WP + ": 64 FP32 cores per SM",
             "fp16_simt_fma_per_clk": _AMPERE_WP + ": FP16 non-tensor 78 TFLOPS = 256 FMA/clk/SM",
             "tensor_fma_per_clk": _AMPERE_WP + ": dense TF32 156 TFLOPS, FP16 312 TFLOPS "
                                   "-> 512 and 1024 FMA/clk/SM",
             "l2_bytes": _AMPERE_WP + ": 40 MB L2",
             "dram_gbps": "A100 80GB SXM datasheet: 2039 GB/s HBM2e"},
)

_HOPPER_SRC = _common(
    "9.0", _HOPPER_WP,
    sms=_H100_MEAS + " (device.sms = 132; whitepaper: 132 SMs on H100 SXM5)",
    clock_mhz=_H100_MEAS + " (max_sm_clock_mhz = 1980)",
    fp32_lanes=_HOPPER_WP + ": 128 FP32 cores per SM",
    fp16_simt_fma_per_clk=_HOPPER_WP + ": FP16 non-tensor 133.8 TFLOPS = 256 FMA/clk/SM",
    tensor_fma_per_clk=_HOPPER_WP + ": dense TF32 494.7 / FP16 989.4 TFLOPS at 1830 MHz "
                       "-> 1024 and 2048 FMA/clk/SM",
    smem_bytes=_CUDA_GUIDE.format(cc="9.0") + ": 228 KB per SM, 227 KB per CTA",
    max_smem_per_cta=_CUDA_GUIDE.format(cc="9.0") + ": 227 KB per CTA",
    l2_bytes=_H100_MEAS + " (device.l2 = 50 MiB)",
    launch_us=_H100_MEAS + " (back_to_back_launch_us_per_kernel)",
    event_overhead_us=_H100_MEAS + " (tiny_kernel_cuda_event_us)",
    ceiling_frac=_H100_MEAS + ": matmul_8192_* TFLOP/s over the peak implied by 132 SMs x "
                 "1980 MHz x the per-SM rates (bf16 stands for fp16)",
)

H100 = _gpu(
    key="h100", name="H100 SXM5 80GB HBM3", arch="Hopper GH100", compute_capability="9.0",
    sms=int(_M["sms"]), clock_mhz=_M["max_sm_clock_mhz"], fp32_lanes=128,
    fp16_simt_fma_per_clk=256, tensor_fma_per_clk={"tf32": 1024, "fp16": 2048}, schedulers=4,
    max_threads=2048, max_warps=64, max_ctas=32, regs=65536, max_regs_per_thread=255,
    smem_bytes=228 * 1024, max_smem_per_cta=227 * 1024, l2_bytes=int(_M["l2"]),
    dram_gbps=_M["copy_bandwidth_TBps_read_plus_write"] * 1000.0,
    launch_us=_M["back_to_back_launch_us_per_kernel"],
    event_overhead_us=_M["tiny_kernel_cuda_event_us"], ceiling_frac=_H100_CEIL,
    sources={**_HOPPER_SRC,
             "dram_gbps": _H100_MEAS + " (copy_bandwidth_TBps_read_plus_write = 2.967; "
                          "datasheet 3350 GB/s)"},
)

H200 = _gpu(
    key="h200", name="H200 SXM 141GB HBM3e", arch="Hopper GH100", compute_capability="9.0",
    sms=132, clock_mhz=1980.0, fp32_lanes=128, fp16_simt_fma_per_clk=256,
    tensor_fma_per_clk={"tf32": 1024, "fp16": 2048}, schedulers=4, max_threads=2048,
    max_warps=64, max_ctas=32, regs=65536, max_regs_per_thread=255, smem_bytes=228 * 1024,
    max_smem_per_cta=227 * 1024, l2_bytes=50 * 1024 * 1024,
    # Datasheet 4800 GB/s scaled by the H100's measured copy efficiency (2967 / 3350).
    dram_gbps=round(4800.0 * _M["copy_bandwidth_TBps_read_plus_write"] * 1000.0 / 3350.0, 1),
    launch_us=_M["back_to_back_launch_us_per_kernel"],
    event_overhead_us=_M["tiny_kernel_cuda_event_us"], ceiling_frac=_H100_CEIL,
    sources={**_HOPPER_SRC,
             "sms": "NVIDIA H200 datasheet (2023): same GH100 SXM as H100, 132 SMs",
             "clock_mhz": "assumption: same GH100 SM clock as the measured H100 (1980 MHz)",
             "l2_bytes": "NVIDIA H200 datasheet: same GH100, 50 MB L2",
             "dram_gbps": "NVIDIA H200 datasheet: 4.8 TB/s HBM3e, scaled by the H100's measured "
                          "copy/datasheet ratio 2967/3350 from " + _H100_MEAS,
             "launch_us": _ASSUMED_LAUNCH,
             "event_overhead_us": _ASSUMED_LAUNCH,
             "ceiling_frac": _ASSUMED_CEIL},
)

#: All configurations by key.
GPUS: Mapping[str, GPU] = MappingProxyType(
    {g.key: g for g in (GTX_1080_TI, TITAN_X_PASCAL, TITAN_V, V100, A100, H100, H200)}
)

_ALIASES = {"1080ti": "gtx1080ti", "gtx_1080_ti": "gtx1080ti", "titan_x": "titanx",
            "titanxp": "titanx", "titan_v": "titanv", "h100_sxm": "h100", "h200_sxm": "h200"}


#: GPUs registered at run time (:func:`register_gpu`; a calibrated GPU file loaded with
#: :func:`secnn_jax.timing.load_gpu_file`), by key. Never holds a built-in key.
_REGISTERED: dict[str, GPU] = {}


def gpu_key(name: str) -> str:
    """``name`` normalised as a GPU key (lower case, ``-`` and spaces as ``_``, aliases)."""
    key = str(name).lower().replace("-", "_").replace(" ", "_")
    return _ALIASES.get(key, key)


def register_gpu(gpu: GPU) -> GPU:
    """Makes ``gpu`` known to :func:`get_gpu` under ``gpu.key`` (replacing an earlier
    registration of the same key); returns it.

    Raises:
      ValueError: ``gpu.key`` is not a normalised key or names a built-in GPU (:data:`GPUS`).
    """
    if gpu.key != gpu_key(gpu.key) or not gpu.key:
        raise ReplayError(f"GPU key {gpu.key!r} is not normalised (use {gpu_key(gpu.key)!r})")
    if gpu.key in GPUS:
        raise ReplayError(f"GPU key {gpu.key!r} is a built-in configuration; register a "
                         f"calibrated GPU under another name (e.g. {gpu.key + '_mine'!r})")
    _REGISTERED[gpu.key] = gpu
    return gpu


def unregister_gpu(key: str) -> None:
    """Forgets a GPU registered with :func:`register_gpu` (no error if it is not)."""
    _REGISTERED.pop(gpu_key(key), None)


def registered_gpus() -> Mapping[str, GPU]:
    """The GPUs registered at run time, by key (a read-only view)."""
    return MappingProxyType(_REGISTERED)


def get_gpu(gpu: str | GPU) -> GPU:
    """The configuration named ``gpu`` (a key of :data:`GPUS` or of :func:`registered_gpus`,
    case-insensitive) or ``gpu``.

    Raises:
      ReplayError: (a ``SecnnError`` and ``ValueError``) for an unknown name, listing the
        known ones.
    """
    if isinstance(gpu, GPU):
        return gpu
    key = gpu_key(gpu)
    if key in GPUS:
        return GPUS[key]
    if key in _REGISTERED:
        return _REGISTERED[key]
    raise ReplayError(f"unknown GPU {gpu!r}; known: {', '.join([*GPUS, *_REGISTERED])}")
