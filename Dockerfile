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
ARG PACKAGES="driftline feature_repo monitoring drift stream_app producers training driftline_tools"
RUN mkdir -p $PACKAGES \
    && for pkg in $PACKAGES; do touch "$pkg/__init__.py"; done \
    && pip install . \
    && pip uninstall --yes driftline \
    && rm -rf build $PACKAGES

# Every package, in the order of README's layers (kernel first, tools last).
COPY driftline ./driftline
COPY feature_repo ./feature_repo
COPY monitoring ./monitoring
COPY drift ./drift
COPY stream_app ./stream_app
COPY producers ./producers
COPY training ./training
COPY driftline_tools ./driftline_tools
RUN pip install --no-deps . && rm -rf build

# Unprivileged user; DRIFTLINE_HOME (data, Feast registry; models live in the MLflow service) is a volume shared by the
# services of docker-compose.yml, owned by this user so a fresh named volume inherits it.
RUN useradd --create-home --uid 10001 driftline \
    && mkdir -p /var/lib/driftline \
    && chown driftline:driftline /var/lib/driftline
USER driftline
WORKDIR /home/driftline
ENV DRIFTLINE_HOME=/var/lib/driftline

ENTRYPOINT ["driftline"]
CMD ["--help"]
