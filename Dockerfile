# citepipe: slim runtime image, non-root (uid 10001), only runtime dependencies. The store
# goes to the /data volume (CITEPIPE_DB; `demo` too); /app holds the config files and is
# never written. Build context: see .dockerignore.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY citesite ./citesite
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CITEPIPE_DB=/data/citepipe.sqlite \
    CITEPIPE_LOG_FORMAT=json \
    CITEPIPE_PROGRESS=false
RUN useradd --create-home --uid 10001 citepipe \
    && mkdir -p /data /app/config && chown citepipe:citepipe /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY config/ /app/config/
WORKDIR /app
USER citepipe
VOLUME ["/data"]
HEALTHCHECK --interval=60s --timeout=20s --start-period=20s --retries=3 \
    CMD ["citepipe", "status", "--json"]
ENTRYPOINT ["citepipe"]
CMD ["worker"]
