# Image for compose.yaml: the service and its CLI (`crm serve`, `crm project`, …).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY aggregates aggregates
COPY commands commands
COPY projections projections
COPY read_api read_api
COPY event_store event_store
COPY crm crm
RUN pip install --no-cache-dir .
EXPOSE 8000
CMD ["crm", "serve", "--host", "0.0.0.0"]
