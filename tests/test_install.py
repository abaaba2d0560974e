"""catdog as an installed package: a wheel of the library with a `catdog` command, and the
dashboard started from a checkout by that command."""

import importlib.metadata
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import catdog
from tests.helpers.browser import free_port, healthy
from tests.helpers.support import ROOT, make_dataset, wait_for


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built, as pip builds one, from a copy of the checkout (so no build files land in it)."""
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("needs setuptools to build a wheel without a network")
    source = tmp_path_factory.mktemp("source")
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    shutil.copytree(ROOT / "catdog", source / "catdog", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [built] = out.glob("catdog-*.whl")
    return built


def test_the_wheel_holds_the_library_alone_and_the_catdog_command(wheel):
    dist_info = f"catdog-{catdog.__version__}.dist-info/"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(f"{dist_info}entry_points.txt").decode()
        metadata = archive.read(f"{dist_info}METADATA").decode()
    assert [name for name in names if not name.startswith(("catdog/", dist_info))] == []
    assert "catdog/cli.py" in names and "catdog/settings.py" in names
    assert "[console_scripts]\ncatdog = catdog.cli:main" in entry_points
    assert f"Version: {catdog.__version__}\n" in metadata
    assert "Requires-Dist: tensorflow" in metadata


def installed(wheel: Path, folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`catdog ARGS` as installed from the wheel: its files alone on the path, run from elsewhere."""
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(folder / "site-packages")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PYTHONPATH"] = str(folder / "site-packages")
    code = "import sys; from catdog.cli import main; sys.exit(main(sys.argv[1:]))"  # what the console script runs
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def declared_closure(requirements: list[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions these requirements name, and theirs, as pip resolves them (no extras)."""
    found, pending = {}, list(requirements)
    while pending:
        requirement = Requirement(pending.pop())
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        if canonicalize_name(requirement.name) not in found:
            found[canonicalize_name(requirement.name)] = distribution = importlib.metadata.distribution(
                requirement.name
            )
            pending += distribution.requires or []
    return list(found.values())


def venv_with_the_wheel(wheel: Path, folder: Path) -> Path:
    """A fresh virtual environment (no system site packages) holding the wheel and exactly the
    distributions its Requires-Dist lead to: each of their files linked from where they are
    installed here, as `pip install` would fetch them, without a network. Returns its Python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
        metadata = archive.read(f"catdog-{catdog.__version__}.dist-info/METADATA").decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    for distribution in declared_closure(requires):
        for file in distribution.files or []:
            if ".." in file.parts:  # scripts installed beside the interpreter, not importable
                continue
            target = site / file
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(distribution.locate_file(file))
    return python


def test_the_wheel_and_its_declared_dependencies_alone_train_model1(wheel, tmp_path):
    """`pip install .` installs everything a run needs (TensorBoard's callback included): model1
    trains one epoch on a synthetic folder, run from outside the checkout."""
    python = venv_with_the_wheel(wheel, tmp_path / "venv")
    data, runs = make_dataset(tmp_path / "data"), tmp_path / "runs"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["CATDOG_CACHE_DIR"] = str(tmp_path / "cache")
    result = subprocess.run(
        [
            str(python),
            "-m",
            "catdog",
            "train",
            "--arch",
            "model1",
            "--epochs",
            "1",
            "--data-dir",
            str(data),
            "--runs-dir",
            str(runs),
            "--wait",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = [path for path in runs.iterdir() if path.is_dir()]
    assert json.loads((run / "status.json").read_text())["state"] == "finished", (run / "train.log").read_text()[-3000:]


def test_the_installed_command_reports_its_version(wheel, tmp_path):
    result = installed(wheel, tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"catdog {catdog.__version__}"


def test_the_dashboard_from_a_wheel_says_to_run_it_from_a_checkout(wheel, tmp_path):
    result = installed(wheel, tmp_path, "dashboard")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: the dashboard runs from a checkout of catdog; run `catdog dashboard` there"


def test_the_dashboard_from_a_checkout_starts_the_app(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(tmp_path / "dashboard.log", "wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "catdog",
                "dashboard",
                "--server.headless",
                "true",
                "--server.port",
                str(port),
                "--server.address",
                "127.0.0.1",
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: healthy(url) or server.poll() is not None, 90, message="the dashboard")
        assert server.poll() is None, (tmp_path / "dashboard.log").read_text()[-2000:]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
