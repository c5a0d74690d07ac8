"""Autograde puts the instructor's test cells back: silently for cells that only lack their
hidden tests (as every learner's copy does), with nbgrader's warning for real edits."""

from types import SimpleNamespace

import nbformat
import pytest
from nbgrader import utils

from course_grading.overwrite import RestoreHiddenTests

SOURCE = "# A test.\ncheck(x)\n### BEGIN HIDDEN TESTS\ncheck_more(x)\n### END HIDDEN TESTS"
RELEASED = "# A test.\ncheck(x)"


def locked_test_cell(source):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata.nbgrader = {"grade": True, "solution": False, "locked": True, "grade_id": "t",
                              "points": 1, "schema_version": 3}
    return cell


@pytest.fixture
def preprocessor():
    source_cell = locked_test_cell(SOURCE)
    checksum = utils.compute_checksum(source_cell)
    stored = SimpleNamespace(source=SOURCE, locked=True, checksum=checksum, cell_type="code", name="t")
    gradebook = SimpleNamespace(find_source_cell=lambda *args: stored,
                                find_graded_cell=lambda *args: SimpleNamespace(max_score=1))
    overwrite = RestoreHiddenTests()
    overwrite.gradebook, overwrite.notebook_id, overwrite.assignment_id = gradebook, "nb", "a"
    overwrite.changes = []
    overwrite.report_change = lambda name, attr, old, new: overwrite.changes.append((name, attr))
    return overwrite


def test_a_released_test_cell_gets_its_hidden_tests_back_without_a_warning(preprocessor):
    cell, _ = preprocessor.preprocess_cell(locked_test_cell(RELEASED), {}, 0)
    assert cell.source == SOURCE
    assert preprocessor.changes == []


def test_an_edited_test_cell_is_still_reported_and_overwritten(preprocessor):
    cell, _ = preprocessor.preprocess_cell(locked_test_cell("# This test is in my way.\npass"), {}, 0)
    assert cell.source == SOURCE
    assert preprocessor.changes == [("t", "checksum")]
