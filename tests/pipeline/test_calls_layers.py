"""Deploy layers of the `calls` graph (graphlib): every callee in an earlier layer than its callers,
each endpoint as early as it can go, each layer in config order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flash_pipeline.config.calls import layers


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], dict[str, list[str]]]:
    keys = [f"e{i}" for i in range(draw(st.integers(0, 8)))]
    order = draw(st.permutations(keys))  # edges only point backwards in this order: acyclic
    calls = {k: draw(st.lists(st.sampled_from(order[:i]), unique=True)) if i else [] for i, k in enumerate(order)}
    return keys, calls


@given(dags())
def test_layers_put_callees_first_and_everything_as_early_as_it_can_go(graph) -> None:
    keys, calls = graph
    result = layers(calls, keys)
    depth = {k: n for n, layer in enumerate(result) for k in layer}
    assert sorted(depth) == sorted(keys)
    for key in keys:
        callees = calls.get(key, [])
        assert depth[key] == (1 + max(depth[c] for c in callees) if callees else 0)
    for layer in result:
        assert layer == [k for k in keys if k in layer]


def test_a_small_app() -> None:
    calls = {"api": ["inference"], "inference": ["embed"], "admin": []}
    assert layers(calls, ["api", "inference", "embed", "admin"]) == [["embed", "admin"], ["inference"], ["api"]]
