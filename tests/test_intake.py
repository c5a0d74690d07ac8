"""Reading submission folders: regular files only, nothing followed, nothing that blocks."""
import json
import os

import pytest

from course_grading import intake

pytestmark = pytest.mark.fast

NOTEBOOK = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


@pytest.fixture
def folder(tmp_path):
    outside = tmp_path / "instructor-only.txt"
    outside.write_text("the answers")
    root = tmp_path / "submission"
    root.mkdir()
    (root / "backprop.ipynb").write_bytes(NOTEBOOK)
    (root / "notes.txt").write_text("mine")
    (root / "sub").mkdir()
    (root / "sub" / "data.csv").write_text("1,2")
    (root / "link.txt").symlink_to(outside)
    (root / "dangling.txt").symlink_to(tmp_path / "nothing-here")
    (root / "linked-folder").symlink_to(tmp_path)
    os.mkfifo(root / "pipe")
    (root / "big.bin").write_bytes(bytes(3000))
    (root / ".ipynb_checkpoints").mkdir()
    (root / ".ipynb_checkpoints" / "backprop-checkpoint.ipynb").write_bytes(NOTEBOOK)
    return root


def test_only_regular_files_are_read(folder):
    submission = intake.read_submission(folder, file_limit=2000)
    assert submission.error is None
    assert sorted(submission.files) == ["backprop.ipynb", "notes.txt", os.path.join("sub", "data.csv")]
    notes = "\n".join(submission.notes)
    for name, why in [("link.txt", "symbolic link"), ("dangling.txt", "symbolic link"),
                      ("linked-folder", "symbolic link"), ("pipe", "not a regular file"), ("big.bin", "larger than")]:
        assert f"left out {name}: " in notes and why in notes, (name, notes)
    # JupyterLab's autosaves are never read, and the summary says so.
    assert f"left out .ipynb_checkpoints{os.sep}: JupyterLab's automatic saves" in notes
    assert "backprop-checkpoint" not in notes and "the answers" not in str(submission.files)


def test_the_control_plain_reading_follows_links_and_fails_on_a_dangling_one(folder):
    # What reading a file with Path.read_bytes did (and what nbgrader's own copy does).
    assert (folder / "link.txt").read_bytes() == b"the answers"
    with pytest.raises(FileNotFoundError):
        (folder / "dangling.txt").read_bytes()


def test_a_submission_larger_than_the_total_limit_keeps_what_fits(folder):
    submission = intake.read_submission(folder, file_limit=4000, total_limit=3000)
    assert "big.bin" not in submission.files and "backprop.ipynb" in submission.files
    assert any("larger than" in note for note in submission.notes)


def test_a_broken_notebook_fails_only_its_submission(tmp_path):
    (tmp_path / "backprop.ipynb").write_text('{"cells": [')
    submission = intake.read_submission(tmp_path)
    assert "backprop.ipynb is not a notebook nbgrader can read" in submission.error


def test_a_linked_submission_folder_is_refused(tmp_path, folder):
    (tmp_path / "alias").symlink_to(folder)
    assert "not a folder" in intake.read_submission(tmp_path / "alias").error


def test_a_notebook_shaped_oddly_is_handed_on_as_it_is_with_a_note(tmp_path):
    # JSON that nbformat reads, with a cell's source that is no text: the editors' check
    # cannot compare it with the release's cells, and the submission goes on as it is.
    odd = json.dumps({"cells": [{"cell_type": "markdown", "metadata": {}, "source": {"not": "text"}}],
                      "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()
    (tmp_path / "backprop.ipynb").write_bytes(odd)
    submission = intake.read_submission(tmp_path, release={"backprop.ipynb": []})
    assert submission.error is None and submission.files["backprop.ipynb"] == odd
    assert submission.notes[0].startswith("backprop.ipynb: not checked for an editor's changes (TypeError")
