# recouvrement serve: API (webhooks, health) + worker + periodic polling of Redmine.
# Configure with RECOUVREMENT_* variables (see README); migrations run at start.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /srv/recouvrement
COPY pyproject.toml README.md ./
COPY app ./app
COPY integrations ./integrations
COPY ticket_templates ./ticket_templates
COPY migrations ./migrations
# Editable install: templates and migrations are read from this directory.
RUN pip install --no-cache-dir -e '.[postgres]' && useradd --system recouvrement && mkdir /data \
    && chown recouvrement /data
USER recouvrement
ENV RECOUVREMENT_DATABASE_URL=sqlite:////data/recouvrement.db
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD ["recouvrement", "serve", "--host", "0.0.0.0", "--port", "8000"]
