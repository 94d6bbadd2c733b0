# continuous-play: the API service (`continuous-play serve`) on CPU.
#
#   docker build -t continuous-play .
#   docker run --rm -p 127.0.0.1:8000:8000 -e API_KEYS=some-long-secret continuous-play
#
# The image binds HOST=0.0.0.0, and the service refuses to bind anything but loopback
# without API_KEYS: set API_KEYS (comma-separated bearer keys) or the container exits
# at once with "refusing to bind HOST='0.0.0.0' without API_KEYS". docker-compose.yml
# sets it (and PostgreSQL, and Prometheus).
#
# Layout: the repository is copied to /app and installed editable, so the storage code
# finds its Alembic migrations where it looks for them (service/storage/database.py:
# MIGRATIONS_DIR = <repo>/migrations, next to service/). The working directory is /app,
# so the relative defaults (./data for SQLite, ./checkpoints, ./reports) land in
# /app/data, /app/checkpoints and /app/reports, which belong to the unprivileged user;
# mount volumes there to keep them.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# CPU-only torch from the PyTorch index, in its own layer (the biggest; source changes
# don't rebuild it). The pin MUST match TORCH in the Makefile (the one place torch is
# pinned); pyproject.toml only accepts the 2.13 series.
ARG TORCH_VERSION=2.13.0
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

WORKDIR /app
COPY . /app
# torch is already there, so pip keeps it (no CUDA wheels from PyPI).
# Bytecode is compiled here: at run time /app is read-only to the user (and the spawned
# workers import everything again), so it could not be cached then.
# EXTRAS adds optional extras: `--build-arg EXTRAS=[ray]` for WORKER_BACKEND=ray and the
# Ray nodes of docker-compose's `ray` profile (the image then also runs `ray start`).
ARG EXTRAS=""
RUN pip install -e "/app${EXTRAS}" \
 && python -m compileall -q /app/service /app/migrations \
 && python -c "import service.app, service.storage.database as d; assert (d.MIGRATIONS_DIR / 'env.py').is_file()" \
 && mkdir -p /app/data /app/checkpoints /app/reports \
 && chown -R app:app /app/data /app/checkpoints /app/reports

USER app

ENV HOST=0.0.0.0 \
    PORT=8000
EXPOSE 8000

# Liveness (slim has no curl): 200 from /healthz while the process serves. Readiness
# (database + warm worker pool) is /readyz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=4)" || exit 1

# `serve` migrates DATABASE_URL to the newest schema before it starts.
CMD ["continuous-play", "serve"]
