"""`body_keys = true`: a handler's parameters bind from the JSON body's top-level keys even when it
has one (runpod-flash's convention, which `flash import` keeps): flash.toml to the served answer."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

from flash_pipeline.builder.output import build
from flash_pipeline.config.validate import validate_file

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "tests" / "apps" / "body_keys"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("body-keys")
    shutil.copytree(APP, root, dirs_exist_ok=True)
    return build(validate_file(root / "flash.toml")).out_dir


def test_the_route_setting_wins_over_the_endpoint_one() -> None:
    project = validate_file(APP / "flash.toml")
    flags = {(e.key, r.path): r.body_keys for e in project.endpoints for r in e.routes}
    assert flags == {
        ("api", "/compute"): True,
        ("api", "/process"): True,
        ("api", "/whole"): False,
        ("api", "/upload"): True,
        ("api", "/count"): True,
        ("plain", "/process"): False,
        ("plain", "/compute"): True,
    }


def test_the_worker_file_carries_it_only_where_set(built: Path) -> None:
    worker = (built / "api" / "flash_worker.py").read_text()
    assert "('POST', '/compute', 'handlers:compute', None, {'body_keys': True})," in worker
    assert "('POST', '/whole', 'handlers:whole')," in worker


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("body_keys = 1", "endpoints.api.body_keys"),
        ('"POST /c" = { handler = "handlers:compute", body_key = true }', 'hint: did you mean "body_keys"?'),
    ],
)
def test_a_wrong_value_is_a_diagnostic_at_its_line(tmp_path: Path, flash, text: str, message: str) -> None:
    config = (APP / "flash.toml").read_text().replace("body_keys = true\n", "", 1)
    if text.startswith("body_keys"):
        config = config.replace('cpu = "cpu3c-2-4"\n', f'cpu = "cpu3c-2-4"\n{text}\n', 1)
    else:
        config = config.replace('"POST /process" = "handlers:process"\n', f"{text}\n", 1)
    shutil.copy(APP / "handlers.py", tmp_path)
    (tmp_path / "flash.toml").write_text(config)
    result = flash("validate", cwd=tmp_path)
    assert result.code == 2 and message in result.out, result.out
    line = next(n for n, written in enumerate(config.splitlines(), 1) if written == text)
    assert f"flash.toml:{line}:" in result.out


def test_one_parameter_binds_from_its_key_and_the_document_says_so(built: Path, start_worker) -> None:
    url = start_worker(built / "api").url
    assert requests.post(url + "/compute", json={"numbers": [1, 2, 3]}).json() == {"sum_of_squares": 14}
    assert requests.post(url + "/process", json={"data": {"a": 1}}).json() == {"result": {"a": 1}}
    assert requests.post(url + "/whole", json={"a": 1}).json() == {"whole": {"a": 1}}
    wrong = requests.post(url + "/compute", json=[1, 2, 3])
    assert (wrong.status_code, wrong.json()["error"]) == (
        422,
        "expected a JSON object as the request body (its keys are the arguments)",
    )
    missing = requests.post(url + "/process", json={"a": 1})
    assert missing.status_code == 422
    assert missing.json()["problems"] == [
        {"path": "a", "message": "unexpected field"},
        {"path": "data", "message": "field required"},
    ]
    sent = requests.post(url + "/upload", files={"file": ("f.bin", b"abc")}, data={"label": "y"})
    assert sent.json() == {"size": 3, "label": "y"}
    document = requests.get(url + "/openapi.json").json()
    compute = document["paths"]["/compute"]["post"]
    assert compute["x-flash-body-keys"] is True
    schema = compute["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["numbers"] and set(schema["properties"]) == {"numbers"}
    assert "x-flash-body-keys" not in document["paths"]["/whole"]["post"]
    # a GET route has no body: its parameters stay query parameters, and the document says nothing of body keys
    assert requests.get(url + "/count", params={"limit": "5"}).json() == {"limit": 5}
    assert "x-flash-body-keys" not in document["paths"]["/count"]["get"]


def test_without_it_one_parameter_still_takes_the_whole_body(built: Path, start_worker) -> None:
    url = start_worker(built / "plain").url
    assert requests.post(url + "/process", json={"a": 1}).json() == {"result": {"a": 1}}
    assert requests.post(url + "/compute", json={"numbers": [2]}).json() == {"sum_of_squares": 4}
