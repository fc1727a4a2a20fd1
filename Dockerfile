# minerguard operator image: a builder stage makes the wheel and a virtualenv with the
# dependencies pinned (with hashes) by requirements.lock; the final stage holds only that
# virtualenv on python:3.11-slim, runs as the non-root user 65532 and starts `minerguard run`.
# tests/e2e/test_image.py performs the same install steps in a clean virtualenv, starts the
# operator from it, and lints this file with hadolint.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The build frontend, in its own virtualenv (setuptools comes from pyproject's build-system).
RUN python -m venv /opt/build && /opt/build/bin/pip install --no-cache-dir build==1.6.1
COPY pyproject.toml README.md requirements.lock ./
COPY operator ./operator
# operator/minerguard/pack is a symlink to manifests/policies: the default pack, package data of the wheel.
COPY manifests/policies ./manifests/policies
RUN /opt/build/bin/python -m build --wheel --outdir /dist .
# The runtime virtualenv: the locked dependencies first (hashes required, wheels only: the
# image has no compiler), then minerguard's own wheel without resolving anything more.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: --require-hashes -r requirements.lock \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps /dist/minerguard-*.whl

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="minerguard" \
      org.opencontainers.image.description="Kubernetes operator that finds cryptominers and contains them" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 65532 minerguard \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin minerguard
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The root filesystem may be read-only (the Helm chart mounts a writable /tmp).
WORKDIR /tmp
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["minerguard"]
CMD ["run"]
