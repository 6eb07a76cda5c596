"""The runbook's OpenSearch phase: restore the latest snapshot when the target lacks indices.

Requests are signed with SigV4 (service `es`) from the operator's AWS credentials, and go
to the domain's endpoint, which sits in the VPC: run the switch from where it is reachable.
The snapshot repository (`s3_backup`, as in the runbook) is registered on the target domain
from the program's outputs when it is missing.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import botocore.auth
import botocore.awsrequest
import botocore.credentials

log = logging.getLogger(__name__)

REPOSITORY = "s3_backup"


class SearchError(RuntimeError):
    """The domain could not be reached or refused a request."""


@dataclass
class SearchClient:
    base_url: str
    region: str
    credentials: botocore.credentials.Credentials | None = None
    timeout: float = 30.0

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        url = self.base_url.rstrip("/") + path
        headers = {"Content-Type": "application/json"}
        if self.credentials is not None:
            aws_request = botocore.awsrequest.AWSRequest(
                method=method, url=url, data=data, headers=headers
            )
            botocore.auth.SigV4Auth(self.credentials, "es", self.region).add_auth(aws_request)
            headers = dict(aws_request.headers.items())
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:300]
            raise SearchError(f"{method} {path}: HTTP {err.code}: {detail}") from err
        except (urllib.error.URLError, OSError) as err:
            raise SearchError(f"{method} {path}: {err}") from err
        return json.loads(text) if text else None

    def user_indices(self) -> list[str]:
        rows = self.request("GET", "/_cat/indices?format=json") or []
        return sorted(r["index"] for r in rows if not str(r["index"]).startswith("."))

    def ensure_repository(self, bucket: str, role_arn: str) -> None:
        try:
            self.request("GET", f"/_snapshot/{REPOSITORY}")
            return
        except SearchError as err:
            if "HTTP 404" not in str(err):
                raise
        self.request(
            "PUT",
            f"/_snapshot/{REPOSITORY}",
            {
                "type": "s3",
                "settings": {"bucket": bucket, "region": self.region, "role_arn": role_arn},
            },
        )

    def latest_snapshot(self) -> str | None:
        found = self.request("GET", f"/_snapshot/{REPOSITORY}/_all") or {}
        done = [s for s in found.get("snapshots", []) if s.get("state") == "SUCCESS"]
        if not done:
            return None
        return str(max(done, key=lambda s: s.get("start_time_in_millis", 0))["snapshot"])

    def restore(self, snapshot: str) -> None:
        self.request(
            "POST",
            f"/_snapshot/{REPOSITORY}/{snapshot}/_restore",
            {"indices": "*,-.*", "ignore_unavailable": True, "include_global_state": False},
        )

    def restores_in_progress(self) -> int:
        recovery = self.request("GET", "/_recovery?active_only=true") or {}
        return sum(
            1
            for index in recovery.values()
            for shard in index.get("shards", [])
            if shard.get("type") == "SNAPSHOT" and shard.get("stage") != "DONE"
        )

    def wait_restored(self, timeout: float, poll: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.restores_in_progress() == 0:
                return
            time.sleep(poll)
        raise SearchError(f"snapshot restore still running after {timeout:.0f}s")


def restore_latest(
    client: SearchClient, bucket: str, role_arn: str, timeout: float, poll: float = 5.0
) -> str:
    """Register the repository if needed, restore the newest successful snapshot, wait."""
    client.ensure_repository(bucket, role_arn)
    snapshot = client.latest_snapshot()
    if snapshot is None:
        raise SearchError(f"no successful snapshot in repository {REPOSITORY} ({bucket})")
    log.info("restoring snapshot %s", snapshot)
    client.restore(snapshot)
    client.wait_restored(timeout, poll)
    return snapshot
