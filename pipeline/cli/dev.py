"""`flash dev`: the local target in the foreground, reloading endpoints as their files are saved.

The loop: watch the source folder and the config (watchfiles: the OS's file events, batched,
instead of polling), and on each batch of changes validate, build, and hand the supervisor the
specs. The supervisor restarts only endpoints whose build or env changed, each beside its
serving workers (switched once the new ones answer /ping 200), so a save that does not start
(a syntax error, an import error, a failing init hook) leaves the previous workers serving; the
error is printed once, and the next save tries again. Ctrl-C at any moment stops what this
command started within about a second (exit 130); a deployment it only attached to keeps serving.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from flash_pipeline.builder.output import BuildResult
from flash_pipeline.cli.common import echo_err, environment
from flash_pipeline.config.model import Project
from flash_pipeline.errors import BuildError, ConfigError, FlashError, Interrupted
from flash_pipeline.targets.cancel import Cancel
from flash_pipeline.targets.local import control as local
from flash_pipeline.targets.local import process
from flash_pipeline.targets.local import specs as local_specs
from flash_pipeline.targets.local.messages import SpecBody


class Session:
    """One `flash dev`: the supervisor it runs on, and what it last handed it."""

    def __init__(self, config: str) -> None:
        self.config = config
        self.applied: dict[str, SpecBody] = {}  # key -> the spec last sent
        self.identity: dict[str, str] = {}  # key -> the fingerprint of its own files when last sent
        self.cancel = Cancel()  # Ctrl-C
        self.newer = Cancel()  # set by the watcher when a save comes: a slow start is not waited out
        self.where: local.Paths | None = None
        self.pid = 0
        self.started = False

    def load(self) -> Project | None:
        from flash_pipeline import report
        from flash_pipeline.config.validate import validate_file

        try:
            return validate_file(Path(self.config), self.config, environment())
        except ConfigError as exc:
            echo_err(report.config_error_text(exc.diagnostics, "the previous workers keep serving"))
            return None

    def attach(self, project: Project) -> None:
        self.where = local.paths(project)
        state = local.read_state(self.where)
        if state is None:
            self.pid, self.started = process.start_supervisor(self.where, detach=False).pid, True
            return
        self.pid = int(state["pid"])
        echo_err(f"flash: attached to the local deployment already running (supervisor pid {self.pid})")

    def reload(self, project: Project, changed: Collection[Path] | None) -> None:
        """Build and hand the supervisor the new specs; wait for the endpoints that restart."""
        from flash_pipeline import report
        from flash_pipeline.builder.output import build
        from flash_pipeline.targets.local.gates import gate_all, wanted_revision

        assert self.where is not None
        started = time.monotonic()
        try:
            result = build(project)
            local_specs.check_dependencies(project)
            local_specs.specs(project, result, os.environ, {})  # an endpoint the local target cannot run: said here
        except ConfigError as exc:
            echo_err(report.config_error_text(exc.diagnostics, "the previous workers keep serving"))
            return
        except BuildError as exc:
            echo_err(report.error_text(str(exc), exc.hint) + "\nflash: the previous workers keep serving")
            return
        specs, answer = local.apply(
            self.where,
            lambda running: self._only_concerned(
                project, result, local_specs.specs(project, result, os.environ, running)
            ),
        )
        self.applied = {spec["key"]: spec for spec in specs}
        changes: dict[str, str] = answer["changes"]
        moved = [key for key, change in changes.items() if change in ("created", "updated")]
        for key in sorted(k for k, change in changes.items() if change == "removed"):
            echo_err(f"flash: stopped {key}: it is no longer in {self.config}")
        if not moved and "removed" not in changes.values():
            if changed is not None:
                echo_err("flash: no endpoint's build, settings or env changed")
            return
        wanted = {key: wanted_revision(info) for key, info in answer["endpoints"].items()}
        try:
            gates = gate_all(project, self.where, wanted, None, lambda _: None, self.newer, keys=moved)
        except Interrupted:
            if self.cancel.is_set():
                raise
            echo_err("flash: a newer save came while the new build was starting: building that one")
            return
        took = time.monotonic() - started
        for key in moved:
            gate = gates[key]
            if gate.healthy:
                verb = "serves" if changes[key] == "created" else "serves the new build"
                echo_err(f"flash: {key} {verb} at {answer['endpoints'][key]['url']} ({took:.1f}s)")
            else:
                # The workers' output above already shows the error once: only the verdict here.
                reason = gate.reason.split("; its last output:")[0].removeprefix("cannot start: ")
                reason = reason.removesuffix("; the previous workers keep serving") or f"/ping {gate.last_status}"

                kept = "the previous workers keep serving" if "keep serving" in gate.reason else "fix it and save"
                echo_err(f"flash: {key}: the new build cannot start ({reason}); {kept}")

    def _only_concerned(self, project: Project, result: BuildResult, specs: list[SpecBody]) -> list[SpecBody]:
        """Keep the last build of an endpoint whose own files and settings did not change (a saved
        module only another endpoint imports changes every build hash, not this one's code)."""
        from flash_pipeline.targets.local.reload import identities

        fresh = identities(project, result)
        kept = []
        for spec in specs:
            key, before = spec["key"], self.applied.get(spec["key"])
            if before is not None and self.identity.get(key) == fresh.get(key) and _same_settings(before, spec):
                spec = {**spec, "digest": before["digest"]}
            kept.append(spec)
        self.identity = fresh
        return kept

    def stop(self, *, interrupted: bool) -> None:
        from flash_pipeline.cli.local import finish
        from flash_pipeline.targets.local.gates import abandon

        if self.where is None:
            return
        if not self.started:
            try:
                state = local.send(self.where, {"cmd": "status"}, timeout=2)
                abandon(self.where, state.get("endpoints", {}))
            except FlashError:
                pass
        finish(self.where, self.started, self.pid, interrupted=interrupted)


def _same_settings(before: SpecBody, spec: SpecBody) -> bool:
    return {k: v for k, v in before.items() if k != "digest"} == {k: v for k, v in spec.items() if k != "digest"}


def dev(config: str) -> int:
    from flash_pipeline.cli.common import load
    from flash_pipeline.cli.local import _signals_interrupt

    project = load(config, "nothing was started")
    session = Session(config)
    _signals_interrupt()  # SIGTERM and SIGHUP act as Ctrl-C: what this command started is stopped
    watcher = Watcher(project)  # from before the first build: a save meanwhile is not missed
    watcher.newer = session.newer
    interrupted, current = True, project
    try:
        session.attach(project)
        session.reload(project, None)
        watcher.wait_ready()
        echo_err("flash: watching for changes (Ctrl-C stops)")
        while True:
            session.newer = watcher.newer = Cancel()
            changed = watcher.next()
            watcher.newer = session.newer = Cancel()  # this batch is handled now: only later saves cut it short
            if not _ships(current, changed):
                continue  # a file no image holds (ignored by .gitignore or .flashignore, a cache): nothing to do
            shown = ", ".join(sorted(os.path.relpath(p) for p in changed)[:3])
            echo_err(f"flash: changed: {shown}{' …' if len(changed) > 3 else ''}")
            fresh = session.load()
            if fresh is not None:
                current = fresh
                session.reload(fresh, changed)
    except BaseException:
        session.cancel.set()
        session.newer.set()
        raise
    finally:
        watcher.stop.set()
        session.stop(interrupted=interrupted)


def _ships(project: Project, changed: Collection[Path]) -> bool:
    """Whether a changed file is the config or one the build would ship (or was shipping: deleted)."""
    from flash_pipeline.builder.handlers import source_files

    config = project.config_path.resolve()
    if any(path.resolve() == config or not path.exists() for path in changed):
        return True
    try:
        shipped = {project.source_dir / rel for rel in source_files(project)}
    except FlashError:
        return True  # let the build say what is wrong
    return any(path.resolve() in shipped for path in changed)


class Watcher:
    """Batches of changed files under the source folder and the config, never the build output,
    gathered by a watchfiles thread; `next()` waits for one in the calling thread (Ctrl-C reaches it)."""

    def __init__(self, project: Project) -> None:
        import queue
        import threading

        self.stop = threading.Event()
        self.ready = threading.Event()
        self.newer = Cancel()
        self.error = ""
        self.batches: queue.Queue[set[Path]] = queue.Queue()
        self.project = project
        threading.Thread(target=self._run, daemon=True, name="flash-dev-watch").start()

    def _run(self) -> None:
        try:
            self._watch()
        except Exception as exc:  # handed to the main thread: it stops with this reason
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.ready.set()

    def _watch(self) -> None:
        from watchfiles import DefaultFilter, watch

        project = self.project
        ignored = (project.root / ".flash").resolve()
        config = project.config_path.resolve()
        source = project.source_dir

        class Shipped(DefaultFilter):
            def __call__(self, change: Any, path: str) -> bool:
                where = Path(path).resolve()
                if where == config:
                    return True
                return (
                    where.is_relative_to(source)
                    and not where.is_relative_to(ignored)
                    and super().__call__(change, path)
                )

        roots = sorted({source, config.parent})
        # yield_on_timeout: an empty batch after the first timeout says the watcher is in place.
        for batch in watch(
            *roots,
            watch_filter=Shipped(),
            debounce=400,
            step=30,
            stop_event=self.stop,
            rust_timeout=200,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            self.ready.set()
            if batch:
                self.batches.put({Path(path) for _, path in batch})
                self.newer.set()

    def wait_ready(self) -> None:
        while not self.ready.wait(0.2):
            pass
        self.check()

    def check(self) -> None:
        if self.error:
            raise BuildError(
                f"cannot watch the source folder: {self.error}",
                "on Linux, raise fs.inotify.max_user_watches; or deploy with `flash deploy --target local`",
            )

    def next(self) -> set[Path]:
        import queue

        while True:
            try:
                changed = self.batches.get(timeout=0.2)
            except queue.Empty:
                self.check()
                continue
            while not self.batches.empty():  # saves that came during the last reload: one more round
                changed |= self.batches.get_nowait()
            return changed
