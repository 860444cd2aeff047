"""Print a zoo model's linear-layer table (from ``secnn_jax.find_layers``), MACs and parameters.

Usage (from the repository root)::

    python -m models.info --model=resnet50
    python -m models.info --model=all              # all fourteen, one summary line each + tables
    python -m models.info --model=all --summary    # summary lines only
    python -m models.info --model=vgg16 --size=64 --json_out=/tmp/vgg16.json

No weights are needed: layer geometry comes from tracing the model with abstract variables.
A bad input (an unknown model name, a size the model cannot take) is printed as one line and
exits with status 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags
from flax import traverse_util

from models import registry
from models.conversion import abstract_for
from secnn_jax import fileio

__all__ = ["LayerRow", "ModelInfo", "model_info", "format_table", "format_summary"]

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "all", "A model name, or 'all' for every zoo model.")
flags.DEFINE_integer("size", None, "Square input size (default: the model's native size).")
flags.DEFINE_integer("batch", 1, "Batch size the MACs are counted for.")
flags.DEFINE_bool("summary", False, "Only the one-line summary per model.")
flags.DEFINE_string("json_out", None, "Also write the information as JSON here.")


@dataclasses.dataclass(frozen=True)
class LayerRow:
    """One linear layer as ``models.info`` reports it."""

    index: int
    name: str
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...]
    strides: tuple[int, ...]
    groups: int
    macs: int
    params: int


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Totals and the layer table of one model at one input size."""

    name: str
    description: str
    input_shape: tuple[int, int, int, int]
    output: str
    layers: tuple[LayerRow, ...]
    total_macs: int
    total_params: int
    linear_params: int
    batch_stats: int

    @property
    def conv_layers(self) -> int:
        """Number of convolution layers."""
        return sum(row.kind == "conv" for row in self.layers)

    @property
    def dense_layers(self) -> int:
        """Number of dense layers."""
        return sum(row.kind == "dense" for row in self.layers)


def _size(tree: Any) -> int:
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(tree)))


def model_info(name: str, size: int | None = None, batch: int = 1) -> ModelInfo:
    """Trace ``name`` (abstract variables, no weights) and collect its linear layers."""
    import secnn_jax  # noqa: PLC0415  (lazily: models stays usable without the core)

    spec = registry.get_spec(name)
    size = size or spec.input_size
    spec.check_input_size(size)
    variables = abstract_for(spec, full=False)
    module = spec.build()
    x = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.float32)
    found = secnn_jax.find_layers(module.apply, variables, x)
    params = traverse_util.flatten_dict(variables["params"], sep="/")
    rows = []
    for layer in found:
        module_path = layer.name.split("@")[0]  # a reused module appears as "name@1"
        count = sum(int(np.prod(leaf.shape)) for path, leaf in params.items()
                    if path.rsplit("/", 1)[0] == module_path)
        rows.append(LayerRow(
            index=layer.index, name=layer.name, kind=layer.kind,
            in_shape=tuple(layer.in_shape), out_shape=tuple(layer.out_shape),
            kernel_shape=tuple(layer.kernel_shape), strides=tuple(layer.strides),
            groups=int(layer.groups), macs=int(layer.macs), params=count))
    return ModelInfo(
        name=name, description=spec.description, input_shape=(batch, size, size, 3),
        output=spec.output, layers=tuple(rows), total_macs=sum(r.macs for r in rows),
        total_params=_size(variables["params"]), linear_params=sum(r.params for r in rows),
        batch_stats=_size(variables.get("batch_stats", {})))


def format_summary(info: ModelInfo) -> str:
    """One line: name, input, layer counts, GMACs, parameters."""
    return (f"{info.name:<19} {'x'.join(map(str, info.input_shape[1:3])):>7}  "
            f"{info.conv_layers:>3} conv {info.dense_layers:>2} dense  "
            f"{info.total_macs / 1e9:8.3f} GMACs  {info.total_params / 1e6:8.3f} M params")


def format_table(info: ModelInfo) -> str:
    """The layer table followed by the totals."""
    header = (f"{'#':>3}  {'layer':<34} {'kind':<5} {'input':<18} {'output':<18} "
              f"{'kernel':<16} {'stride':<6} {'groups':>6} {'MACs':>14} {'params':>11}")
    lines = [f"{info.name}: {info.description}, input {info.input_shape}, output {info.output}",
             header,
             "-" * len(header)]
    for row in info.layers:
        stride = "x".join(map(str, row.strides)) or "-"
        lines.append(
            f"{row.index:>3}  {row.name:<34} {row.kind:<5} {_shape(row.in_shape):<18} "
            f"{_shape(row.out_shape):<18} {_shape(row.kernel_shape):<16} {stride:<6} "
            f"{row.groups:>6} {row.macs:>14,} {row.params:>11,}")
    lines.append("-" * len(header))
    lines.append(
        f"total: {len(info.layers)} linear layers ({info.conv_layers} conv, {info.dense_layers} "
        f"dense), {info.total_macs:,} MACs, {info.total_params:,} parameters "
        f"({info.linear_params:,} in linear layers), {info.batch_stats:,} BatchNorm statistics")
    return "\n".join(lines)


def _shape(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape))


def main(argv: list[str]) -> None:
    """Print the table(s) for ``--model``."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    names = registry.available() if FLAGS.model == "all" else (FLAGS.model,)
    for name in names:
        registry.get_spec(name)  # fail early on a bad name, listing the valid ones
    infos = []
    for name in names:
        info = model_info(name, FLAGS.size, FLAGS.batch)
        infos.append(info)
        text = format_summary(info) if FLAGS.summary else format_table(info) + "\n"
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    if len(infos) > 1 and not FLAGS.summary:
        sys.stdout.write("\n".join(format_summary(info) for info in infos) + "\n")
    if FLAGS.json_out:
        fileio.write_json(FLAGS.json_out, [dataclasses.asdict(i) for i in infos], indent=1)


if __name__ == "__main__":
    from models._cli import run as _run

    _run(main)
