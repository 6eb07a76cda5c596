"""The OpenSearch restore step, against a small stand-in of the domain's snapshot API.

No OpenSearch server can run here; the stand-in implements only the endpoints the restore
uses, records every request, and insists on a SigV4 signature for service `es`.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import botocore.credentials
import pytest

from failover.search import REPOSITORY, SearchClient, SearchError, restore_latest


class FakeDomain:
    def __init__(self, snapshots: list[dict[str, Any]], indices: list[str]) -> None:
        self.snapshots = snapshots
        self.indices = indices
        self.repository: dict[str, Any] | None = None
        self.restored: str | None = None
        self.recovery_polls = 0
        self.stuck = False
        self.requests: list[tuple[str, str, str]] = []

    def handle(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        if path.startswith("/_cat/indices"):
            return 200, [{"index": i} for i in self.indices]
        if path == f"/_snapshot/{REPOSITORY}" and method == "GET":
            return (
                (200, {REPOSITORY: self.repository})
                if self.repository
                else (404, {"error": "missing"})
            )
        if path == f"/_snapshot/{REPOSITORY}" and method == "PUT":
            self.repository = body
            return 200, {"acknowledged": True}
        if path == f"/_snapshot/{REPOSITORY}/_all":
            return 200, {"snapshots": self.snapshots}
        if path.endswith("/_restore") and method == "POST":
            self.restored = path.split("/")[3]
            self.indices = [*self.indices, "services", "users"]
            return 200, {"accepted": True}
        if path.startswith("/_recovery"):
            self.recovery_polls += 1
            stage = "INDEX" if self.stuck or self.recovery_polls == 1 else "DONE"
            return 200, {"services": {"shards": [{"type": "SNAPSHOT", "stage": stage}]}}
        return 404, {"error": path}


@pytest.fixture
def domain() -> Iterator[tuple[FakeDomain, str]]:
    fake = FakeDomain(
        snapshots=[
            {"snapshot": "nightly-1", "state": "SUCCESS", "start_time_in_millis": 1},
            {"snapshot": "nightly-2", "state": "SUCCESS", "start_time_in_millis": 2},
            {"snapshot": "nightly-3", "state": "FAILED", "start_time_in_millis": 3},
        ],
        indices=[".kibana"],
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            auth = self.headers.get("Authorization", "")
            fake.requests.append((self.command, self.path, auth))
            if "AWS4-HMAC-SHA256" not in auth or "/es/aws4_request" not in auth:
                code, payload = 403, {"message": "missing SigV4 signature"}
            else:
                code, payload = fake.handle(
                    self.command, self.path, json.loads(raw) if raw else None
                )
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


CREDS = botocore.credentials.Credentials("AKIDEXAMPLE", "secret-example")


def test_restores_the_newest_successful_snapshot_after_registering_the_repository(
    domain: tuple[FakeDomain, str],
) -> None:
    fake, url = domain
    client = SearchClient(url, "us-west-2", CREDS)
    assert client.user_indices() == []
    restored = restore_latest(
        client, "snap-bucket", "arn:aws:iam::1:role/snap", timeout=5, poll=0.01
    )
    assert restored == fake.restored == "nightly-2"
    assert fake.repository == {
        "type": "s3",
        "settings": {
            "bucket": "snap-bucket",
            "region": "us-west-2",
            "role_arn": "arn:aws:iam::1:role/snap",
        },
    }
    assert fake.recovery_polls == 2
    assert client.user_indices() == ["services", "users"]
    assert all("Credential=AKIDEXAMPLE/" in auth for _, _, auth in fake.requests)


def test_no_successful_snapshot_is_an_error(domain: tuple[FakeDomain, str]) -> None:
    fake, url = domain
    fake.snapshots = [{"snapshot": "broken", "state": "FAILED"}]
    with pytest.raises(SearchError, match="no successful snapshot"):
        restore_latest(SearchClient(url, "us-west-2", CREDS), "b", "r", timeout=1, poll=0.01)
    assert fake.restored is None


def test_unsigned_requests_are_refused_and_reported(domain: tuple[FakeDomain, str]) -> None:
    _, url = domain
    with pytest.raises(SearchError, match="HTTP 403"):
        SearchClient(url, "us-west-2", None).user_indices()


def test_a_restore_that_does_not_finish_times_out(domain: tuple[FakeDomain, str]) -> None:
    fake, url = domain
    fake.stuck = True
    client = SearchClient(url, "us-west-2", CREDS)
    with pytest.raises(SearchError, match="still running"):
        client.wait_restored(timeout=0.2, poll=0.01)
