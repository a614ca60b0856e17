"""flash: build and deploy RunPod load-balanced serverless endpoints from flash.toml."""

__version__ = "0.1.0"
