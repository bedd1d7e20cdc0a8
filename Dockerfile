# ccengine engine image (docker-compose.yml service "engine").
# Configuration is mounted at /etc/ccengine/ccengine.toml; secrets come from the environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# espeak-ng and sox render the prompts (`ccengine prompts build`, the compose service "prompts").
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng sox libsox-fmt-base \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY ccengine ./ccengine
RUN pip install . \
    && useradd --system --home-dir /var/lib/ccengine --shell /usr/sbin/nologin ccengine \
    && mkdir -p /var/lib/ccengine /etc/ccengine /var/lib/ccengine-prompts \
    && chown ccengine:ccengine /var/lib/ccengine /var/lib/ccengine-prompts

USER ccengine
WORKDIR /var/lib/ccengine
# 4573 FastAGI (from Asterisk), 9480 HTTP: /metrics, /healthz, /api, /console
EXPOSE 4573 9480
CMD ["ccengine", "run", "--config", "/etc/ccengine/ccengine.toml"]
