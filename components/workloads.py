"""The platform's Kubernetes workloads on one region's cluster.

The active region runs full capacity and writes; the standby runs a warm minimum with
READ_ONLY=true, so a flip is a scale-up and a config change, never a fresh deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.contract import APP_NAMESPACE, APP_PORT, HEALTH_PATH, SERVICES


@dataclass(frozen=True)
class WorkloadsArgs:
    region: str
    active: bool
    active_replicas: int
    standby_replicas: int
    image_registry: str
    image_tag: str
    db_host: pulumi.Input[str]
    db_port: pulumi.Input[int]
    db_name: str
    db_username: str
    db_password: pulumi.Input[str]
    redis_host: pulumi.Input[str]
    search_host: pulumi.Input[str]
    provider: k8s.Provider


def _probe(initial_delay: int) -> Any:
    return {
        "http_get": {"path": HEALTH_PATH, "port": APP_PORT},
        "initial_delay_seconds": initial_delay,
        "period_seconds": 10,
        "failure_threshold": 3,
    }


class Workloads(pulumi.ComponentResource):
    gateway: k8s.core.v1.Service
    gateway_hostname: pulumi.Output[str]
    deployments: dict[str, k8s.apps.v1.Deployment]

    def __init__(
        self, name: str, args: WorkloadsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("llm:platform:Workloads", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        read_only = "false" if args.active else "true"
        replicas = args.active_replicas if args.active else args.standby_replicas
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace", metadata={"name": APP_NAMESPACE}, opts=child
        )
        in_ns = pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(depends_on=[namespace]))
        config = k8s.core.v1.ConfigMap(
            f"{name}-app-config",
            metadata={"name": "app-config", "namespace": APP_NAMESPACE},
            data={
                "DB_HOST": args.db_host,
                "DB_PORT": pulumi.Output.from_input(args.db_port).apply(str),
                "DB_NAME": args.db_name,
                "ES_HOST": args.search_host,
                "REDIS_HOST": args.redis_host,
                "REGION": args.region,
                "READ_ONLY": read_only,
            },
            opts=in_ns,
        )
        credentials = k8s.core.v1.Secret(
            f"{name}-db-credentials",
            metadata={"name": "db-credentials", "namespace": APP_NAMESPACE},
            string_data={
                "username": args.db_username,
                "password": pulumi.Output.secret(args.db_password),
            },
            opts=in_ns,
        )
        self.deployments = {}
        for service in SERVICES:
            labels = {"app": service, "tier": "api"}
            spec: Any = {
                "replicas": replicas,
                "selector": {"match_labels": {"app": service}},
                "template": {
                    # The annotation rolls the pods when the region changes role, so a
                    # flip is picked up without a manual `rollout restart`.
                    "metadata": {
                        "labels": labels,
                        "annotations": {"llm-marketplace/read-only": read_only},
                    },
                    "spec": {
                        "containers": [
                            {
                                "name": service,
                                "image": f"{args.image_registry}/{service}:{args.image_tag}",
                                "ports": [{"container_port": APP_PORT}],
                                "env_from": [{"config_map_ref": {"name": "app-config"}}],
                                "env": [
                                    {
                                        "name": "DB_PASSWORD",
                                        "value_from": {
                                            "secret_key_ref": {
                                                "name": "db-credentials",
                                                "key": "password",
                                            }
                                        },
                                    }
                                ],
                                "liveness_probe": _probe(30),
                                "readiness_probe": _probe(5),
                                "resources": {
                                    "requests": {"cpu": "250m", "memory": "512Mi"},
                                    "limits": {"memory": "1Gi"},
                                },
                            }
                        ]
                    },
                },
            }
            self.deployments[service] = k8s.apps.v1.Deployment(
                f"{name}-{service}",
                metadata={"name": service, "namespace": APP_NAMESPACE, "labels": labels},
                spec=spec,
                opts=pulumi.ResourceOptions.merge(
                    in_ns, pulumi.ResourceOptions(depends_on=[config, credentials])
                ),
            )
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-{service}-pdb",
                metadata={"name": service, "namespace": APP_NAMESPACE},
                spec={"max_unavailable": 1, "selector": {"match_labels": {"app": service}}},
                opts=in_ns,
            )
        self.gateway = k8s.core.v1.Service(
            f"{name}-gateway",
            metadata={
                "name": "gateway",
                "namespace": APP_NAMESPACE,
                "annotations": {
                    "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
                    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing",
                },
            },
            spec={
                "type": "LoadBalancer",
                "selector": {"tier": "api"},
                "ports": [{"name": "http", "port": 80, "target_port": APP_PORT}],
            },
            opts=in_ns,
        )
        self.gateway_hostname = self.gateway.status.apply(
            lambda s: (
                (s.load_balancer.ingress[0].hostname or "")
                if s and s.load_balancer and s.load_balancer.ingress
                else ""
            )
        )
        self.register_outputs({"gateway_hostname": self.gateway_hostname})
