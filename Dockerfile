# The driftline image: one image for the setup job, the stream workers and the producer.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies change less often than the code: install them from pyproject.toml alone first so
# this layer is cached across code edits (the stub packages are replaced by the real ones below).
COPY pyproject.toml README.md ./
RUN mkdir -p driftline stream_app producers training feature_repo \
    && for pkg in driftline stream_app producers training feature_repo; do touch "$pkg/__init__.py"; done \
    && pip install . \
    && pip uninstall --yes driftline \
    && rm -rf build driftline stream_app producers training feature_repo

COPY driftline ./driftline
COPY stream_app ./stream_app
COPY producers ./producers
COPY training ./training
COPY feature_repo ./feature_repo
RUN pip install --no-deps . && rm -rf build

# Unprivileged user; DRIFTLINE_HOME (data, Feast registry, models) is a volume shared by the
# services of docker-compose.yml, owned by this user so a fresh named volume inherits it.
RUN useradd --create-home --uid 10001 driftline \
    && mkdir -p /var/lib/driftline \
    && chown driftline:driftline /var/lib/driftline
USER driftline
WORKDIR /home/driftline
ENV DRIFTLINE_HOME=/var/lib/driftline

ENTRYPOINT ["driftline"]
CMD ["--help"]
