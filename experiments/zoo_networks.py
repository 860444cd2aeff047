"""Zoo networks as the timing model sees them: linear layers and op groups at a given input.

Shapes only (abstract variables, no weights, no compute): the whole-network validation and
calibration build torchvision-equivalent VGG-16 and ResNet-50 from the zoo this way (dense time
does not depend on the weights).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from secnn_jax.geometry import LayerGeom
from secnn_jax.timing.e2e import Network
from secnn_jax.timing.opkernels import OpGeom

__all__ = ["network", "zoo_names"]


def zoo_names() -> tuple[str, ...]:
    """Names of the zoo's models."""
    from models import registry  # noqa: PLC0415  (the zoo is only needed here)

    return tuple(registry.available())


@functools.lru_cache(maxsize=32)
def network(name: str, batch: int, size: int) -> Network:
    """``name``'s linear layers and op groups for an NHWC input ``[batch, size, size, 3]``."""
    from models import registry  # noqa: PLC0415
    from secnn_jax import find_layers, netops  # noqa: PLC0415

    module = registry.build(name)
    variables = registry.variable_shapes(name)
    x = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
    layers = find_layers(module.apply, variables, x)
    ops = netops.find_ops(module.apply, variables, x, layers)
    return Network(tuple(LayerGeom.from_layer(lyr) for lyr in layers),
                   tuple(OpGeom.from_op(o) for o in ops))
