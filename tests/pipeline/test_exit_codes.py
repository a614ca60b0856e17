"""One exit-code table: the README's equals flash_pipeline.errors.Exit, every command is in the
README's commands table, and every code a command lists is in the table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flash_pipeline.cli import cli
from flash_pipeline.errors import (
    ApiError,
    BuildError,
    ConfigError,
    ConflictError,
    Exit,
    FlashError,
    HealthError,
    Interrupted,
    UsageError,
)

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def _rows(section: str) -> list[list[str]]:
    rows = [line.strip().strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row] for row in rows[1:] if not set(row[0]) <= {"-", " "}]


def test_the_readme_table_is_the_enum() -> None:
    table = {int(code): meaning for code, meaning in _rows(_section("Exit codes"))}
    assert set(table) == {int(member) for member in Exit}
    for member in Exit:  # the enum's comments and the README say the same thing
        source = Path(__file__).resolve().parents[2] / "pipeline" / "errors.py"
        comment = re.search(rf"    {member.name} = {int(member)}  # (.+)", source.read_text())
        assert comment, member
        assert table[int(member)].replace("`", "") == comment.group(1).replace("`", ""), member


def _listed() -> dict[str, set[int]]:
    """Each command's exit codes, as its row of the README's commands table lists them."""
    listed = {}
    for row in _rows(_section("Commands")):
        name = re.match(r"`flash (\w+)", row[0])
        assert name, row[0]
        listed[name.group(1)] = {int(code) for code in re.findall(r"(?<![\w.-])(\d{1,3})(?![\w.-])", row[-1])}
    return listed


def test_every_command_is_listed_with_codes_from_the_table() -> None:
    listed = _listed()
    assert set(listed) == set(cli.commands)
    codes = {int(member) for member in Exit}
    for command, used in listed.items():
        assert used and used <= codes, (command, used - codes)


def test_each_error_leaf_carries_its_code_from_the_table() -> None:
    assert FlashError.exit_code == Exit.BUG
    assert (ConfigError.exit_code, UsageError.exit_code) == (Exit.INVALID, Exit.INVALID)
    assert BuildError.exit_code == Exit.BUILD
    assert (ApiError.exit_code, ConflictError.exit_code) == (Exit.API, Exit.API)
    assert HealthError.exit_code == Exit.UNHEALTHY
    assert Interrupted.exit_code == Exit.INTERRUPTED


# The arguments a command needs besides its options, to get as far as reading its config.
_ARGUMENTS = {"call": ["api", "/x"]}
_TAKES_A_CONFIG = sorted(
    name for name, command in cli.commands.items() if any("--config" in p.opts for p in command.params)
)


@pytest.mark.parametrize("command", _TAKES_A_CONFIG)
@pytest.mark.parametrize("target", ["runpod", "local"])
def test_a_missing_config_exits_with_a_code_the_commands_row_lists(
    command: str, target: str, flash, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config is read first, with or without an API key: a missing one is exit 2 everywhere."""
    monkeypatch.delenv("RUNPOD_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.runpod/config.toml either
    takes_target = any("--target" in p.opts for p in cli.commands[command].params)
    args = [
        command,
        *_ARGUMENTS.get(command, []),
        "-c",
        "missing.toml",
        *(["--target", target] if takes_target else []),
    ]
    result = flash(*args, cwd=tmp_path)
    assert result.code == 2, (args, result.err)
    assert "missing.toml: error: file not found" in result.out + result.err
    assert result.code in _listed()[command]


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_a_refused_command_line_exits_2_as_the_readme_says_for_every_command(command: str, flash) -> None:
    assert "Any command also exits 2 when its command line is refused" in _section("Exit codes")
    result = flash(command, "--no-such-option")
    assert result.code == Exit.INVALID
    assert "Error: No such option '--no-such-option'" in result.err


def test_a_write_that_fails_exits_3_in_init_as_in_build(flash, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where init needs a folder\n")
    result = flash("init", str(tmp_path / "taken" / "app"))
    assert result.err == (
        f"flash: error: cannot write {tmp_path}/taken/app/app/__init__.py: Not a directory\n"
        "  hint: check the folder's permissions\n"
    )
    assert result.code == Exit.BUILD
    assert Exit.BUILD in _listed()["init"]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_sigterm_is_ctrl_c_for_a_command_that_installs_no_handler_of_its_own(tmp_path: Path, sig: str) -> None:
    """`flash logs -f` follows until stopped: SIGTERM (a CI runner's cancel, `timeout`, a service
    manager) exits 130 as Ctrl-C does, not 143."""
    import os
    import signal
    import subprocess
    import sys

    (tmp_path / "flash.toml").write_text(
        '[app]\nname = "term"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\nroutes = { "GET /x" = "handlers:x" }\n'
    )
    (tmp_path / "handlers.py").write_text("def x() -> dict:\n    return {}\n")
    log = tmp_path / ".flash" / "local" / "supervisor.log"
    log.parent.mkdir(parents=True)
    log.write_text("2026-01-02T03:04:05.000Z api-1 | ready\n")
    follower = subprocess.Popen(
        [sys.executable, "-m", "flash_pipeline", "logs", "--target", "local", "--follow"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == "2026-01-02T03:04:05.000Z api-1 | ready\n"  # it follows now
        follower.send_signal(getattr(signal, sig))
        _, err = follower.communicate(timeout=30)
        assert follower.returncode == Exit.INTERRUPTED
        assert err == "\nflash: interrupted\n"
        assert Exit.INTERRUPTED in _listed()["logs"]
    finally:
        if follower.poll() is None:
            os.kill(follower.pid, signal.SIGKILL)


def test_a_fix_that_cannot_be_written_exits_3_as_validates_row_says(tmp_path: Path) -> None:
    import resource
    import subprocess
    import sys

    config = (
        '[app]\nname = "fixme"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\nwokers = [0, 1]\nroutes = { "GET /x" = "h:x" }\n'
    )
    (tmp_path / "flash.toml").write_text(config)
    (tmp_path / "h.py").write_text("def x() -> dict:\n    return {}\n")
    import os

    # coverage's subprocess measurement would fail to write its data file under the same limit
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE")}
    done = subprocess.run(
        [sys.executable, "-m", "flash_pipeline", "validate", "--fix"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0)),  # every file write fails
    )  # fmt: skip
    assert done.stderr.endswith(
        "flash: error: cannot write flash.toml: File too large\n  hint: check the folder's permissions\n"
    )
    assert done.returncode == Exit.BUILD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flash.toml", "h.py"]
    assert (tmp_path / "flash.toml").read_text() == config
    assert Exit.BUILD in _listed()["validate"]


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_foreground_local_deploy_stopped_by_a_signal_exits_130(tmp_path: Path, sig: str) -> None:
    import os
    import signal
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "flash_pipeline", "init", str(tmp_path)], check=True, capture_output=True)
    deploy = subprocess.Popen(
        [sys.executable, "-m", "flash_pipeline", "deploy", "--target", "local"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert deploy.stdout is not None
        # worker output and then the report come on stdout: after the report, it serves
        assert any(line.startswith("api  created ") for line in deploy.stdout), deploy.poll()
        deploy.send_signal(getattr(signal, sig))
        _, err = deploy.communicate(timeout=60)
        assert err.endswith("flash: stopped; no worker is left running\n\nflash: interrupted\n"), err
        assert deploy.returncode == Exit.INTERRUPTED
        assert Exit.INTERRUPTED in _listed()["deploy"]
    finally:
        if deploy.poll() is None:
            os.kill(deploy.pid, signal.SIGKILL)


def test_a_reader_that_stops_reading_ends_the_command_quietly_with_130(tmp_path: Path) -> None:
    """`flash logs | head`: click would exit 1 (the table's code for a bug, with no traceback)."""
    import subprocess
    import sys

    (tmp_path / "flash.toml").write_text(
        '[app]\nname = "pipe"\n\n[endpoints.api]\ncpu = "cpu3c-2-4"\nroutes = { "GET /x" = "handlers:x" }\n'
    )
    (tmp_path / "handlers.py").write_text("def x() -> dict:\n    return {}\n")
    log = tmp_path / ".flash" / "local" / "supervisor.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"2026-01-02T03:04:05.000Z api-1 | line {n}\n" for n in range(100_000)))  # > a pipe's buffer
    reader = subprocess.Popen(
        [sys.executable, "-m", "flash_pipeline", "logs", "--target", "local"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert reader.stdout is not None and reader.stderr is not None
    assert reader.stdout.readline() == b"2026-01-02T03:04:05.000Z api-1 | line 0\n"
    reader.stdout.close()  # as `head -1` does
    assert reader.stderr.read() == b""
    assert reader.wait(timeout=60) == Exit.INTERRUPTED
