"""Every runpod/flash-examples example imported (--queue-workers --rewrite), deployed on the local
target and asked the requests its README documents (tests/corpus/readme_requests.py). Endpoints whose
dependencies are absent here (torch and other GPU or heavy stacks are never installed for tests), and
requests whose handler needs an absent module or a GPU, are skipped with the reason. Run with
`tox -e stress`; the default suite deploys a representative few (tests/pipeline/test_import_corpus.py).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.stress
REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("readme_requests", REPO / "tests" / "corpus" / "readme_requests.py")
assert _spec is not None and _spec.loader is not None
corpus = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("readme_requests", corpus)
_spec.loader.exec_module(corpus)


@pytest.mark.parametrize("example", corpus.EXAMPLES)
def test_every_example_serves_its_readme_requests_locally(tmp_path: Path, flash, example: str) -> None:
    skipped, answered = corpus.deploy_and_ask(example, tmp_path, flash, pytest.skip)
    assert answered
    for reason in skipped:  # shown with -rP: what could not run here, and why
        print(f"{example}: skipped {reason}")
