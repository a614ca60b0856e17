"""Render each endpoint's build context from the templates; write the tree atomically.

Templates only place values; every value reaches generated Python through `repr` (the `py`
filter) and the Dockerfile's CMD through `tojson`, so no config string can become code.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from dataclasses import asdict
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from flash_pipeline.builder.ignore import ALWAYS_EXCLUDED
from flash_pipeline.config.envvars import build_hash
from flash_pipeline.config.model import Endpoint, Gpu, Project
from flash_pipeline.resources import resource_path

# relative POSIX path -> content: bytes rendered here, or a Path of a file copied as it is (source
# and runtime files are never read whole into memory: a 2 GB model file costs a streamed hash)
Content = bytes | Path
Tree = dict[str, Content]
WORKER_FILE = "flash_worker.py"
START_COMMAND = ("python", f"../{WORKER_FILE}")  # run from <endpoint>/src, in the image and locally
RUNTIME_REQUIREMENTS = ("sanic>=23.12,<26",)
CALLS_REQUIREMENTS = (
    "aiohttp>=3.9,<4",
)  # the pooled client of flash_runtime.calls, only where an endpoint calls others
MOTHERSHIP_REQUIREMENTS = (*CALLS_REQUIREMENTS, "uvloop>=0.19")  # aiohttp server and client on the faster loop
BASE_ENV = ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "PORT=80")  # every image's ENV
MAX_REQUEST_SECONDS = 330  # RunPod's LB processing limit (5.5 minutes): a longer timeout cannot help


@cache
def _environment() -> Any:
    import jinja2  # heavy: only when building

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resource_path("templates"))),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["py"] = repr
    return env


def _render(template: str, **values: Any) -> bytes:
    return str(_environment().get_template(template).render(**values)).encode("utf-8")


def base_image(project: Project, endpoint: Endpoint) -> str:
    """The FROM image: the endpoint's base_image, else the slim Python image of app.python."""
    return endpoint.base_image or f"python:{project.python}-slim"


def render_endpoint(
    project: Project, endpoint: Endpoint, runtime: Mapping[str, Content], source: Mapping[str, Content]
) -> Tree:
    """Every file of one endpoint's build context."""
    if endpoint.generated:
        return _render_mothership(project, endpoint, runtime)
    image_env = list(BASE_ENV)
    if isinstance(endpoint.compute, Gpu):
        image_env += ["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"]
    worker = _render(
        f"{WORKER_FILE}.j2",
        name=endpoint.name,
        routes=[
            {
                "method": r.method,
                "path": r.path,
                "handler": r.handler,
                "batch": asdict(r.batch) if r.batch else None,
                "options": {"body_keys": True} if r.body_keys else None,
            }
            for r in endpoint.routes
        ],
        init=endpoint.init,
        timeout=min(endpoint.timeout, MAX_REQUEST_SECONDS),
        app=project.name,
        environment=project.environment,
        key=endpoint.key,
        calls=list(endpoint.calls),
    )
    compile(worker, WORKER_FILE, "exec")  # a template bug must fail the build, not the deploy
    tree: Tree = {
        WORKER_FILE: worker,
        "Dockerfile": _dockerfile(project, endpoint, image_env),
        "requirements.txt": _render(
            "requirements.txt.j2",
            requirements=[
                *RUNTIME_REQUIREMENTS,
                *(CALLS_REQUIREMENTS if endpoint.calls else ()),
                *endpoint.dependencies,
            ],
        ),
        ".dockerignore": _render("dockerignore.j2", patterns=[f"**/{p.rstrip('/')}" for p in ALWAYS_EXCLUDED]),
    }
    tree.update({f"flash_runtime/{path}": data for path, data in runtime.items()})
    tree.update({f"src/{path}": data for path, data in source.items()})
    return tree


def _render_mothership(project: Project, endpoint: Endpoint, runtime: Mapping[str, Content]) -> Tree:
    """The mothership: flash's own router (flash_runtime.mothership) and the app's routes; no user source."""
    routes = {e.key: [f"{r.method} {r.path}" for r in e.routes] for e in project.endpoints if not e.generated}
    worker = _render("mothership.py.j2", app=project.name, environment=project.environment, endpoints=routes)
    compile(worker, WORKER_FILE, "exec")
    tree: Tree = {
        WORKER_FILE: worker,
        "Dockerfile": _dockerfile(project, endpoint, list(BASE_ENV)),
        "requirements.txt": _render("requirements.txt.j2", requirements=list(MOTHERSHIP_REQUIREMENTS)),
        ".dockerignore": _render("dockerignore.j2", patterns=[f"**/{p.rstrip('/')}" for p in ALWAYS_EXCLUDED]),
        "src/.keep": b"",  # the Dockerfile copies src/, which holds no user code here
    }
    tree.update({f"flash_runtime/{path}": data for path, data in runtime.items()})
    return tree


def _dockerfile(project: Project, endpoint: Endpoint, image_env: list[str]) -> bytes:
    return _render(
        "Dockerfile.j2",
        name=endpoint.name,
        base_image=base_image(project, endpoint),
        image_env=image_env,
        command=list(START_COMMAND),
    )


def content_hash(tree: Mapping[str, Content]) -> str:
    """A digest of a whole tree: paths and contents, order-independent."""
    digest = hashlib.sha256()
    for path in sorted(tree):
        # fsencode: a file name that is not UTF-8 arrives surrogate-escaped and hashes as its bytes
        digest.update(os.fsencode(path) + b"\0" + digest_of(tree[path]))
    return digest.hexdigest()


def digest_of(content: Content) -> bytes:
    """sha256 of rendered bytes, or of a file's content (streamed; cached per inode and mtime)."""
    if isinstance(content, bytes):
        return hashlib.sha256(content).digest()
    info = content.stat()
    return _file_digest(content, info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


@lru_cache(maxsize=65536)
def _file_digest(path: Path, _dev: int, _ino: int, _size: int, _mtime_ns: int) -> bytes:
    # Keyed by inode too: the hard-linked copies of one file across endpoints hash once.
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()


def image_ref(project: Project, endpoint: Endpoint, digest: str) -> str:
    """Where the endpoint's image lives: its own `image`, else {registry}/{app}-{endpoint}:{hash}."""
    if endpoint.image:
        return endpoint.image
    repository = f"{project.registry}/{endpoint.name}" if project.registry else endpoint.name
    return f"{repository}:{build_hash(digest)}"


def manifest(project: Project, hashes: Mapping[str, str]) -> bytes:
    """manifest.json: per endpoint, the resolved config, image reference and content hash."""
    endpoints: dict[str, Any] = {}
    for endpoint in project.endpoints:
        config = asdict(endpoint)
        config.pop("loc")
        config.pop("locs")
        config["routes"] = {f"{r.method} {r.path}": r.handler for r in endpoint.routes}
        config["env"] = dict(endpoint.env)  # as written: ${VAR} stays unresolved here
        digest = hashes.get(endpoint.key)
        endpoints[endpoint.key] = {
            "name": endpoint.name,
            "image": image_ref(project, endpoint, digest or ""),
            "build": digest is not None,
            "hash": digest,
            "config": config,
        }
    data = {"app": project.name, "python": project.python, "registry": project.registry, "endpoints": endpoints}
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _tree_digests(root: Path) -> dict[str, bytes]:
    """A written folder's files and their digests, or {} if it does not exist."""
    if not root.is_dir():
        return {}
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            try:
                if path.is_file() and not path.is_symlink():
                    found[path.relative_to(root).as_posix()] = digest_of(path)
            except FileNotFoundError:
                continue  # swapped away by a concurrent build: this tree counts as changed
    return found


def write_tree(root: Path, tree: Mapping[str, Content], shared: dict[bytes, Path] | None = None) -> bool:
    """Make root hold exactly tree. Unchanged: touch nothing. Changed: build aside, then swap in.

    Files already on disk with the same content (unchanged ones here, or identical ones another
    endpoint of this build wrote, passed in `shared` by digest) are hard-linked, not rewritten:
    a link costs a twentieth of a file write, one copy of a large file serves every endpoint,
    and docker's cache sees the same bytes. Other files are copied in the kernel (sendfile),
    never through memory. Returns whether anything changed.
    """
    shared = {} if shared is None else shared
    old = _tree_digests(root)
    digests = {path: digest_of(content) for path, content in tree.items()}
    if old == digests:
        shared.update({digests[path]: root / path for path in tree})
        return False
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; a build context is not secret
    made: set[Path] = {staging}
    for path, content in tree.items():
        target = staging / path
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        linked = root / path if old.get(path) == digests[path] else shared.get(digests[path])
        _place(content, target, linked)
        shared.setdefault(digests[path], target)
    _swap_in(staging, root)
    shared.update({digests[path]: root / path for path in tree})
    return True


def _place(content: Content, target: Path, linked: Path | None) -> None:
    if linked is not None:
        try:
            os.link(linked, target)
            return
        except FileNotFoundError:
            pass  # a concurrent build of this folder moved it away: write our own copy
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        shutil.copyfile(content, target)


def _swap_in(staging: Path, root: Path) -> None:
    """Replace root with staging. Concurrent builds of one folder each swap in a complete tree
    (the last one wins); each moves the old tree to a name of its own, never a shared one."""
    for _ in range(20):
        retired = root.with_name(f".{root.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            root.rename(retired)
        except FileNotFoundError:
            pass  # nothing there (first build), or another build moved it a moment ago
        try:
            staging.rename(root)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        finally:
            shutil.rmtree(retired, ignore_errors=True)
    raise OSError(errno.EBUSY, "other builds keep replacing it", str(root))
