"""The monitor's own HTTP endpoint: /health, /metrics, /api/status and the status page."""
