#!/usr/bin/env bash
# The GitHub Action's step: run one flash command, expose outputs, write the step summary.
# Inputs arrive as FLASH_COMMAND, FLASH_CONFIG (path or glob), FLASH_TARGET, FLASH_ENV, FLASH_ARGS.
# Runs as is outside GitHub too (the tests do): GITHUB_OUTPUT / GITHUB_STEP_SUMMARY default to /dev/null.
set -euo pipefail
output="${GITHUB_OUTPUT:-/dev/null}"
summary="${GITHUB_STEP_SUMMARY:-/dev/null}"
read -r -a extra <<< "${FLASH_ARGS:-}"
config="${FLASH_CONFIG:-flash.toml}"
target="${FLASH_TARGET:-runpod}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

case "${FLASH_COMMAND:-validate}" in
  validate)
    # GITHUB_ACTIONS=true makes flash add ::error annotations to its text report.
    flash validate "$config" "${extra[@]}"
    ;;
  plan)
    set +e
    flash plan -c "$config" --target "$target" --format markdown --detailed-exitcode "${extra[@]}" > "$work/plan.md"
    code=$?
    set -e
    cat "$work/plan.md"
    if [ "$code" -eq 10 ]; then echo "changes=true" >> "$output"; elif [ "$code" -eq 0 ]; then echo "changes=false" >> "$output"; else exit "$code"; fi
    cat "$work/plan.md" >> "$summary"
    ;;
  deploy)
    flash deploy -c "$config" --target "$target" --detach --format json "${extra[@]}" > "$work/deploy.json"
    cat "$work/deploy.json"
    python3 - "$work/deploy.json" >> "$output" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
endpoints = {key: {"url": e.get("url"), "id": e.get("id")} for key, e in report["endpoints"].items()}
print("endpoints=" + json.dumps(endpoints, separators=(",", ":")))
PY
    ;;
  destroy)
    flash destroy -c "$config" --target "$target" --yes "${extra[@]}"
    ;;
  *)
    echo "flash action: unknown command '${FLASH_COMMAND}' (validate, plan, deploy or destroy)" >&2
    exit 2
    ;;
esac
