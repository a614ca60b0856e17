"""What a deploy leaves for GitHub Actions: `<endpoint>_url` / `<endpoint>_id` step outputs and the
step-summary table (rendered by flash_pipeline.report.deploy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flash_pipeline.targets.runpod.converge import Outcome


def write_github_outputs(
    outcomes: Sequence[Outcome], environ: Mapping[str, str], summary_markdown: str, app: str | None = None
) -> None:
    """In GitHub Actions: `<endpoint>_url` / `<endpoint>_id` outputs (`<app>_<endpoint>_…` when several
    configs deploy at once, so they never collide) and a step-summary table."""
    output = environ.get("GITHUB_OUTPUT")
    if output:
        with Path(output).open("a", encoding="utf-8") as handle:
            for o in outcomes:
                if o.endpoint_id and o.action not in ("deleted", "orphaned", "failed", "pending"):
                    key = (f"{app}_{o.key}" if app else o.key).replace("-", "_")
                    handle.write(f"{key}_url={o.url}\n{key}_id={o.endpoint_id}\n")
    step_summary = environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with Path(step_summary).open("a", encoding="utf-8") as handle:
            handle.write(summary_markdown + "\n")
