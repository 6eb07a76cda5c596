"""moto in server mode as a real HTTP endpoint on loopback, in its own process.

A subprocess (rather than ThreadedMotoServer) can be killed on its own like a lost AWS
endpoint, and does not compete with the tests for the GIL.
"""

from __future__ import annotations

import logging
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self, overload

import boto3
import botocore.session
from botocore.config import Config

from failover.lab import procs
from failover.lab.procs import LabError, Lifecycle, ManagedProcess

if TYPE_CHECKING:
    from botocore.client import BaseClient
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_elasticache import ElastiCacheClient
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_route53 import Route53Client
    from mypy_boto3_sts import STSClient

log = logging.getLogger(__name__)

DUMMY_ACCESS_KEY = "testing"
DUMMY_SECRET_KEY = "testing"  # moto accepts any key pair; these are placeholders

# Where botocore would otherwise look for the user's real profile and credentials.
_ISOLATED_SESSION_VARS: dict[str, tuple[None, None, str | None, None]] = {
    "profile": (None, None, None, None),
    "config_file": (None, None, os.devnull, None),
    "credentials_file": (None, None, os.devnull, None),
}
# No proxy from the environment may sit between a client and a loopback endpoint.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def moto_env() -> dict[str, str]:
    """The server's environment: none of the caller's AWS settings or credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BOTO"))}
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_ACCESS_KEY_ID=DUMMY_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=DUMMY_SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


class MotoServer(Lifecycle):
    def __init__(self, work_dir: Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.work_dir = work_dir
        self.host = host
        self.port = port if port is not None else procs.free_port()
        self._proc: ManagedProcess | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def process_ids(self) -> list[int]:
        return [] if self._proc is None else self._proc.members()

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.is_running()

    process_name = "moto_server"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)]

    def start(self, timeout: float = 60.0) -> Self:
        if self.is_running():
            return self
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._proc = procs.start(
            self.argv(),
            name=self.process_name,
            log_file=self.work_dir / "moto.log",
            env=moto_env(),
            cwd=self.work_dir,
        )
        try:
            procs.wait_until(self._answers, timeout, f"moto server on {self.endpoint_url}")
        except BaseException:
            self.stop()
            raise
        log.info("moto server up at %s (pid %d)", self.endpoint_url, self.pid)
        return self

    def _answers(self) -> bool:
        if not self.is_running():
            raise LabError(f"moto server exited during start-up; see {self.work_dir / 'moto.log'}")
        try:
            with _NO_PROXY_OPENER.open(f"{self.endpoint_url}/moto-api/", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def reset(self) -> None:
        """Forget every resource, so tests sharing a server start clean."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with _NO_PROXY_OPENER.open(request, timeout=10):
            pass

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()

    @overload
    def boto3_client(self, service: Literal["rds"], region: str = ...) -> RDSClient: ...
    @overload
    def boto3_client(self, service: Literal["route53"], region: str = ...) -> Route53Client: ...
    @overload
    def boto3_client(
        self, service: Literal["elasticache"], region: str = ...
    ) -> ElastiCacheClient: ...
    @overload
    def boto3_client(
        self, service: Literal["cloudwatch"], region: str = ...
    ) -> CloudWatchClient: ...
    @overload
    def boto3_client(self, service: Literal["sts"], region: str = ...) -> STSClient: ...
    @overload
    def boto3_client(self, service: str, region: str = ...) -> BaseClient: ...

    def boto3_client(self, service: str, region: str = "us-east-1") -> Any:
        return isolated_session(region).client(  # type: ignore[call-overload]
            service,
            endpoint_url=self.endpoint_url,
            config=Config(proxies={}, retries={"max_attempts": 2, "mode": "standard"}),
        )


def isolated_session(region: str) -> boto3.Session:
    """A session with dummy keys that never reads the user's AWS config or credentials."""
    core = botocore.session.Session(session_vars=_ISOLATED_SESSION_VARS)
    return boto3.Session(
        aws_access_key_id=DUMMY_ACCESS_KEY,
        aws_secret_access_key=DUMMY_SECRET_KEY,
        region_name=region,
        botocore_session=core,
    )
