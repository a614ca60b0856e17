"""The in-worker server copied into every image: serves an endpoint's routes and /ping."""
