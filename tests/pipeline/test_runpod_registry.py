"""A deploy never sends RunPod a tag its registry lacks; how flash asks a registry (real HTTP, loopback)."""

from __future__ import annotations

import base64
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "emulator"))
from fake_registry import FakeRegistry  # noqa: E402

from flash_pipeline.builder.registry import Reference, exists, parse  # noqa: E402


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    with FakeRegistry() as fake:
        yield fake


@pytest.fixture
def project(tmp_path: Path, registry: FakeRegistry) -> Path:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    config = (REPO / "flash.toml.example").read_text()
    (tmp_path / "flash.toml").write_text(config.replace('"ghcr.io/acme"', f'"{registry.host}/acme"'))
    return tmp_path


def _tags(project: Path, flash) -> dict[str, str]:
    assert flash("build", cwd=project).code == 0
    manifest = json.loads((project / ".flash/build/manifest.json").read_text())
    return {key: entry["image"] for key, entry in manifest["endpoints"].items()}


def test_a_tag_nobody_pushed_is_refused_before_any_write(
    project: Path, flash, emulator, registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLASH_NO_REGISTRY_CHECK")
    images = _tags(project, flash)
    registry.tags.add(images["data-api"].split("/", 1)[1])  # one of the two was pushed
    result = flash("deploy", "--insecure-registry", cwd=project)
    assert result.code == 3
    assert result.err.splitlines()[-2:] == [
        f"flash: error: not in the registry, so RunPod could not pull it: {images['inference-api']}; nothing was deployed",
        "  hint: pass --push to build and push the images (or push them in CI before `deploy --no-build`)",
    ]
    assert [w for w in emulator.writes() if "templates" not in w[1]] == []  # no endpoint touched
    assert emulator.templates == {}  # and the deploy lease is released


def test_pushed_tags_pass_the_check_and_the_deploy_goes_on(
    project: Path, flash, emulator, registry: FakeRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLASH_NO_REGISTRY_CHECK")
    images = _tags(project, flash)
    registry.tags.update(image.split("/", 1)[1] for image in images.values())
    result = flash("deploy", "--insecure-registry", "--health-timeout", "0", cwd=project)
    assert "not in the registry" not in result.err
    assert sorted(e.body["name"] for e in emulator.endpoints.values()) == ["demo-data-api", "demo-inference-api"]
    heads = [path for method, path, _ in registry.requests if method == "HEAD"]
    assert sorted(heads) == sorted(
        f"/v2/{image.split('/', 1)[1].rsplit(':', 1)[0]}/manifests/{image.rsplit(':', 1)[1]}"
        for image in images.values()
    )


def test_an_unreachable_registry_is_reported_and_not_held_against_the_deploy(
    project: Path, flash, emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLASH_NO_REGISTRY_CHECK")
    config = project / "flash.toml"
    config.write_text(config.read_text().replace('registry = "127.0.0.1:', 'registry = "127.0.0.1:1/x-'))
    result = flash("deploy", "--insecure-registry", "--health-timeout", "0", cwd=project)
    assert "cannot ask the registry whether 127.0.0.1:1/" in result.err
    assert len(emulator.endpoints) == 2


def test_the_token_challenge_uses_the_docker_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeRegistry(login=("ci-bot", "s3cret")) as registry:
        registry.tags.add("acme/api:abc")
        image = f"{registry.host}/acme/api:abc"
        assert exists(image, insecure=True) is None  # no login: the registry cannot be asked
        config = tmp_path / "docker"
        config.mkdir()
        auth = base64.b64encode(b"ci-bot:s3cret").decode()
        (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
        monkeypatch.setenv("DOCKER_CONFIG", str(config))
        assert exists(image, insecure=True) is True
        assert exists(f"{registry.host}/acme/api:other", insecure=True) is False
        assert ("GET", "/token?service=fake&scope=repository%3Ax%3Apull", f"Basic {auth}") in registry.requests


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("ghcr.io/acme/demo-api:0123abcd", Reference("ghcr.io", "acme/demo-api", "0123abcd")),
        ("127.0.0.1:5000/acme/api:1", Reference("127.0.0.1:5000", "acme/api", "1")),
        ("localhost/app:dev", Reference("localhost", "app", "dev")),
        ("acme/api:2", Reference("docker.io", "acme/api", "2")),
        ("python", Reference("docker.io", "library/python", "latest")),
    ],
)
def test_image_references_parse_like_docker(image: str, expected: Reference) -> None:
    assert parse(image) == expected
