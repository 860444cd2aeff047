"""Mutation tests of :mod:`secnn_jax.timing.replayer` (issue 23 item 4): a hand-built
:class:`ReplayResult` read back through every view (properties, speedups, the text table, the
JSON, the CSV, the kernel slices and the Chrome trace) against values computed by hand, and
small replays whose results must not depend on how the frames are chunked, which launch models
are replayed together, or where the events come from."""

from __future__ import annotations

import csv
import io
import json
import logging as pylogging

import numpy as np
import pytest

from secnn_jax import events as ev
from secnn_jax import timing
from secnn_jax.geometry import LayerGeom
from secnn_jax.timing import energy as E
from secnn_jax.timing import replayer as R
from secnn_jax.timing.errors import UnknownResultError
from secnn_jax.timing.gpus import GPUS
from secnn_jax.timing.validate import ReplayError


def _scheme(scheme: str, total, clock=2.0) -> R.SchemeResult:
    total = np.asarray(total, np.float64)
    t = len(total)
    return R.SchemeResult(
        gpu="h100", scheme=scheme, clock_mhz=clock, sms=4, total_cycles=total,
        layer_cycles=np.stack([total * 0.25, total * 0.75], 1),
        phases={"compute": total * 0.8, "launch": total * 0.2},
        layer_phases={"exec": np.stack([total * 0.25, total * 0.75], 1),
                      "parallel_dense": np.full((t, 2), 0.123456)},
        busy_cycles=total * 2.0, launch="eager", fusion="epilogue",
        spans={"stream": (("a", "b"), np.array([[0.0, 10.0]] * t), np.array([[10.0, 20.0]] * t)),
               "serial": (("a:compare", "relu"), np.array([[4.0, 12.0]] * t),
                          np.array([[8.0, 12.0]] * t))},
        energy_parts={"compute": np.arange(1.0, t + 1), "static": np.full(t, 2.0)},
        span_args={"stream": {"sms": np.array([[1.23456, 2.0]] * t),
                              "ctas": np.array([[3.0, 4.0]] * t),
                              "bytes": np.array([[5.0, 6.0]] * t)}})


def _result() -> R.ReplayResult:
    res = {("h100", "dense"): _scheme("dense", [20.0, 40.0]),
           ("h100", "zero_skip"): _scheme("zero_skip", [10.0, 40.0]),
           ("h100", "secnn_hw"): _scheme("secnn_hw", [5.0, 20.0])}
    return R.ReplayResult(layers=("a", "b"), frames=(7, 9), precision="fp32", gpus=("h100",),
                          schemes=("dense", "zero_skip", "secnn_hw"), results=res,
                          meta={"source": "hand"}, launch="eager", fusion="epilogue")


def test_scheme_result_derived_quantities() -> None:
    r = _scheme("dense", [20.0, 40.0])
    np.testing.assert_allclose(r.total_us, [10.0, 20.0])
    np.testing.assert_allclose(r.layer_us, [[2.5, 7.5], [5.0, 15.0]])
    np.testing.assert_allclose(r.energy_uj, [3.0, 4.0])
    np.testing.assert_allclose(r.power_w, [0.3, 0.2])
    np.testing.assert_allclose(r.sm_utilisation, [0.5, 0.5])
    z = _scheme("dense", [0.0])
    assert z.power_w[0] == pytest.approx(3.0 / 1e-30) and z.sm_utilisation[0] == 0.0


def test_get_and_speedups() -> None:
    rr = _result()
    assert rr.get("h100", "dense") is rr.results[("h100", "dense")]
    assert rr.get(GPUS["h100"], "secnn_hw") is rr.results[("h100", "secnn_hw")]
    assert rr.get("H100", "dense") is rr.results[("h100", "dense")]  # GPU names canonicalised
    with pytest.raises(UnknownResultError, match="no result for gpu 'h100' and scheme 'fft'"):
        rr.get("h100", "fft")
    with pytest.raises(UnknownResultError, match="'a100'"):
        rr.get("a100", "dense")
    np.testing.assert_allclose(rr.speedup("h100", "secnn_hw", "dense"), [4.0, 2.0])
    # Mean-time ratios of each SE-CNN scheme over each baseline (peers and SE-CNN are not
    # baselines).
    assert rr.speedups() == {"h100": {"secnn_hw": {"dense": pytest.approx(30 / 12.5),
                                                   "zero_skip": pytest.approx(25 / 12.5)}}}


def test_table_rows_and_sections() -> None:
    rr = _result()
    text = rr.table(per_layer=True)
    main, sp, per = text.split("\n\n")
    lines = main.splitlines()
    assert lines[0].split() == ["gpu", "scheme", "us/frame", "cycles/frame", "SM", "util",
                                "phases", "(us)"]
    # dense: mean 15 us, 30 cycles, SM util 50%, phases compute 0.8 * 30 / 2, launch 0.2 * ...
    assert lines[1].split() == ["h100", "dense", "15.0", "30", "50.0%", "compute=12.0,",
                                "launch=3.0"]
    assert [ln.split()[1] for ln in lines[1:]] == ["dense", "zero_skip", "secnn_hw"]
    # columns are aligned: every line's third field starts at the same offset
    assert len({ln.index(ln.split()[2]) for ln in lines}) == 1
    assert all(ln == ln.rstrip() for ln in text.splitlines())
    sl = sp.splitlines()
    assert sl[0] == "speedup (mean frame time of baseline / scheme)"
    assert sl[1].split() == ["gpu", "scheme", "dense", "zero_skip"]
    assert sl[2].split() == ["h100", "secnn_hw", "2.40x", "2.00x"]
    pl = per.splitlines()
    assert pl[0] == "per-layer critical-path time (us)"
    assert pl[1].split() == ["layer", "h100:dense", "h100:zero_skip", "h100:secnn_hw"]
    assert pl[2].split() == ["a", "3.8", "3.1", "1.6"]
    assert pl[3].split() == ["b", "11.2", "9.4", "4.7"]
    assert rr.table() == main + "\n\n" + sp  # no per-layer section unless asked
    base = R.ReplayResult(layers=("a", "b"), frames=(0,), precision="fp32", gpus=("h100",),
                          schemes=("dense",), results={("h100", "dense"): _scheme("dense", [8])},
                          meta={})
    assert "speedup" not in base.table() and len(base.table().splitlines()) == 2


def test_as_dict_and_json(tmp_path) -> None:
    rr = _result()
    d = rr.as_dict()
    assert d["format"] == "secnn_jax.timing.replay/2"
    assert (d["layers"], d["frames"], d["precision"], d["launch"], d["fusion"], d["gpus"],
            d["schemes"], d["meta"]) == (["a", "b"], [7, 9], "fp32", "eager", "epilogue",
                                         ["h100"], ["dense", "zero_skip", "secnn_hw"],
                                         {"source": "hand"})
    assert d["speedups"] == rr.speedups()
    first = d["results"][0]
    assert first == {
        "gpu": "h100", "scheme": "dense", "clock_mhz": 2.0, "sms": 4,
        "total_us": [10.0, 20.0], "total_cycles": [20.0, 40.0], "sm_utilisation": [0.5, 0.5],
        "phases_us": {"compute": [8.0, 16.0], "launch": [2.0, 4.0]},
        "layer_us": [[2.5, 7.5], [5.0, 15.0]],
        # times in microseconds, the dense-parallel flags as they are (rounded to 4 places)
        "layer_phases_us": {"exec": [[2.5, 7.5], [5.0, 15.0]],
                            "parallel_dense": [[0.1235, 0.1235], [0.1235, 0.1235]]}}
    assert [x["scheme"] for x in d["results"]] == ["dense", "zero_skip", "secnn_hw"]
    text = rr.to_json(tmp_path / "r.json")
    assert (tmp_path / "r.json").read_text() == text
    assert json.loads(text) == json.loads(json.dumps(d))
    assert rr.to_json() == text


def test_csv_long_format(tmp_path) -> None:
    rr = _result()
    text = rr.to_csv(tmp_path / "r.csv")
    assert (tmp_path / "r.csv").read_text() == text and "\r" not in text
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["gpu", "scheme", "precision", "frame", "layer_index", "layer",
                       "quantity", "cycles", "us"]
    # per (gpu, scheme, frame): the total, 2 phases, 2 layers
    assert len(rows) == 1 + 3 * 2 * 5
    assert rows[1] == ["h100", "dense", "fp32", "7", "-1", "*", "total", "20.0000", "10.0000"]
    assert rows[2] == ["h100", "dense", "fp32", "7", "-1", "*", "compute", "16.0000", "8.0000"]
    assert rows[3] == ["h100", "dense", "fp32", "7", "-1", "*", "launch", "4.0000", "2.0000"]
    assert rows[4] == ["h100", "dense", "fp32", "7", "0", "a", "layer", "5.0000", "2.5000"]
    assert rows[5] == ["h100", "dense", "fp32", "7", "1", "b", "layer", "15.0000", "7.5000"]
    assert rows[6][:4] == ["h100", "dense", "fp32", "9"]
    assert rows[-1] == ["h100", "secnn_hw", "fp32", "9", "1", "b", "layer", "15.0000", "7.5000"]
    assert rr.to_csv() == text


def test_kernel_slices_tracks_names_and_colours() -> None:
    rr = _result()
    sl = rr.kernel_slices("h100", "dense", 1)
    # cycles at 2 MHz -> 500 ns per cycle; sorted by start then end; a slice goes on the
    # first track free at its start.
    got = [(s.name, s.track, s.start_ns, s.end_ns, s.kind, s.cname) for s in sl]
    assert got == [("a", 0, 0, 5000, "stream", "thread_state_running"),
                   ("a:compare", 1, 2000, 4000, "serial", "yellow"),
                   ("b", 0, 5000, 10000, "stream", "thread_state_running"),
                   ("relu", 1, 6000, 6000, "serial", "generic_work")]
    assert dict(sl[0].args) == {"sms": 1.235, "ctas": 3.0, "bytes": 5.0}
    assert dict(sl[1].args) == {}
    for bad in (-1, 2):
        with pytest.raises(ReplayError, match=f"frame {bad} is not among the 2 replayed"):
            rr.kernel_slices("h100", "dense", bad)
    assert R._cname("x", "parallel", frozenset()) == "rail_load"
    assert R._cname("a:amend", "serial", frozenset({"a"})) == "rail_response"
    assert R._cname("a:compaction", "serial", frozenset({"a"})) == "olive"
    assert R._cname("a:other", "serial", frozenset({"a"})) == "generic_work"
    assert R._cname("a", "stream", frozenset({"a"})) == "thread_state_running"


def test_chrome_trace(tmp_path) -> None:
    rr = _result()
    doc = rr.to_chrome_trace(tmp_path / "t.json", frame=1)
    assert json.loads((tmp_path / "t.json").read_text()) == doc
    assert doc["displayTimeUnit"] == "ns"
    assert doc["otherData"] == {"frame": 9, "launch": "eager", "fusion": "epilogue",
                                "precision": "fp32"}
    evs = doc["traceEvents"]
    procs = [e for e in evs if e["ph"] == "M" and e["name"] == "process_name"]
    assert [(e["pid"], e["args"]["name"]) for e in procs] == [
        (0, "h100 dense (eager, fusion epilogue)"), (1, "h100 zero_skip (eager, fusion epilogue)"),
        (2, "h100 secnn_hw (eager, fusion epilogue)")]
    threads = [(e["pid"], e["tid"], e["args"]["name"]) for e in evs
               if e["ph"] == "M" and e["name"] == "thread_name"]
    assert threads == [(p, t, f"kernels {t}") for p in range(3) for t in (0, 1)]
    xs = [e for e in evs if e["ph"] == "X" and e["pid"] == 0]
    assert [(e["name"], e["cat"], e["tid"], e["ts"], e["dur"], e["cname"]) for e in xs] == [
        ("a", "stream", 0, 0.0, 5.0, "thread_state_running"),
        ("a:compare", "serial", 1, 2.0, 2.0, "yellow"),
        ("b", "stream", 0, 5.0, 5.0, "thread_state_running"),
        ("relu", "serial", 1, 6.0, 0.0, "generic_work")]
    assert xs[0]["args"] == {"sms": 1.235, "ctas": 3.0, "bytes": 5.0}
    ends = [e for e in evs if e["ph"] == "i"]
    assert [(e["pid"], e["tid"], e["s"], e["ts"], e["name"]) for e in ends] == [
        (0, 0, "p", 20.0, "frame end"), (1, 0, "p", 20.0, "frame end"),
        (2, 0, "p", 10.0, "frame end")]
    assert rr.to_chrome_trace() == rr.to_chrome_trace(frame=0)
    # frame 0 of secnn_hw ends at 5 cycles / 2 MHz = 2.5 us (kept to 4 decimals)
    assert [e["ts"] for e in rr.to_chrome_trace(frame=0)["traceEvents"] if e["ph"] == "i"] == [
        10.0, 5.0, 2.5]
    assert rr.to_chrome_trace()["otherData"]["frame"] == 7
    with pytest.raises(ReplayError, match="frame 2 is not among the 2 replayed frames"):
        rr.to_chrome_trace(frame=2)


_LAYERS = (LayerGeom.conv("a", n=1, h=6, cin=4, cout=8, k=3),
           LayerGeom.conv("b", n=1, h=6, cin=8, cout=8, k=1))


def _codes(frames: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {g.name: rng.choice(4, size=(frames, *g.in_nhwc), p=(0.4, 0.2, 0.3, 0.1)
                               ).astype(np.uint8) for g in _LAYERS}


def _same(a: R.SchemeResult, b: R.SchemeResult) -> None:
    np.testing.assert_allclose(a.total_cycles, b.total_cycles, rtol=1e-12)
    np.testing.assert_allclose(a.layer_cycles, b.layer_cycles, rtol=1e-12)
    np.testing.assert_allclose(a.busy_cycles, b.busy_cycles, rtol=1e-12)
    assert set(a.phases) == set(b.phases) and set(a.layer_phases) == set(b.layer_phases)
    for k in a.phases:
        np.testing.assert_allclose(a.phases[k], b.phases[k], rtol=1e-12)
    for k in a.layer_phases:
        np.testing.assert_allclose(a.layer_phases[k], b.layer_phases[k], rtol=1e-12)
    assert set(a.work) == set(b.work) and set(a.spans) == set(b.spans)
    for k in a.work:
        np.testing.assert_allclose(a.work[k], b.work[k], rtol=1e-12)
    for k, (lab, s0, s1) in a.spans.items():
        assert lab == b.spans[k][0]
        np.testing.assert_allclose(s0, b.spans[k][1], rtol=1e-12)
        np.testing.assert_allclose(s1, b.spans[k][2], rtol=1e-12)
    assert set(a.span_args) == set(b.span_args)
    for k, args in a.span_args.items():
        assert set(args) == set(b.span_args[k])
        for x in args:
            np.testing.assert_allclose(args[x], b.span_args[k][x], rtol=1e-12)
    for k in a.energy_parts:
        np.testing.assert_allclose(a.energy_parts[k], b.energy_parts[k], rtol=1e-12)


@pytest.fixture(scope="module")
def whole() -> R.ReplayResult:
    codes = _codes(4)
    return timing.replay(_LAYERS, codes, ops=(), schemes=("dense", "zero_skip", "secnn_hw"),
                         launch="persistent")


def test_chunking_and_frame_selection_change_nothing(whole) -> None:
    """Frames reduced in chunks of 1 (or a selection of frames, or a chunk of a longer stream
    given with its offset) give each frame's times exactly as one chunk of 4 does."""
    codes = _codes(4)
    kw = dict(ops=(), schemes=("dense", "zero_skip", "secnn_hw"), launch="persistent")
    one = timing.replay(_LAYERS, codes, batch_frames=1, **kw)
    assert one.frames == whole.frames == (0, 1, 2, 3)
    for s in kw["schemes"]:
        _same(one.get("h100", s), whole.get("h100", s))
        r = whole.get("h100", s)
        assert r.launch == "persistent" and r.fusion == "none"
        assert r.gpu == "h100" and r.scheme == s and r.sms == GPUS["h100"].sms
        assert r.clock_mhz == GPUS["h100"].clock_mhz
        # energy parts price the counted work over the frame time
        parts = E.energy_parts(E.graph_work(r.span_work), r.total_us, "h100", "fp32")
        assert set(r.energy_parts) == set(E.COMPONENTS)
        for k, v in parts.items():
            np.testing.assert_allclose(r.energy_parts[k], v, rtol=1e-12)
        summed = E.graph_work(r.span_work)
        assert set(r.work) == set(E.WORK_KEYS)
        for k in E.WORK_KEYS:
            np.testing.assert_allclose(r.work[k], summed[k], rtol=1e-12)
    sub = timing.replay(_LAYERS, codes, frames=[3, 1], batch_frames=1, **kw)
    assert sub.frames == (3, 1)
    np.testing.assert_allclose(sub.get("h100", "secnn_hw").total_cycles,
                               whole.get("h100", "secnn_hw").total_cycles[[3, 1]], rtol=1e-12)
    off = timing.replay(_LAYERS, {k: v[2:] for k, v in codes.items()}, frame_offset=2, **kw)
    assert off.frames == (2, 3)
    np.testing.assert_allclose(off.get("h100", "secnn_hw").total_cycles,
                               whole.get("h100", "secnn_hw").total_cycles[2:], rtol=1e-12)
    pair = timing.replay((_LAYERS, codes), **kw)
    _same(pair.get("h100", "secnn_hw"), whole.get("h100", "secnn_hw"))
    assert whole.meta["source"] == "in-memory" and whole.meta["fires"] is False
    assert whole.meta["ops"] == 0 and whole.meta["predictor"] is None
    assert whole.meta["params"] == timing.load_params().as_dict()
    assert whole.meta["config"] == timing.SchemeConfig().as_dict()
    assert whole.layers == ("a", "b") and whole.precision == "fp32"
    assert whole.gpus == ("h100",) and whole.launch == "persistent" and whole.fusion == "none"


def test_replay_launches_is_replay_per_launch(whole) -> None:
    codes = _codes(4)
    kw = dict(ops=(), schemes=("dense", "zero_skip", "secnn_hw"))
    both = timing.replay_launches(_LAYERS, codes, launches=("graph", "persistent"),
                                  gpus=("h100", "gtx1080ti"), **kw)
    assert list(both) == ["graph", "persistent"]
    for s in kw["schemes"]:
        _same(both["persistent"].get("h100", s), whole.get("h100", s))
    g = timing.replay(_LAYERS, codes, gpus=("gtx1080ti",), launch="graph", **kw)
    for s in kw["schemes"]:
        _same(both["graph"].get("gtx1080ti", s), g.get("gtx1080ti", s))
        assert both["graph"].get("gtx1080ti", s).launch == "graph"
    assert both["graph"].gpus == ("h100", "gtx1080ti")
    with pytest.raises(ReplayError, match="unknown launch model 'x'; known: eager, graph, "
                                          "persistent"):
        timing.replay_launches(_LAYERS, codes, launches=("x",), **kw)
    with pytest.raises(ReplayError, match="unknown fusion policy 'x'; known: none, epilogue"):
        timing.replay(_LAYERS, codes, fusion="x", **kw)


def test_default_schemes_follow_the_events_predictor(caplog) -> None:
    """Without ``schemes``, every scheme the events can feed: the peers only from the
    accumulated predictor's events (or events of unknown origin, with a warning)."""
    codes = _codes(1)
    fires = {k: (v == ev.ZN) | (v == ev.VH) for k, v in codes.items()}
    own = ev.EventMaps(codes, fires, "secnn")
    r = timing.replay(_LAYERS, own, ops=())
    assert r.schemes == tuple(s for s in timing.SCHEMES if s not in ("deltacnn", "cbinfer"))
    assert r.meta["fires"] is True and r.meta["predictor"] == "secnn"
    acc = ev.EventMaps(codes, fires, "accumulated")
    assert timing.replay(_LAYERS, acc, ops=(), schemes=None).schemes == timing.SCHEMES
    with pytest.raises(ReplayError, match="scheme 'deltacnn' is timed from "
                                          r"predictors.accumulated\(\)'s events"):
        timing.replay(_LAYERS, own, ops=(), schemes=("deltacnn",))
    with caplog.at_level(pylogging.WARNING):
        r = timing.replay(_LAYERS, codes, ops=(), schemes=("zero_skip",))
    assert r.meta["fires"] is False


def test_bad_sources_are_refused() -> None:
    codes = _codes(2)
    with pytest.raises(ReplayError, match="no events for layers"):
        timing.replay(_LAYERS, {"a": codes["a"]}, ops=())
    with pytest.raises(ReplayError, match="different frame counts: \\[1, 2\\]"):
        timing.replay(_LAYERS, {"a": codes["a"], "b": codes["b"][:1]}, ops=())
    with pytest.raises(ReplayError, match="replay source must be a trace directory, a "
                                          "traces.Trace, or \\(layers, events\\); got int"):
        R._source(5, None, None, 16)
    with pytest.raises(ReplayError, match="^replay: no frames selected$"):
        timing.replay(_LAYERS, codes, frames=[], ops=())


def test_auto_compaction_of_a_memory_bound_peer_layer_skips_the_pass() -> None:
    """schemes' ``auto`` compaction picks per frame the cheaper of ``none`` and ``software``
    counting the kernel's memory floor (its output bytes' time): on a GTX 1080 Ti, DeltaCNN's
    16x16x64 layer with 2% of its inputs changed is bound by that floor, so balancing the
    lanes would save nothing the pass does not cost again. Without the floor in the choice the
    pass is taken and the frame is slower than with ``none``."""
    layer = [LayerGeom.conv("a", n=1, h=16, cin=64, cout=64, k=3)]
    rng = np.random.default_rng(0)
    shape = (1, *layer[0].in_nhwc)
    codes = np.where(rng.random(shape) < 0.02, ev.VM, ev.VH).astype(np.uint8)
    params = timing.ModelParams(latency_cycles=50.0)

    def total(compaction: str) -> np.ndarray:
        cfg = timing.SchemeConfig(sw_compaction=compaction, barrier_us=0.0, graph_kernel_us=0.0)
        r = timing.replay(layer, ev.EventMaps({"a": codes}, None, "accumulated"),
                          gpus=("gtx1080ti",), schemes=("deltacnn",), ops=(),
                          launch="persistent", params=params, config=cfg, frame_offset=1)
        return r.get("gtx1080ti", "deltacnn").total_cycles

    none, software, auto = total("none"), total("software"), total("auto")
    assert (software > none).all()  # the pass does not pay here
    np.testing.assert_allclose(auto, np.minimum(none, software), rtol=1e-12)


def test_a_change_based_peer_runs_only_the_streams_frame_0_densely() -> None:
    """Two frames with the same codes: DeltaCNN's stream frame 0 is its dense run (nothing to
    propagate from), frame 1 the sparse one; shifted by ``frame_offset`` neither is frame 0."""
    codes = {k: np.repeat(v[:1], 2, axis=0) for k, v in _codes(1, seed=5).items()}
    evs = ev.EventMaps(codes, None, "accumulated")
    kw = dict(ops=(), schemes=("deltacnn",), launch="graph")
    at0 = timing.replay(_LAYERS, evs, **kw).get("h100", "deltacnn").total_cycles
    later = timing.replay(_LAYERS, evs, frame_offset=1, **kw).get("h100", "deltacnn").total_cycles
    assert at0[0] != at0[1]
    assert at0[1] == later[0] == later[1]


def test_a_trace_replays_as_its_events_in_memory(tmp_path) -> None:
    """A trace directory and an open :class:`traces.Trace` replay exactly as the events they
    hold, and the result's provenance is the trace's: its path, predictor and tau."""
    from secnn_jax import traces

    codes = _codes(3, seed=2)
    fires = {k: (v == ev.ZN) | (v == ev.VH) for k, v in codes.items()}
    evs = ev.EventMaps(codes, fires, "accumulated")
    traces.write_trace(tmp_path / "t", _LAYERS, evs, predictor="accumulated", chunk_frames=2,
                       ops=())
    kw = dict(schemes=("dense", "deltacnn"), launch="graph")
    mem = timing.replay(_LAYERS, evs, ops=(), **kw)
    for src in (tmp_path / "t", traces.read_trace(tmp_path / "t")):
        r = timing.replay(src, **kw)
        assert r.frames == (0, 1, 2)
        for s in kw["schemes"]:
            _same(r.get("h100", s), mem.get("h100", s))
        assert r.meta["source"] == str(tmp_path / "t")
        assert r.meta["predictor"] == "accumulated" and r.meta["tau"] == 0.0
        assert r.meta["fires"] is True and r.meta["ops"] == 0
