"""Pulumi component resources for one region of the LLM-Marketplace platform.

Importing this package is cheap: the provider SDKs are imported only by the
component modules themselves, so `failover/` can import `components.contract`
without loading pulumi_aws.
"""
