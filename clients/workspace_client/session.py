"""One person's session with a Workspace server: the channel, login, tokens kept fresh, logout.

    session = Session("127.0.0.1:50051")
    session.login("admin", "...")
    me = session.call(session.auth.WhoAmI, auth_pb2.WhoAmIRequest()).user

Every method blocks: call them from a worker thread in a GUI, never from the Tk thread. A ``Session`` is
thread-safe: several threads may call through it at once, and the token is refreshed by one of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from workspace.v1 import (
    activity_pb2_grpc,
    auth_pb2,
    auth_pb2_grpc,
    chat_pb2_grpc,
    monitoring_pb2_grpc,
    presence_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
)

from .errors import CallFailed, LoginRefused, NotSignedIn, Unreachable, error_reason, retry_after
from .tokens import TokenStore, default_token_store

Response = TypeVar("Response")

#: Ping a quiet connection after 20 s (the server refuses pings more often than every 10 s without calls,
#: docs/STREAMING.md), and give up on it when a ping is unanswered for 10 s (the server's own timeout).
KEEPALIVE_OPTIONS = (
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)
#: Reconnect quickly after an outage: gRPC's own connection back-off, capped at 5 s.
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 5_000),
)
#: Refresh the access token this long before it expires (at most half its lifetime).
REFRESH_MARGIN = 60.0
DEFAULT_TIMEOUT = 10.0
_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


#: A channel that tells servers it accepts no compression (grpc-accept-encoding: identity): replies come as they are.
IDENTITY_ONLY_OPTIONS = (("grpc.compression_enabled_algorithms_bitset", 1),)


def open_channel(
    address: str, *, tls: bool = False, ca_file: str | None = None, accept_gzip: bool = True
) -> grpc.Channel:
    """A channel with the keepalive the server expects; TLS with the system roots or ``ca_file``.

    With ``accept_gzip`` (grpc's default) the server gzips its large replies (history pages, lists): a third
    of the bytes for more CPU on both sides (docs/PERFORMANCE.md); turn it off on a fast local network.
    """
    options = [*KEEPALIVE_OPTIONS, *RECONNECT_OPTIONS, *(() if accept_gzip else IDENTITY_ONLY_OPTIONS)]
    if not tls and ca_file is None:
        return grpc.insecure_channel(address, options=options)
    roots = Path(ca_file).read_bytes() if ca_file else None
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=roots), options=options)


class Session:
    """A channel to one server and, once logged in, the session's tokens.

    ``app`` names the app in the token store (one remembered session per app and server). ``clock`` is the
    wall clock the token expiry is compared with (a device's clock can be wrong: the server's refusal then
    still triggers one refresh).
    """

    def __init__(
        self,
        address: str,
        *,
        tls: bool = False,
        ca_file: str | None = None,
        accept_gzip: bool = True,
        app: str = "workspace",
        token_store: TokenStore | None = None,
        refresh_margin: float = REFRESH_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.address = address
        self.channel = open_channel(address, tls=tls, ca_file=ca_file, accept_gzip=accept_gzip)
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.users = users_pb2_grpc.UsersServiceStub(self.channel)
        self.chat = chat_pb2_grpc.ChatServiceStub(self.channel)
        self.presence = presence_pb2_grpc.PresenceServiceStub(self.channel)
        self.monitoring = monitoring_pb2_grpc.MonitoringServiceStub(self.channel)
        self.activity = activity_pb2_grpc.ActivityServiceStub(self.channel)
        self.token_store = token_store if token_store is not None else default_token_store()
        self.store_key = f"{app}@{address}"
        self.refresh_margin = refresh_margin
        self.clock = clock
        self.user: users_pb2.User | None = None
        #: How many times the access token was refreshed, and why the last time (``expiry`` or ``refused``).
        self.refreshes = 0
        self.last_refresh_reason = ""
        self._lock = threading.RLock()
        self._access_token = ""
        self._refresh_token = ""
        self._refresh_at = 0.0

    # --- signing in and out -----------------------------------------------------------------------------

    def login(self, username: str, password: str, *, timeout: float = DEFAULT_TIMEOUT) -> users_pb2.User:
        """Log in; raises ``LoginRefused`` (wrong password, throttled, disabled) or ``Unreachable``."""
        request = auth_pb2.LoginRequest(username=username, password=password)
        try:
            reply = self.auth.Login(request, timeout=timeout)
        except grpc.RpcError as error:
            raise _login_error(error, self.address) from None
        with self._lock:
            self._keep(reply.tokens)
            self.user = reply.user
        return reply.user

    def resume(self, *, timeout: float = DEFAULT_TIMEOUT) -> users_pb2.User | None:
        """Continue the session remembered in the token store; None when there is none or it has ended."""
        token = self.token_store.load(self.store_key)
        if not token:
            return None
        with self._lock:
            self._refresh_token = token
            try:
                self._refresh("resume", timeout)
            except NotSignedIn:
                return None
        self.user = self.call(self.auth.WhoAmI, auth_pb2.WhoAmIRequest(), timeout=timeout).user
        return self.user

    def logout(self, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """End the session on the server (if it can be reached) and forget its tokens here."""
        with self._lock:
            token, self._access_token, self._refresh_token = self._access_token, "", ""
            self.user = None
            self.token_store.delete(self.store_key)
        if token:
            try:
                self.auth.Logout(auth_pb2.LogoutRequest(), metadata=_bearer(token), timeout=timeout)
            except grpc.RpcError as error:
                if error.code() not in (*_UNREACHABLE, grpc.StatusCode.UNAUTHENTICATED):
                    raise CallFailed(error) from None

    @property
    def signed_in(self) -> bool:
        return bool(self._refresh_token)

    def close(self) -> None:
        self.channel.close()

    # --- calling ----------------------------------------------------------------------------------------

    def metadata(self, *, timeout: float = DEFAULT_TIMEOUT) -> tuple[tuple[str, str], ...]:
        """The bearer metadata for a call, refreshing the access token first if it is about to expire."""
        with self._lock:
            if not self._refresh_token:
                raise NotSignedIn("Not signed in: log in first.")
            if self.clock() >= self._refresh_at:
                self._refresh("expiry", timeout)
            return _bearer(self._access_token)

    def refresh_after_refusal(self, refused_metadata: tuple[tuple[str, str], ...]) -> None:
        """The server refused ``refused_metadata``'s token: refresh, unless another thread already did."""
        with self._lock:
            if refused_metadata == _bearer(self._access_token):
                self._refresh("refused", DEFAULT_TIMEOUT)

    def call(
        self,
        method: Callable[..., Response],
        request: Any,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        compression: grpc.Compression | None = None,
    ) -> Response:
        """Call a unary RPC of one of the stubs with the session's token.

        ``compression=grpc.Compression.Gzip`` compresses a large request (a batch of lot items); replies need
        nothing: the server gzips its large ones (history pages, lists) and grpc unpacks them.

        If the server answers ``UNAUTHENTICATED`` (the token expired early, the clock is wrong) the token is
        refreshed once and the call retried once. Raises ``Unreachable``, ``NotSignedIn`` or ``CallFailed``.
        """
        for attempt in (1, 2):
            metadata = self.metadata(timeout=timeout)
            try:
                return method(request, metadata=metadata, timeout=timeout, compression=compression)
            except grpc.RpcError as error:
                code = error.code()
                if code == grpc.StatusCode.UNAUTHENTICATED and attempt == 1:
                    self.refresh_after_refusal(metadata)
                    continue
                if code == grpc.StatusCode.UNAUTHENTICATED:
                    raise NotSignedIn(f"The server ended the session: {error.details()}") from None
                if code in _UNREACHABLE:
                    raise Unreachable(f"The server at {self.address} does not answer: {error.details()}") from None
                raise CallFailed(error) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # --- tokens -----------------------------------------------------------------------------------------

    def _refresh(self, reason: str, timeout: float) -> None:
        """Exchange the refresh token (the lock is held); the old one is spent whatever happens next."""
        request = auth_pb2.RefreshRequest(refresh_token=self._refresh_token)
        try:
            reply = self.auth.Refresh(request, timeout=timeout)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                self._access_token, self._refresh_token = "", ""
                self.token_store.delete(self.store_key)
                raise NotSignedIn("The session has ended: log in again.") from None
            if error.code() in _UNREACHABLE:
                raise Unreachable(f"The server at {self.address} does not answer: {error.details()}") from None
            raise CallFailed(error) from None
        self._keep(reply.tokens)
        self.refreshes += 1
        self.last_refresh_reason = reason

    def _keep(self, tokens: auth_pb2.TokenPair) -> None:
        now = self.clock()
        expires = _seconds(tokens)
        lifetime = max(0.0, expires - now)
        self._refresh_at = expires - min(self.refresh_margin, lifetime / 2)
        self._access_token, self._refresh_token = tokens.access_token, tokens.refresh_token
        self.token_store.save(self.store_key, tokens.refresh_token)

    @property
    def access_token(self) -> str:
        return self._access_token

    @property
    def refresh_time(self) -> float:
        """When (``clock()`` time) the next call will refresh the access token first."""
        return self._refresh_at


def _seconds(tokens: auth_pb2.TokenPair) -> float:
    expire = tokens.access_token_expire_time
    return expire.seconds + expire.nanos / 1e9


def _bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _login_error(error: grpc.RpcError, address: str) -> Exception:
    code = error.code()
    if code in _UNREACHABLE:
        return Unreachable(f"Cannot reach the server at {address}. Check the address and that the server runs.")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return LoginRefused("Wrong username or password.", "wrong_password")
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        wait = retry_after(error)
        after = f" Try again in {max(1, round(wait))} s." if wait is not None else " Try again later."
        return LoginRefused("Too many failed attempts for this account." + after, "throttled", wait)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return LoginRefused("This account is disabled.", "disabled")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return LoginRefused(f"The server refused the login: {error.details()}", error_reason(error) or "invalid")
    return CallFailed(error)
