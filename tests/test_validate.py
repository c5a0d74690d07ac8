"""The learner's Validate on a notebook with a pasted copy of a graded cell: the real
``nbgrader validate`` and JupyterLab's validate handler, with the course's config, say in
plain words what was found and what to do, with no traceback. The control: the same
command without the course's hook stops with nbgrader's traceback.
"""
import types
from pathlib import Path

import nbformat
import pytest

import editor_cases as cases
import grading_support as support
from demo import examples

MESSAGE = ("This notebook has a copy of the test cell 'test_keys_and_shapes' (a cell copied and pasted keeps "
           "hidden data that says which graded cell it is). When your notebook is graded, the first of these "
           "cells is graded as 'test_keys_and_shapes' and the others run as ordinary cells, where they are. "
           "What to do: keep your work in the first of these cells and delete the other one")


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """A course and, in a learner's folder, the answered release up to the first gradient
    test, with that test cell copied and pasted below the learner's own check."""
    root = support.released_course(tmp_path_factory.mktemp("validate") / "course")
    answers = examples.model_answers(root / "source" / "backprop" / "backprop.ipynb")
    notebook = examples.fill_in(root / "release" / "backprop" / "backprop.ipynb", answers)
    notebook.cells = notebook.cells[:cases.grade_ids(notebook).index("test_keys_and_shapes") + 1]
    notebook = cases.pasted_copy(notebook, "test_keys_and_shapes")
    folder = root / "learner"
    folder.mkdir()
    nbformat.write(notebook, folder / "backprop.ipynb")
    return root, folder / "backprop.ipynb"


def _plain(text):
    return " ".join(text.split())


def test_nbgrader_validate_says_what_to_do_without_a_traceback(damaged):
    root, path = damaged
    result = support.nbgrader(root, "validate", str(path), check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output and "may be corrupted" not in output
    assert "VALIDATION FAILED ON 1 CELL(S)!" in _plain(result.stdout)
    assert MESSAGE in _plain(result.stdout)


def test_the_control_plain_nbgrader_validate_shows_a_traceback(damaged, tmp_path):
    root, path = damaged
    config = (root / "nbgrader_config.py").read_text()
    hook = config.index("# Validate (JupyterLab's button")
    (tmp_path / "nbgrader_config.py").write_text(config[:hook])
    result = support.nbgrader(tmp_path, "validate", str(path), check=False)
    assert "Traceback" in result.stderr and "may be corrupted" in result.stderr


def test_jupyterlabs_validate_button_says_it_too(damaged, monkeypatch):
    from nbgrader.server_extensions.validate_assignment import handlers

    root, path = damaged
    monkeypatch.chdir(root)  # JupyterLab's server reads the nbgrader_config.py of its folder
    monkeypatch.setattr(handlers, "Validator", handlers.Validator)  # undone after the test
    handler = types.SimpleNamespace(root_dir=str(root), log=handlers.ValidateAssignmentHandler.log)
    handler.load_config = lambda: handlers.ValidateAssignmentHandler.load_config(handler)
    reply = handlers.ValidateAssignmentHandler.validate_notebook(handler, str(path.relative_to(root)))
    assert reply["success"], reply["value"]
    failed = reply["value"]["failed"]
    assert _plain(failed[0]["raw_error"]).startswith(MESSAGE)
    assert "Traceback" not in str(reply)
    assert Path(path).read_text().count('"grade_id": "test_keys_and_shapes"') == 2  # the file is the learner's
