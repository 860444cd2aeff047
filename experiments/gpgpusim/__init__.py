"""A cycle-level second reference: GPGPU-Sim (PTX mode, no GPU needed) running the kernels SE-CNN
and its peers are made of (``secnn_kernels.cu``), set up from package registries.

Three steps, each a function here and a sub-command of ``python -m experiments.gpgpusim``:

* :func:`setup` — CUDA 11.8 from Debian bookworm's ``non-free`` component (``nvidia-cuda-toolkit``,
  ``nvidia-cuda-dev``, ``libcudart11.0``, ``libnvvm4``) downloaded with a *private* sources list
  and private apt state under ``DIR/apt`` (the system's apt configuration is left alone),
  unpacked with ``dpkg -x`` and laid out as ``DIR/cuda/{bin,include,lib64,nvvm/libdevice}`` with a
  relative ``nvcc.profile``; the simulator's source (``--source``, a checkout of
  ``accel-sim/gpgpu-sim_distribution`` branch ``dev``; cloned when online) copied to ``DIR/src``,
  our one-line fix applied (:data:`PATCH`: ``-gpgpu_concurrent_kernel_sm 1`` segfaults in
  ``shader_core_ctx::fetch``, which reads the stream id through a kernel pointer that is NULL in
  that mode; we take it from the warp), built (``make``), and checked with a vector add on the
  ``SM6_TITANX`` configuration. Needs ``g++-11`` (CUDA 11.8 supports gcc <= 11) and the build
  dependencies in :data:`BUILD_DEPS`; a missing one is named on one line.
* :func:`build_cases` — the event codes of real layers (EfficientNet-Lite0 and HED's VGG-16 on
  the ``bikes`` clip, frame 2 under ``predictors.last_value``), as ``[M, K]`` implicit-GEMM code
  matrices cropped to kernels of at most ~4M multiply-adds (about 10M simulated thread
  instructions), in one ``.npz``.
* :func:`run_cases` — every (kernel class, case) row through the simulator, one row at a time
  into a CSV (a killed run resumes after its last finished row), a progress bar over rows.

The CSV's columns are documented in ``secnn_jax/timing/measurements/README.md``; the model's side
of the comparison is :mod:`secnn_jax.timing.simref`.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from secnn_jax.errors import SecnnError
from secnn_jax.timing.simref import load_cases

__all__ = ["BUILD_DEPS", "CLASSES", "CONFIGS", "CSV_FIELDS", "CUDA_DEBS", "PATCH",
           "SimError", "SimPaths", "build_cases", "load_cases", "run_cases", "setup"]

#: The folder of this package (the CUDA source and our patch live beside this file).
HERE = Path(__file__).resolve().parent
#: Our fix of ``-gpgpu_concurrent_kernel_sm 1`` (see the module docstring).
PATCH = HERE / "concurrent_kernel_sm_fetch.patch"
#: The kernels, in CUDA C.
KERNELS_CU = HERE / "secnn_kernels.cu"
#: Debian bookworm ``non-free`` packages that make a CUDA 11.8 toolkit.
CUDA_DEBS: tuple[str, ...] = ("nvidia-cuda-toolkit", "nvidia-cuda-dev", "libcudart11.0",
                              "libnvvm4")
#: Programs the simulator's build needs, with the Debian packages that provide them.
BUILD_DEPS: dict[str, str] = {"g++-11": "g++-11", "make": "build-essential",
                              "bison": "bison", "flex": "flex", "makedepend": "xutils-dev",
                              "git": "git", "dpkg": "dpkg", "apt-get": "apt"}
#: Simulator configurations: our key -> (GPGPU-Sim config folder, nvcc arch).
CONFIGS: dict[str, tuple[str, str]] = {"titanx": ("SM6_TITANX", "sm_61"),
                                       "qv100": ("SM7_QV100", "sm_70")}
#: Kernel classes of ``secnn_kernels.cu`` (``parallel``/``serial`` take several layers).
CLASSES: tuple[str, ...] = ("dense_simt", "zero_skip", "amend", "compare", "compact", "detect",
                            "parallel", "serial")
#: Columns of the runner's CSV.
CSV_FIELDS: tuple[str, ...] = ("config", "concurrent_kernel_sm", "kernel_class", "case",
                               "layers", "cycles", "kernel_cycles", "instructions", "ctas",
                               "streams", "wall_s")

_SOURCES_LIST = ("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                 "http://deb.debian.org/debian bookworm main contrib non-free\n")
_NVCC_PROFILE = """TOP              = $(_HERE_)/..
NVVMIR_LIBRARY_DIR = $(TOP)/nvvm/libdevice
PATH            += $(_HERE_):
INCLUDES        +=  "-I$(TOP)/include" $(_SPACE_)
LIBRARIES        =+ $(_SPACE_) "-L$(TOP)/lib64"
"""
_REPO = "https://github.com/accel-sim/gpgpu-sim_distribution.git"


class SimError(SecnnError, RuntimeError):
    """A setup or simulation step that cannot go on (the message names the step and the fix)."""


@dataclasses.dataclass(frozen=True)
class SimPaths:
    """Where :func:`setup` puts things under its ``root`` folder."""

    root: Path

    @property
    def cuda(self) -> Path:
        """The CUDA 11.8 toolkit (``CUDA_INSTALL_PATH``)."""
        return self.root / "cuda"

    @property
    def src(self) -> Path:
        """The simulator's patched source and build."""
        return self.root / "src"

    @property
    def nvcc(self) -> Path:
        """The CUDA compiler driver."""
        return self.cuda / "bin" / "nvcc"

    def libcudart(self) -> Path:
        """The simulator's ``libcudart.so`` folder (found after the build)."""
        hits = sorted(self.src.glob("lib/*/cuda-*/release/libcudart.so*"))
        if not hits:
            raise SimError(f"no simulator build under {self.src}/lib: run "
                           "`python -m experiments.gpgpusim setup` first")
        return hits[0].parent


def _sh(cmd: Sequence[str] | str, *, cwd: Path | None = None, env: dict[str, str] | None = None,
        what: str) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=env, shell=isinstance(cmd, str), text=True,
                       capture_output=True, executable="/bin/bash" if isinstance(cmd, str)
                       else None)
    if r.returncode != 0:
        tail = " | ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
        raise SimError(f"{what} failed (exit {r.returncode}): {tail}")
    return r.stdout


def check_build_deps() -> None:
    """Raises :class:`SimError` naming every missing build program and its Debian package."""
    missing = {p: pkg for p, pkg in BUILD_DEPS.items() if shutil.which(p) is None}
    if not Path("/usr/include/zlib.h").exists():
        missing["zlib.h"] = "zlib1g-dev"
    if missing:
        raise SimError(f"missing build programs {sorted(missing)}: install with `apt-get "
                       f"install {' '.join(sorted(set(missing.values())))}` (and libglu1-mesa-dev)")


def _cuda(paths: SimPaths) -> None:
    apt = paths.root / "apt"
    opts = [f"-oDir::Etc::SourceList={apt / 'sources.list'}", "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State={apt / 'state'}", f"-oDir::Cache={apt / 'cache'}",
            "-oDir::State::status=/var/lib/dpkg/status"]
    for sub in ("state/lists/partial", "cache/archives/partial", "debs"):
        (apt / sub).mkdir(parents=True, exist_ok=True)
    (apt / "sources.list").write_text(_SOURCES_LIST)
    _sh(["apt-get", *opts, "-qq", "update"], what="apt-get update (private state)")
    _sh(["apt-get", *opts, "download", *CUDA_DEBS], cwd=apt / "debs",
        what="apt-get download of the CUDA 11.8 packages")
    unpacked = paths.root / "debroot"
    for deb in sorted((apt / "debs").glob("*.deb")):
        _sh(["dpkg", "-x", str(deb), str(unpacked)], what=f"dpkg -x {deb.name}")
    usr, cuda = unpacked / "usr", paths.cuda
    if cuda.exists():
        shutil.rmtree(cuda)
    (cuda / "bin").mkdir(parents=True)
    (cuda / "lib64").mkdir()
    (cuda / "nvvm").mkdir()
    tk = usr / "lib" / "nvidia-cuda-toolkit"
    for name in ("nvcc", "cicc", "crt"):
        src = tk / "bin" / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, cuda / "bin" / name)
    for name in ("ptxas", "fatbinary", "cudafe++", "nvlink", "cuobjdump", "nvdisasm", "bin2c",
                 "nvprune", "cu++filt"):
        shutil.copy2(usr / "bin" / name, cuda / "bin" / name)
    shutil.copytree(usr / "include", cuda / "include")
    shutil.copytree(tk / "libdevice", cuda / "nvvm" / "libdevice")
    lib = usr / "lib" / "x86_64-linux-gnu"
    for f in [*lib.glob("libcudart*"), lib / "libcudadevrt.a"]:
        shutil.copy2(f, cuda / "lib64" / f.name, follow_symlinks=False)
    (cuda / "bin" / "nvcc.profile").write_text(_NVCC_PROFILE)
    shutil.rmtree(unpacked)
    _sh([str(paths.nvcc), "--version"], what="nvcc --version")


def _source(paths: SimPaths, source: Path | None) -> None:
    if paths.src.exists():
        shutil.rmtree(paths.src)
    if source is not None:
        if not (Path(source) / "setup_environment").exists():
            raise SimError(f"--source={source}: not a gpgpu-sim_distribution checkout (no "
                           "setup_environment)")
        _sh(["git", "clone", "-q", "-b", "dev", str(source), str(paths.src)],
            what=f"git clone of {source}")
    else:
        _sh(["git", "clone", "-q", "--depth", "1", "-b", "dev", _REPO, str(paths.src)],
            what=f"git clone of {_REPO} (offline? pass --source=DIR)")
    _sh(["git", "apply", str(PATCH)], cwd=paths.src, what=f"applying {PATCH.name}")


def _env(paths: SimPaths) -> dict[str, str]:
    env = dict(os.environ)
    env["CUDA_INSTALL_PATH"] = str(paths.cuda)
    env["PATH"] = f"{paths.cuda / 'bin'}:{env.get('PATH', '')}"
    # What the simulator's setup_environment exports for CUDA >= 6: read the PTX that
    # cuobjdump -xptx extracts, not a parse of cuobjdump's full listing.
    env.update(PTX_SIM_USE_PTX_FILE="1.ptx", PTX_SIM_KERNELFILE="_1.ptx", CUOBJDUMP_SIM_FILE="jj")
    return env


def _build(paths: SimPaths, jobs: int) -> None:
    _sh(f"source setup_environment release >/dev/null && make -j{int(jobs)}", cwd=paths.src,
        env=_env(paths), what="the simulator's build (make)")


def compile_kernels(paths: SimPaths, config: str, out: Path, source: Path = KERNELS_CU) -> Path:
    """Compiles ``source`` for ``config``'s architecture against the simulator's runtime."""
    _, arch = CONFIGS[config]
    exe = Path(out) / f"{source.stem}_{arch}"
    _sh([str(paths.nvcc), "-ccbin", "g++-11", f"-arch={arch}", "-cudart", "shared", "-O3", "-o",
         str(exe), str(source)], env=_env(paths), what=f"nvcc of {source.name}")
    return exe


_VECADD = r"""#include <cstdio>
__global__ void add(const float*a,const float*b,float*c,int n){
int i=blockIdx.x*blockDim.x+threadIdx.x;if(i<n)c[i]=a[i]+b[i];}
int main(){const int n=1024;float h[n],*a,*b,*c;for(int i=0;i<n;i++)h[i]=i;
cudaMalloc(&a,n*4);cudaMalloc(&b,n*4);cudaMalloc(&c,n*4);
cudaMemcpy(a,h,n*4,cudaMemcpyHostToDevice);cudaMemcpy(b,h,n*4,cudaMemcpyHostToDevice);
add<<<n/128,128>>>(a,b,c,n);cudaMemcpy(h,c,n*4,cudaMemcpyDeviceToHost);
int ok=1;for(int i=0;i<n;i++)ok&=h[i]==2.0f*i;printf("VECADD %s\n",ok?"PASS":"FAIL");return !ok;}
"""


def _run_dir(paths: SimPaths, config: str, folder: Path, *, concurrent_kernel_sm: bool) -> None:
    cfg_dir = paths.src / "configs" / "tested-cfgs" / CONFIGS[config][0]
    for f in cfg_dir.iterdir():
        if f.is_file():
            shutil.copy2(f, folder / f.name)
    with open(folder / "gpgpusim.config", "a") as fh:
        # Kernels are validated without the launch model (the replayer applies one separately);
        # concurrency of independent kernels is what the parallel-phase rows measure.
        fh.write("\n-gpgpu_kernel_launch_latency 0\n")
        fh.write(f"-gpgpu_concurrent_kernel_sm {int(concurrent_kernel_sm)}\n")


def simulate(paths: SimPaths, exe: Path, args: Sequence[str], config: str, *,
             concurrent_kernel_sm: bool = False) -> str:
    """Runs ``exe args`` under the simulator with ``config``; returns its stdout."""
    with tempfile.TemporaryDirectory(prefix="gpgpusim_") as tmp:
        folder = Path(tmp)
        _run_dir(paths, config, folder, concurrent_kernel_sm=concurrent_kernel_sm)
        env = _env(paths)
        env["LD_LIBRARY_PATH"] = f"{paths.libcudart()}:{env.get('LD_LIBRARY_PATH', '')}"
        r = subprocess.run([str(exe), *args], cwd=folder, env=env, text=True,
                           capture_output=True)
    if r.returncode != 0:
        tail = " | ".join((r.stderr or r.stdout).strip().splitlines()[-3:])
        raise SimError(f"simulation of {exe.name} {' '.join(args)} failed (exit "
                       f"{r.returncode}): {tail}")
    return r.stdout


def setup(root: Path, source: Path | None = None, jobs: int = 2) -> SimPaths:
    """Downloads CUDA 11.8, builds the patched simulator under ``root`` and checks it with a
    vector add; returns the :class:`SimPaths`. Idempotent steps are skipped when done."""
    check_build_deps()
    paths = SimPaths(Path(root).resolve())
    paths.root.mkdir(parents=True, exist_ok=True)
    if not paths.nvcc.exists():
        _cuda(paths)
    if not any(paths.src.glob("lib/*/cuda-*/release/libcudart.so*")):
        _source(paths, source)
        _build(paths, jobs)
    with tempfile.TemporaryDirectory() as tmp:
        cu = Path(tmp) / "vecadd.cu"
        cu.write_text(_VECADD)
        exe = compile_kernels(paths, "titanx", Path(tmp), cu)
        out = simulate(paths, exe, [], "titanx")
    if "VECADD PASS" not in out:
        raise SimError("the vector add did not pass under the simulator")
    return paths


# --- cases ----------------------------------------------------------------------------------

def im2col_codes(codes: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int],
                 padding: Sequence[tuple[int, int]]) -> np.ndarray:
    """``[H, W, C]`` codes -> ``[Ho * Wo, kh * kw * C]``: each output position's receptive field,
    padding as ZZ (the implicit GEMM's A matrix)."""
    kh, kw = kernel
    (pt, pb), (pl, pr) = padding
    cp = np.pad(codes, [(pt, pb), (pl, pr), (0, 0)])
    ho = (codes.shape[0] + pt + pb - kh) // strides[0] + 1
    wo = (codes.shape[1] + pl + pr - kw) // strides[1] + 1
    cols = [cp[i:i + strides[0] * ho:strides[0], j:j + strides[1] * wo:strides[1], :]
            for i in range(kh) for j in range(kw)]
    return np.concatenate(cols, -1).reshape(ho * wo, -1)


#: Layers of the default case set: model -> {layer: output-channel cap or None}.
DEFAULT_LAYERS: dict[str, dict[str, int | None]] = {
    "efficientnet_lite0": {"blocks_4/project_conv": None, "blocks_9/project_conv": None},
    "hed_vgg16": {"block2/conv2": 64, "block3/conv1": 64},
}
#: Multiply-adds a case may have (about 2.5 simulated thread instructions each; the simulator
#: runs ~50-100k thread instructions per second on a loaded core).
MAX_MACS = 4_000_000


def build_cases(out: Path, layers: dict[str, dict[str, int | None]] | None = None,
                stream: str = "bikes", frame: int = 2, sizes: dict[str, int] | None = None
                ) -> dict[str, np.ndarray]:
    """Writes the code matrices of real layers to ``out`` (``.npz``: ``<model>:<layer>|codes``
    uint8 ``[M, K]`` and ``|N`` the output channels) and returns them."""
    import functools  # noqa: PLC0415

    import models  # noqa: PLC0415
    import secnn_jax as sj  # noqa: PLC0415
    from secnn_jax import datasources, predictors  # noqa: PLC0415

    layers = DEFAULT_LAYERS if layers is None else layers
    sizes = {"hed_vgg16": 128} if sizes is None else sizes
    arrays: dict[str, np.ndarray] = {}
    for model, picks in layers.items():
        apply_fn, variables = models.load(model)
        pre = functools.partial(models.preprocess, model)
        frames = datasources.batch_frames(datasources.open_stream(stream, max_frames=frame + 1),
                                          pre, resize=sizes.get(model))
        found = {lyr.name: lyr for lyr in sj.find_layers(apply_fn, variables, frames[0])}
        unknown = sorted(set(picks) - set(found))
        if unknown:
            raise SimError(f"{model}: no layers {unknown}")
        _, events = sj.run_stream(apply_fn, variables, frames, predictors.last_value())
        for name, cap in picks.items():
            lyr = found[name]
            kh, kw, _, cout = lyr.kernel_shape
            mat = im2col_codes(np.asarray(events[name])[frame, 0], (kh, kw), lyr.strides,
                               lyr.padding)
            n = cout if cap is None else min(cout, cap)
            m = mat.shape[0]
            while m > 1 and m * mat.shape[1] * n > MAX_MACS:
                m //= 2
            arrays[f"{model}:{name}|codes"] = np.ascontiguousarray(mat[:m], np.uint8)
            arrays[f"{model}:{name}|N"] = np.int32(n)
    np.savez_compressed(out, **arrays)
    return arrays


# --- runs -----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Row:
    """One simulation: a kernel class over one or more cases."""

    kernel_class: str
    cases: tuple[str, ...]
    concurrent_kernel_sm: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies the row in the CSV (with the config)."""
        return (str(int(self.concurrent_kernel_sm)), self.kernel_class, "+".join(self.cases))


def default_rows(cases: Sequence[str]) -> list[Row]:
    """Every single-layer class over every case; the parallel phase over 2 and 4 layers of each
    model (independent streams vs one stream), under both concurrency settings."""
    rows = [Row(c, (name,)) for name in cases for c in CLASSES[:6]]
    by_model: dict[str, list[str]] = {}
    for name in cases:
        by_model.setdefault(name.partition(":")[0], []).append(name)
    for names in by_model.values():
        for n in (2,):
            if len(names) >= n:
                group = tuple(names[:n])
                rows += [Row("serial", group), Row("parallel", group),
                         Row("parallel", group, True)]
    return rows


_CYCLE = re.compile(r"gpu_tot_sim_cycle\s*=\s*(\d+)")
_KCYCLE = re.compile(r"gpu_sim_cycle\s*=\s*(\d+)")
_INSN = re.compile(r"gpu_tot_sim_insn\s*=\s*(\d+)")


def parse_stats(stdout: str) -> dict[str, int]:
    """The simulator's totals from its stdout: ``cycles`` (last ``gpu_tot_sim_cycle``),
    ``kernel_cycles`` (sum of every kernel's ``gpu_sim_cycle``) and ``instructions``."""
    tot, ins = _CYCLE.findall(stdout), _INSN.findall(stdout)
    if not tot or not ins:
        raise SimError("no gpu_tot_sim_cycle in the simulator's output")
    return {"cycles": int(tot[-1]), "kernel_cycles": sum(map(int, _KCYCLE.findall(stdout))),
            "instructions": int(ins[-1])}


def stats_ctas(stdout: str) -> int:
    """The simulator's last ``gpu_tot_issued_cta`` (0 when it printed none)."""
    hits = re.findall(r"gpu_tot_issued_cta\s*=\s*(\d+)", stdout)
    return int(hits[-1]) if hits else 0


def _write_case(folder: Path, name: str, codes: np.ndarray, n: int) -> Path:
    path = folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".bin")
    m, k = codes.shape
    with open(path, "wb") as fh:
        fh.write(np.asarray([m, k, n], np.int32).tobytes())
        fh.write(np.ascontiguousarray(codes, np.uint8).tobytes())
    return path


def _done(out: Path) -> set[tuple[str, ...]]:
    if not out.exists():
        return set()
    with open(out, newline="") as fh:
        return {(r["config"], r["concurrent_kernel_sm"], r["kernel_class"], r["layers"])
                for r in csv.DictReader(fh)}


def run_cases(paths: SimPaths, config: str, cases_file: Path, out: Path,
              rows: Sequence[Row] | None = None, progress: bool = True) -> Iterator[dict]:
    """Simulates every row not yet in ``out`` (resumable), appending one CSV row each; yields
    the rows written."""
    import time  # noqa: PLC0415

    from tqdm import tqdm  # noqa: PLC0415

    if config not in CONFIGS:
        raise SimError(f"--config={config}: one of {sorted(CONFIGS)}")
    cases = load_cases(cases_file)
    rows = default_rows(sorted(cases)) if rows is None else list(rows)
    done = _done(out)
    todo = [r for r in rows if (config, *r.key) not in done]
    out.parent.mkdir(parents=True, exist_ok=True)
    new_file = not out.exists()
    with tempfile.TemporaryDirectory() as tmp, open(out, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        if new_file:
            writer.writeheader()
            fh.flush()
        exe = compile_kernels(paths, config, Path(tmp))
        files = {n: _write_case(Path(tmp), n, *cases[n]) for n in cases}
        for row in tqdm(todo, desc=f"gpgpusim {config}", disable=not progress):
            t0 = time.perf_counter()
            stdout = simulate(paths, exe, [row.kernel_class, *[str(files[c]) for c in row.cases]],
                              config, concurrent_kernel_sm=row.concurrent_kernel_sm)
            if "ok" not in stdout.split("SECNN_CASE", 1)[-1].split("\n", 1)[0]:
                raise SimError(f"{row.kernel_class} on {row.cases}: the kernel's result is wrong")
            stats = parse_stats(stdout)
            rec = {"config": config, "concurrent_kernel_sm": int(row.concurrent_kernel_sm),
                   "kernel_class": row.kernel_class, "case": row.cases[0],
                   "layers": "+".join(row.cases), **stats,
                   "ctas": stats_ctas(stdout),
                   "streams": len(row.cases) if row.kernel_class == "parallel" else 1,
                   "wall_s": round(time.perf_counter() - t0, 1)}
            writer.writerow(rec)
            fh.flush()
            yield rec
