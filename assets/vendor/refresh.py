"""Refreshes the vendored npm packages at their pinned versions: assets/vendor/onnxruntime-web and
tests/vendor/axe-core.

The browser export (catdog.inference.web) needs ONNX Runtime Web's JavaScript and WebAssembly; they are
kept in the repository so that `pip install -r requirements.txt` stays the whole set-up. Only
the WebAssembly CPU backend is kept: its small script, the Emscripten loader it imports and the
SIMD build (threads are unused on a page that is not cross-origin isolated, a file:// page
included). axe-core is for the tests only (tests/test_accessibility.py injects it into each page),
so it lives under tests/. Run from anywhere: `python assets/vendor/refresh.py` (needs npm).
"""

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[2]
# The npm package names its licence but ships no licence file; this is onnxruntime's LICENSE.
ORT_LICENSE = """MIT License

Copyright (c) Microsoft Corporation

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


class Vendored(NamedTuple):
    package: str
    version: str
    license: str
    files: tuple[str, ...]  # paths inside the npm package
    target: Path
    license_text: str | None = None  # None: the package's own LICENSE file


VENDORED = (
    Vendored(
        "onnxruntime-web",
        "1.31.1",
        "MIT",
        ("dist/ort.wasm.min.js", "dist/ort-wasm-simd-threaded.mjs", "dist/ort-wasm-simd-threaded.wasm"),
        ROOT / "assets" / "vendor" / "onnxruntime-web",
        ORT_LICENSE,
    ),
    Vendored("axe-core", "4.14.1", "MPL-2.0", ("axe.min.js",), ROOT / "tests" / "vendor" / "axe-core"),
)


def refresh(vendored: Vendored) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        name = f"{vendored.package}@{vendored.version}"
        subprocess.run(["npm", "pack", name, "--silent"], cwd=scratch, check=True)
        with tarfile.open(Path(scratch) / f"{vendored.package}-{vendored.version}.tgz") as archive:
            archive.extractall(scratch, filter="data")
        package = Path(scratch) / "package"
        assert json.loads((package / "package.json").read_text())["license"] == vendored.license
        shutil.rmtree(vendored.target, ignore_errors=True)
        vendored.target.mkdir(parents=True)
        for path in vendored.files:
            shutil.copyfile(package / path, vendored.target / Path(path).name)
        license_text = vendored.license_text or (package / "LICENSE").read_text()
    (vendored.target / "LICENSE").write_text(license_text)
    (vendored.target / "VERSION").write_text(f"{name}\n")
    print(f"{name}: {', '.join(vendored.files)} in {vendored.target}")


def main() -> None:
    for vendored in VENDORED:
        refresh(vendored)


if __name__ == "__main__":
    main()
