"""Live progress: updating lines on a terminal, timestamped lines in CI logs."""

from __future__ import annotations

from flash_pipeline.report import Progress


def test_progress_without_a_terminal_prints_timestamped_lines() -> None:
    out: list[str] = []
    progress = Progress(out.append, tty=False, clock=lambda: "12:00:01")
    progress("api: /ping 204 initializing after 0.0s")
    progress("flash: something else")
    assert out == ["12:00:01 api: /ping 204 initializing after 0.0s\n", "12:00:01 flash: something else\n"]


def test_progress_on_a_terminal_rewrites_one_line_per_endpoint() -> None:
    out: list[str] = []
    progress = Progress(out.append, tty=True)
    progress("api: /ping 204 initializing after 0.0s")
    progress("data-api: /ping 204 initializing after 0.0s")
    progress("api: /ping 200 ready after 1.5s")
    assert out == [
        "\x1b[2Kapi  /ping 204 initializing after 0.0s\n",
        "\x1b[1F\x1b[2Kapi       /ping 204 initializing after 0.0s\n\x1b[2Kdata-api  /ping 204 initializing after 0.0s\n",
        "\x1b[2F\x1b[2Kapi       /ping 200 ready after 1.5s\n\x1b[2Kdata-api  /ping 204 initializing after 0.0s\n",
    ]
