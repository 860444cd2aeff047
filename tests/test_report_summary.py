"""The report's text is derived from results: the one-screen summary, the energy terms, the
prediction section's "same codes" sentence, the value-prediction verdict's thresholds and the
knobs of the peers given SE-CNN's SM extension (all without running a study)."""

from __future__ import annotations

import collections
import dataclasses
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments import paper, prediction, report
from secnn_jax.timing import SchemeConfig
from secnn_jax.timing.energy import COMPONENTS, WORK_KEYS, energy_parts
from secnn_jax.timing.names import COMPACTIONS
from secnn_jax.timing.schemes import extended_peer_config

VERDICTS = ("holds", "does not hold", "partly", "inconclusive (0.90-1.10)",
            "inconclusive (0.75-1.32)", "not measured")

_row = st.fixed_dictionaries({
    "key": st.sampled_from(["claim A", "claim B", "claim C"]),
    "model": st.sampled_from(["m1", "m2"]), "stream": st.sampled_from(["s1", "s2", ""]),
    "gpu": st.sampled_from(["h100", "gtx1080ti"]), "verdict": st.sampled_from(VERDICTS)})


@settings(max_examples=60, deadline=None)
@given(st.lists(_row, max_size=12))
def test_summary_lines_recount_the_claim_rows(rows: list[dict[str, str]]) -> None:
    for r in rows:
        r["claim"] = f"{r['key']} ({r['model']}, {r['gpu']})"
    lines = report.summary(rows)
    keys = list(dict.fromkeys(r["key"] for r in rows))
    assert len(lines) == len(keys)  # one line per claim
    for key, line in zip(keys, lines, strict=True):
        mine = [r for r in rows if r["key"] == key]
        assert line.startswith(f"**{key}**: ")
        counts = collections.Counter(r["verdict"].split(" (")[0] for r in mine)
        for v, n in counts.items():
            assert f"{v} {n}/{len(mine)}" in line
        bands = [tuple(map(float, r["verdict"][len("inconclusive ("):-1].split("-")))
                 for r in mine if r["verdict"].startswith("inconclusive")]
        if bands:  # one count, over the widest range of the inconclusive rows' bands
            lo, hi = min(b[0] for b in bands), max(b[1] for b in bands)
            assert f"inconclusive {len(bands)}/{len(mine)} ({lo:.2f}-{hi:.2f})" in line
        assert sum(int(n) for n in re.findall(r" (\d+)/\d+", line)) == len(mine)
        for field, what in (("model", "models"), ("stream", "streams"), ("gpu", "GPUs")):
            vals = sorted({r[field] for r in mine if r[field]})
            if vals:
                got = re.search(rf"{what}: ([^;)]*)", line)
                assert got and sorted(got.group(1).split(", ")) == vals, (what, line)
            else:
                assert f"{what}:" not in line


def test_summary_without_keys_groups_by_the_claim_text() -> None:
    rows = [{"claim": "new claim (m, s)", "verdict": "holds"},
            {"claim": "new claim (m2, s)", "verdict": "does not hold"}]
    assert report.summary(rows) == ["**new claim**: holds 1/2, does not hold 1/2"]


def test_energy_text_lists_exactly_the_counted_terms() -> None:
    # The work counts that change energy_parts' result and the terms it returns, found by
    # perturbing each count, are exactly the backticked names of the report's text.
    base = {k: np.zeros(1) for k in WORK_KEYS}
    e0 = energy_parts(base, np.ones(1), "h100", "fp32")
    counted = [k for k in WORK_KEYS
               if any(not np.array_equal(v, e0[c]) for c, v in energy_parts(
                   {**base, k: np.full(1, 1e6)}, np.ones(1), "h100", "fp32").items())]
    text = report.energy_terms()
    named = re.findall(r"`([a-z_0-9]+)`", text)
    assert sorted(named) == sorted(counted + list(e0))
    assert tuple(e0) == COMPONENTS and "issue" in named
    assert "no instruction issue" not in text


def test_same_codes_sentence_is_computed() -> None:
    def cell(pred: str, tau: float, codes: list[float]) -> prediction.PredictionCell:
        return prediction.PredictionCell(model="m", stream="s", predictor=pred, tau=tau,
                                         frames=1, overall=tuple(codes), mispredicted=0.0,
                                         predicted_nonzero=0.0, layers=())

    same = [cell("a", 0.0, [0.5, 0.5, 0, 0]), cell("b", 0.0, [0.5, 0.5, 0, 0]),
            cell("c", 0.0, [0.4, 0.6, 0, 0])]
    assert "`a` and `b` (in all 1 cells" in prediction._same_codes(same)
    assert "`c`" not in prediction._same_codes(same)
    differ = same[:1] + [cell("b", 0.0, [0.5, 0.4, 0.1, 0])]
    assert prediction._same_codes(differ) == ""


@pytest.mark.parametrize("factor", [1.0, 1.05, 1.0500001, 1.2, 1.4999, 1.5, 3.0])
def test_value_prediction_verdict_uses_the_named_thresholds(factor: float) -> None:
    want = ("holds" if factor >= paper.VALUE_PREDICTION_HOLDS else "partly"
            if factor > paper.VALUE_PREDICTION_PARTLY else "does not hold")
    assert paper.value_prediction_verdict(factor) == want


@pytest.mark.parametrize("hw", COMPACTIONS)
@pytest.mark.parametrize("sw", COMPACTIONS)
def test_extended_peer_config_takes_only_what_helps(hw: str, sw: str) -> None:
    cfg = SchemeConfig(hw_compaction=hw, sw_compaction=sw)
    ext = extended_peer_config(cfg)
    changed = {f.name for f in dataclasses.fields(cfg)
               if getattr(cfg, f.name) != getattr(ext, f.name)}
    # The peers are put on the extension; of the knobs, only their compaction may change, and
    # only to the extension's free compaction.
    assert ext.peer_extension and changed <= {"sw_compaction", "peer_extension"}
    assert ext.sw_compaction == ("hardware" if hw == "hardware" else sw)


def test_published_peers_are_named_with_sources() -> None:
    assert set(paper.PUBLISHED_PEERS) == {"deltacnn", "cbinfer"}
    d, c = paper.PUBLISHED_PEERS["deltacnn"], paper.PUBLISHED_PEERS["cbinfer"]
    assert d.figure == "up to 7x" and "CVPR 2022" in d.source
    assert c.figure == "8.6-9.1x" and "Cavigelli" in c.source


class _Events:
    def map(self, fn):
        return self


class _WS:
    """The few Workspace calls :func:`experiments.peers._band` makes."""

    class timer:
        gpus, precision, fusion, params = ("h100",), "fp32", "epilogue", None

    def model(self, name: str) -> object:
        return type("H", (), {"apply_fn": None, "variables": None})()

    def frames(self, model: str, stream: str) -> np.ndarray:
        return np.zeros((8, 1, 4, 4, 3), np.float32)

    def layers(self, model: str, stream: str) -> tuple:
        return ()

    def ops(self, model: str, stream: str) -> tuple:
        return ()

    def n_frames(self, model: str, stream: str) -> int:
        return 8

    def cell_dir(self, model: str, stream: str, *parts: str) -> None:
        return None  # no cache directory: the events are computed, never stored

    class cache:
        @staticmethod
        def load_chunk(d: object, k: int, t: int) -> None:
            return None


@pytest.mark.parametrize("extended", [False, True])
def test_extended_band_gives_the_peers_the_compaction_secnn_gets(
        monkeypatch: pytest.MonkeyPatch, extended: bool) -> None:
    # On the extended machine the band is the union of the bands at each end of the
    # hw_compaction range, the peers under extended_peer_config of each (never hardware
    # compaction for SE-CNN alone); on the stock machine one band over the whole box.
    import secnn_jax
    from experiments import peers
    from secnn_jax.timing import uncertainty

    calls = []

    def bands(layers, se, be, ratios, *, config, box, **kw):
        calls.append((config, tuple(r.field for r in box)))
        hw = config.hw_compaction == "hardware"
        return {ratios[0].name: uncertainty.Band(1.0, 0.5 if hw else 0.9, 1.6 if hw else 1.2)}

    monkeypatch.setattr(uncertainty, "bands", bands)
    monkeypatch.setattr(secnn_jax, "run_stream", lambda *a, **k: (None, _Events()))
    sec = {"method": "secnn_hw" if extended else "secnn_sw", "tau": 0.0}
    peer = {"method": "deltacnn+ext" if extended else "deltacnn", "tau": 0.0}
    cfg = SchemeConfig()
    b = peers._band(_WS(), "m", "s", "secnn(silence=0.5,decay=0.5)", sec, peer, "persistent", 0,
                    {}, cfg, extended)
    fields = tuple(r.field for r in uncertainty.BOX)
    if not extended:
        assert calls == [(cfg, fields)] and (b.low, b.default, b.high) == (0.9, 1.0, 1.2)
        return
    assert [c.hw_compaction for c, _ in calls] == [cfg.hw_compaction, "hardware"]
    for c, box in calls:
        assert c == extended_peer_config(c) and "hw_compaction" not in box
        assert c.sw_compaction == ("hardware" if c.hw_compaction == "hardware"
                                   else cfg.sw_compaction)
        assert set(box) == set(fields) - {"hw_compaction"}
    assert (b.low, b.default, b.high) == (0.5, 1.0, 1.6)
