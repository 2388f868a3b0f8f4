"""The rules of Workspace: plain Python, no grpc, no SQLAlchemy."""
