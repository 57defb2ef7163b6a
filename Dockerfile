# tocsin: one image for every role; the command picks it (ENTRYPOINT is the `tocsin` console script):
#   docker run IMAGE serve SPEC --host 0.0.0.0        the HTTP API and dashboard on :8000 (auth on)
#   docker run IMAGE run SPEC --workers 1             a Kafka worker (metrics on the spec's metrics.port)
#   docker run IMAGE produce --topic events …         simulated events into Kafka
# Build:            docker build -t tocsin .
# With PyTorch:     docker build --build-arg DEEP=true -t tocsin:deep .   (autoencoder, lstm_forecaster)
# Size, estimated from the installed wheels (docs/deploy.md): ~1.0 GB (~0.3 GB compressed); DEEP=true ~1.8 GB (~0.55 GB).

# --- builder: wheels for tocsin and every dependency, installed into a venv ----------------------------
# `pip wheel` resolves once and leaves exactly that set in /wheels; the venv gets those wheels and no others.
FROM python:3.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# DEEP=true adds the `deep` extra (torch==2.13.0). PyPI's Linux torch wheel is the CUDA build (GBs of
# nvidia-* wheels); the CPU build comes from PyTorch's own index, TORCH_INDEX, consulted only then.
ARG DEEP=false
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
WORKDIR /src
# only what the package build reads (.dockerignore keeps the rest out of the context)
COPY pyproject.toml README.md ./
COPY src ./src
# Every runtime dependency ships manylinux wheels for amd64 and arm64, so no compiler is needed; a
# platform without one would need build-essential here, in the builder only.
RUN set -eux; \
    extras="kafka,redis,postgres"; \
    set --; \
    if [ "$DEEP" = "true" ]; then extras="$extras,deep"; set -- --extra-index-url "$TORCH_INDEX"; fi; \
    pip wheel --wheel-dir /wheels "$@" ".[$extras]"; \
    python -m venv --without-pip /opt/venv; \
    pip --python /opt/venv/bin/python install --no-index --no-deps /wheels/*.whl

# --- runtime: the venv and nothing else (no compilers, no wheels, no pip caches) -----------------------
FROM python:3.11-slim-bookworm
LABEL org.opencontainers.image.title="tocsin" \
      org.opencontainers.image.description="Real-time anomaly detection over event streams" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache
# numba compiles its kernels on first use (~15-25 s) and caches them in NUMBA_CACHE_DIR: the package
# directory is read-only, /tmp is writable (an emptyDir on Kubernetes keeps the cache across restarts).
RUN groupadd --system --gid 10001 tocsin \
    && useradd --system --uid 10001 --gid tocsin --home-dir /var/lib/tocsin --shell /usr/sbin/nologin tocsin \
    && mkdir -p /var/lib/tocsin /run/tocsin /etc/tocsin /tmp/numba-cache \
    && chown tocsin:tocsin /var/lib/tocsin /run/tocsin /tmp/numba-cache
COPY --from=builder /opt/venv /opt/venv
# /var/lib/tocsin: the working directory (local store, checkpoints, the API's journal and key file);
# /run/tocsin: a worker's health file (stream.health_path); /etc/tocsin: mount the pipeline spec here.
WORKDIR /var/lib/tocsin
USER 10001:10001
# 8000: `tocsin serve` (API, dashboard, /health, /metrics); 9400: a worker's /metrics (the spec's metrics.port)
EXPOSE 8000 9400
# The API's health (200 ok, 503 degraded). A worker has no HTTP API: Compose and Kubernetes give workers a
# probe of their own (the health file).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status != 200)"]
ENTRYPOINT ["tocsin"]
CMD ["serve", "--host", "0.0.0.0"]
