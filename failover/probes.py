"""How validation reaches things by name: DNS resolution and service health endpoints.

Production resolves through the system resolver and calls https://api.<zone>/<svc>/health;
the drill supplies lab implementations that read the lab's Route53.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Protocol


class Resolver(Protocol):
    def resolve(self, fqdn: str, default_port: int) -> tuple[str, int]:
        """Where a shared name points now, as (host, port)."""
        ...


class HealthProbe(Protocol):
    def check(self, api_fqdn: str, service: str) -> tuple[bool, str]: ...


class SystemResolver:
    def resolve(self, fqdn: str, default_port: int) -> tuple[str, int]:
        # The OS resolver follows the CNAME; connecting by name is the check itself.
        return fqdn, default_port


class HttpHealthProbe:
    def __init__(self, scheme: str = "https", timeout: float = 5.0) -> None:
        self.scheme = scheme
        self.timeout = timeout

    def check(self, api_fqdn: str, service: str) -> tuple[bool, str]:
        short = service.removesuffix("-service")
        url = f"{self.scheme}://{api_fqdn}/{short}/health"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                return resp.status == 200, f"{url} -> {resp.status}"
        except (urllib.error.URLError, OSError) as err:
            return False, f"{url} -> {err}"
