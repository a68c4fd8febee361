# The DPA portal as one container: `portal serve` on 0.0.0.0:8000, data (SQLite database, secret key, mail) in the
# /data volume. For PostgreSQL set PORTAL_DATABASE_URL and run `portal db upgrade` once before starting.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# LibreOffice makes the PDF copy of an executed DPA (portal/signing/pdf.py); Carlito is metric-compatible with
# Word's default Calibri, so pages break where they do in Word. tini is PID 1 and reaps what a conversion killed at
# its timeout leaves behind. Its own layer, before the source is copied, so a code change does not download it again.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libreoffice-writer-nogui fonts-crosextra-carlito tini \
    && rm -rf /var/lib/apt/lists/*

COPY . /tmp/src
RUN pip install /tmp/src \
    && rm -rf /tmp/src \
    && groupadd --system --gid 10001 portal \
    && useradd --system --uid 10001 --gid portal --home-dir /data --no-create-home --shell /usr/sbin/nologin portal \
    && mkdir -p /data \
    && chown portal:portal /data

ENV PORTAL_HOST=0.0.0.0 \
    PORTAL_PORT=8000 \
    PORTAL_DATA_DIR=/data

VOLUME ["/data"]
WORKDIR /data
USER portal:portal
EXPOSE 8000

# python:3.11-slim has no curl; the standard library is enough (urlopen raises on anything but a 2xx).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORTAL_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["portal", "serve"]
