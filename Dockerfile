# podgate's container image: the ingress pod of the notebook platform.
#
# Two stages: "build" makes wheels of podgate and every dependency (compilers
# live only there); the final stage installs those wheels into a venv and
# carries no compiler, no pip cache and no source tree.
# Build:  docker build -t podgate:0.1.0 .
# Run:    docker run -p 8000:8000 -p 8081:8081 -v ./config.yaml:/etc/podgate/config.yaml podgate:0.1.0

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the wheel is built from (see .dockerignore).
COPY pyproject.toml README.md ./
COPY edge ./edge
COPY control ./control
COPY routes ./routes
COPY metrics ./metrics
COPY podgate ./podgate
COPY kubesim ./kubesim
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/podgate/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels come in through a bind mount, so no layer keeps them.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/podgate \
    && /opt/podgate/bin/pip install --no-index --find-links=/wheels podgate \
    && /opt/podgate/bin/pip uninstall --yes pip
# The same file deploy/base turns into the ConfigMap (a test keeps them one):
# in-cluster API access, password logins from a mounted Secret. Off a
# cluster, mount your own config over it.
COPY deploy/base/config.yaml /etc/podgate/config.yaml
# A numeric user, so Kubernetes' runAsNonRoot can check it without /etc/passwd.
USER 10001:10001
EXPOSE 8000 8081
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8081/healthz', timeout=2).status != 200)"]
ENTRYPOINT ["podgate"]
CMD ["run", "--config", "/etc/podgate/config.yaml"]
