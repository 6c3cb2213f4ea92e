# One image for every streamtap service (sensor, pipeline, sink, replay, init); the
# docker-compose.yml services differ only in their command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY . /app
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app streamtap \
    && mkdir -p /var/lib/streamtap \
    && chown streamtap /var/lib/streamtap

ENV STREAMTAP_HOME=/var/lib/streamtap
USER streamtap
# Services write relative paths (e.g. Faust's data dir) here: the writable, per-service volume.
WORKDIR /var/lib/streamtap
ENTRYPOINT ["streamtap"]
CMD ["--help"]
