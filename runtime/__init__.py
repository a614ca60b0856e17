"""The in-worker server copied into every image: serves an endpoint's routes and /ping, and lets
handlers call the app's other endpoints (`from flash_runtime import endpoint, CallError`)."""

from flash_runtime.calls import CallError, endpoint
from flash_runtime.parts import Binary, Upload

__all__ = ["Binary", "CallError", "Upload", "endpoint"]
