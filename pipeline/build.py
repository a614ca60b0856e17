"""`flash build`: check handlers, render every endpoint, write .flash/build/, optionally push."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import BuildError, ConfigError
from pipeline.handlers import check_handlers
from pipeline.ignore import included_files
from pipeline.model import Project
from pipeline.render import Tree, content_hash, image_ref, manifest, render_endpoint, write_tree

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class BuiltEndpoint:
    key: str
    name: str
    image: str
    path: Path | None  # None: the endpoint deploys a prebuilt image
    digest: str | None = None
    files: int = 0
    changed: bool = False


@dataclass(frozen=True)
class BuildResult:
    out_dir: Path
    endpoints: tuple[BuiltEndpoint, ...]


def default_out_dir(project: Project) -> Path:
    """.flash/build, or .flash/build-<env> for an environment (their images differ)."""
    return project.root / ".flash" / (f"build-{project.environment}" if project.environment else "build")


def render_all(project: Project, out_dir: Path | None = None) -> dict[str, Tree]:
    """Every built endpoint's tree, in memory; ConfigError if a handler is missing."""
    problems = check_handlers(project)
    if problems:
        raise ConfigError(problems)
    out = (out_dir or default_out_dir(project)).resolve()
    try:
        # The config itself is not app code: editing it must not change every image.
        source = _read_files(project.source_dir, skip=(out, project.root / ".flash", project.config_path))
        runtime = _read_files(_runtime_dir(), git=False)
    except OSError as exc:
        raise BuildError(f"cannot read the source folder: {exc}", "check app.source and file permissions") from None
    return {e.key: render_endpoint(project, e, runtime, source) for e in project.endpoints if not e.image}


def build(project: Project, out_dir: Path | None = None) -> BuildResult:
    """Render and write every endpoint's build context; ConfigError if a handler is missing."""
    out = (out_dir or default_out_dir(project)).resolve()
    trees = render_all(project, out)
    built, hashes = [], {}
    shared: dict[str, Path] = {}  # content digest -> a file of this build holding it
    for endpoint in project.endpoints:
        tree = trees.get(endpoint.key)
        if tree is None:
            built.append(BuiltEndpoint(endpoint.key, endpoint.name, endpoint.image or "", None))
            continue
        digest = hashes[endpoint.key] = content_hash(tree)
        changed = _write(out / endpoint.key, tree, shared)
        path = out / endpoint.key
        built.append(
            BuiltEndpoint(
                endpoint.key, endpoint.name, image_ref(project, endpoint, digest), path, digest, len(tree), changed
            )
        )
    try:
        out.mkdir(parents=True, exist_ok=True)  # a config of prebuilt images only writes no endpoint folder
        _write_manifest(out / MANIFEST, manifest(project, hashes))
        _remove_stale(out, {e.key for e in project.endpoints})
    except OSError as exc:
        raise BuildError(
            f"cannot write {out}: {exc.strerror or exc}", "check the output folder's permissions and free space"
        ) from None
    return BuildResult(out, tuple(built))


def _write(root: Path, tree: Tree, shared: dict[str, Path]) -> bool:
    try:
        return write_tree(root, tree, shared)
    except OSError as exc:
        raise BuildError(
            f"cannot write {root}: {exc.strerror or exc}", "check the output folder's permissions and free space"
        ) from None


def _write_manifest(path: Path, data: bytes) -> None:
    """Atomically, through a temporary file of this process's own (concurrent builds never share one)."""
    import tempfile

    if path.is_file() and path.read_bytes() == data:
        return
    handle, name = tempfile.mkstemp(prefix=".manifest-", suffix=".tmp", dir=path.parent)
    try:
        with open(handle, "wb") as temporary:
            temporary.write(data)
        Path(name).replace(path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _remove_stale(out: Path, keys: set[str]) -> None:
    """Drop build folders of endpoints the config no longer has (only folders flash made)."""
    import shutil

    for folder in out.iterdir():
        if folder.is_dir() and folder.name not in keys and (folder / "flash_worker.py").is_file():
            try:
                shutil.rmtree(folder)
            except FileNotFoundError:
                pass  # a concurrent build of the same folder removed it first


def _runtime_dir() -> Path:
    spec = importlib.util.find_spec("runtime")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the flash runtime package is missing from this installation", "reinstall flash-pipeline")
    return Path(next(iter(spec.submodule_search_locations)))


def _read_files(root: Path, skip: tuple[Path, ...] = (), *, git: bool = True) -> Tree:
    return {rel.as_posix(): (root / rel).read_bytes() for rel in included_files(root, skip, git=git)}
