"""`flash validate` of a generated 500-endpoint config (and a 100-file monorepo)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import BIN, median_ms, run_once, table


def big_config(endpoints: int) -> str:
    parts = ['[app]\nname = "big"\nregistry = "ghcr.io/acme"\n\n[defaults]\ndatacenters = ["EU-RO-1"]\n']
    for i in range(endpoints):
        compute = 'gpu = ["ADA_24", "AMPERE_24"]' if i % 2 else 'cpu = "cpu3c-4-8"'
        parts.append(
            f'[endpoints.ep-{i}]\n{compute}\nworkers = [0, {1 + i % 5}]\nenv = {{ INDEX = "{i}", SHA = "${{GITHUB_SHA}}" }}\n\n'
            f'[endpoints.ep-{i}.routes]\n"POST /predict" = "app.handlers:predict"\n"GET /items/{{item_id}}" = "app.handlers:get_item"\n'
        )
    return "\n".join(parts)


def main(rounds: int = 7) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "flash.toml").write_text(big_config(500))
        for i in range(100):
            (folder / f"svc{i}").mkdir()
            (folder / f"svc{i}" / "flash.toml").write_text(big_config(3).replace('name = "big"', f'name = "svc-{i}"'))
        flash = str(BIN / "flash")
        cases = {
            "validate 500-endpoint config": [flash, "validate", "flash.toml"],
            "validate 100 configs (monorepo)": [flash, "validate", *[f"svc{i}/flash.toml" for i in range(100)]],
        }
        rows = []
        for name, cmd in cases.items():
            runs = [run_once(cmd, cwd=folder) for _ in range(rounds)]
            assert all(r[2] == 0 for r in runs), f"{name} failed"
            rows.append((name, median_ms([r[0] for r in runs]), max(r[1] for r in runs)))
    print(f"## validate at scale ({rounds} runs each)\n")
    print(table(["case", "median ms", "peak RSS MB"], rows))


if __name__ == "__main__":
    main()
