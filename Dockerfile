# The registry's image: gunicorn serving Django, static files served by whitenoise, DEBUG off. Slow clients
# are held and cut off by gunicorn's worker itself (README, "Serving slow clients"): no proxy inside.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    REGISTRY_DATA_DIR=/var/lib/registry \
    REGISTRY_STORAGE_DIR=/models/storage \
    REGISTRY_BIND=0.0.0.0:8003 \
    REGISTRY_ENV=production

WORKDIR /app
# Dependencies first: a change to the source rebuilds only the layers below this one.
COPY requirements.txt .
RUN pip install --disable-pip-version-check -r requirements.txt

COPY . .
RUN useradd --system --uid 1000 --home-dir /app registry \
    && mkdir -p /var/lib/registry /models/storage \
    && DJANGO_SECRET_KEY=collectstatic-only-this-build-key-signs-nothing-and-is-never-served REGISTRY_ALLOWED_HOSTS=build \
       python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R registry:registry /var/lib/registry /models/storage

# The entrypoint drops to the "registry" user after fixing the storage folders' owner.
EXPOSE 8003
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8003/health', timeout=4).status != 200)"

# Migrations run once here, before gunicorn starts its workers.
ENTRYPOINT ["/app/docker-entrypoint.sh"]
CMD ["gunicorn", "--config", "registry_site/gunicorn.conf.py", "registry_site.wsgi:application"]
