# syntax=docker/dockerfile:1
# The API image (Cloud Run service): FastAPI on $PORT, which Cloud Run sets (8080 by default).
#   docker build -t REGION-docker.pkg.dev/PROJECT/kapsule/api .
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KAPSULE_WORK_DIR=/tmp/kapsule/work \
    MPLCONFIGDIR=/tmp/kapsule/matplotlib \
    PORT=8080

# ffprobe: the API checks an upload is audio before it queues a job.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 10001 kapsule \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin kapsule

WORKDIR /app
COPY pyproject.toml README.md ./
COPY kapsule/ kapsule/
RUN pip install .

USER 10001:10001
EXPOSE 8080
# exec form through sh so $PORT is expanded and the server still gets the signals. kapsule.api.serve runs
# the open-mode check first: without API keys it refuses to listen on 0.0.0.0 (exit 2) instead of serving.
# --proxy-headers trusts X-Forwarded-For/-Proto only from KAPSULE_FORWARDED_ALLOW_IPS (default 127.0.0.1;
# deploy.sh sets '*' on Cloud Run, where nothing but Google's front end reaches the container).
CMD ["sh", "-c", "exec python -m kapsule.api.serve --host 0.0.0.0 --port \"${PORT}\" --proxy-headers"]
