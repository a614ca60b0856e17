"""Worker I/O over real HTTP: typed bodies, keyword bodies, bytes, multipart, typed and binary
answers, sync-generator streaming (tests/apps/io, one route per row of the binding table)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def io_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    root = tmp_path_factory.mktemp("io-app")
    shutil.copytree(REPO / "tests" / "apps" / "io", root, dirs_exist_ok=True)
    return build(validate_file(root / "flash.toml")).out_dir / "io"


@pytest.fixture(scope="module")
def url(io_build: Path, worker_type: type) -> str:
    worker = worker_type(io_build)
    worker.wait_listening()
    worker.wait_ready()
    yield worker.url
    worker.stop()


def _problems(answer: requests.Response) -> tuple[int, str, list[dict]]:
    body = answer.json()
    return answer.status_code, body["error"], body.get("problems", [])


@pytest.mark.parametrize("path", ["/model", "/model-sync"])
def test_a_pydantic_model_body_is_validated_and_its_answer_is_json(url: str, path: str) -> None:
    order = {"customer": "ada", "items": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]}
    assert requests.post(url + path, json=order).json() == {"customer": "ada", "total_qty": 3}
    bad = requests.post(url + path, json={"items": [{"sku": "a", "qty": 0}, {"qty": "x"}]})
    assert _problems(bad) == (
        422,
        "argument 'order': the request body does not fit Order",
        [
            {"path": "customer", "message": "Field required"},
            {"path": "items.0.qty", "message": "Input should be greater than 0"},
            {"path": "items.1.sku", "message": "Field required"},
            {"path": "items.1.qty", "message": "Input should be a valid integer, unable to parse string as an integer"},
        ],
    )
    not_json = requests.post(url + path, data=b'{"customer": ', headers={"Content-Type": "application/json"})
    assert (not_json.status_code, not_json.json()["error"]) == (
        400,
        "request body is not valid JSON (line 1, column 14)",
    )


def test_a_dataclass_body_is_built_and_checked(url: str) -> None:
    assert requests.post(url + "/dataclass", json={"x": 1, "y": 2.5}).json() == {
        "type": "Point", "sum": 3.5, "label": "origin", "tags": [],
    }  # fmt: skip
    swapped = requests.post(url + "/dataclass-sync", json={"x": 1, "y": 2, "tags": ["a"]})
    assert swapped.json() == {"x": 2, "y": 1.0, "label": "origin", "tags": ["a"]}
    bad = requests.post(url + "/dataclass", json={"x": "one", "tags": [1], "z": 0})
    assert _problems(bad) == (
        422,
        "argument 'point': the request body does not fit Point",
        [
            {"path": "y", "message": "field required"},
            {"path": "x", "message": "must be a number"},
            {"path": "tags.0", "message": "must be a string"},
            {"path": "z", "message": "unexpected field"},
        ],
    )


def test_a_typeddict_body(url: str) -> None:
    assert requests.post(url + "/typeddict", json={"text": "hi", "limit": 2}).json() == {"text": "HI", "limit": 2}
    assert _problems(requests.post(url + "/typeddict", json={"text": "hi"}))[2] == [
        {"path": "limit", "message": "field required"}
    ]


@pytest.mark.parametrize("path", ["/generate", "/generate-sync"])
def test_a_keyword_body_spreads_onto_the_arguments(url: str, path: str) -> None:
    answer = requests.post(url + path, json={"prompt": "hi", "max_tokens": 16})
    assert answer.json() == {"prompt": "hi", "max_tokens": 16, "temperature": 0.7} | (
        {"stream": False} if path == "/generate" else {}
    )
    converted = requests.post(url + path, json={"prompt": "hi", "temperature": 1})
    assert converted.json()["temperature"] == 1.0 and isinstance(converted.json()["temperature"], float)
    bad = requests.post(url + path, json={"max_tokens": "many", "top_k": 5})
    assert _problems(bad) == (
        422,
        "the request does not fit the handler's arguments",
        [
            {"path": "top_k", "message": "unexpected field"},
            {"path": "prompt", "message": "field required"},
            {"path": "max_tokens", "message": "must be an integer"},
        ],
    )
    assert _problems(requests.post(url + path, json=["hi"]))[:2] == (
        422,
        "expected a JSON object as the request body (its keys are the arguments)",
    )


def test_a_list_argument_is_a_key_of_a_keyword_body(url: str) -> None:
    answer = requests.post(url + "/with-list", json={"name": "n", "values": [1, 2.0]})
    assert _problems(answer)[2] == [{"path": "values.1", "message": "must be an integer"}]
    answer = requests.post(url + "/with-list", json={"name": "n", "values": [1, 2]})
    assert answer.json() == {"name": "n", "values": [1, 2], "flag": False}


def test_unexpected_keys_go_to_kwargs_when_the_handler_takes_them(url: str) -> None:
    answer = requests.post(url + "/extra", json={"prompt": "p", "seed": 7})
    assert answer.json() == {"prompt": "p", "n": 1, "options": {"seed": 7}}


@pytest.mark.parametrize("path", ["/bytes", "/bytes-sync"])
def test_a_bytes_parameter_receives_the_raw_body(url: str, path: str) -> None:
    audio = bytes(range(256)) * 4
    answer = requests.post(url + path, data=audio, headers={"Content-Type": "audio/wav"})
    assert answer.json() == {"size": 1024, "head": "00010203"}


def test_multipart_files_and_fields(url: str) -> None:
    files = {
        "audio": ("a.wav", b"RIFF" + b"\0" * 60, "audio/wav"),
        "meta": ("meta.txt", b"about", "text/plain"),
    }
    answer = requests.post(url + "/upload", files=files, data={"language": "fr", "speed": "1.5"})
    assert answer.json() == {"audio": 64, "meta": ["meta.txt", "text/plain", "about"], "language": "fr", "speed": 1.5}
    sync = requests.post(url + "/upload-sync", files={"audio": ("a.wav", b"1234")})
    assert sync.json() == {"audio": 4, "language": "en"}
    missing = requests.post(url + "/upload", files={"other": ("x", b"1")}, data={"speed": "fast"})
    assert _problems(missing)[2] == [
        {"path": "audio", "message": "file part required (multipart/form-data)"},
        {"path": "meta", "message": "file part required (multipart/form-data)"},
        {"path": "speed", "message": "argument 'speed': expected float, got 'fast'"},
    ]


def test_a_dict_body_is_unchanged(url: str) -> None:
    assert requests.post(url + "/dict", json={"prompt": "x", "any": [1]}).json() == {
        "echo": {"prompt": "x", "any": [1]}
    }


def test_typed_and_binary_answers(url: str) -> None:
    assert requests.get(url + "/model-answer").json() == {"customer": "ada", "total_qty": 3}
    assert requests.get(url + "/dataclass-answer").json() == [
        {"x": 1, "y": 2, "label": "origin", "tags": []},
        {"x": 3, "y": 4, "label": "b", "tags": ["t"]},
    ]
    raw = requests.get(url + "/bytes-answer")
    assert (raw.headers["Content-Type"], raw.content) == ("application/octet-stream", b"\x00\x01binary")
    png = requests.get(url + "/png")
    assert (png.headers["Content-Type"], png.content) == ("image/png", b"\x89PNG\r\n")


def test_a_sync_generator_streams(url: str) -> None:
    with requests.get(url + "/count", params={"n": "3"}, stream=True) as answer:
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        body = b"".join(answer.iter_content(chunk_size=None)).decode()
    assert body == 'data: {"i":0}\n\ndata: {"i":1}\n\ndata: {"i":2}\n\n'


def test_get_routes_keep_query_binding(url: str) -> None:
    assert requests.get(url + "/items/4", params={"verbose": "yes"}).json() == {"item_id": 4, "verbose": True}


def test_runpod_flash_handlers_answer_as_they_did_there(url: str) -> None:
    """The requests runpod-flash's load-balancer examples send, and the answers they document."""
    assert requests.post(url + "/process", json={"text": "hi", "n": 2}).json() == {
        "status": "success", "echo": {"text": "hi", "n": 2},
    }  # fmt: skip
    assert requests.get(url + "/health").json() == {"status": "healthy"}
    generated = requests.post(url + "/generate-text", json={"prompt": "hello world", "max_tokens": 5})
    assert generated.json() == {"text": "hello", "max_tokens": 5, "temperature": 0.8}
    assert requests.post(url + "/transcribe", data=b"\0" * 4096).json() == {"bytes": 4096}


def test_the_openapi_document_is_valid_and_describes_each_route(url: str) -> None:
    from openapi_spec_validator import validate

    document = requests.get(url + "/openapi.json").json()
    validate(document)
    paths, schemas = document["paths"], document["components"]["schemas"]
    assert paths["/model"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Order"
    }
    assert schemas["Line"]["properties"]["qty"] == {"exclusiveMinimum": 0, "title": "Qty", "type": "integer"}
    keyword = paths["/generate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert (keyword["required"], keyword["properties"]["max_tokens"]) == (
        ["prompt"],
        {"type": "integer", "default": 128},
    )
    upload = paths["/upload"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["properties"]["audio"] == {"type": "string", "format": "binary"}
    assert upload["required"] == ["audio", "meta"]
    assert schemas["Point"]["required"] == ["x", "y"]
    item = paths["/items/{item_id}"]["get"]["parameters"]
    assert item == [
        {"name": "item_id", "in": "path", "required": True, "schema": {"type": "integer"}},
        {"name": "verbose", "in": "query", "required": False, "schema": {"type": "boolean", "default": False}},
    ]
    assert "text/event-stream" in paths["/count"]["get"]["responses"]["200"]["content"]
    assert "application/octet-stream" in paths["/bytes-answer"]["get"]["responses"]["200"]["content"]
    assert paths["/process"]["post"]["summary"] == "Process input data on a load-balanced CPU endpoint."
