"""pyproject.toml lists every package and data file of the fixed folders.

`packages` is an explicit list, and an editable install (or a stale build/) hides a
package missing from it: these tests compare the list with the folders, and build a
real wheel from a clean copy of the sources to see what a normal install would get.
"""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parent.parent
# The fixed folders and the import names they map to (DESIGN.md, "Packaging").
FOLDERS = {
    "compiler": "modelc",
    "runtime": "modelc.runtime",
    "grammar": "modelc.grammar",
    "templates": "modelc.templates",
}


def _setuptools() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]


def _skip(path: Path) -> bool:
    return "__pycache__" in path.parts or path.name.startswith(".")


def package_folders() -> dict[str, Path]:
    """Every folder with an __init__.py under the fixed folders, by its import name."""
    found = {}
    for folder, name in FOLDERS.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            if _skip(init):
                continue
            rel = init.parent.relative_to(ROOT / folder).parts
            found[".".join((name, *rel))] = init.parent
    return found


def resolve(package: str, package_dir: dict[str, str]) -> Path:
    """Where setuptools looks for `package`: its own package-dir entry, else its nearest
    listed parent's plus the remaining path."""
    parts = package.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key in package_dir:
            return ROOT / package_dir[key] / Path(*parts[i:])
    return ROOT / Path(*parts)


def test_fixed_folders_are_packages():
    for folder in FOLDERS:
        assert (ROOT / folder / "__init__.py").is_file(), (
            f"{folder}/ needs an __init__.py"
        )


def test_packages_list_every_folder_and_nothing_stale():
    listed = _setuptools()["packages"]
    assert len(listed) == len(set(listed)), "a package is listed twice"
    found = package_folders()
    missing = sorted(set(found) - set(listed))
    stale = sorted(set(listed) - set(found))
    assert not missing, f"add to [tool.setuptools] packages: {missing}"
    assert not stale, f"listed but no such package folder: {stale}"


def test_package_dir_maps_each_package_to_its_folder():
    cfg = _setuptools()
    package_dir = cfg["package-dir"]
    found = package_folders()
    for package in cfg["packages"]:
        assert resolve(package, package_dir).resolve() == found[package].resolve(), (
            package
        )
    stale = sorted(set(package_dir) - set(cfg["packages"]))
    assert not stale, f"package-dir entries for unlisted packages: {stale}"
    for key, folder in package_dir.items():
        assert (ROOT / folder / "__init__.py").is_file(), (
            f"package-dir {key} = {folder}"
        )


def test_data_files_are_package_data():
    cfg = _setuptools()
    data = cfg.get("package-data", {})
    assert "*.lark" in data.get("modelc.grammar", [])
    assert "*.jinja" in data.get("modelc.templates", [])
    assert list((ROOT / "grammar").glob("*.lark")) and list(
        (ROOT / "templates").glob("*.jinja")
    )
    for package, folder in package_folders().items():
        for path in folder.iterdir():
            if path.is_dir() or path.suffix == ".py" or _skip(path):
                continue
            patterns = data.get(package, []) + data.get("*", [])
            assert any(fnmatch.fnmatch(path.name, p) for p in patterns), (
                f"{path.relative_to(ROOT)} is not package data of {package}"
            )
    for package in data:
        assert package == "*" or package in cfg["packages"], (
            f"package-data for unlisted {package}"
        )


@pytest.mark.slow
def test_a_wheel_from_clean_sources_has_every_file(tmp_path):
    """Build a wheel from a copy (no build/, no egg-info) and look inside."""
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, src / name)
    for folder in FOLDERS:
        shutil.copytree(
            ROOT / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp_path / "dist"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (wheel,) = out.glob("modelc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for package, folder in package_folders().items():
        prefix = package.replace(".", "/")
        for path in folder.iterdir():
            if path.is_file() and not _skip(path):
                expected.add(f"{prefix}/{path.name}")
    missing = sorted(expected - names)
    assert not missing, f"a regular install would lack: {missing}"
