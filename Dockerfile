# photoproc: the REST/WebSocket API, the upload page and a worker in one container.
#
#   docker build -t photoproc:cpu .                              # onnxruntime (CPU)
#   docker build -t photoproc:gpu --build-arg EXTRAS=gpu .       # onnxruntime-gpu (CUDA 13)
#   docker build -t photoproc:dask --build-arg EXTRAS=cpu,dask . # + dask/distributed
#   docker run -p 127.0.0.1:5000:5000 -e PHOTOPROC_TOKEN=… -v photoproc-data:/data \
#              -v photoproc-models:/models photoproc:cpu
#
# No model weights are downloaded here: they live in the /models volume
# (`photoproc models pull NAME` in the container, or copy files in); the
# `grabcut` model needs none. See README.md, "Deploy".

# Same base in both stages: the venv's interpreter path (/usr/local/bin/python3.11)
# must exist unchanged where the venv is copied to.
FROM python:3.11-slim-bookworm AS build

# Which pyproject extras to install: exactly one of cpu / gpu, optionally dask.
ARG EXTRAS=cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/venv
WORKDIR /src
COPY deploy/constraints.txt deploy/constraints.txt
COPY pyproject.toml README.md voila.json ./
COPY jupyter-config jupyter-config
COPY notebooks notebooks
COPY photoproc photoproc
# A plain (not editable) install: the wheel carries the notebooks and voila.json,
# so the runtime stage needs nothing from /src. -c: the versions the tests ran on.
RUN case ",${EXTRAS}," in \
      *,cpu,gpu,*|*,cpu,*,gpu,*|*,gpu,cpu,*|*,gpu,*,cpu,*) echo "EXTRAS: choose cpu or gpu, not both" >&2; exit 1 ;; \
      *,cpu,*|*,gpu,*) ;; \
      *) echo "EXTRAS must name cpu or gpu (got '${EXTRAS}')" >&2; exit 1 ;; \
    esac \
 && /opt/venv/bin/pip install -c deploy/constraints.txt ".[${EXTRAS}]" \
 && /opt/venv/bin/photoproc --version


FROM python:3.11-slim-bookworm AS runtime

# A fixed numeric id, so volumes and bind mounts can be prepared for it
# (`chown 10001 ./data`) and runtimes that check `runAsNonRoot` accept it.
RUN groupadd --system --gid 10001 photoproc \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/photoproc photoproc \
 && mkdir -p /data /models \
 && chown 10001:10001 /data /models

COPY --from=build /opt/venv /opt/venv

# PHOTOPROC_HOST/PORT are read by `photoproc serve` and by `photoproc healthcheck`.
# NUMBA_CACHE_DIR: pymatting (alpha matting) caches compiled code beside its
# sources by default, which the non-root user cannot write.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PHOTOPROC_DATA_DIR=/data \
    U2NET_HOME=/models \
    PHOTOPROC_HOST=0.0.0.0 \
    PHOTOPROC_PORT=5000 \
    PHOTOPROC_DEVICE=auto \
    NUMBA_CACHE_DIR=/tmp/numba-cache

USER 10001:10001
WORKDIR /home/photoproc
VOLUME ["/data", "/models"]
EXPOSE 5000

# Exit status 0 only when /health answers ok (uses PHOTOPROC_PORT and PHOTOPROC_TOKEN).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["photoproc", "healthcheck"]

# Bound to every address, so a token is required: --require-token refuses to start
# without PHOTOPROC_TOKEN instead of printing a generated one nobody else knows.
CMD ["photoproc", "serve", "--require-token"]
