"""Generated code is never edited by hand, and never stale."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2

from .servers import ROOT


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate.py"), "--out", str(out)], check=True, capture_output=True
    )
    committed = ROOT / "generated"
    assert _files(out) == _files(committed), "files differ: run `make generate` and commit generated/"
    stale = [name for name in sorted(_files(out)) if not filecmp.cmp(out / name, committed / name, shallow=False)]
    assert not stale, f"stale generated files {stale}: run `make generate` and commit generated/"


def test_descriptor_set_carries_imports_and_http_rules() -> None:
    fds = descriptor_pb2.FileDescriptorSet.FromString((ROOT / "generated" / "descriptor.binpb").read_bytes())
    names = {f.name for f in fds.file}
    assert {
        "workspace/v1/auth.proto",
        "workspace/v1/users.proto",
        "google/api/annotations.proto",
        "google/protobuf/timestamp.proto",
    } <= names
    auth = next(f for f in fds.file if f.name == "workspace/v1/auth.proto")
    assert auth.source_code_info.location, "source info (comments) is needed for API docs"
    login = next(m for m in auth.service[0].method if m.name == "Login")
    assert login.options.ByteSize() > 0, "every RPC carries a google.api.http rule"


def test_every_rpc_has_an_http_rule_and_its_own_messages() -> None:
    from google.api import annotations_pb2
    from workspace.v1 import auth_pb2, users_pb2

    for module in (auth_pb2, users_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                rule = method.GetOptions().Extensions[annotations_pb2.http]
                assert rule.WhichOneof("pattern"), f"{method.full_name} has no google.api.http rule"
                assert method.input_type.name == f"{method.name}Request"
                assert method.output_type.name == f"{method.name}Response"
