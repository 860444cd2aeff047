"""Layer geometry as the timing model sees it: an implicit GEMM over NHWC tensors.

:class:`LayerGeom` is a small, serialisable description of one linear layer — input and output
NHWC shapes, kernel window, strides, padding, dilation and groups — built from a
:class:`secnn_jax.layers.Layer`, from a trace manifest's layer table, or from a row of a kernel
measurement CSV. Dense layers are 1x1 convolutions over ``(N, 1, M, F)``.

GEMM view (per group ``g`` of ``groups``): ``M = N * Ho * Wo`` output positions, ``Ncol = Cout /
groups`` output channels, ``K = Cin / groups * kh * kw`` reduction length.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class LayerGeom:
    """Geometry of one linear layer in NHWC (see the module docstring).

    Attributes:
      name: layer name.
      kind: ``"conv"`` or ``"dense"``.
      n, h, w, cin: input batch, height, width, channels.
      ho, wo, cout: output height, width, channels.
      kh, kw: kernel window.
      sh, sw: strides.
      pad: ``((top, bottom), (left, right))`` zero padding.
      dh, dw: kernel dilation.
      groups: feature groups (``cin`` for depthwise convs).
    """

    name: str
    kind: str
    n: int
    h: int
    w: int
    cin: int
    ho: int
    wo: int
    cout: int
    kh: int = 1
    kw: int = 1
    sh: int = 1
    sw: int = 1
    pad: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))
    dh: int = 1
    dw: int = 1
    groups: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("conv", "dense"):
            raise ValueError(
                f"layer {self.name!r}: kind must be 'conv' or 'dense', got {self.kind!r}"
            )
        for f in ("n", "h", "w", "cin", "ho", "wo", "cout", "kh", "kw", "sh", "sw", "dh", "dw",
                  "groups"):
            if int(getattr(self, f)) < 1:
                raise ValueError(f"layer {self.name!r}: {f} must be >= 1, got {getattr(self, f)}")
        if self.cin % self.groups or self.cout % self.groups:
            raise ValueError(
                f"layer {self.name!r}: groups={self.groups} must divide cin={self.cin} and "
                f"cout={self.cout}"
            )

    # --- GEMM view --------------------------------------------------------------------------
    @property
    def cin_g(self) -> int:
        """Input channels per group."""
        return self.cin // self.groups

    @property
    def cout_g(self) -> int:
        """Output channels per group."""
        return self.cout // self.groups

    @property
    def m(self) -> int:
        """Output positions ``N * Ho * Wo`` (GEMM rows)."""
        return self.n * self.ho * self.wo

    @property
    def k(self) -> int:
        """Reduction length per output ``Cin/groups * kh * kw``."""
        return self.cin_g * self.kh * self.kw

    @property
    def is_depthwise(self) -> bool:
        """One input channel per group (and more than one group): not a GEMM."""
        return self.groups > 1 and self.cin_g == 1

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the dense layer."""
        return self.m * self.cout * self.k

    @property
    def n_inputs(self) -> int:
        """Input neurons (whole batch)."""
        return self.n * self.h * self.w * self.cin

    @property
    def n_outputs(self) -> int:
        """Output neurons (whole batch)."""
        return self.m * self.cout

    @property
    def weights(self) -> int:
        """Kernel elements."""
        return self.cout * self.k

    @property
    def in_nhwc(self) -> tuple[int, int, int, int]:
        """Input shape ``(N, H, W, C)``."""
        return (self.n, self.h, self.w, self.cin)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable fields."""
        d = dataclasses.asdict(self)
        d["pad"] = [list(p) for p in self.pad]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LayerGeom:
        """Inverse of :meth:`as_dict` (unknown keys are ignored)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in fields}
        if "pad" in kw:
            kw["pad"] = tuple(tuple(int(v) for v in p) for p in kw["pad"])
        for k in fields - {"name", "kind", "pad"}:
            if k in kw:
                kw[k] = int(kw[k])
        return cls(**kw)

    @classmethod
    def from_layer(cls, layer: Any) -> LayerGeom:
        """Geometry of a :class:`secnn_jax.layers.Layer` (or anything with its attributes).

        Uses ``layer.in_nhwc``/``out_nhwc`` where present (shapes as NHWC), else treats
        4-D shapes as NHWC and 2-D ``(N, F)`` as dense. The kernel window comes from the
        primitive's ``rhs_spec`` when known, else ``kernel_shape`` is read as HWIO.
        """
        if isinstance(layer, LayerGeom):
            return layer
        if isinstance(layer, Mapping):
            if "geom" in layer:
                return cls.from_dict(layer["geom"])
            return cls.from_dict(layer)
        name, kind = str(layer.name), str(layer.kind)
        in_s = tuple(getattr(layer, "in_nhwc", None) or _default_nhwc(layer.in_shape, kind))
        out_s = tuple(getattr(layer, "out_nhwc", None) or _default_nhwc(layer.out_shape, kind))
        n, h, w, cin = (int(v) for v in in_s)
        _, ho, wo, cout = (int(v) for v in out_s)
        if kind == "dense":
            return cls(name=name, kind=kind, n=n, h=h, w=w, cin=cin, ho=ho, wo=wo, cout=cout)
        window = _kernel_window(layer)
        strides = tuple(int(s) for s in layer.strides) or (1,)
        dil = tuple(int(d) for d in getattr(layer, "dilation", ()) or ()) or (1,) * len(window)
        pad = _pairs(getattr(layer, "padding", ()), len(window))
        if len(window) == 1:  # 1-D conv: NHWC has H == 1
            window, strides, dil, pad = (1, *window), (1, *strides), (1, *dil), ((0, 0), *pad)
        return cls(name=name, kind=kind, n=n, h=h, w=w, cin=cin, ho=ho, wo=wo, cout=cout,
                   kh=window[0], kw=window[1], sh=strides[0], sw=strides[1],
                   pad=(tuple(pad[0]), tuple(pad[1])), dh=dil[0], dw=dil[1],
                   groups=int(getattr(layer, "groups", 1) or 1))

    @classmethod
    def conv(cls, name: str, *, n: int, h: int, w: int | None = None, cin: int, cout: int,
             k: int = 1, stride: int = 1, pad: int | None = None, groups: int = 1,
             dilation: int = 1) -> LayerGeom:
        """A square convolution (PyTorch-style symmetric padding; default 'same' for odd k)."""
        w = h if w is None else w
        p = (dilation * (k - 1)) // 2 if pad is None else pad
        ho = (h + 2 * p - dilation * (k - 1) - 1) // stride + 1
        wo = (w + 2 * p - dilation * (k - 1) - 1) // stride + 1
        return cls(name=name, kind="conv", n=n, h=h, w=w, cin=cin, ho=ho, wo=wo, cout=cout,
                   kh=k, kw=k, sh=stride, sw=stride, pad=((p, p), (p, p)), dh=dilation,
                   dw=dilation, groups=groups)

    @classmethod
    def dense(cls, name: str, *, n: int, fin: int, fout: int, rows: int = 1) -> LayerGeom:
        """A dense layer ``(n, rows, fin) -> (n, rows, fout)``."""
        return cls(name=name, kind="dense", n=n, h=1, w=rows, cin=fin, ho=1, wo=rows, cout=fout)


def _default_nhwc(shape: tuple[int, ...], kind: str) -> tuple[int, int, int, int]:
    shape = tuple(int(s) for s in shape)
    if kind == "dense":
        n, f = shape[0], shape[-1]
        return (n, 1, math.prod(shape) // (n * f), f)
    if len(shape) == 4:
        return shape  # type: ignore[return-value]
    if len(shape) == 3:
        return (shape[0], 1, shape[1], shape[2])
    raise ValueError(f"cannot read shape {shape} as NHWC")


def _kernel_window(layer: Any) -> tuple[int, ...]:
    ks = tuple(int(v) for v in layer.kernel_shape)
    pp = getattr(layer, "primitive_params", None)
    dn = pp.get("dimension_numbers") if isinstance(pp, Mapping) else None
    rhs_spec = getattr(dn, "rhs_spec", None)
    if rhs_spec is not None:
        return tuple(ks[d] for d in rhs_spec[2:])
    return ks[:-2]  # HWIO


def _pairs(padding: Any, nd: int) -> tuple[tuple[int, int], ...]:
    if isinstance(padding, str) or not padding:
        if isinstance(padding, str) and padding.upper() not in ("VALID", ""):
            raise ValueError(f"padding {padding!r} must be explicit (lo, hi) pairs")
        return ((0, 0),) * nd
    return tuple((int(p[0]), int(p[1])) for p in padding)


def events_to_nhwc(layer: Any, geom: LayerGeom, ev: Any) -> np.ndarray:
    """Event codes of one layer as contiguous uint8 ``[T, *geom.in_nhwc]``.

    ``layer`` is a ``secnn_jax.Layer`` (its own layout is transposed with ``Layer.to_nhwc``), a
    :class:`LayerGeom` or a layer record (events already NHWC). A single frame (``in_nhwc``
    shaped) gets a leading frame axis. Raises ``ValueError`` naming the layer otherwise.
    """
    ev = np.asarray(ev)
    if ev.dtype != np.uint8:
        raise ValueError(f"layer {geom.name!r}: event codes must be uint8, got {ev.dtype}")
    if hasattr(layer, "to_nhwc") and not isinstance(layer, LayerGeom | Mapping):
        ev = np.asarray(layer.to_nhwc(ev))
    want = geom.in_nhwc
    if ev.ndim == 4 and tuple(ev.shape) == want:
        ev = ev[None]
    # Only singleton axes may differ (a dense layer's [T, N, F] is [T, N, 1, 1, F]): events of
    # another geometry with the same element count must not be silently reshaped.
    if (ev.ndim >= 2 and ev.shape[0] > 0
            and [d for d in ev.shape[1:] if d != 1] == [d for d in want if d != 1]):
        return np.ascontiguousarray(ev.reshape((ev.shape[0], *want)))
    raise ValueError(
        f"layer {geom.name!r}: events of shape {tuple(ev.shape)} do not match [T, *{want}]"
    )
