# The worker image: the `stream` command (worker, produce, criteria, verify).
#   docker build -t stream-activation .
#   docker run --rm -e STREAM_BROKER_URL=kafka://kafka:9092 stream-activation worker

# The wheel, with the core compiled (setup.py: mypyc needs a C compiler, which
# the runtime image does without).
FROM python:3.11 AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY stream ./stream
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY --from=build /wheels /wheels
COPY schemas ./schemas

# The JSON Schemas are read from beside the installed package
# (stream/core/segment.py: schemas_dir); the wheel does not carry them, so they
# are copied there.
RUN pip install /wheels/*.whl \
    && cp -r schemas "$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/schemas" \
    && useradd --system --uid 10001 --home-dir /var/lib/stream stream \
    && mkdir -p /var/lib/stream /etc/stream \
    && chown stream /var/lib/stream \
    && rm -rf /src /wheels

# The default criteria; mount your own over it (or set STREAM_CRITERIA).
COPY deploy/criteria.yaml /etc/stream/criteria.yaml

# RocksDB tables live in STREAM_DATA_DIR: a cache of the changelog topics, but
# a persistent volume saves a full restore on every restart.
ENV STREAM_CRITERIA=/etc/stream/criteria.yaml \
    STREAM_DATA_DIR=/var/lib/stream \
    STREAM_WEB_HOST=0.0.0.0 \
    STREAM_WEB_PORT=6066
VOLUME ["/var/lib/stream"]
WORKDIR /var/lib/stream
USER stream
EXPOSE 6066

ENTRYPOINT ["stream"]
CMD ["worker"]
