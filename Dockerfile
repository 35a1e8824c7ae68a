# Production image: `calltrack serve` on port 8000. Against PostgreSQL run the migrations
# once per release (`docker run ... calltrack migrate`) before starting the servers.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    CALLTRACK_DATABASE_URL=sqlite+aiosqlite:////srv/calltrack/data/calltrack.db
RUN groupadd --system --gid 10001 calltrack \
    && useradd --system --uid 10001 --gid calltrack --home-dir /srv/calltrack calltrack \
    && mkdir -p /srv/calltrack/data \
    && chown calltrack:calltrack /srv/calltrack/data
WORKDIR /srv/calltrack
COPY --from=build /install /usr/local
# Migrations run from the working directory: alembic.ini finds ./migrations next to it.
COPY alembic.ini ./
COPY migrations ./migrations
USER calltrack
VOLUME ["/srv/calltrack/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["calltrack", "serve", "--host", "0.0.0.0", "--port", "8000"]
