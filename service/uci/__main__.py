"""`python -m service.uci`: the UCI engine on stdin/stdout (entry.cli)."""

from .entry import cli

if __name__ == "__main__":
    raise SystemExit(cli())
