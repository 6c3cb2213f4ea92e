# One image for every streamtap service (sensor, pipeline, sink, replay, init); the
# docker-compose.yml services differ only in their command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . /app
# Editable, so the engine modules compiled in place by scripts/build_native.py (mypyc; about
# twice the pure-Python speed) are the ones imported; the compiler is removed afterwards.
# A build that fails stops the image build (set STREAMTAP_PURE=1 to ship pure Python instead).
ARG STREAMTAP_PURE=0
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install -e . "mypy>=1.13,<3" \
    && STREAMTAP_PURE=$STREAMTAP_PURE python scripts/build_native.py \
    && pip uninstall -y mypy \
    && apt-get purge -y gcc libc6-dev && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app streamtap \
    && mkdir -p /var/lib/streamtap \
    && chown streamtap /var/lib/streamtap

ENV STREAMTAP_HOME=/var/lib/streamtap
USER streamtap
# Services write relative paths (e.g. Faust's data dir) here: the writable, per-service volume.
WORKDIR /var/lib/streamtap
ENTRYPOINT ["streamtap"]
CMD ["--help"]
