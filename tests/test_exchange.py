"""Submitting from JupyterLab: checkpoint copies are neither submitted nor reported as extra."""

import logging

import pytest
from nbgrader.coursedir import CourseDirectory

from course_grading.exchange import SubmitIgnoringCheckpoints


@pytest.fixture
def submit(tmp_path):
    release, learner = tmp_path / "release", tmp_path / "learner"
    for folder in (release, learner):
        folder.mkdir()
        (folder / "backprop.ipynb").write_text("{}")
    (learner / ".ipynb_checkpoints").mkdir()
    (learner / ".ipynb_checkpoints" / "backprop-checkpoint.ipynb").write_text("{}")
    exchange = SubmitIgnoringCheckpoints(coursedir=CourseDirectory(), authenticator=None)
    exchange.release_path, exchange.src_path = str(release), str(learner)
    exchange.log = logging.getLogger("submit-test")
    return exchange, learner


def test_checkpoints_are_not_reported_as_extra_notebooks(submit, caplog):
    exchange, _ = submit
    with caplog.at_level(logging.WARNING):
        exchange.check_filename_diff()
    assert "extra notebooks" not in caplog.text


def test_a_really_extra_notebook_is_still_reported(submit, caplog):
    exchange, learner = submit
    (learner / "scratch.ipynb").write_text("{}")
    with caplog.at_level(logging.WARNING):
        exchange.check_filename_diff()
    assert "scratch.ipynb: EXTRA" in caplog.text
