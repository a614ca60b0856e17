"""The report stage: every line flash prints is formatted here, split by subject.

`from pipeline import report; report.plan_text(...)` keeps working: the public functions of each
subject module are re-exported below.
"""

from pipeline.report.build import build_text, push_text
from pipeline.report.config import (
    config_error_text,
    diagnostic_text,
    error_text,
    github_annotation,
    plural,
    summary,
    validation_github,
    validation_json,
    validation_text,
)
from pipeline.report.deploy import (
    Progress,
    deploy_counts,
    destroy_list,
    interrupted_text,
    local_deploy_json,
    local_deploy_text,
    runpod_deploy_json,
    runpod_deploy_text,
    runpod_deploys_json,
    runpod_summary_markdown,
)
from pipeline.report.plan import change_text, join_plans, plan_json, plan_markdown, plan_text
from pipeline.report.status import local_status_json, local_status_text, runpod_status_json, runpod_status_text

__all__ = [
    "Progress",
    "build_text",
    "change_text",
    "config_error_text",
    "deploy_counts",
    "destroy_list",
    "diagnostic_text",
    "error_text",
    "github_annotation",
    "interrupted_text",
    "join_plans",
    "local_deploy_json",
    "local_deploy_text",
    "local_status_json",
    "local_status_text",
    "plan_json",
    "plan_markdown",
    "plan_text",
    "plural",
    "push_text",
    "runpod_deploy_json",
    "runpod_deploy_text",
    "runpod_deploys_json",
    "runpod_status_json",
    "runpod_status_text",
    "runpod_summary_markdown",
    "summary",
    "validation_github",
    "validation_json",
    "validation_text",
]
