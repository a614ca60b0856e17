"""`flash import`: write flash.toml (tomlkit, commented) from a runpod-flash project; optionally
(--queue-workers) make each queue-based worker an endpoint; optionally (--rewrite) remove the
runpod-flash lines from its source, only when the result is provably whole (import_rewrite)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import click

from flash_pipeline.config.import_rewrite import Plan, plan_rewrite
from flash_pipeline.config.import_settings import Found, Skipped
from flash_pipeline.config.importer import Queued, Reading, read_project
from flash_pipeline.config.scaffold import app_name_for
from flash_pipeline.errors import UsageError
from flash_pipeline.files import write_atomically

CLIENTS = (
    "their clients change: a job sent as POST https://api.runpod.ai/v2/<id>/runsync with "
    '{"input": {<arguments>}} (or a call through runpod-flash) becomes POST <endpoint url>/<function> with '
    "{<arguments>} as the body (the function's keyword arguments, e.g. "
    '{"input_data": {...}}), and the answer is the function\'s result itself: no job id, status or "output"'
)


class Imported:
    """What goes into flash.toml, and everything said about what does not."""

    def __init__(self, reading: Reading, queue_workers: bool) -> None:
        self.endpoints: list[Found] = []
        self.skipped: list[Skipped] = list(reading.skipped)
        self.notes: list[Skipped] = []
        self.queued: list[tuple[Queued, Found]] = []
        self.spans = {path: list(ranges) for path, ranges in reading.spans.items()}
        by_name: dict[str, Found] = {}  # endpoint name -> the endpoint made for its queue-based workers
        first: dict[str, Found] = {}  # endpoint name -> the Endpoint(...) it was made from
        used = {id(q.endpoint) for q in reading.queued}
        for found in reading.endpoints:
            if found.routes:
                self.endpoints.append(found)
            elif id(found) not in used:
                self.skipped.append(Skipped(found.where, found.variable, "no route decorators and no worker uses it"))
        for queued in reading.queued:
            if not queue_workers:
                self.skipped.append(
                    Skipped(
                        queued.where,
                        queued.function,
                        f"a queue-based worker ({queued.how}): pass --queue-workers to serve it as "
                        f"POST /{queued.function}",
                    )
                )
                continue
            source = queued.endpoint
            if source is None:  # read_project listed it as Skipped already
                continue
            target = source if source.routes else by_name.get(source.name)
            if target is None:
                target = Found(
                    queued.function, source.key, source.where, source.name, dict(source.settings), queue=True
                )
                target.skipped, target.notes = list(source.skipped), list(source.notes)
                by_name[source.name], first[source.name] = target, source
                self.endpoints.append(target)
            elif target is not source and source is not first[source.name]:  # another Endpoint(...), same name
                _merge(target, source, self.notes, queued)
                target.skipped += source.skipped
                target.notes += source.notes
            route = f"POST /{queued.function}"
            if route in target.routes:
                why = (
                    f"endpoint {target.key} already has {route} ({target.routes[route]}): rename one, then import again"
                )
                self.skipped.append(Skipped(queued.where, queued.function, why))
                continue
            target.routes[route] = f"{queued.module}:{queued.function}"
            self.queued.append((queued, target))
            self.spans.setdefault(queued.path, []).append(queued.span)
        keys: set[str] = set()
        for found in self.endpoints:
            found.key = _unique(found.key, keys)
        self._calls(reading, queue_workers)
        for found in self.endpoints:
            found.settings["body_keys"] = True  # runpod-flash bound the body's keys to parameters
            self.skipped += found.skipped
            self.notes += found.notes
        for items in (self.skipped, self.notes):
            items.sort(key=lambda item: (item.where.rpartition(":")[0], int(item.where.rpartition(":")[2] or 0)))

    def _calls(self, reading: Reading, queue_workers: bool) -> None:
        """A handler that imports a queue-based worker from another module called it as a remote job."""
        made = {(q.module, q.function): found.key for q, found in self.queued}
        for where, module, name, importer in reading.uses:
            worker = next(
                (q for q in reading.queued if q.function == name and _same(q.module, module) and q.module != importer),
                None,
            )
            if worker is None:
                continue
            what = f"imports {name}"
            if queue_workers:
                key = made[(worker.module, worker.function)]
                why = (
                    f"the queue-based worker {name} now runs in the caller's own process, not on endpoint {key}; to "
                    f'keep it there, call it over HTTP with flash_runtime.endpoint("{key}") and calls = ["{key}"]'
                )
                self.notes.append(Skipped(where, what, why))
            else:
                why = f"{name} stays a runpod-flash queue-based worker: pass --queue-workers, or the call needs runpod_flash"
                self.skipped.append(Skipped(where, what, why))


def _same(module: str, written: str) -> bool:
    """A project module (named from the imported folder) and a module name as an import wrote it."""
    return module == written or module.endswith("." + written)


def _merge(target: Found, source: Found, notes: list[Skipped], queued: Queued) -> None:
    """A second worker with the same endpoint name: one endpoint, dependencies together."""
    extra = [d for d in source.settings.get("dependencies", []) if d not in target.settings.get("dependencies", [])]
    if extra:
        target.settings["dependencies"] = [*target.settings.get("dependencies", []), *extra]
    differ = sorted(k for k, v in source.settings.items() if k != "dependencies" and target.settings.get(k, v) != v)
    if differ:
        notes.append(
            Skipped(
                queued.where,
                queued.function,
                f"shares endpoint {source.name!r} with {target.variable}: its {', '.join(differ)} differ; the first's apply",
            )
        )


def _unique(key: str, taken: set[str]) -> str:
    candidate, n = key, 2
    while candidate in taken:
        candidate = f"{key[:28]}-{n}"
        n += 1
    taken.add(candidate)
    return candidate


def import_project(
    directory: Path, out: Path | None, *, rewrite: bool, force: bool, queue_workers: bool = False
) -> int:
    target = out if out is not None else directory / "flash.toml"
    if target.exists() and not force:
        raise UsageError(f"{target} already exists", "pass --force to overwrite it, or -o to write elsewhere")
    reading = read_project(directory)
    imported = Imported(reading, queue_workers)
    if not imported.endpoints:
        _nothing(directory, reading, imported)
    source = _source(directory, target, imported, reading)
    plan = plan_rewrite(directory, reading.files, imported.spans)
    if rewrite and plan.refused:
        raise UsageError(
            "--rewrite: nothing written: " + "; ".join(plan.refused),
            "run flash import without --rewrite, and remove the runpod-flash lines by hand",
        )
    write_atomically(target, render(app_name_for(directory), source, imported))
    routes = sum(len(e.routes) for e in imported.endpoints)
    click.echo(f"wrote {target} ({len(imported.endpoints)} endpoint(s), {routes} route(s))")
    for note in imported.notes:
        click.echo(f"changed: {note.where}: {note.what}: {note.why}", err=True)
    for skipped in imported.skipped:
        click.echo(f"not imported: {skipped.where}: {skipped.what}: {skipped.why}", err=True)
    if imported.queued:
        click.echo("queue-based workers made endpoints (--queue-workers):")
        for queued, found in imported.queued:
            click.echo(f"  {queued.where} {queued.function} -> endpoints.{found.key} POST /{queued.function}")
        click.echo(f"  {CLIENTS}")
    _rewrite(directory, plan, rewrite)
    click.echo(f"next: flash validate -c {target}")
    return 0


def _nothing(directory: Path, reading: Reading, imported: Imported) -> None:
    for skipped in imported.skipped:
        click.echo(f"not imported: {skipped.where}: {skipped.what}: {skipped.why}", err=True)
    if reading.queued:
        listed = ", ".join(f"{q.where} {q.function}" for q in reading.queued)
        raise UsageError(
            f"no runpod-flash load-balanced endpoint in {directory}; found {len(reading.queued)} queue-based "
            f"worker(s): {listed}",
            "pass --queue-workers to import each as an endpoint with a POST /<function> route",
        )
    raise UsageError(
        f"no runpod-flash endpoint or worker found in {directory}",
        'flash import reads `x = Endpoint(...)` with `@x.post("/path")` handlers, and `@Endpoint(...)` or '
        "`@remote` workers (with --queue-workers)",
    )


def _source(directory: Path, target: Path, imported: Imported, reading: Reading) -> str:
    """app.source, so that every handler's module imports from it: the folder above each handler file's
    packages (folders with __init__.py). Handlers then name modules from there."""
    modules = {module: path for path, module in reading.files.items()}
    roots: dict[Path, list[str]] = {}
    for found in imported.endpoints:
        for route, handler in list(found.routes.items()):
            module, _, function = handler.partition(":")
            path = modules[module]
            root = path.parent
            while root != directory and (root / "__init__.py").exists():
                root = root.parent
            name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
            if not all(part.isidentifier() for part in name.split(".")):
                raise UsageError(
                    f"{path.relative_to(directory)}: module name {name!r} cannot be imported",
                    "rename the file (and its folders) to Python identifiers, then run flash import again",
                )
            found.routes[route] = f"{name}:{function}"
            roots.setdefault(root, []).append(str(path.relative_to(directory)))
    if len(roots) > 1:
        shown = ", ".join(str(root.relative_to(directory)) for root in sorted(roots))
        raise UsageError(
            f"the runpod-flash files in {directory} belong to {len(roots)} separate projects (each imports its "
            f"modules from its own folder): {shown}",
            f"run flash import in each of those folders (e.g. cd {sorted(roots)[0].relative_to(directory)} && flash import)",
        )
    root = next(iter(roots))
    return Path(os.path.relpath(root.resolve(), target.parent.resolve())).as_posix()


def _rewrite(directory: Path, plan: Plan, rewrite: bool) -> None:
    for path, numbers in plan.lines.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        shown = path.relative_to(directory)
        for n in numbers:
            click.echo(f"{'removed' if rewrite else '--rewrite would remove'} {shown}:{n}: {lines[n - 1]}")
    if not rewrite:
        for reason in plan.refused:
            click.echo(f"--rewrite would refuse: {reason}", err=True)
        return
    for path, text in plan.texts.items():
        write_atomically(path, text)
        click.echo(f"rewrote {path.relative_to(directory)} ({len(plan.lines[path])} runpod-flash line(s) removed)")


def render(name: str, source: str, imported: Imported) -> str:
    """The flash.toml text: a commented tomlkit document, each endpoint noting where it came from."""
    import tomlkit

    document = tomlkit.document()
    document.add(
        tomlkit.comment("Imported from a runpod-flash project by `flash import`; check it with `flash validate`.")
    )
    app = tomlkit.table()
    app.add("name", name)
    app.add("source", source)
    app.add(tomlkit.comment('registry = "ghcr.io/your-org"   # needed to deploy to RunPod (where images are pushed)'))
    document.add("app", app)
    endpoints = tomlkit.table(is_super_table=True)
    for found in imported.endpoints:
        table = tomlkit.table()
        if found.queue:
            functions = ", ".join(route.partition("/")[2] for route in found.routes)
            table.comment(f"from {found.where} (queue-based: {functions})")
        else:
            table.comment(f"from {found.where} ({found.variable} = Endpoint(...))")
        for key, value in found.settings.items():
            table.add(key, value)
        routes = tomlkit.table()
        for route, handler in found.routes.items():
            routes.add(route, handler)
        table.add("routes", routes)
        endpoints.add(found.key, table)
    document.add("endpoints", endpoints)
    sections = [
        ("Changed (see why):", imported.notes),
        ("Not imported (see why, and set what applies by hand):", imported.skipped),
    ]
    for title, items in sections:
        if items:
            document.add(tomlkit.nl())
            document.add(tomlkit.comment(title))
            for item in items:
                document.add(tomlkit.comment(f"  {item.where}: {item.what}: {item.why}"))
    if imported.queued:
        document.add(tomlkit.nl())
        text = "Queue-based workers made endpoints (--queue-workers): " + CLIENTS + "."
        for line in textwrap.wrap(text, 100, break_long_words=False, break_on_hyphens=False):
            document.add(tomlkit.comment(line))
    text = tomlkit.dumps(document)
    return text if text.endswith("\n") else text + "\n"
