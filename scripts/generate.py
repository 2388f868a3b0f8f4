"""Regenerate everything in ``generated/`` from ``protos/``.

    python scripts/generate.py            # write into generated/
    python scripts/generate.py --out DIR  # write into DIR (the staleness test uses this)

Produces, for every ``protos/workspace/**/*.proto``:
  * ``*_pb2.py`` messages and ``*_pb2_grpc.py`` stubs (grpcio-tools' protoc),
  * ``*_pb2.pyi`` / ``*_pb2_grpc.pyi`` type stubs (mypy-protobuf),
  * ``descriptor.binpb``: one FileDescriptorSet with imports and source info,
    which Envoy's gRPC-JSON transcoder and other tools read.

The vendored googleapis protos are compiled against but not generated: their
Python modules come from the pinned ``googleapis-common-protos`` package.
Generated files are never edited by hand.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
VENDOR_ROOT = PROTO_ROOT / "vendor" / "googleapis"
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"
DESCRIPTOR_NAME = "descriptor.binpb"
#: Vendored protos of the error details (and their status) that go into the descriptor set as well.
ERROR_DETAIL_PROTOS = ("google/rpc/error_details.proto", "google/rpc/status.proto")


def api_protos() -> list[str]:
    """Our own proto files, relative to ``protos/``, in a stable order."""
    return sorted(p.relative_to(PROTO_ROOT).as_posix() for p in (PROTO_ROOT / "workspace").rglob("*.proto"))


def _plugin(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise SystemExit(f"{name} not found next to {sys.executable}: run `make venv` first")
    return f"--plugin={name}={path}"


def generate(out: Path) -> None:
    """Write the whole generated tree into ``out`` (emptied first)."""
    with tempfile.TemporaryDirectory() as scratch:
        staging = Path(scratch)
        files = api_protos()
        args = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{VENDOR_ROOT}",
            f"-I{WELL_KNOWN}",
            _plugin("protoc-gen-mypy"),
            _plugin("protoc-gen-mypy_grpc"),
            f"--python_out={staging}",
            f"--grpc_python_out={staging}",
            f"--mypy_out={staging}",
            f"--mypy_grpc_out={staging}",
            *files,
        ]
        # The descriptor set for Envoy also holds the error details the server sends (google.rpc.BadRequest,
        # RetryInfo, ErrorInfo), which no API file imports, so the gateway can print them as JSON.
        descriptor = [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"-I{VENDOR_ROOT}",
            f"-I{WELL_KNOWN}",
            f"--descriptor_set_out={staging / DESCRIPTOR_NAME}",
            "--include_imports",
            "--include_source_info",
            *files,
            *ERROR_DETAIL_PROTOS,
        ]
        if protoc.main(args) != 0 or protoc.main(descriptor) != 0:
            raise SystemExit("protoc failed")
        # Make every generated folder a regular package so `import workspace.v1` works.
        for folder in [staging / "workspace", *(p for p in (staging / "workspace").rglob("*") if p.is_dir())]:
            (folder / "__init__.py").write_text('"""Generated from protos/ by scripts/generate.py; do not edit."""\n')
        (staging / "README.md").write_text(
            "# generated/\n\n"
            "Produced by `make generate` (scripts/generate.py) from `protos/`. Never edit by hand:\n"
            "change the `.proto` file and regenerate. `tests/test_generated.py` fails when this\n"
            "folder is stale.\n\n"
            "- `workspace/v1/*_pb2.py`, `*_pb2_grpc.py`: Python messages and gRPC stubs, importable\n"
            "  as `workspace.v1` once the project is installed (`make venv`).\n"
            "- `*.pyi`: type stubs (mypy-protobuf).\n"
            f"- `{DESCRIPTOR_NAME}`: a FileDescriptorSet with imports and source info (Envoy reads it).\n"
        )
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(staging, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "generated", help="target folder (emptied first)")
    generate(parser.parse_args().out)


if __name__ == "__main__":
    main()
