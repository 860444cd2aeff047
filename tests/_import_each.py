"""Imports each named module in a process of its own, with none of the project's modules loaded.

Run as ``python tests/_import_each.py MODULE...``: the parent loads only third-party libraries
(so that each child does not pay for JAX again), then forks one child per module; a child
checks that no module of the project is loaded yet, imports its module and exits 0, or prints
the traceback and exits 1. The parent prints ``FAILED <module>`` lines and exits with the number
of failures. Used by ``tests/test_imports.py``.
"""

from __future__ import annotations

import os
import sys
import traceback

PROJECT = ("secnn_jax", "models", "experiments")
# Third-party libraries only: importing them here is what makes the children cheap.
PRELOAD = ("numpy", "jax", "jax.numpy", "flax.linen", "absl.flags", "absl.logging",
           "ml_collections", "matplotlib", "tqdm", "orbax.checkpoint")


def _child(module: str) -> int:
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in PROJECT)
    if loaded:
        print(f"{module}: project modules already loaded: {loaded}", flush=True)
        return 1
    try:
        __import__(module)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def main(modules: list[str]) -> int:
    # A script's own folder (tests/) is sys.path[0]; the project's packages live in its parent.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for name in PRELOAD:
        __import__(name)
    failed = []
    for module in modules:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(module)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            failed.append(module)
            print(f"FAILED {module}", flush=True)
    return len(failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
