"""The Workspace gRPC server. Run it with ``python -m server serve``; build it with ``server.app.build``."""

__version__ = "0.1.0"
