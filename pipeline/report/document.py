"""The one JSON document every `--format json` prints (docs/commands.md "JSON output").

    {"version": 1, "command": "plan", "ok": true, ..., "apps": [{"app", "config", "target", "ok", "error", ...}]}

The top-level keys and each app's keys are the same for one config and for several (a list of
apps, never keys that grow an "app/" prefix); what a command adds (a plan's "changes", a deploy's
"endpoints") is listed in docs/commands.md. A change that removes or renames a key raises VERSION.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

VERSION = 1


def error_json(error: BaseException | None) -> dict[str, Any] | None:
    """What failed for one app (null when nothing did): the message, its hint and its exit code."""
    if error is None:
        return None
    return {
        "message": str(error),
        "hint": str(getattr(error, "hint", "") or ""),
        "exit_code": int(getattr(error, "exit_code", 1)),
    }


def app_json(
    app: str, config: str, target: str, fields: dict[str, Any], *, error: BaseException | None = None, ok: bool = True
) -> dict[str, Any]:
    """One app's entry: who it is, whether it went well, then the command's own fields."""
    return {"app": app, "config": config, "target": target, "ok": ok and error is None, "error": error_json(error)} | (
        fields
    )


def json_document(command: str, apps: Sequence[dict[str, Any]], **top: Any) -> str:
    """The versioned document: `ok` is every app's; `top` holds the command's own top-level keys."""
    body = {"version": VERSION, "command": command, "ok": all(a["ok"] for a in apps)} | top
    return json.dumps(body | {"apps": list(apps)}, indent=2)
