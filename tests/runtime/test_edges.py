"""The worker's edge cases over real HTTP (tests/apps/io, typed/edges.py): bodies it cannot read
are 400s that say why (and log no traceback), answers are always valid JSON, blank query values
are empty strings, a BOM is ignored on every route kind, one unreadable form field is a 422 naming
it, and the OpenAPI document places `(value, status)` answers by status. Then a property: whatever
the body and query, the answer is a 2xx or a 4xx with a JSON error, never a 500."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
NESTED = "request body is not accepted: its JSON is nested too deeply"
DIGITS = f"request body is not accepted: a number has more than {sys.get_int_max_str_digits()} digits"
BOM = b"\xef\xbb\xbf"
ORDER = {"customer": "ada", "items": [{"sku": "a", "qty": 2}]}
# one route of each kind, a body each accepts, and its answer
KINDS = {
    "/dict": ({"a": [1, 2]}, {"echo": {"a": [1, 2]}}),  # whole body, a dict
    "/generate": ({"prompt": "hi"}, {"prompt": "hi", "max_tokens": 128, "temperature": 0.7, "stream": False}),
    "/model": (ORDER, {"customer": "ada", "total_qty": 2}),  # a pydantic model, parsed by pydantic
    "/dataclass": ({"x": 1, "y": 2}, {"type": "Point", "sum": 3, "label": "origin", "tags": []}),
    "/typeddict": ({"text": "a", "limit": 1}, {"text": "A", "limit": 1}),
}


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory, worker_type: type) -> Any:
    from flash_pipeline.builder.output import build
    from flash_pipeline.config.validate import validate_file

    root = tmp_path_factory.mktemp("io-edges")
    shutil.copytree(REPO / "tests" / "apps" / "io", root, dirs_exist_ok=True)
    started = worker_type(build(validate_file(root / "flash.toml")).out_dir / "io")
    started.wait_listening()
    started.wait_ready()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def url(worker: Any) -> str:
    return str(worker.url)


def _post(url: str, data: bytes, **headers: str) -> requests.Response:
    return requests.post(url, data=data, headers={"Content-Type": "application/json", "X-Request-ID": "r1", **headers})


def _strict_json(text: str) -> Any:
    """JSON as browsers' JSON.parse reads it: NaN and Infinity are not JSON."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in an answer is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("path", list(KINDS))
def test_json_nested_100000_deep_is_a_400_saying_so_with_no_traceback(worker: Any, url: str, path: str) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    for body in (deep, b'{"prompt": ' + deep + b"}"):
        answer = _post(url + path, body)
        assert (answer.status_code, answer.json()) == (400, {"error": NESTED, "request_id": "r1"})
    assert "Traceback" not in worker.output() and "unhandled error" not in worker.output()


def test_a_model_route_refuses_nesting_past_pydantics_limit_in_the_same_words(url: str) -> None:
    """pydantic's parser stops at 200 levels where the standard parser reads on: the same reason."""
    answer = _post(url + "/model", b'{"customer": ' + b"[" * 300 + b"]" * 300 + b"}")
    assert (answer.status_code, answer.json()) == (400, {"error": NESTED, "request_id": "r1"})


@pytest.mark.parametrize("path", list(KINDS))
def test_a_5000_digit_number_is_a_400_naming_the_digit_limit(worker: Any, url: str, path: str) -> None:
    answer = _post(url + path, b'{"prompt": ' + b"7" * 5000 + b"}")
    assert (answer.status_code, answer.json()) == (400, {"error": DIGITS, "request_id": "r1"})
    assert "Traceback" not in worker.output()


def test_a_number_under_the_digit_limit_is_accepted(url: str) -> None:
    big = int("9" * 4000)
    answer = _post(url + "/dict", b'{"n": ' + str(big).encode() + b"}")
    assert (answer.status_code, answer.json()) == (200, {"echo": {"n": big}})


def test_an_integer_past_a_floats_range_is_a_422_where_a_float_is_wanted(url: str) -> None:
    huge = b"1" + b"0" * 400
    keyword = _post(url + "/generate", b'{"prompt": "p", "temperature": ' + huge + b"}")
    dataclass = _post(url + "/dataclass", b'{"x": ' + huge + b', "y": 1}')
    assert [(a.status_code, a.json()["problems"]) for a in (keyword, dataclass)] == [
        (422, [{"path": "temperature", "message": "must be a number within a float's range"}]),
        (422, [{"path": "x", "message": "must be a number within a float's range"}]),
    ]


def test_a_query_number_past_the_digit_limit_is_a_422_naming_the_limit(url: str) -> None:
    answer = requests.get(url + "/search?q=a&page=" + "7" * 5000, headers={"X-Request-ID": "r1"})
    assert (answer.status_code, answer.json()) == (
        422,
        {
            "error": f"argument 'page': expected int of at most {sys.get_int_max_str_digits()} digits",
            "request_id": "r1",
        },
    )


@pytest.mark.parametrize("path", list(KINDS))
def test_a_body_that_is_not_utf8_is_a_400_saying_where(url: str, path: str) -> None:
    answer = _post(url + path, b'{"a": "\xff"}')
    assert (answer.status_code, answer.json()) == (
        400,
        {"error": "request body is not valid JSON (not UTF-8 at byte 7)", "request_id": "r1"},
    )


@pytest.mark.parametrize("path", list(KINDS))
def test_a_bom_is_ignored_alike_on_every_route_kind(url: str, path: str) -> None:
    body, expected = KINDS[path]
    answer = _post(url + path, BOM + json.dumps(body).encode())
    assert (answer.status_code, answer.json()) == (200, expected)
    broken = _post(url + path, BOM + b'{"customer": ')
    assert (broken.status_code, broken.json()) == (
        400,
        {"error": "request body is not valid JSON (line 1, column 14)", "request_id": "r1"},
    )
    utf16 = _post(url + path, json.dumps(body).encode("utf-16"))  # JSON between systems is UTF-8
    assert (utf16.status_code, utf16.json()["error"]) == (400, "request body is not valid JSON (not UTF-8 at byte 0)")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/non-finite", {"inf": None, "minus_inf": None, "nan": None, "nested": [1.5, [None]], "ok": 2.5}),
        ("/non-finite-pair", [None, 1.0]),
        ("/non-finite-dataclass", {"value": None, "unit": "C"}),
        ("/non-finite-model", {"value": None}),
        ("/non-finite-float", None),
    ],
)
def test_non_finite_floats_in_an_answer_are_null(url: str, path: str, expected: Any) -> None:
    answer = requests.get(url + path)
    assert answer.status_code == (201 if path == "/non-finite-pair" else 200)
    assert answer.headers["Content-Type"] == "application/json"
    assert _strict_json(answer.text) == expected


def test_non_finite_floats_in_a_stream_are_null(url: str) -> None:
    with requests.get(url + "/non-finite-stream", stream=True) as answer:
        body = b"".join(answer.iter_content(chunk_size=None)).decode()
    assert body == 'data: {"value":null}\n\ndata: {"value":1.0}\n\n'


def test_a_blank_query_value_binds_as_an_empty_string(url: str) -> None:
    assert requests.get(url + "/search?q=").json() == {"q": "", "page": 1}
    assert requests.get(url + "/search?q").json() == {"q": "", "page": 1}
    blank_int = requests.get(url + "/search?q=a&page=", headers={"X-Request-ID": "r1"})
    assert (blank_int.status_code, blank_int.json()) == (
        422,
        {"error": "argument 'page': expected int, got ''", "request_id": "r1"},
    )
    missing = requests.get(url + "/search", headers={"X-Request-ID": "r1"})
    assert (missing.status_code, missing.json()) == (422, {"error": "missing query parameter 'q'", "request_id": "r1"})


def test_one_form_field_that_is_not_utf8_is_a_422_naming_it(url: str) -> None:
    files = {"audio": ("a.wav", b"RIFF"), "meta": ("m.txt", b"m", "text/plain")}
    bad = requests.post(
        url + "/upload",
        files={**files, "language": (None, b"fr\xff")},
        data={"speed": "2"},
        headers={"X-Request-ID": "r1"},
    )
    assert (bad.status_code, bad.json()) == (
        422,
        {
            "error": "the request does not fit the handler's arguments",
            "problems": [{"path": "language", "message": "form field is not utf-8 text"}],
            "request_id": "r1",
        },
    )
    latin = requests.post(
        url + "/upload", files={**files, "language": (None, b"fr\xe9", "text/plain; charset=latin-1")}
    )
    assert latin.json() == {"audio": 4, "meta": ["m.txt", "text/plain", "m"], "language": "fré", "speed": 1.0}


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("multipart/form-data", b"--x\r\n\r\n--x--", "multipart/form-data request without a boundary in its Content-Type"),
        ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="a"\r\n', "multipart part 1 has no blank line after its headers"),
        ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n', "multipart body ends without its closing boundary"),
        ("multipart/form-data; boundary=x", b"--x\r\nno colon\r\n\r\n1\r\n--x--", "multipart part 1 has a header line without a colon: 'no colon'"),
    ],
)  # fmt: skip
def test_a_multipart_body_that_cannot_be_split_is_a_400_saying_why(
    url: str, content_type: str, body: bytes, reason: str
) -> None:
    answer = _post(url + "/upload", body, **{"Content-Type": content_type})
    assert (answer.status_code, answer.json()) == (400, {"error": reason, "request_id": "r1"})


def test_the_openapi_document_places_status_pairs_by_status_and_lists_400_on_body_routes(url: str) -> None:
    from openapi_spec_validator import validate

    document = requests.get(url + "/openapi.json").json()
    validate(document)
    paths = document["paths"]

    def answers(path: str, method: str = "get") -> dict[str, Any]:
        return {
            status: next(iter(answer["content"].values()))["schema"]
            for status, answer in paths[path][method]["responses"].items()
            if status not in ("400", "422", "500")
        }

    receipt, problem = {"$ref": "#/components/schemas/Receipt"}, {"$ref": "#/components/schemas/Problem"}
    assert answers("/created", "post") == {"201": receipt}
    assert answers("/found/{name}") == {"200": receipt, "404": problem}
    assert answers("/any-status") == {"default": {"type": "object"}}
    assert answers("/bare-tuple") == {"default": {}}
    assert answers("/data-tuple") == {
        "200": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "minItems": 2, "maxItems": 2}
    }
    assert answers("/non-finite-pair") == {"201": {"type": "array", "items": {"type": "number"}}}
    for path, method in (("/dict", "post"), ("/model", "post"), ("/generate", "post"), ("/upload", "post")):
        assert list(paths[path][method]["responses"]) == ["200", "400", "422", "500"], path
        assert paths[path][method]["responses"]["400"] == {
            "description": "the request body cannot be read",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    assert "400" not in paths["/bytes"]["post"]["responses"]  # raw bytes: nothing to read wrong
    # what the document says is what the handlers answer
    created = requests.post(url + "/created", json="ada")  # one parameter: the whole body
    assert (created.status_code, created.json()) == (201, {"customer": "ada", "total_qty": 0})
    missing = requests.get(url + "/found/bob")
    assert (missing.status_code, missing.json()) == (404, {"detail": "no order for bob"})
    assert requests.get(url + "/any-status?code=418").status_code == 418
    assert "400" not in paths["/search"]["get"]["responses"]


# --- the property: whatever arrives, a 2xx or a 4xx with a JSON error ---

_NAMES = st.sampled_from(
    ["prompt", "max_tokens", "x", "y", "text", "limit", "customer", "items", "name", "values", "q"]
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_NAMES | st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
_BODIES = st.one_of(
    _JSON.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(_NAMES, _JSON, max_size=5).map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
    st.tuples(st.sampled_from([b"", BOM, b" "]), _JSON).map(lambda p: p[0] + json.dumps(p[1]).encode()),
    # nested: under and over pydantic's 200 levels and the parsers' ~1000 (an answer nested past
    # ~1000 levels cannot be written: an echo of 1000 to 1024 levels is the handler's 500)
    st.sampled_from([1, 199, 201, 900, 1025, 5000]).map(lambda n: b"[" * n + b"]" * n),
)
_PART = st.tuples(
    _NAMES | st.sampled_from(["audio", "language"]) | st.text(max_size=4),
    st.none() | st.text(max_size=5),  # a filename: a file part
    st.none() | st.sampled_from(["text/plain", "text/plain; charset=latin-1", "text/plain; charset=nope", "audio/wav"]),
    st.binary(max_size=12) | st.text(max_size=6).map(str.encode),
)


def _multipart(parts: list[tuple[str, str | None, str | None, bytes]], closed: bool) -> bytes:
    out = b""
    for name, filename, kind, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        head = f"Content-Disposition: {disposition}\r\n" + (f"Content-Type: {kind}\r\n" if kind else "")
        out += b"--b\r\n" + head.encode() + b"\r\n" + data + b"\r\n"
    return out + (b"--b--\r\n" if closed else b"")


_BODIES = st.one_of(
    _BODIES,
    st.builds(_multipart, st.lists(_PART, max_size=4), st.booleans()),
)
_QUERY = st.lists(
    st.tuples(_NAMES | st.text(max_size=4), st.text(max_size=6) | st.integers().map(str) | st.just("7" * 5000)),
    max_size=4,
).map(lambda pairs: "&".join(f"{quote(k)}={quote(v)}" if v or len(k) % 2 else quote(k) for k, v in pairs))
_ROUTES = ["/dict", "/generate", "/generate-sync", "/model", "/dataclass", "/typeddict", "/with-list", "/extra"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    route=st.sampled_from([*_ROUTES, "/upload-sync", "GET /search", "GET /items/"]),
    body=_BODIES,
    query=_QUERY,
    content_type=st.sampled_from(["application/json", "text/plain", "multipart/form-data; boundary=b", ""]),
    item=st.text(min_size=1, max_size=6),
)
def test_any_body_and_query_give_a_2xx_or_a_4xx_with_a_json_error(
    url: str, route: str, body: bytes, query: str, content_type: str, item: str
) -> None:
    method, _, path = route.rpartition(" ")
    if path == "/items/":
        path += quote(item, safe="")
    headers = {"Content-Type": content_type} if content_type else {}
    answer = requests.request(method or "POST", f"{url}{path}?{query}", data=body, headers=headers)
    assert answer.status_code < 500, (answer.status_code, answer.text)
    if answer.status_code >= 400:
        assert isinstance(_strict_json(answer.text)["error"], str)
    elif answer.headers["Content-Type"] == "application/json":
        _strict_json(answer.text)
