"""Structured logs, per-RPC metrics, and the access log interceptor."""
