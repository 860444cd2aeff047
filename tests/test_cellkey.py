"""The cell runner's key (:class:`experiments.cellrunner.CellKey`) and its in-memory tiers.

* A key is a value (equal and hashed by its fields), its timed twin differs only in ``timed``,
  and two taus that convert to one tau key (a float, a map giving every layer that float) are
  one key and one cell in memory;
* an untimed request after the timed one is served by the timed twin, from memory or from its
  chunks on disk, with the logits and counts an untimed run computes on its own.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from test_cells_engine import _RecordingTimer, _workspace

from experiments import cellcache
from experiments.cellrunner import CellKey

SPEC = "secnn(silence=0.75,decay=0.5)"


def test_a_key_is_a_value_and_its_timed_twin_differs_only_in_timed() -> None:
    a = CellKey("m", "s", SPEC, "tau=0.05", False)
    b = CellKey("m", "s", SPEC, "tau=0.05", False)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.timed = True  # type: ignore[misc]
    twin = a.timed_twin()
    assert twin != a and twin == dataclasses.replace(a, timed=True)
    assert {f.name: getattr(twin, f.name) for f in dataclasses.fields(twin) if f.name != "timed"} \
        == {f.name: getattr(a, f.name) for f in dataclasses.fields(a) if f.name != "timed"}
    assert twin.timed_twin() == twin
    # The directory names the cache has always used: the timer's key only on a timed cell.
    assert a.dir_parts("rec") == (SPEC, "tau=0.05")
    assert twin.dir_parts("rec") == (SPEC, "tau=0.05-rec")


def test_taus_with_one_tau_key_make_one_key() -> None:
    layers = [SimpleNamespace(name=n) for n in ("a", "b", "c")]
    key = CellKey.of(layers, "m", "s", SPEC, 0.05, timed=True)
    assert key.tau_key == cellcache.tau_key(layers, 0.05)
    assert CellKey.of(layers, "m", "s", SPEC, dict.fromkeys("abc", 0.05), timed=True) == key
    assert CellKey.of(layers, "m", "s", SPEC, {"a": 0.05}, timed=True) != key
    assert CellKey.of(layers, "m", "s", SPEC, 0.05, timed=False) == dataclasses.replace(
        key, timed=False)


@pytest.fixture(scope="module")
def timed(tmp_path_factory):
    """A workspace with a timer and a cache that ran one cell timed, and that cell."""
    cache = tmp_path_factory.mktemp("cells")
    timer = _RecordingTimer()
    ws = _workspace(cache, timer=timer)
    return ws, ws.run("tiny", "pan", SPEC, 0.05), cache


def test_an_untimed_request_after_the_timed_one_is_served_from_memory(timed) -> None:
    ws, cell, _ = timed
    assert cell.time_us is not None
    before, asked = dict(ws.stats), len(ws.timer.timed)
    layers = ws.layers("tiny", "pan")
    # The same cell by another tau of the same key: nothing computed, loaded or timed.
    for tau in (0.05, {lyr.name: 0.05 for lyr in layers}):
        got = ws.run("tiny", "pan", SPEC, tau, timed=False)
        assert got.time_us is None and got.phase_us is None and got.energy_uj is None
        np.testing.assert_array_equal(got.logits, cell.logits)
        np.testing.assert_array_equal(got.counts, cell.counts)
        part = ws.run("tiny", "pan", SPEC, tau, n_frames=4, timed=False)
        np.testing.assert_array_equal(part.counts, cell.counts[:4])
    assert ws.stats == before and len(ws.timer.timed) == asked
    # What an untimed run computes on its own (the program without the event maps).
    alone = _workspace().run("tiny", "pan", SPEC, 0.05, timed=False)
    np.testing.assert_array_equal(alone.logits, cell.logits)
    np.testing.assert_array_equal(alone.counts, cell.counts)


def test_an_untimed_request_reads_the_timed_twins_chunks(timed) -> None:
    ws, cell, cache = timed
    fresh = _workspace(cache, timer=_RecordingTimer())
    got = fresh.run("tiny", "pan", SPEC, 0.05, timed=False)
    assert fresh.stats == {"chunks_computed": 0, "chunks_loaded": 3}
    assert fresh.timer.timed == [] and got.time_us is None
    np.testing.assert_array_equal(got.logits, cell.logits)
    np.testing.assert_array_equal(got.counts, cell.counts)
    # No untimed cell was written beside the timed one.
    key = CellKey.of(fresh.layers("tiny", "pan"), "tiny", "pan", SPEC, 0.05, timed=False)
    assert not fresh.cell_runner.cell_dir(key).exists()
    assert fresh.cell_runner.cell_dir(key.timed_twin()).is_dir()
