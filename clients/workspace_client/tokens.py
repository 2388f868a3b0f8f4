"""Where a session's refresh token waits between two runs of an app: the OS keyring, or a private file.

The keyring is used when the machine has a real backend (Secret Service, KWallet, macOS Keychain, Windows
Credential Locker). Without one (a server, a container, CI: keyring's ``fail`` or ``null`` backend) the token
goes into a file under the user's configuration folder, created with mode 0600 in a 0700 folder.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Protocol

#: Overrides the folder of the token files (and forces files over the keyring); tests point it at a temp dir.
CONFIG_DIR_VARIABLE = "WORKSPACE_CLIENT_CONFIG_DIR"
KEYRING_SERVICE = "workspace"


class TokenStore(Protocol):
    """Keeps one secret per key."""

    def load(self, key: str) -> str | None: ...
    def save(self, key: str, token: str) -> None: ...
    def delete(self, key: str) -> None: ...


def config_dir() -> Path:
    """``$WORKSPACE_CLIENT_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/workspace``, else ``~/.config/workspace``."""
    explicit = os.environ.get(CONFIG_DIR_VARIABLE)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "workspace"


class FileTokenStore:
    """One file per key, readable by its owner only (0600), in a folder only they can enter (0700)."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else config_dir() / "tokens"

    def path(self, key: str) -> Path:
        return self.directory / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".token")

    def load(self, key: str) -> str | None:
        try:
            return self.path(key).read_text().strip() or None
        except FileNotFoundError:
            return None

    def save(self, key: str, token: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.path(key)
        temporary = target.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        # Created 0600 from the start (O_EXCL: never through someone else's file), then renamed over the old one.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(token)
        os.replace(temporary, target)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()


class KeyringTokenStore:
    """The OS keyring, through the ``keyring`` package."""

    def __init__(self, backend) -> None:  # type: ignore[no-untyped-def]
        self.backend = backend

    def load(self, key: str) -> str | None:
        return self.backend.get_password(KEYRING_SERVICE, key)

    def save(self, key: str, token: str) -> None:
        self.backend.set_password(KEYRING_SERVICE, key, token)

    def delete(self, key: str) -> None:
        import keyring.errors

        with contextlib.suppress(keyring.errors.PasswordDeleteError):
            self.backend.delete_password(KEYRING_SERVICE, key)


def usable_keyring():  # type: ignore[no-untyped-def]
    """The keyring backend if it can really store secrets; None for keyring's fail/null backends or none at all."""
    try:
        import keyring
        from keyring.backends import chainer, fail, null
    except ImportError:
        return None
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring | null.Keyring):
        return None
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None
    if getattr(backend, "priority", 0) <= 0:
        return None
    return backend


def default_token_store() -> TokenStore:
    """A file store when ``$WORKSPACE_CLIENT_CONFIG_DIR`` is set or no keyring works; else the keyring."""
    if os.environ.get(CONFIG_DIR_VARIABLE):
        return FileTokenStore()
    backend = usable_keyring()
    return KeyringTokenStore(backend) if backend is not None else FileTokenStore()
