"""Notebooks as learners' editors leave them (``course_grading.editors``), each made from
the release notebook that nbgrader generates, with the model answers typed in.

Each case is checked against nbgrader's own rules: the control shows that nbgrader's
metadata check (which stops ``autograde`` and ``validate``) refuses the notebook as the
editor left it, and the test that the repaired notebook passes it, with the cells in
the release's order and the learner's cells where the learner put them.
"""
import os

import nbformat
import numpy as np
import pytest
from nbgrader.nbgraderformat import MetadataValidator, ValidationError

import editor_cases as cases
import grading_support as support
from course_grading import editors, intake
from course_utils import initial_model
from course_utils.notebook_code import define_function, learner_cells, learner_namespace
from demo import examples


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return support.released_course(tmp_path_factory.mktemp("editors") / "course")


@pytest.fixture(scope="module")
def release_cells(course):
    return nbformat.read(course / "release" / "backprop" / "backprop.ipynb", as_version=4).cells


@pytest.fixture
def answered(course):
    """The release notebook with the model answers typed in (a correct learner's)."""
    answers = examples.model_answers(course / "source" / "backprop" / "backprop.ipynb")
    return examples.fill_in(course / "release" / "backprop" / "backprop.ipynb", answers)


def _nbgrader_accepts(notebook):
    try:
        MetadataValidator().validate_nb(notebook)
    except ValidationError as error:
        return str(error)
    return True


def _graded_ids(notebook):
    return [name for name in cases.grade_ids(notebook) if name is not None]


def _comparable(cells):
    return [(cell.cell_type, cell.source, cell.metadata.get("nbgrader")) for cell in cells]


@pytest.mark.parametrize("grade_id, kind", [("d_loss_by_d_model", "answer cell"),
                                            ("test_keys_and_shapes", "test cell"),
                                            ("ex1a_softmax_answer", "answer cell"),
                                            ("setup", "locked cell")])
def test_a_pasted_copy_becomes_an_ordinary_cell_and_the_first_keeps_the_grade_id(answered, release_cells,
                                                                                 grade_id, kind):
    damaged = cases.pasted_copy(answered, grade_id)
    assert _nbgrader_accepts(damaged) == f"Duplicate grade id: {grade_id}"  # the control
    repaired = editors.repair_notebook(cases.saved(damaged), release_cells)
    assert _nbgrader_accepts(repaired.notebook) is True
    position = cases.grade_ids(answered).index(grade_id)
    first, copy = repaired.notebook.cells[position], repaired.notebook.cells[position + 1]
    assert first.metadata["nbgrader"] == answered.cells[position].metadata["nbgrader"]
    assert first.id == answered.cells[position].id
    assert copy.source == first.source and "nbgrader" not in copy.metadata
    assert "editable" not in copy.metadata and "deletable" not in copy.metadata
    assert _graded_ids(repaired.notebook) == _graded_ids(answered)
    assert len(repaired.notebook.cells) == len(answered.cells) + 1
    assert repaired.notes == [f"found a copy of the {kind} '{grade_id}' (a cell copied and pasted keeps "
                              f"the cell's hidden nbgrader data): the first cell is graded as '{grade_id}', "
                              "the copy runs as an ordinary cell, where it is"]


def test_an_edited_copy_of_the_gradient_below_the_first_is_the_function_graded(answered, release_cells):
    # The learner kept the stub and pasted an edited copy below it: in the kernel, the
    # copy's definition is the one the tests call.
    stub = "def d_loss_by_d_model(model, data, wd_coefficient):\n    raise NotImplementedError\n"
    position = cases.grade_ids(answered).index("d_loss_by_d_model")
    correct = answered.cells[position].source
    answered.cells[position].source = stub
    damaged = cases.pasted_copy(answered, "d_loss_by_d_model", source=correct)
    repaired = editors.repair_notebook(cases.saved(damaged), release_cells)
    sources, index = learner_cells(repaired.notebook.cells, "d_loss_by_d_model")
    assert sources[index] == stub and sources[index + 1] == correct
    namespace = learner_namespace()
    assert define_function(sources, index, "d_loss_by_d_model", namespace) == ""
    cases_ = np.zeros((256, 3))
    target = np.eye(10)[:, :3]
    gradient = namespace["d_loss_by_d_model"](initial_model(4), {"inputs": cases_, "target": target}, 0)
    assert gradient["hid_to_class"].shape == (10, 4)  # the copy's; the stub raises


def test_cells_moved_out_of_order_are_graded_in_the_release_order(answered, release_cells):
    # The learner added a cell of their own below the gradient, then moved a test cell to
    # the end and the gradient cell (with their cell) below the first test.
    mine = nbformat.v4.new_code_cell("print(d_loss_by_d_model(initial_model(10), datas['train'], 0))")
    at = cases.grade_ids(answered).index("d_loss_by_d_model")
    answered.cells.insert(at + 1, mine)
    damaged = cases.moved(answered, "test_gradient_training_set", after="test_reported_training_loss")
    damaged = cases.moved(damaged, "ex2_intro", after="test_keys_and_shapes")
    repaired = editors.repair_notebook(cases.saved(damaged), release_cells)
    assert _comparable(repaired.notebook.cells) == _comparable(answered.cells)
    assert repaired.notes == ["cells 'ex2_intro', 'test_gradient_training_set' were moved out of the "
                              "assignment's order: graded in the assignment's order"]
    # Without the release, nothing is moved.
    assert editors.repair_notebook(cases.saved(damaged)).notes == []


def test_deleted_cells_are_put_back_as_the_release_has_them(answered, release_cells):
    damaged = cases.deleted(answered, "setup", "test_whole_gradient", "ex1a_softmax_answer")
    repaired = editors.repair_notebook(cases.saved(damaged), release_cells)
    assert _graded_ids(repaired.notebook) == _graded_ids(answered)
    restored = {name: cell for name, cell in zip(cases.grade_ids(repaired.notebook), repaired.notebook.cells)}
    release = {name: cell for name, cell in zip(cases.grade_ids(nbformat.v4.new_notebook(cells=release_cells)),
                                                release_cells)}
    for name in ("setup", "test_whole_gradient", "ex1a_softmax_answer"):
        assert _comparable([restored[name]]) == _comparable([release[name]])
    assert len({cell.id for cell in repaired.notebook.cells}) == len(repaired.notebook.cells)
    assert repaired.notes == ["cells 'setup', 'ex1a_softmax_answer', 'test_whole_gradient' were deleted: put "
                              "back as the assignment has them (a test cell as it was, an answer cell empty)"]


@pytest.mark.parametrize("minor", [0, 4])
def test_a_notebook_of_an_older_jupyter_is_read_as_format_4_5(answered, release_cells, minor):
    text = cases.older_jupyter(answered, minor)
    assert '"id"' not in text
    repaired = editors.repair_notebook(text, release_cells)
    assert (repaired.notebook.nbformat, repaired.notebook.nbformat_minor) == (4, 5)
    nbformat.validate(repaired.notebook)  # ids present and unique
    assert _comparable(repaired.notebook.cells) == _comparable(answered.cells)
    assert repaired.notes == [f"saved in notebook format 4.{minor} (an older Jupyter): read as format 4.5, "
                              "the cells unchanged"]


def test_a_notebook_of_format_3_is_read_as_format_4_5(answered, release_cells):
    repaired = editors.repair_notebook(cases.format_3(answered), release_cells)
    nbformat.validate(repaired.notebook)
    assert [(c.cell_type, c.source) for c in repaired.notebook.cells] == [(c.cell_type, c.source)
                                                                          for c in answered.cells]
    assert _graded_ids(repaired.notebook) == _graded_ids(answered)
    assert repaired.notes == ["saved in notebook format 3.0 (an older Jupyter): read as format 4.5, "
                              "the cells unchanged"]


def test_a_notebook_saved_by_vs_code_needs_nothing(answered, release_cells):
    text = cases.vs_code(answered)
    assert not text.endswith("\n") and '"vscode"' in text
    repaired = editors.repair_notebook(text, release_cells)
    assert repaired.notes == []
    assert _comparable(repaired.notebook.cells) == _comparable(answered.cells)
    assert _nbgrader_accepts(nbformat.reads(text, as_version=4)) is True


def test_everything_at_once_is_noted_once_each(answered, release_cells):
    damaged = cases.pasted_copy(answered, "test_keys_and_shapes", after="test_reported_training_loss")
    damaged = cases.moved(damaged, "tiny_gradient", after="test_tiny_input_to_hid")
    repaired = editors.repair_notebook(cases.older_jupyter(damaged, 4), release_cells)
    assert _graded_ids(repaired.notebook) == _graded_ids(answered)
    assert [note.split(" ")[0] for note in repaired.notes] == ["saved", "found", "cell"]
    assert _nbgrader_accepts(repaired.notebook) is True


def test_intake_repairs_notebooks_and_leaves_out_stray_copies(course, answered, release_cells, tmp_path):
    folder = tmp_path / "submission"
    (folder / ".ipynb_checkpoints").mkdir(parents=True)
    (folder / "backprop.ipynb").write_text(cases.saved(cases.pasted_copy(answered, "test_keys_and_shapes")))
    (folder / "backprop-Copy1.ipynb").write_text(cases.saved(answered))
    (folder / ".ipynb_checkpoints" / "backprop-checkpoint.ipynb").write_text(cases.saved(answered))
    # A notebook of the learner's own, not the assignment's, is neither graded nor changed.
    (folder / "scratch.ipynb").write_text(cases.older_jupyter(answered, 2))
    submission = intake.read_submission(folder, release={"backprop.ipynb": release_cells})
    assert submission.error is None
    assert sorted(submission.files) == ["backprop.ipynb", "scratch.ipynb"]
    assert submission.files["scratch.ipynb"] == cases.older_jupyter(answered, 2).encode()
    assert submission.notes == [
        f"left out .ipynb_checkpoints{os.sep}: JupyterLab's automatic saves, never graded",
        "left out backprop-Copy1.ipynb: a copy of backprop.ipynb (JupyterLab's Duplicate or Save As); "
        "only backprop.ipynb is graded",
        "backprop.ipynb: found a copy of the test cell 'test_keys_and_shapes' (a cell copied and pasted "
        "keeps the cell's hidden nbgrader data): the first cell is graded as 'test_keys_and_shapes', the "
        "copy runs as an ordinary cell, where it is"]
    graded = nbformat.reads(submission.files["backprop.ipynb"].decode(), as_version=4)
    note = graded.cells[0]
    assert note.cell_type == "markdown" and note.metadata["tags"] == [editors.NOTE_TAG]
    assert "test_keys_and_shapes" in note.source and "Note from the grader" in note.source
    assert _nbgrader_accepts(graded) is True
    # A notebook that needs nothing is handed on byte for byte.
    (folder / "backprop.ipynb").write_text(cases.saved(answered))
    assert intake.read_submission(folder, release={"backprop.ipynb": release_cells}).files[
        "backprop.ipynb"] == cases.saved(answered).encode()
