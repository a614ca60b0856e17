"""The report stage: every line flash prints is formatted here, split by subject.

`from flash_pipeline import report; report.plan_text(...)` keeps working: each public function is looked
up in its subject module on first use (PEP 562), so `flash validate` loads only the config reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flash_runtime.lazy import exports

if TYPE_CHECKING:  # the same names as _WHERE (tests/pipeline/test_lazy_exports.py checks)
    from flash_pipeline.report.build import build_text as build_text
    from flash_pipeline.report.build import push_text as push_text
    from flash_pipeline.report.config import app_error_text as app_error_text
    from flash_pipeline.report.config import config_error_text as config_error_text
    from flash_pipeline.report.config import diagnostic_text as diagnostic_text
    from flash_pipeline.report.config import error_text as error_text
    from flash_pipeline.report.config import github_annotation as github_annotation
    from flash_pipeline.report.config import plural as plural
    from flash_pipeline.report.config import summary as summary
    from flash_pipeline.report.config import validation_github as validation_github
    from flash_pipeline.report.config import validation_json as validation_json
    from flash_pipeline.report.config import validation_text as validation_text
    from flash_pipeline.report.deploy import Progress as Progress
    from flash_pipeline.report.deploy import deploy_counts as deploy_counts
    from flash_pipeline.report.deploy import destroy_list as destroy_list
    from flash_pipeline.report.deploy import interrupted_text as interrupted_text
    from flash_pipeline.report.deploy import local_deploy_json as local_deploy_json
    from flash_pipeline.report.deploy import local_deploy_text as local_deploy_text
    from flash_pipeline.report.deploy import runpod_deploy_json as runpod_deploy_json
    from flash_pipeline.report.deploy import runpod_deploy_text as runpod_deploy_text
    from flash_pipeline.report.deploy import runpod_summary_markdown as runpod_summary_markdown
    from flash_pipeline.report.document import app_json as app_json
    from flash_pipeline.report.document import json_document as json_document
    from flash_pipeline.report.plan import change_text as change_text
    from flash_pipeline.report.plan import join_plans as join_plans
    from flash_pipeline.report.plan import plan_json as plan_json
    from flash_pipeline.report.plan import plan_markdown as plan_markdown
    from flash_pipeline.report.plan import plan_text as plan_text
    from flash_pipeline.report.status import local_status_json as local_status_json
    from flash_pipeline.report.status import local_status_text as local_status_text
    from flash_pipeline.report.status import runpod_status_json as runpod_status_json
    from flash_pipeline.report.status import runpod_status_text as runpod_status_text

_WHERE = {
    "Progress": "deploy",
    "app_error_text": "config",
    "app_json": "document",
    "build_text": "build",
    "change_text": "plan",
    "config_error_text": "config",
    "deploy_counts": "deploy",
    "destroy_list": "deploy",
    "diagnostic_text": "config",
    "json_document": "document",
    "error_text": "config",
    "github_annotation": "config",
    "interrupted_text": "deploy",
    "join_plans": "plan",
    "local_deploy_json": "deploy",
    "local_deploy_text": "deploy",
    "local_status_json": "status",
    "local_status_text": "status",
    "plan_json": "plan",
    "plan_markdown": "plan",
    "plan_text": "plan",
    "plural": "config",
    "push_text": "build",
    "runpod_deploy_json": "deploy",
    "runpod_deploy_text": "deploy",
    "runpod_status_json": "status",
    "runpod_status_text": "status",
    "runpod_summary_markdown": "deploy",
    "summary": "config",
    "validation_github": "config",
    "validation_json": "config",
    "validation_text": "config",
}
__all__ = sorted(_WHERE)


__getattr__ = exports(__name__, _WHERE, globals())
