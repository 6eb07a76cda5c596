"""Failover orchestration for the LLM-Marketplace platform: the DR runbook as commands."""
