"""The requests each flash-examples README (or its `__main__` test payload) documents, and the answer
fields that must match, for the examples imported with `flash import --queue-workers --rewrite`.

A queue-based worker's request changes as the import note says: the README's job input becomes the
body of POST /<function>, under the function's parameter name (`{"input_data": {...}}`), since
runpod-flash called `f(**job["input"])`. Load-balanced routes take the README's body unchanged.
Stable fields only: timestamps, timings and platform facts are not compared.

Loaded by tests/pipeline/test_import_corpus.py (a representative few deployed) and
tests/stress/test_import_corpus_deploy.py (every example) with importlib, from this path.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "flash-examples"
EXAMPLES = sorted(str(p.parent.relative_to(CORPUS)) for p in CORPUS.glob("*/*/README.md"))


@dataclass(frozen=True)
class Request:
    endpoint: str  # the key flash import gives it
    method: str
    path: str
    body: Any
    expected: dict[str, Any]  # fields of the answer that must be exactly these
    needs: tuple[str, ...] = ()  # modules the handler imports that may be absent here (GPU libraries)


R = Request
REQUESTS: dict[str, list[Request]] = {
    "01_getting_started/01_hello_world": [
        R(
            "gpu-worker",
            "POST",
            "/gpu_hello",
            {"input_data": {"message": "Hello GPU!"}},
            {"status": "success", "message": "Hello GPU!", "worker_type": "GPU"},
            ("torch", "cuda"),
        ),
    ],
    "01_getting_started/02_cpu_worker": [
        R(
            "cpu-worker",
            "POST",
            "/cpu_hello",
            {"input_data": {"name": "Flash User"}},
            {"status": "success", "message": "Hello, Flash User!", "worker_type": "CPU"},
        ),
    ],
    "01_getting_started/03_mixed_workers": [
        R(
            "classify-pipeline",
            "POST",
            "/classify",
            {"text": "This product is amazing! I love it!"},
            {"status": "success", "worker_type": "CPU Postprocessing"},
            ("torch",),
        ),
        R(
            "mixed-workers-cpu",
            "POST",
            "/preprocess_text",
            {"input_data": {"text": "Test message"}},
            {"status": "success", "cleaned_text": "Test message", "word_count": 2, "worker_type": "CPU Preprocessing"},
        ),
        R(
            "mixed-inference",
            "POST",
            "/gpu_inference",
            {"input_data": {"cleaned_text": "Test message", "word_count": 2}},
            {"status": "success", "worker_type": "GPU Inference"},
            ("torch",),
        ),
    ],
    "01_getting_started/04_dependencies": [
        R(
            "deps-minimal",
            "POST",
            "/minimal_process",
            {"input_data": {"text": "Hello World 123"}},
            {"status": "success", "message": "No external dependencies needed!"},
        ),
        R(
            "deps-cpu-numpy",
            "POST",
            "/cpu_statistics",
            {"input_data": {"values": [10, 20, 30, 40, 50]}},
            {"status": "success", "worker_type": "CPU", "count": 5, "mean": 30.0, "median": 30.0},
        ),
        R(
            "deps-gpu-numpy",
            "POST",
            "/gpu_matrix_multiply",
            {"input_data": {"size": 50}},
            {"status": "success", "matrix_size": 50, "result_shape": [50, 50]},
        ),
        R(
            "deps-data",
            "POST",
            "/process_data",
            {"input_data": {"data": [[1, 2], [3, 4], [5, 6]]}},
            {
                "status": "success",
                "stats": {"mean": {"A": 3.0, "B": 4.0}, "std": {"A": 2.0, "B": 2.0}, "sum": {"A": 9, "B": 12}},
            },
        ),
        R("deps-ml", "POST", "/process_with_ml_libs", {"payload": {}}, {"status": "success", "payload_keys": []}),
        R("deps-system", "POST", "/process_with_system_deps", {"payload": {}}, {"status": "success"}),
    ],
    "02_ml_inference/01_text_to_speech": [
        R(
            "text-to-speech-gpu",
            "POST",
            "/get_voices",
            {"input_data": {}},
            {
                "status": "success",
                "languages": [
                    "Chinese",
                    "English",
                    "Japanese",
                    "Korean",
                    "German",
                    "French",
                    "Russian",
                    "Portuguese",
                    "Spanish",
                    "Italian",
                    "Auto",
                ],
            },
        ),
    ],
    "03_advanced_workers/05_load_balancer": [
        R("load-balancer-cpu", "GET", "/health", None, {"status": "healthy", "service": "cpu"}),
        R(
            "load-balancer-cpu",
            "POST",
            "/validate",
            {"text": "Hello world from load balancer"},
            {"status": "success", "is_valid": True, "character_count": 30, "word_count": 5, "average_word_length": 6.0},
        ),
        R(
            "load-balancer-cpu",
            "POST",
            "/transform",
            {"text": "hello world", "operation": "uppercase"},
            {"status": "success", "original": "hello world", "transformed": "HELLO WORLD", "operation": "uppercase"},
        ),
        R("load-balancer-gpu", "GET", "/health", None, {"status": "healthy", "service": "gpu"}),
        R(
            "load-balancer-gpu",
            "POST",
            "/compute",
            {"numbers": [1, 2, 3, 4, 5]},
            {"status": "success", "input_count": 5, "sum_of_squares": 55, "mean": 3.0, "max": 5, "min": 1},
        ),
    ],
    "04_scaling_performance/01_autoscaling": [
        R(
            "cpu-scale-to-zero",
            "POST",
            "/cpu_scale_to_zero",
            {"payload": {"text": "Hello autoscaling"}},
            {"status": "success", "strategy": "cpu_scale_to_zero"},
        ),
        R(
            "cpu-burst-ready",
            "POST",
            "/cpu_burst_ready",
            {"payload": {"text": "Hello autoscaling"}},
            {"status": "success", "strategy": "cpu_burst_ready"},
        ),
        R(
            "scale-to-zero",
            "POST",
            "/scale_to_zero_inference",
            {"payload": {"matrix_size": 512}},
            {"status": "success", "strategy": "scale_to_zero"},
            ("torch",),
        ),
    ],
    "04_scaling_performance/02_datacenters": [
        R(
            "cpu-eu",
            "POST",
            "/process",
            {"data": {"text": "hello"}},
            {"datacenter": "EU-RO-1", "result": {"text": "hello"}},
        ),
        R("cpu-eu", "GET", "/health", None, {"status": "ok"}),
        R(
            "gpu-us",
            "POST",
            "/us_inference",
            {"payload": {"prompt": "hello"}},
            {"datacenter": "US-GA-2", "result": {"prompt": "hello"}},
        ),
        R(
            "gpu-multi",
            "POST",
            "/multi_dc_inference",
            {"payload": {"prompt": "hello"}},
            {"result": {"prompt": "hello"}},
        ),
    ],
    "05_data_workflows/01_network_volumes": [
        R("cpu-worker", "GET", "/images", None, {"status": "success", "images": []}),
        R(
            "cpu-worker",
            "GET",
            "/images/sd_generated_20240101_120000.png",
            None,
            {"status": "error", "error": "file not found"},
        ),
    ],
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def missing_module(name: str) -> str | None:
    """Why a handler's module cannot run here (None: it can). `cuda` asks for a GPU torch sees."""
    if name == "cuda":
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed"
        import torch  # only where present

        return None if torch.cuda.is_available() else "no GPU that torch sees"
    return None if importlib.util.find_spec(name) is not None else f"{name} is not installed"


def flash_package() -> str:
    """The name flash's own package is installed under."""
    from flash_pipeline.cli import main

    return main.__module__.split(".")[0]


def missing_dependency(requirements: list[str]) -> str | None:
    for requirement in requirements:
        match = _NAME.match(requirement)
        try:
            importlib.metadata.distribution(match.group(0) if match else requirement)
        except importlib.metadata.PackageNotFoundError:
            return (
                f"its dependency {requirement} is not installed (a GPU library or heavy stack: not installed for tests)"
            )
    return None


def deploy_and_ask(
    example: str, tmp: Path, flash: Callable[..., Any], skip: Callable[[str], Any]
) -> tuple[list[str], list[Request]]:
    """Import (--queue-workers --rewrite), drop the endpoints whose dependencies are absent here, validate,
    deploy on the local target, send each README request that can run here and check its answer.
    Returns (what was skipped and why, the requests that were answered)."""
    import requests
    import tomlkit

    project = tmp / example.replace("/", "_")
    shutil.copytree(CORPUS / example, project)
    imported = flash("import", "--queue-workers", "--rewrite", cwd=project)
    assert imported.code == 0, imported.err
    config = tomlkit.parse((project / "flash.toml").read_text())
    skipped: list[str] = []
    for key in list(config["endpoints"]):
        why = missing_dependency(list(config["endpoints"][key].get("dependencies", [])))
        if why:
            skipped.append(f"endpoint {key}: {why}")
            del config["endpoints"][key]
    cases = []
    for case in REQUESTS[example]:
        why = next(filter(None, map(missing_module, case.needs)), None)
        if case.endpoint not in config["endpoints"]:
            skipped.append(f"{case.method} {case.path}: endpoint {case.endpoint} not deployed here")
        elif why:
            skipped.append(f"{case.method} {case.path}: {why}")
        else:
            cases.append(case)
    package = flash_package()
    if (project / f"{package}.py").exists():  # `python -m {package}...` in the project's folder finds it first
        skip(f"{example}: its {package}.py shadows flash's own package {package!r} for the local supervisor")
    if not cases:
        skip(f"{example}: nothing can run here: " + "; ".join(skipped))
    (project / "flash.toml").write_text(tomlkit.dumps(config))
    checked = flash("validate", cwd=project)
    assert checked.code == 0, checked.out
    deployed = flash("deploy", "--target", "local", "--detach", cwd=project)
    assert deployed.code == 0, deployed.err
    try:
        status = json.loads(flash("status", "--target", "local", "--format", "json", cwd=project).out)["apps"][0]
        urls = {key: value["url"] for key, value in status["endpoints"].items()}
        for case in cases:
            answer = requests.request(case.method, urls[case.endpoint] + case.path, json=case.body, timeout=60)
            assert answer.status_code == 200, (case, answer.text)
            got = answer.json()
            assert {k: got.get(k) for k in case.expected} == case.expected, (case, got)
    finally:
        assert flash("destroy", "--target", "local", "--yes", cwd=project).code == 0
    return skipped, cases
