# Albedo: one image for the web app, the worker and the one-shot migration.
FROM python:3.12-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
RUN useradd --create-home --uid 10001 albedo
COPY pyproject.toml README.md ./
COPY app ./app
COPY tenants ./tenants
COPY jobs ./jobs
COPY wsgi.py gunicorn.conf.py ./
COPY migrations ./migrations
COPY templates ./templates
# Editable: the app finds templates/ and migrations/ next to its packages in /app.
RUN pip install -e .
# prometheus_client's multiprocess directory (PROMETHEUS_MULTIPROC_DIR): a fresh named volume
# mounted here takes this ownership.
RUN mkdir -p /var/lib/albedo-metrics && chown albedo /var/lib/albedo-metrics
USER albedo
ENV ALBEDO_ENV=production FLASK_APP=wsgi
EXPOSE 8000
# gunicorn.conf.py: gevent workers, so open streams hold greenlets rather than threads.
CMD ["gunicorn", "--config", "gunicorn.conf.py"]
