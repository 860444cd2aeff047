"""The timing model's vocabulary, defined once: schemes, launch models, fusion policies, phases.

Config validation, the replayer, the cell engine, figures and the report import these names
from here (never spell them again).
"""

from __future__ import annotations

#: All execution schemes, in report order.
SCHEMES: tuple[str, ...] = ("dense", "winograd", "fft", "zero_skip", "secnn_sw", "secnn_hw",
                            "deltacnn", "cbinfer")
#: Schemes that run layer after layer without SE-CNN (the baselines of the speedups).
BASELINES: tuple[str, ...] = ("dense", "winograd", "fft", "zero_skip")
#: Baselines derived per frame from the replayed ones (the speedup study's columns):
#: ``fast_conv`` — the faster of ``winograd`` and ``fft``; ``strongest`` — the fastest of
#: ``dense``, ``fast_conv`` and ``zero_skip``.
DERIVED_BASELINES: tuple[str, ...] = ("fast_conv", "strongest")
#: SE-CNN schemes.
SECNN: tuple[str, ...] = ("secnn_sw", "secnn_hw")
#: Change-based peers (DeltaCNN, CBinfer): replayed from the ``accumulated`` predictor's events.
PEERS: tuple[str, ...] = ("deltacnn", "cbinfer")

#: Baselines whose cost does not depend on the events (one cost per layer for every frame).
FRAME_INDEPENDENT: tuple[str, ...] = ("dense", "winograd", "fft")

#: How kernels are issued (an axis of every scheme; one per replay call):
#: ``eager`` — the host issues every kernel, one every ``eager_launch_us`` (PyTorch eager);
#: ``graph`` — a CUDA graph replays the kernels, each paying ``graph_kernel_us`` on the GPU;
#: ``persistent`` — one launch per frame; kernels become phases of one persistent kernel
#: separated by grid-wide barriers (``barrier_us``), at the persistent kernel's fixed occupancy.
LAUNCH_MODELS: tuple[str, ...] = ("eager", "graph", "persistent")
#: The launch model ``replay`` uses unless told otherwise.
DEFAULT_LAUNCH = "graph"

#: Which non-linear ops run as their own kernels (shared by every scheme of one comparison):
#: ``none`` — one kernel per op group, as eager PyTorch; ``epilogue`` — BatchNorm, activation
#: and residual add fused into the producing linear layer's epilogue (cuDNN/XLA fusions).
FUSIONS: tuple[str, ...] = ("none", "epilogue")
DEFAULT_FUSION = "none"

#: How a SIMT sparse kernel (SE-CNN's amendment, zero skipping, the peers) finds its work
#: items: ``none`` (each lane scans its own receptive field; a CTA costs its busiest lane),
#: ``software`` (a stream-compaction pass per layer, costed, then balanced work queues),
#: ``hardware`` (compaction provided by SE-CNN's SM extension for free) or ``auto`` (per layer
#: and frame the cheaper of ``none`` and ``software``).
COMPACTIONS: tuple[str, ...] = ("none", "software", "hardware", "auto")

#: Phases a :class:`~secnn_jax.timing.replayer.SchemeResult` reports (a scheme has a subset):
#: layer-after-layer schemes: ``compute`` (linear kernels), ``ops`` (non-linear kernels),
#: ``launch`` (issue waits, graph gaps and barriers on the critical path); SE-CNN adds
#: ``parallel`` (parallel-phase makespan), ``serial`` (sum of corrections), ``compare``,
#: ``compaction`` and ``amend`` (parts of the corrections).
PHASES: tuple[str, ...] = ("compute", "ops", "launch", "parallel", "serial", "compare",
                           "compaction", "amend")
