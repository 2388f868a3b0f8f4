"""Copy the googleapis protos we import from the pinned googleapis-common-protos package.

    python scripts/vendor_protos.py

Run after bumping googleapis-common-protos, then `make generate` and commit both.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import google.api
import google.rpc
import google.type

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "protos" / "vendor" / "googleapis" / "google"
FILES = {
    google.api: ["annotations.proto", "http.proto", "httpbody.proto", "field_behavior.proto"],
    google.rpc: ["status.proto", "error_details.proto", "code.proto"],
    google.type: ["date.proto"],
}


def main() -> None:
    for package, names in FILES.items():
        source = Path(package.__path__[0])
        target = TARGET / source.name
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(source / name, target / name)
            print(f"vendored google/{source.name}/{name}")


if __name__ == "__main__":
    main()
