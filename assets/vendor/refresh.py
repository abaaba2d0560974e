"""Refreshes assets/vendor/onnxruntime-web from its npm package at the pinned VERSION.

The browser export (catdog.inference.web) needs ONNX Runtime Web's JavaScript and WebAssembly; they are
kept in the repository so that `pip install -r requirements.txt` stays the whole set-up. Only
the WebAssembly CPU backend is kept: its small script, the Emscripten loader it imports and the
SIMD build (threads are unused on a page that is not cross-origin isolated, a file:// page
included). Run from anywhere: `python assets/vendor/refresh.py` (needs npm).
"""

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "onnxruntime-web"
VERSION = "1.31.1"
FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
TARGET = Path(__file__).resolve().parent / PACKAGE
# The npm package names its licence but ships no licence file; this is onnxruntime's LICENSE.
LICENSE = """MIT License

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


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=scratch, check=True)
        with tarfile.open(Path(scratch) / f"{PACKAGE}-{VERSION}.tgz") as archive:
            archive.extractall(scratch, filter="data")
        package = Path(scratch) / "package"
        assert json.loads((package / "package.json").read_text())["license"] == "MIT"
        shutil.rmtree(TARGET, ignore_errors=True)
        TARGET.mkdir(parents=True)
        for name in FILES:
            shutil.copyfile(package / "dist" / name, TARGET / name)
    (TARGET / "LICENSE").write_text(LICENSE)
    (TARGET / "VERSION").write_text(f"{PACKAGE}@{VERSION}\n")
    print(f"{PACKAGE} {VERSION}: {', '.join(FILES)} in {TARGET}")


if __name__ == "__main__":
    main()
