"""Beside flash.toml, named like flash's old worker package: flash must never import it."""

raise SystemExit("the app's runtime.py was imported by flash")
