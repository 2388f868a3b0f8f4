"""The Workspace desktop app for every person: chat, agenda, shortcuts, lots, settings.

Started with ``python -m desktop`` (``make desktop``); docs/CLIENT.md shows each view.
"""

__version__ = "0.1.0"
