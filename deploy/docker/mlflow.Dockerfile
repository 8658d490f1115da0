# The MLflow tracking server with its basic-auth app (the auth extra), PostgreSQL driver
# and S3 client, at the versions uv.lock pins (tests/deploy checks they agree).
#   docker build -f deploy/docker/mlflow.Dockerfile -t mlstack-mlflow:3.17.2 deploy/docker
FROM python:3.11-slim-bookworm
RUN pip install --no-cache-dir "mlflow[auth]==3.17.2" "psycopg[binary]==3.3.9" "boto3==1.43.117" \
    && useradd --uid 1000 --create-home mlflow
ENV MLFLOW_DISABLE_TELEMETRY=true \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
USER 1000
EXPOSE 5000
ENTRYPOINT ["mlflow"]
CMD ["server", "--host=0.0.0.0", "--port=5000", "--workers=1"]
