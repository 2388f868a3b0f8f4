"""A process that logs in and holds one event stream open, for tests that freeze it (SIGSTOP) like a laptop
whose lid closes: the process stops answering anything, while its socket stays open.

Run as ``python -m tests.stream_holder ADDRESS USERNAME PASSWORD``; prints ``live`` once the stream is live.
"""

from __future__ import annotations

import sys

from workspace.v1 import chat_pb2

from .api import log_in


def main(address: str, username: str, password: str) -> None:
    client = log_in(address, username, password)
    for response in client.chat.StreamEvents(chat_pb2.StreamEventsRequest(), metadata=client.md):
        if response.event.heartbeat.live:
            print("live", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
