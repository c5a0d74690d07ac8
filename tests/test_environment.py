"""pyproject.toml (pip) and environment.yml (conda-forge) list the same packages."""

import ast
import re
import tomllib
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.fast  # no nbgrader run, no browser

PROJECT_DIR = Path(__file__).resolve().parent.parent
# conda-forge spells a few packages differently from PyPI.
CONDA_NAMES = {"dask[distributed]": "dask"}


def split_requirement(requirement):
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*(.*?)\s*", requirement)
    name, version = match.groups()
    return CONDA_NAMES.get(name.lower(), name.lower()), version.replace(" ", "")


def pyproject_packages():
    project = tomllib.loads((PROJECT_DIR / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return dict(split_requirement(r) for r in requirements)


def environment_packages():
    environment = yaml.safe_load((PROJECT_DIR / "environment.yml").read_text())
    packages = {}
    for item in environment["dependencies"]:
        if isinstance(item, dict):  # the pip: section installs the project itself
            continue
        name, version = split_requirement(item)
        if name not in ("python", "pip"):
            packages[name] = version
    return packages


def test_both_files_list_the_same_packages_and_versions():
    assert environment_packages() == pyproject_packages()


def test_environment_installs_the_project_itself_from_conda_forge():
    environment = yaml.safe_load((PROJECT_DIR / "environment.yml").read_text())
    assert environment["channels"] == ["conda-forge"]
    assert {"pip": ["-e ."]} in environment["dependencies"]


def test_numpy_2_is_required():
    assert pyproject_packages()["numpy"] == ">=2.0"


def _path_strings_and_imports(path):
    """String constants and imported module names of one Python file."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


def test_installed_packages_and_benchmarks_do_not_use_the_tests_folder():
    """The installed packages use neither tests/ nor the demo; benchmarks use the demo, not tests/."""
    offending = []
    for folder, forbidden in (("course_utils", ("tests", "demo")), ("course_grading", ("tests", "demo")),
                              ("benchmarks", ("tests", "grading_support"))):
        for path in sorted((PROJECT_DIR / folder).glob("*.py")):
            for text in _path_strings_and_imports(path):
                if any(text == name or text.startswith((f"{name}/", f"{name}.")) for name in forbidden):
                    offending.append(f"{path.relative_to(PROJECT_DIR)}: {text!r}")
    assert not offending, offending
