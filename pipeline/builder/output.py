"""`flash build`: check handlers, render every endpoint, write .flash/build/, optionally push."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from flash_pipeline.builder.handlers import check_handlers, default_out_dir, listing, source_files
from flash_pipeline.builder.ignore import CACHE_SIGNATURE, CACHE_TAG
from flash_pipeline.builder.render import Tree, content_hash, image_ref, manifest, render_endpoint, write_tree
from flash_pipeline.config.model import Project
from flash_pipeline.errors import BuildError, ConfigError

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


def render_all(project: Project, out_dir: Path | None = None) -> dict[str, Tree]:
    """Every built endpoint's tree (rendered files in memory, the rest as paths); ConfigError if a
    handler or the source folder is missing."""
    if all(e.image for e in project.endpoints):
        return {}  # prebuilt images only: no source is read at all
    source: dict[str, Path] = {}
    if any(not e.image and not e.generated for e in project.endpoints):  # else only the mothership
        files = source_files(project, out_dir)
        problems = check_handlers(project, files)
        if problems:
            raise ConfigError(problems)
        source = {rel: project.source_dir / rel for rel in files}
    runtime_dir = _runtime_dir()
    runtime = {rel: runtime_dir / rel for rel in listing(runtime_dir, git=False)}
    return {e.key: render_endpoint(project, e, runtime, source) for e in project.endpoints if not e.image}


def content_hashes(project: Project, out_dir: Path | None = None) -> dict[str, str]:
    """Each built endpoint's content hash (what its tag is made of), computed without writing."""
    return {key: _hash(tree) for key, tree in render_all(project, out_dir).items()}


def _hash(tree: Tree) -> str:
    try:
        return content_hash(tree)
    except OSError as exc:  # a file removed or made unreadable since it was listed
        raise BuildError(
            f"cannot read {exc.filename}: {exc.strerror or exc}", "check the file, then build again"
        ) from None


def build(project: Project, out_dir: Path | None = None) -> BuildResult:
    """Render and write every endpoint's build context; ConfigError if a handler is missing."""
    out = (out_dir or default_out_dir(project)).resolve()
    trees = render_all(project, out)
    built, hashes = [], {}
    shared: dict[bytes, Path] = {}  # content digest -> a file of this build holding it
    for endpoint in project.endpoints:
        tree = trees.get(endpoint.key)
        if tree is None:
            built.append(BuiltEndpoint(endpoint.key, endpoint.name, endpoint.image or "", None))
            continue
        digest = hashes[endpoint.key] = _hash(tree)
        changed = _write(out / endpoint.key, tree, shared)
        path = out / endpoint.key
        built.append(
            BuiltEndpoint(
                endpoint.key, endpoint.name, image_ref(project, endpoint, digest), path, digest, len(tree), changed
            )
        )
    try:
        out.mkdir(parents=True, exist_ok=True)  # a config of prebuilt images only writes no endpoint folder
        _tag_output(out)
        _write_manifest(out / MANIFEST, manifest(project, hashes))
        _remove_stale(out, {e.key for e in project.endpoints})
    except OSError as exc:
        raise BuildError(
            f"cannot write {out}: {exc.strerror or exc}", "check the output folder's permissions and free space"
        ) from None
    return BuildResult(out, tuple(built))


def _write(root: Path, tree: Tree, shared: dict[bytes, Path]) -> bool:
    try:
        return write_tree(root, tree, shared)
    except OSError as exc:
        raise BuildError(
            f"cannot write {root}: {exc.strerror or exc}", "check the output folder's permissions and free space"
        ) from None


def _tag_output(out: Path) -> None:
    """Mark the output folder (the Cache Directory Tagging standard; tar and backup tools honour it
    too) so that a later run never hashes it into the source, wherever `-o` put it."""
    tag = out / CACHE_TAG
    if not tag.is_file():
        tag.write_text(CACHE_SIGNATURE + "\n# a flash build output folder: flash never ships it in an image\n")


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
        if folder.name.startswith("."):
            continue  # another build's staging or retired tree (endpoint keys start with a letter)
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
