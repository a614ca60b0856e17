"""`flash import`: write flash.toml (tomlkit, commented) from a runpod-flash project; optionally
remove the runpod-flash lines from its source so the handlers run under flash unchanged."""

from __future__ import annotations

from pathlib import Path

import click

from flash_pipeline.cli.common import write_atomically
from flash_pipeline.config.importer import Reading, Skipped, read_project
from flash_pipeline.config.scaffold import app_name_for
from flash_pipeline.errors import UsageError


def import_project(directory: Path, out: Path | None, *, rewrite: bool, force: bool) -> int:
    target = out if out is not None else directory / "flash.toml"
    if target.exists() and not force:
        raise UsageError(f"{target} already exists", "pass --force to overwrite it, or -o to write elsewhere")
    reading = read_project(directory)
    for found in list(reading.endpoints):
        if not found.routes:
            reading.skipped.append(Skipped(found.where, found.variable, "no route decorators: a queue-based endpoint"))
            reading.endpoints.remove(found)
    reading.skipped.sort(key=lambda item: (item.where.rpartition(":")[0], int(item.where.rpartition(":")[2] or 0)))
    if not reading.endpoints:
        raise UsageError(
            f"no runpod-flash load-balanced endpoint found in {directory}",
            'flash import reads `x = Endpoint(...)` and `@x.post("/path")` handlers',
        )
    write_atomically(target, render(app_name_for(directory), reading))
    click.echo(
        f"wrote {target} ({len(reading.endpoints)} endpoint(s), {sum(len(e.routes) for e in reading.endpoints)} route(s))"
    )
    for skipped in reading.skipped:
        click.echo(f"not imported: {skipped.where}: {skipped.what}: {skipped.why}", err=True)
    lines = _removable(directory, reading)
    if rewrite:
        for path, numbers in lines.items():
            kept = [
                line
                for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(keepends=True), 1)
                if n not in numbers
            ]
            write_atomically(path, "".join(kept))
            click.echo(f"rewrote {path.relative_to(directory)} ({len(numbers)} runpod-flash line(s) removed)")
    else:
        for path, numbers in lines.items():
            text = path.read_text(encoding="utf-8").splitlines()
            for n in sorted(numbers):
                click.echo(f"--rewrite would remove {path.relative_to(directory)}:{n}: {text[n - 1]}")
    click.echo(f"next: flash validate -c {target}")
    return 0


def render(name: str, reading: Reading) -> str:
    """The flash.toml text: a commented tomlkit document, each endpoint noting where it came from."""
    import tomlkit

    document = tomlkit.document()
    document.add(
        tomlkit.comment("Imported from a runpod-flash project by `flash import`; check it with `flash validate`.")
    )
    app = tomlkit.table()
    app.add("name", name)
    app.add("source", ".")
    app.add(tomlkit.comment('registry = "ghcr.io/your-org"   # needed to deploy to RunPod (where images are pushed)'))
    document.add("app", app)
    endpoints = tomlkit.table(is_super_table=True)
    for found in reading.endpoints:
        table = tomlkit.table()
        table.comment(f"from {found.where} ({found.variable} = Endpoint(...))")
        for key, value in found.settings.items():
            table.add(key, value)
        routes = tomlkit.table()
        for route, handler in found.routes.items():
            routes.add(route, handler)
        table.add("routes", routes)
        endpoints.add(found.key, table)
    document.add("endpoints", endpoints)
    if reading.skipped:
        document.add(tomlkit.nl())
        document.add(tomlkit.comment("Not imported (see why, and set what applies by hand):"))
        for skipped in reading.skipped:
            document.add(tomlkit.comment(f"  {skipped.where}: {skipped.what}: {skipped.why}"))
    return tomlkit.dumps(document)


def _removable(directory: Path, reading: Reading) -> dict[Path, set[int]]:
    """The imported endpoints' Endpoint(...) statements, their route decorators, and the runpod-flash
    imports of files that use nothing else of it (a queue-based function keeps its file's imports)."""
    found: dict[Path, set[int]] = {}
    spans = [e.span for e in reading.endpoints if e.span is not None]
    for path, start, end in spans + [(p, a, b) for p, ranges in reading.removable.items() for a, b in ranges]:
        found.setdefault(path, set()).update(range(start, end + 1))
    return dict(sorted(found.items()))
