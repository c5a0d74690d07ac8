"""The demo's pipeline without running nbgrader: what it grades, and its grade table."""
import pytest

from demo import pipeline
from demo.examples import EXAMPLES
from demo.pipeline import LearnerScore, NotebookScore

pytestmark = pytest.mark.fast


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """The pipeline's steps replaced by recorders: ``calls`` lists what each step got."""
    calls = []
    monkeypatch.setattr(pipeline, "release", lambda root: calls.append(("release",)))
    monkeypatch.setattr(pipeline, "write_submissions",
                        lambda root, examples: calls.append(("write", sorted(examples))))
    monkeypatch.setattr(pipeline, "grade_assignment", lambda root, assignment, **options: (
        calls.append(("grade", options["students"], options["cell_timeout"], options["force"]))
        or {"failed": {}}))
    monkeypatch.setattr(pipeline, "feedback", lambda root, students: calls.append(("feedback", students)))
    monkeypatch.setattr(pipeline, "export", lambda root, csv: calls.append(("export",)))
    monkeypatch.setattr(pipeline, "class_report", lambda root: calls.append(("report",)) or root / "report.html")
    monkeypatch.setattr(pipeline, "scores", lambda root: {})
    monkeypatch.setattr(pipeline, "sandbox_settings", lambda out: pipeline.sandbox.SandboxSettings())
    return calls


def test_named_students_are_the_only_ones_written_graded_and_given_feedback(recorded, tmp_path, capsys):
    assert pipeline.main(["--course", str(tmp_path), "--students", "flipped_sign", "missing_1_over_m"]) == 0
    assert [call for call in recorded if call[0] == "grade"] == [
        ("grade", ["flipped_sign", "missing_1_over_m"], None, True)]
    assert ("write", ["flipped_sign", "missing_1_over_m"]) in recorded
    assert ("feedback", ["flipped_sign", "missing_1_over_m"]) in recorded


def test_the_endless_loop_is_graded_apart_with_its_short_cell_limit(recorded, tmp_path, capsys):
    assert pipeline.main(["--course", str(tmp_path), "--students", "never_returns", "correct"]) == 0
    assert [call for call in recorded if call[0] == "grade"] == [
        ("grade", ["correct"], None, True), ("grade", ["never_returns"], 10, True)]


def test_the_whole_demo_grades_every_example_once(recorded, tmp_path, capsys):
    assert pipeline.main(["--course", str(tmp_path)]) == 0
    graded = [student for call in recorded if call[0] == "grade" for student in call[1]]
    assert sorted(graded) == sorted(EXAMPLES)
    assert ("feedback", None) in recorded
    # The class report after the feedback pages it links to, its path printed.
    assert recorded.index(("report",)) > recorded.index(("feedback", None))
    assert f"Class report:      {tmp_path / 'report.html'}" in capsys.readouterr().out


def test_unknown_students_are_refused_with_the_choices(recorded, tmp_path, capsys):
    with pytest.raises(SystemExit):
        pipeline.main(["--course", str(tmp_path), "--students", "nobody"])
    assert "unknown example submissions ['nobody']" in capsys.readouterr().err
    assert recorded == []


def _table():
    """A fabricated class: full marks, a faulty gradient, a learner who sent one notebook of two
    and answered nothing in writing."""
    return {
        "correct": LearnerScore(20, 31, 11, {"backprop": NotebookScore(15, 15, True),
                                              "generalization": NotebookScore(5, 5, True)}),
        "missing_logistic_derivative": LearnerScore(3, 31, 0, {"backprop": NotebookScore(3, 15, True),
                                                              "generalization": NotebookScore(0, 5, False)}),
        "half_written": LearnerScore(12.5, 31, 4, {"backprop": NotebookScore(8.5, 15, True),
                                                   "generalization": NotebookScore(0, 5, True)}),
    }


def test_grade_table_fits_100_columns_and_states_totals_as_the_csv():
    about = {student: example.about for student, example in EXAMPLES.items()}
    about["half_written"] = "a learner's own words " * 8
    text = pipeline.format_table(_table(), about)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)
    rows = {line.split()[0]: line.split() for line in lines[3:] if line and not line.startswith(" ")}
    # backprop, generalization, total out of the CSV's maximum, the points still to give by hand.
    assert rows["correct"][1:5] == ["15/15", "5/5", "20/31", "11"]
    assert rows["missing_logistic_derivative"][1:5] == ["3/15", "none", "3/31", "0"]
    assert rows["half_written"][1:5] == ["8.5/15", "0/5", "12.5/31", "4"]
    # Long descriptions are wrapped, not cut.
    assert " ".join(text.split()).count("a learner's own words") == 8
    assert "the model answers of the source notebooks" in " ".join(text.split())


def test_grade_table_of_every_example_fits_100_columns():
    table = {student: LearnerScore(0, 31, 0, {"backprop": NotebookScore(0, 15, True)}) for student in EXAMPLES}
    about = {student: example.about for student, example in EXAMPLES.items()}
    assert max(len(line) for line in pipeline.format_table(table, about).splitlines()) <= 100
