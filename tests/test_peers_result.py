"""The peers study's typed result: its JSON envelope, read back equal, refused when stale, and
its claim rows and report section the same from the result and from its JSON text (no study
is run: a hand-built result)."""

from __future__ import annotations

import json
import sys

import pytest

from experiments import figures, peers, peersresult, report
from experiments.studyresult import CLAIM_FIELDS, StaleResultError
from secnn_jax.fileio import dumps_json


def _result() -> peers.PeersResult:
    points = tuple(
        {"model": "m", "stream": "s", "gpu": "h100", "method": meth, "hardware": hw,
         "tau": tau, "metric": "top1", "speedup": 1.0 + i + tau, "agreement": 1.0 - tau,
         "calib_agreement": 1.0, "heldout_agreement": 1.0 - tau,
         "heldout_speedup": 1.1 + i + tau}
        for i, (meth, _, _, hw) in enumerate(peers.METHODS) for tau in (0.0, 0.1))
    band = {"secnn": "secnn_hw", "peer": "deltacnn+ext", "stream": "s", "default": 1.2,
            "low": 0.9, "high": 1.4, "replays": 3}
    verdicts = tuple(
        {"model": "m", "stream": "s", "gpu": "h100", "hardware": hw, "floor": 0.95,
         "metric": "top1", "methods": [n for n, _, _, h in peers.METHODS if h == hw],
         "chosen": {f"secnn_{hw[:2]}": {"tau": 0.1, "heldout_speedup": 2.5,
                                        "heldout_agreement": 0.97}},
         "fastest": None if hw == "stock" else "secnn_hw", "fastest_speedup": 2.5,
         "parallel_phase_effect": 0.8, "same_events": ["a", "b"],
         "band": None if hw == "stock" else band,
         "verdict": "holds" if hw == "stock" else "inconclusive (0.90-1.40)"}
        for hw in peers.HARDWARE)
    sanity = ({"model": "m", "stream": peers.SANITY_STREAM, "gpu": "h100", "method": "deltacnn",
               "tau": 0.1, "frames": 4, "metric": "top1", "input": "32x32",
               "precision": "fp32", "clip": "a clip", "ours": 1.5, "agreement": 1.0,
               "published": {"figure": "up to 7x", "source": "src", "setting": "static"}},)
    return peers.PeersResult(
        launch="persistent", frames=8, taus=(0.0, 0.1), points=points, verdicts=verdicts,
        buffers=({"model": "m", "secnn": 2 ** 21, "deltacnn": 2 ** 20, "cbinfer": 2 ** 20},),
        sanity=sanity, peer_extension=peersresult.PeerExtension(
            changed=True, knobs={"peer_extension": [False, True]},
            given=("comparators", "a dependency signal")))


def test_json_round_trip_and_envelope() -> None:
    r = _result()
    data = r.to_json()
    assert (data["study"], data["version"]) == ("peers", peers.PeersResult.VERSION)
    # Every field is a JSON key (and nothing else but the envelope).
    assert set(data) - {"study", "version"} == set(r.payload())
    # The layout of version 1, as written before the result moved onto experiments.records.
    assert data["peer_extension"] == {"changed": True, "knobs": {"peer_extension": [False, True]},
                                      "given": ["comparators", "a dependency signal"]}
    assert data["taus"] == [0.0, 0.1] and data["points"][0]["method"] == peers.METHODS[0][0]
    text = dumps_json(data)
    assert peers.PeersResult.from_json(json.loads(text), source="peers.json") == r
    assert peers.PeersResult.of(data) == r and peers.PeersResult.of(r) is r


@pytest.mark.parametrize("change", [{"version": 0}, {"study": "energy"}, {"version": None}])
def test_stale_or_foreign_files_are_refused_by_name(change: dict) -> None:
    data = {**_result().to_json(), **change}
    with pytest.raises(StaleResultError, match="peers.json"):
        peers.PeersResult.from_json(data, source="peers.json")


@pytest.mark.parametrize("drop", ["sanity", "given"])
def test_a_file_missing_a_field_is_refused_naming_it(drop: str) -> None:
    data = _result().to_json()
    data.pop(drop, None)
    data["peer_extension"] = {k: v for k, v in data["peer_extension"].items() if k != drop}
    with pytest.raises(StaleResultError, match=f"peers result of another layout: .*'{drop}'"):
        peers.PeersResult.from_json(data)


def test_claims_are_claim_rows_one_per_verdict() -> None:
    r = _result()
    rows = peers.claims(r)
    assert len(rows) == len(r.verdicts)
    for row, v in zip(rows, r.verdicts, strict=True):
        assert tuple(row) == CLAIM_FIELDS
        assert row["key"] == f"SE-CNN beats change-based peers {peers.MACHINES[v['hardware']]}"
        assert row["verdict"] == v["verdict"]
        assert (row["model"], row["stream"], row["gpu"]) == ("m", "s", "h100")
        assert ("band 0.90-1.40x" in row["ours"]) == (v["band"] is not None)
    # The report's registry reads the same rows from the JSON form.
    assert report.claims({"peers": json.loads(dumps_json(r.to_json()))}) == rows


def test_section_is_the_same_from_the_result_and_its_json(tmp_path) -> None:
    r = _result()
    lines = peers.section(r)
    assert lines == peers.section(json.loads(dumps_json(r.to_json())))
    assert lines == report.peers_section(r.to_json())
    text = "\n".join(lines)
    assert "they take comparators; a dependency signal." in text
    assert text.count("| m | s |") == len(r.points) + len(r.verdicts)
    assert "What differs for deltacnn: published up to 7x (src) on static" in text
    # The figure reads the JSON form (what reproduce passes; the command passes the result).
    assert figures.pareto(r.to_json(), tmp_path / "b.png").stat().st_size > 0


def test_a_result_built_by_another_copy_of_the_module_is_read_through_its_json(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A module run with `python -m` is another copy than the one imported by name: a result
    # class of such a copy is another class.
    import importlib.util

    spec = importlib.util.spec_from_file_location("peers_copy", peersresult.__file__)
    copy = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "peers_copy", copy)  # dataclasses look their module up
    spec.loader.exec_module(copy)
    r = _result()
    other = copy.PeersResult.from_json(r.to_json())
    assert not isinstance(other, peers.PeersResult)
    assert peers.PeersResult.of(other) == r and peers.section(other) == peers.section(r)


