"""The REST API: routers (sessions, games, checkpoints, health), auth, problem+json errors."""
