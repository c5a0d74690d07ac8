"""Shared fixtures: the real data set and the instructor's solution.

The instructor's ``d_loss_by_d_model`` exists only in the solution cell of the source
notebook; tests take it from there.
"""

import os
from pathlib import Path

# Several notebook kernels and test processes share the machine's cores; OpenBLAS's
# spinning worker threads then slow small products down many times over. Set before
# numpy is first imported; kernels started by the tests inherit it.
for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import matplotlib  # noqa: E402
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the non-interactive backend)

import course_utils  # noqa: E402

PROJECT_DIR = Path(__file__).resolve().parent.parent
# The longest files first, one to each of `make test`'s four pytest-xdist workers: with
# --no-loadscope-reorder files are handed out in collection order (without it, those with the
# most tests first), and a long file handed out last would run on alone at the end.
LONGEST_FIRST = ("test_nbgrader_e2e.py", "test_hub.py", "test_trusted_grading.py", "test_grading_safety.py")
SOURCE_NOTEBOOK = PROJECT_DIR / "notebooks" / "source" / "backprop" / "backprop.ipynb"


def pytest_collection_modifyitems(items):
    def rank(item):
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def datas():
    return course_utils.load_data()


@pytest.fixture(scope="session")
def solution():
    """The instructor's ``d_loss_by_d_model`` from the source notebook's solution cell."""
    return course_utils.function_from_notebook(SOURCE_NOTEBOOK, "d_loss_by_d_model", "d_loss_by_d_model")


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture
def linked_data_dir(tmp_path, monkeypatch):
    """COURSE_DATA_DIR is a temporary folder whose data.mat is a symbolic link to the real
    file (as /coursedata/data.mat often is on a hub)."""
    target = course_utils.data.find_data_file().resolve()
    folder = tmp_path / "coursedata"
    folder.mkdir()
    (folder / "data.mat").symlink_to(target)
    monkeypatch.setenv("COURSE_DATA_DIR", str(folder))
    return folder
