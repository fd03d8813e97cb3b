# The Mamori image: every server-side service (ingest, alerts, inspection worker, API,
# migrations, broker ACLs) and the edge agent, chosen by the command docker-compose.yml
# gives each container.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# OpenCV's headless wheel and onnxruntime need these shared libraries at run time.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libglib2.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --system --uid 10001 --create-home --home-dir /home/mamori mamori \
    && mkdir -p /var/lib/mamori/blobs /var/lib/mamori/acl \
    && chown -R mamori:mamori /var/lib/mamori

WORKDIR /app
COPY . /app
RUN pip install ".[server]"

USER mamori
WORKDIR /home/mamori
# No ENTRYPOINT: each service names its command, e.g. ["mamori", "ingest", "run"].
CMD ["mamori", "--help"]
