"""A throw-away certificate authority and server certificates for the TLS tests, made by the ``openssl`` CLI.

``make_authority(folder)`` writes a CA and a server certificate signed by it for ``localhost`` and
``127.0.0.1``: ``server.pem`` (the server's certificate), ``chain.pem`` (it followed by the CA's, as a
chain file is usually laid out), ``server.key``, and ``other.key`` (a key of no certificate of these).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVER_NAMES = "DNS:localhost,IP:127.0.0.1"


@dataclass(frozen=True)
class Authority:
    ca: Path
    server_cert: Path
    chain: Path
    server_key: Path
    other_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {done.stderr}")


def _key(name: str, folder: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name, cwd=folder)


def make_authority(folder: Path) -> Authority:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("ca.key", "server.key", "other.key"):
        _key(name, folder)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Workspace test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip
    _openssl("req", "-new", "-key", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=folder)
    (folder / "server.ext").write_text(
        f"subjectAltName={SERVER_NAMES}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.pem", "-days", "2", "-extfile", "server.ext",
        cwd=folder,
    )  # fmt: skip
    chain = folder / "chain.pem"
    chain.write_bytes((folder / "server.pem").read_bytes() + (folder / "ca.pem").read_bytes())
    return Authority(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        chain=chain,
        server_key=folder / "server.key",
        other_key=folder / "other.key",
    )
