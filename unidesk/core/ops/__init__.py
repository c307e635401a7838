"""Operating the server: backups and their schedule, /health and /health/ready, /metrics, stats."""
