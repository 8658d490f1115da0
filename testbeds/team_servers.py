"""The team stack's servers, real, on 127.0.0.1: PostgreSQL, an S3 API, an MLflow server.

- PostgreSQL is Debian's (``make system-deps`` installs it): ``initdb`` in a temporary
  folder and ``pg_ctl start`` on a free port. ``initdb`` refuses to run as root, so as
  root both run as the ``postgres`` user Debian's package creates (or ``nobody``).
- S3 is moto in server mode (``moto_server``), which speaks the S3 HTTP API. It stands
  in for MinIO or AWS S3 because MinIO is not installable on these machines (no package
  in Debian or PyPI) and the tests have no network. Every client reaches it the way it
  would reach MinIO: through ``AWS_ENDPOINT_URL`` and credentials in the environment.
- ``mlflow server`` with ``--backend-store-uri postgresql+psycopg://...`` and
  ``--artifacts-destination s3://...``, one worker and no job execution (it is healthy in
  ~15 s instead of ~50 s on 2 cores), and ``--allowed-hosts`` exactly as the Kubernetes
  manifest (deploy/kubernetes/base/mlflow.yaml) gives it; MLflow's basic-auth app on, its
  user store on the same PostgreSQL, an admin password made up per session, and the
  pipeline, service and drift identities made by ``mlstack auth create-users``.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pipeline import environment
from serving import launcher
from serving.launcher import stop

BUCKET = "mlstack-team"
CAPTURE = f"s3://{BUCKET}/capture"
WORKSPACE = f"s3://{BUCKET}/workspace"
DVC_REMOTE = f"s3://{BUCKET}/dvc"
REPLAY_ROWS = "1200"  # above drift.min_rows (1000), so the drift run judges
FEEDBACK_TOKEN_ENV = environment.FEEDBACK_TOKEN  # what the Deployment takes from a Secret
FEEDBACK_TOKEN = "team-test-feedback-token"
VENV_BIN = Path(sys.executable).parent
# MLflow's basic auth: the admin (made at the server's first start) and the identities.
ADMIN = "mlstack-admin"
IDENTITIES = ("admin", "pipeline", "service", "drift")
MLFLOW_MANIFEST = Path(__file__).resolve().parents[1] / "deploy/kubernetes/base/mlflow.yaml"


def mlflow_container() -> dict[str, Any]:
    """The tracking server's container, as the Kubernetes manifest's Deployment runs it."""
    import yaml

    for document in yaml.safe_load_all(MLFLOW_MANIFEST.read_text()):
        if document["kind"] == "Deployment":
            return dict(document["spec"]["template"]["spec"]["containers"][0])
    raise AssertionError(f"{MLFLOW_MANIFEST} has no Deployment")


def manifest_allowed_hosts() -> str:
    """``--allowed-hosts`` exactly as the Kubernetes manifest starts the tracking server (in
    its args, or inside the shell line that writes the auth config first)."""
    import re

    container = mlflow_container()
    line = " ".join([*container.get("command", []), *container.get("args", [])])
    found = re.search(r"--allowed-hosts[= ]['\"]?([^'\"\s]+)", line)
    if found is None:
        raise AssertionError(f"{MLFLOW_MANIFEST} starts mlflow server without --allowed-hosts")
    return found.group(1)


class ServerFailed(RuntimeError):
    pass


@dataclass
class Served:
    """What serving the Bento left: the replay's JSON, the server's exit code, its log."""

    replay: dict[str, Any]
    exit_code: int
    log: Path
    tokenless_feedback_status: int


def json_out(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The one JSON object a ``--json`` command prints on stdout."""
    payload: dict[str, Any] = json.loads(done.stdout)
    return payload


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def log_tail(log: Path, chars: int = 3000) -> str:
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


def wait_http(url: str, process: subprocess.Popen[bytes] | None, log: Path, seconds: float) -> None:
    """Poll ``url`` until it answers 200; fail at once if the process died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerFailed(f"{url}: the server exited {process.returncode}\n{log_tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ServerFailed(f"{url} was not up within {seconds:.0f}s\n{log_tail(log)}")


def start(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return launcher.start(command, log, env=env)


def postgres_bin(name: str) -> str:
    """Debian keeps the server's programs off PATH, under /usr/lib/postgresql/<major>/bin."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4])
    )
    binary = found[-1] if found else shutil.which(name)
    if binary is None:
        raise ServerFailed(f"{name} not found: `make system-deps` installs Debian's postgresql")
    return binary


@dataclass
class Postgres:
    """A throw-away PostgreSQL cluster with one database, ``mlflow``, trusting 127.0.0.1."""

    folder: Path
    port: int
    user_prefix: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://mlflow@127.0.0.1:{self.port}/mlflow"

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=mlflow dbname=mlflow"

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            [*self.user_prefix, *command], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise ServerFailed(f"{' '.join(command)}: {done.stdout}\n{done.stderr}")

    @classmethod
    def start(cls) -> Postgres:
        folder = Path(tempfile.mkdtemp(prefix="mlstack-postgres-"))
        prefix: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as an unprivileged user
            user = "postgres" if _user_exists("postgres") else "nobody"
            entry = pwd.getpwnam(user)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            prefix = ["runuser", "-u", user, "--"]
        server = cls(folder, free_port(), prefix)
        data = str(folder / "data")
        server._run(
            postgres_bin("initdb"), "-D", data, "-U", "mlflow", "--auth=trust", "-E", "UTF8"
        )
        options = f"-h 127.0.0.1 -p {server.port} -k {folder} -F"
        log = str(folder / "postgres.log")
        server._run(postgres_bin("pg_ctl"), "-D", data, "-l", log, "-o", options, "-w", "start")
        server._run(
            postgres_bin("createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(server.port),
            "-U",
            "mlflow",
            "mlflow",
        )
        return server

    def stop(self) -> None:
        try:
            self._run(
                postgres_bin("pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop"
            )
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@dataclass
class TeamStack:
    """The three servers and the environment that points a client at them."""

    postgres: Postgres
    s3_url: str
    tracking_uri: str
    mlflow_port: int
    processes: list[subprocess.Popen[bytes]]
    folder: Path
    # identity (admin, pipeline, service, drift) -> password, made up for this session
    passwords: dict[str, str] = field(default_factory=dict)

    def identity(self, name: str) -> dict[str, str]:
        """The credentials ``name`` sends the tracking server (``admin`` or a user of
        ``mlstack auth create-users``: pipeline, service, drift)."""
        username = ADMIN if name == "admin" else f"mlstack-{name}"
        return {
            environment.MLFLOW_TRACKING_USERNAME: username,
            environment.MLFLOW_TRACKING_PASSWORD: self.passwords[name],
        }

    def basic_auth(self, name: str) -> tuple[str, str]:
        """``name``'s (username, password), for an HTTP client."""
        found = self.identity(name)
        return found[environment.MLFLOW_TRACKING_USERNAME], found[
            environment.MLFLOW_TRACKING_PASSWORD
        ]

    @property
    def client_env(self) -> dict[str, str]:
        """What a team member exports to use the team stack (nothing goes into params.yaml):
        the endpoints, S3's credentials, and the pipeline's identity."""
        return {
            **self.identity("pipeline"),
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "AWS_ENDPOINT_URL": self.s3_url,
            "AWS_ACCESS_KEY_ID": "mlstack-test",
            "AWS_SECRET_ACCESS_KEY": "mlstack-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def s3(self) -> object:
        import boto3

        env = self.client_env
        return boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
        )

    def keys(self, prefix: str) -> list[str]:
        client = self.s3()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)  # type: ignore[attr-defined]
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def stop(self) -> None:
        for process in reversed(self.processes):
            stop(process)
        self.postgres.stop()


def auth_config(folder: Path, database_uri: str) -> Path:
    """MLflow's basic-auth settings: the user store on the same PostgreSQL, every
    authenticated user may read, a resource's creator manages it (mlstack/auth_command.py)."""
    path = folder / "basic_auth.ini"
    path.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {database_uri}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    return path


def admin_env(stack: TeamStack, base_env: dict[str, str]) -> dict[str, str]:
    """What ``mlstack auth create-users`` runs with: the admin's sign-in and the three
    identities' passwords."""
    return {
        **base_env,
        **stack.identity("admin"),
        "MLFLOW_TRACKING_URI": stack.tracking_uri,
        environment.PIPELINE_PASSWORD: stack.passwords["pipeline"],
        environment.SERVICE_PASSWORD: stack.passwords["service"],
        environment.DRIFT_PASSWORD: stack.passwords["drift"],
    }


def create_users(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``mlstack auth create-users --json``, the command a team runs, with ``env``."""
    return subprocess.run(
        [str(VENV_BIN / "mlstack"), "auth", "create-users", "--json"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def start_team_stack(folder: Path, base_env: dict[str, str]) -> TeamStack:
    """PostgreSQL and moto first (seconds), then the MLflow server (the slow one), with
    MLflow's basic auth on and the three identities created."""
    postgres = Postgres.start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        s3_port = free_port()
        s3_log = folder / "moto.log"
        moto = start(
            [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], s3_log, base_env
        )
        processes.append(moto)
        s3_url = f"http://127.0.0.1:{s3_port}"
        wait_http(f"{s3_url}/moto-api/", moto, s3_log, 60)
        port = free_port()
        stack = TeamStack(postgres, s3_url, f"http://127.0.0.1:{port}", port, processes, folder)
        stack.passwords = {name: secrets.token_urlsafe(18) for name in IDENTITIES}
        stack.s3().create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        env = {
            **base_env,
            **stack.client_env,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_AUTH_CONFIG_PATH": str(auth_config(folder, postgres.url)),
            "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN,
            "MLFLOW_AUTH_ADMIN_PASSWORD": stack.passwords["admin"],
            # Flask's CSRF key for the auth app's forms: required, one per deployment.
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(24),
        }
        for key in ("MLFLOW_TRACKING_URI", *stack.identity("admin")):
            env.pop(key)
        mlflow_log = folder / "mlflow-server.log"
        command = [
            str(VENV_BIN / "mlflow"), "server", "--app-name", "basic-auth",
            "--backend-store-uri", postgres.url,
            "--artifacts-destination", f"s3://{BUCKET}/mlartifacts",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--allowed-hosts", manifest_allowed_hosts(),
        ]  # fmt: skip
        server = start(command, mlflow_log, env)
        processes.append(server)
        wait_http(f"{stack.tracking_uri}/health", server, mlflow_log, 240)
        made = create_users(admin_env(stack, base_env))
        if made.returncode != 0:
            raise ServerFailed(f"mlstack auth create-users: {made.stdout}{made.stderr}")
        return stack
    except BaseException:
        for process in reversed(processes):
            stop(process)
        postgres.stop()
        raise
