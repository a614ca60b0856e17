"""A user's script beside flash.toml named like flash's old CLI package: if flash ever imports
it, the import fails loudly (as RunPod's 03_mixed_workers/pipeline.py broke the local target)."""

raise SystemExit("the app's pipeline.py was imported by flash")
