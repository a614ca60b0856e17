"""--rewrite is safe by construction, as a property: for modules built from runpod-flash pieces in
any order and combination, the rewrite is either refused (nothing planned to be written) or leaves
a module that runs (with a stand-in for runpod_flash, so a kept use of it still runs and a name
whose import was removed still fails), missing exactly the lines it lists."""

from __future__ import annotations

import sys
import tempfile
import types
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flash_pipeline.cli.importing import Imported
from flash_pipeline.config.import_rewrite import plan_rewrite
from flash_pipeline.config.importer import read_project

IMPORTS = "from runpod_flash import Endpoint, GpuGroup, NetworkVolume\nimport runpod_flash as rf\n"
PIECES = [
    'api = Endpoint(name="api", gpu=GpuGroup.ADA_24)\n',
    'vol = NetworkVolume(name="v", size=10)\n',
    'jobs = Endpoint(name="jobs", cpu="cpu3c-2-4", volume=vol)\n',
    'other = rf.Endpoint(name="other", cpu="cpu3c-2-4")\n',
    '@api.post("/a")\ndef a(x: int) -> dict:\n    return {"x": x}\n',
    '@api.get("/b")\ndef b() -> dict:\n    return {}\n',
    '@other.post("/c")\ndef c(y: int) -> dict:\n    return {"y": y}\n',
    '@Endpoint(name="q", cpu="cpu3c-2-4")\nasync def q(data: dict) -> dict:\n    return data\n',
    "@jobs\ndef j(data: dict) -> dict:\n    return data\n",
    "DEFAULT = GpuGroup.ANY\n",
    "ALIAS = api\n",
    "def helper():\n    return Endpoint\n",
    "LIMIT = 3; same = api\n",
    "if True:\n    from runpod_flash import GpuType\n",
    'api2 = Endpoint(name="api2", cpu="cpu3c-2-4"); LIMIT2 = 1\n',
    '@api2.post("/d")\ndef d() -> dict:\n    return {"limit": LIMIT2}\n',
]
NEEDS = {2: [1], 4: [0], 5: [0], 6: [3], 8: [2], 10: [0], 12: [0], 15: [14]}  # piece -> the pieces it uses


RAN: list[str] = []  # the programs that reached the rewrite (see the test after the property)
REFUSED: list[str] = []


class _Any:
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return args[0] if len(args) == 1 and callable(args[0]) and not kwargs else _Any()

    def __getattr__(self, name: str) -> Any:
        return _Any()


def _runs(text: str) -> str | None:
    """None if the module runs; else the error."""
    stub = types.ModuleType("runpod_flash")
    stub.__getattr__ = lambda name: _Any()  # type: ignore[method-assign]
    saved = sys.modules.get("runpod_flash")
    sys.modules["runpod_flash"] = stub
    try:
        exec(compile(text, "main.py", "exec"), {"__name__": "main"})
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        if saved is None:
            sys.modules.pop("runpod_flash", None)
        else:
            sys.modules["runpod_flash"] = saved
    return None


@settings(max_examples=60, deadline=None)
@given(
    st.sets(st.integers(0, len(PIECES) - 1), max_size=8),
    st.booleans(),
)
def test_a_rewrite_is_refused_or_leaves_a_module_that_runs(chosen: set[int], queue: bool) -> None:
    wanted = set(chosen)
    while extra := {n for piece in wanted for n in NEEDS.get(piece, [])} - wanted:
        wanted |= extra
    # definitions before uses, as a program would have them
    text = IMPORTS + "\n" + "\n\n".join(PIECES[n] for n in sorted(wanted))
    assert _runs(text) is None, text
    RAN.append(text)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "main.py").write_text(text)
        reading = read_project(root)
        imported = Imported(reading, queue)
        plan = plan_rewrite(root, reading.files, imported.spans)
        if plan.refused:
            REFUSED.append(text)
            assert "LIMIT2" in text, (text, plan.refused)  # the only piece made to share a line
            return
        after = plan.texts.get(root / "main.py", text)
        assert _runs(after) is None, (text, after)
        removed = set(plan.lines.get(root / "main.py", []))
        kept = [line for n, line in enumerate(text.splitlines(keepends=True), 1) if n not in removed]
        assert "".join(kept) == after


def test_the_property_saw_real_programs() -> None:
    """Not vacuous: the generated programs reached the rewrite, some refused, most rewritten."""
    if not RAN:
        test_a_rewrite_is_refused_or_leaves_a_module_that_runs()
    assert len(RAN) >= 30 and 0 < len(REFUSED) < len(RAN)
