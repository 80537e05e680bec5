# syntax=docker/dockerfile:1
# Two images from one file (docs/deploy-aws.md):
#   --target dagster   Dagster webserver, daemon and run tasks on ECS Fargate
#   --target receiver  the webhook receiver on AWS Lambda (a container image: its imports
#                      pass the 250 MB unzipped limit of a zip function)

FROM python:3.12-slim-bookworm AS dagster
# The allocators `hostpms` chooses for itself (engine/memory.py), for the run tasks too.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home \
    HOSTPMS_HOME=/tmp/hostpms \
    ARROW_DEFAULT_MEMORY_POOL=system \
    MALLOC_ARENA_MAX=2
WORKDIR /app
# Dependencies first: this layer is rebuilt only when setup.py changes.
COPY setup.py pyproject.toml README.md ./
COPY hostpms_pipeline/__init__.py hostpms_pipeline/__init__.py
RUN pip install .
COPY hostpms_pipeline hostpms_pipeline
RUN pip install --no-deps . \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin dagster \
    && mkdir -p "$DAGSTER_HOME" \
    && chown dagster "$DAGSTER_HOME"
COPY workspace.yaml ./
COPY infra/dagster/dagster.yaml $DAGSTER_HOME/dagster.yaml
COPY --chmod=755 infra/dagster/hourly-poll.sh /usr/local/bin/hostpms-hourly-poll
USER 10001
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/server_info', timeout=4)"]
CMD ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", "workspace.yaml"]

FROM public.ecr.aws/lambda/python:3.12 AS receiver
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOSTPMS_HOME=/tmp/hostpms
# What the handler imports, not the whole pipeline (no Dagster, no Spark).
COPY infra/receiver-requirements.txt /tmp/receiver-requirements.txt
RUN pip install --requirement /tmp/receiver-requirements.txt
COPY setup.py pyproject.toml README.md /tmp/build/
COPY hostpms_pipeline /tmp/build/hostpms_pipeline
RUN pip install --no-deps --target "${LAMBDA_TASK_ROOT}" /tmp/build && rm -rf /tmp/build
CMD ["hostpms_pipeline.webhooks.lambda_handler.handler"]
