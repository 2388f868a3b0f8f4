"""The Workspace monitoring dashboard: the administrator's window on the running system (docs/DASHBOARD.md)."""
