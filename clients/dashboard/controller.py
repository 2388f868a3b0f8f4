"""The dashboard's network bridge is the client library's: ``workspace_client.tk_bridge.Controller``."""

from workspace_client.tk_bridge import BATCH, POLL_MS, Controller

__all__ = ["BATCH", "POLL_MS", "Controller"]
