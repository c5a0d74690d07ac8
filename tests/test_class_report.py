"""The class report (``course-report``) on a made-up graded class (``demo.made_up_class``).

Every learner of the class is described in ``CLASS``; the expected numbers are computed
here from those descriptions, independently of the report, so a learner dropped or counted
twice anywhere changes a number. The last test opens the page in Chromium.
"""
import collections
import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

from course_grading import class_report
from course_grading.class_report import MALFORMED, MISSING, RECORDED, read_verdicts
from demo.made_up_class import ASSIGNMENT, MadeUpLearner as Learner, assignment_cells, make_class, verdict

GRADIENT = "test_gradient_training_set"
WHOLE = "test_whole_gradient"
RATE = "test_best_rate_without_momentum"
WD = "test_weight_decay"
# A learner id that must be escaped in HTML and quoted in a link, and wrapped on the page.
ODD_NAME = "o'neil <b>&" + "-very-long" * 10

CLASS = [
    # sign flipped alone, found in two cells (one learner, counted once); a right answer
    # reported in two cells (counted once).
    Learner("ann", failed_cells=(GRADIENT, WHOLE), written={"ex1a_softmax_answer": 2, "ex1b_matrix_answer": 1},
            verdicts=[verdict("backprop", GRADIENT, False, ["sign_flipped"]),
                      verdict("backprop", WHOLE, False, ["sign_flipped"]),
                      verdict("backprop", RATE, True, answers={"best_learning_rate": 0.35}),
                      verdict("backprop", "test_best_rate_with_momentum", True,
                              answers={"best_learning_rate": 0.35})],
            notes=["two cells had the grade id d_loss_by_d_model; the second ran as an ordinary cell"]),
    # sign flipped with missing weight decay; late, with a penalty; a wrong answer.
    Learner("bob", failed_cells=(GRADIENT, WD), seconds_late=7200, late_penalty=1.0,
            written={"ex1a_softmax_answer": 1},
            verdicts=[verdict("backprop", GRADIENT, False, ["sign_flipped", "missing_weight_decay"]),
                      verdict("backprop", WD, False, ["missing_weight_decay"]),
                      verdict("backprop", RATE, False, answers={"best_learning_rate": 0.05})]),
    # transposed alone; the same wrong answer as bob; half the points of one cell.
    Learner("cal", failed_cells=(GRADIENT,), partly_cells=("test_early_stopping_iteration",),
            verdicts=[verdict("backprop", GRADIENT, False, ["transposed"]),
                      verdict("backprop", RATE, False, answers={"best_learning_rate": 0.05}),
                      verdict("generalization", "test_early_stopping_iteration", False,
                              answers={"best_iteration": 120})]),
    Learner("cat", status="failed", reason="the worker failed: the grading process was killed"),
    Learner("dan", status="not submitted"),
    Learner("eve", status="not graded yet"),
    # graded without a verdict file, and without the second notebook
    Learner("fay", notebooks=("backprop",), verdicts=None,
            failed_cells=tuple(name for name, kind, _ in assignment_cells()["generalization"] if kind == "code")),
    Learner("gus", verdicts="{not json"),
    # a verdict file for someone else in gus's place would be hal's: written for "ann".
    Learner("hal", verdicts=json.dumps({"format": 1, "assignment_id": ASSIGNMENT, "student_id": "ann",
                                        "cells": [], "notes": []})),
    Learner("ivy", failed_cells=(GRADIENT,), seconds_late=90000,
            verdicts=[verdict("backprop", GRADIENT, False, ["transposed"])]),
    # a mistake the grader does not name: the grader's reader refuses the file.
    Learner("jon", failed_cells=(GRADIENT,), verdicts=json.dumps(
        {"format": 1, "assignment_id": ASSIGNMENT, "student_id": "jon", "notes": [],
         "cells": [verdict("backprop", GRADIENT, False, ["made_up_mistake"])]})),
    Learner(ODD_NAME, failed_cells=(WD,), verdicts=[verdict("backprop", WD, False, ["doubled_weight_decay"])]),
]
GRADED = [learner for learner in CLASS if learner.status == "graded"]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    return make_class(tmp_path_factory.mktemp("made-up-class") / "course", CLASS)


@pytest.fixture(scope="module")
def written(course):
    """The report written into the course folder: ``(report, html path, json path)``."""
    return class_report.make_report(course, ASSIGNMENT)


def _expected_auto(learner, cells):
    total = 0.0
    for notebook in cells.values():
        for name, kind, points in notebook:
            if kind == "code":
                total += 0 if name in learner.failed_cells else points / 2 if name in learner.partly_cells else points
    return total


@pytest.mark.fast
def test_each_learner_is_counted_once_under_their_status(written):
    report = written[0]
    statuses = {learner.student_id: learner.status for learner in report.learners}
    assert len(report.learners) == len(statuses) == len(CLASS)
    assert statuses == {learner.student_id: {"graded": class_report.GRADED, "failed": class_report.FAILED,
                                             "not graded yet": class_report.NOT_GRADED,
                                             "not submitted": class_report.NOT_SUBMITTED}[learner.status]
                        for learner in CLASS}
    c = report.counts
    assert (c["learners"], c["submitted"], c["graded"], c["failed"], c["not_graded_yet"], c["not_submitted"]) \
        == (12, 11, 9, 1, 1, 1)
    assert c["late"] == 2
    failed = next(learner for learner in report.learners if learner.student_id == "cat")
    assert failed.reason == "the worker failed: the grading process was killed"
    late = {learner.student_id: (learner.seconds_late, learner.late_penalty)
            for learner in report.learners if learner.seconds_late or learner.late_penalty}
    assert late == {"bob": (7200.0, 1.0), "ivy": (90000.0, 0.0)}


@pytest.mark.fast
def test_learners_without_verdicts_are_listed_with_the_reason(written):
    report = written[0]
    verdicts = {learner.student_id: (learner.verdicts, learner.verdict_problem) for learner in report.learners
                if learner.status == class_report.GRADED}
    assert {student: status for student, (status, _) in verdicts.items()} == {
        "ann": RECORDED, "bob": RECORDED, "cal": RECORDED, "fay": MISSING, "gus": MALFORMED, "hal": MALFORMED,
        "ivy": RECORDED, "jon": MALFORMED, ODD_NAME: RECORDED}
    assert "not JSON" in verdicts["gus"][1]
    assert "'ann'" in verdicts["hal"][1] and "'hal'" in verdicts["hal"][1]
    assert "made_up_mistake" in verdicts["jon"][1]
    assert (report.counts["verdicts_recorded"], report.counts["no_verdicts_recorded"]) == (5, 4)


@pytest.mark.fast
def test_score_distributions_and_hand_grading_progress(written):
    report = written[0]
    cells = assignment_cells()
    expected_auto = collections.Counter(_expected_auto(learner, cells) for learner in GRADED)
    assert report.auto_totals.counts == [[value, expected_auto[value]] for value in sorted(expected_auto)]
    assert report.auto_totals.count == len(GRADED)
    expected_totals = collections.Counter(_expected_auto(learner, cells) + sum(learner.written.values())
                                          for learner in GRADED)
    assert report.totals.counts == [[value, expected_totals[value]] for value in sorted(expected_totals)]
    written_cells = [(notebook, name) for notebook, graded in cells.items()
                     for name, kind, _ in graded if kind != "code"]
    graded_by_hand = sum(len(learner.written) for learner in GRADED)
    assert report.counts["written_graded"] == graded_by_hand == 3
    assert report.counts["written_to_grade"] == len(GRADED) * len(written_cells) - graded_by_hand
    by_cell = {w.grade_id: (w.graded, w.to_grade, w.mean_score) for w in report.written}
    assert by_cell["ex1a_softmax_answer"] == (2, len(GRADED) - 2, 1.5)
    assert by_cell["ex1b_matrix_answer"] == (1, len(GRADED) - 1, 1.0)
    assert report.max_score == report.auto_max_score + report.written_max_score == 31


@pytest.mark.fast
def test_pass_rates_of_every_test_cell_hardest_first(written):
    report = written[0]
    code = [(notebook, name) for notebook, graded in assignment_cells().items()
            for name, kind, _ in graded if kind == "code"]
    assert sorted((cell.notebook, cell.grade_id) for cell in report.cells) == sorted(code)
    for cell in report.cells:
        failed = sum(cell.grade_id in learner.failed_cells for learner in GRADED)
        partly = sum(cell.grade_id in learner.partly_cells for learner in GRADED)
        assert (cell.graded, cell.failed, cell.partly, cell.passed) == (
            len(GRADED), failed, partly, len(GRADED) - failed - partly), cell.grade_id
        assert cell.notebook_missing == (1 if cell.notebook == "generalization" else 0)
    rates = [cell.pass_rate for cell in report.cells]
    assert rates == sorted(rates)
    assert report.cells[0].grade_id == GRADIENT and report.cells[0].passed == len(GRADED) - 5
    assert report.cells[0].mistakes == {"transposed": 2, "sign_flipped": 2, "missing_weight_decay": 1}


@pytest.mark.fast
def test_mistakes_alone_or_combined_and_who(written, course):
    report, html_path, _ = written
    mistakes = {m.name: m for m in report.mistakes}
    assert {name: (m.learners, m.alone, m.combined) for name, m in mistakes.items()} == {
        "sign_flipped": (2, 1, 1), "transposed": (2, 2, 0), "missing_weight_decay": (1, 0, 1),
        "doubled_weight_decay": (1, 1, 0)}
    assert [who["student_id"] for who in mistakes["transposed"].who] == ["cal", "ivy"]
    assert mistakes["sign_flipped"].combined_with == {"missing_weight_decay": 1}
    assert mistakes["missing_weight_decay"].cells == {GRADIENT: 1, WD: 1}
    assert report.mistake_combinations == [
        {"mistakes": ["transposed"], "learners": 2},
        {"mistakes": ["doubled_weight_decay"], "learners": 1},
        {"mistakes": ["missing_weight_decay", "sign_flipped"], "learners": 1},
        {"mistakes": ["sign_flipped"], "learners": 1}]
    # Each name links to the learner's feedback page, relative to where the page is.
    for m in report.mistakes:
        for who in m.who:
            assert who["feedback"] is not None
            target = html_path.parent / Path(*[class_report.urllib.parse.unquote(part)
                                               for part in who["feedback"].split("/")])
            assert target.resolve() == (course / "feedback" / who["student_id"] / ASSIGNMENT /
                                        f"{who['notebook']}.html").resolve()
            assert f'href="{class_report.html.escape(who["feedback"])}"' in html_path.read_text()


@pytest.mark.fast
def test_answers_are_counted_once_per_learner_with_the_wrong_ones_apart(written):
    answers = {a.name: a for a in written[0].answers}
    assert set(answers) == {"best_learning_rate", "best_iteration"}
    rate = answers["best_learning_rate"]
    assert rate.learners == 3
    assert rate.cells == [RATE, "test_best_rate_with_momentum"]
    assert [dataclasses.astuple(v) for v in rate.values] == [("0.05", 2, 0, 2), ("0.35", 1, 1, 0)]
    assert [dataclasses.astuple(v) for v in answers["best_iteration"].values] == [("120", 1, 0, 1)]


@pytest.mark.fast
def test_json_holds_the_numbers_of_the_page(written):
    report, html_path, json_path = written
    data = json.loads(json_path.read_text())
    assert data == json.loads(class_report.report_json(report))
    assert data["counts"]["graded"] == 9 and len(data["learners"]) == 12
    page = html_path.read_text()
    assert ODD_NAME not in page and class_report.html.escape(ODD_NAME) in page
    assert "the worker failed: the grading process was killed" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page


@pytest.mark.fast
def test_links_are_relative_to_another_output_folder(course, tmp_path, capsys):
    output = course / "reports" / "week1"
    assert class_report.main([ASSIGNMENT, "--course", str(course), "--output", str(output)]) == 0
    assert f"Class report: {output / 'class_report_backprop.html'}" in capsys.readouterr().out
    data = json.loads((output / "class_report_backprop.json").read_text())
    links = {who["student_id"]: who["feedback"] for m in data["mistakes"] for who in m["who"]}
    assert links["ann"] == "../../feedback/ann/backprop/backprop.html"
    assert links[ODD_NAME] == "../../feedback/o%27neil%20%3Cb%3E%26" + "-very-long" * 10 + "/backprop/backprop.html"
    assert os.path.isfile(output / Path(class_report.urllib.parse.unquote(links[ODD_NAME])))


@pytest.mark.fast
@pytest.mark.parametrize("arguments, message", [
    (["nosuch"], "has no assignment 'nosuch' (it has: backprop)"),
    (["backprop", "--course", "/nonexistent"], "is not an nbgrader course folder"),
])
def test_bad_input_is_a_clear_error(course, arguments, message, capsys, monkeypatch):
    monkeypatch.chdir(course)
    assert class_report.main(arguments) == 2
    assert message in capsys.readouterr().err


@pytest.mark.fast
@pytest.mark.parametrize("text, problem", [
    ("[]", "not an object"),
    ('{"format": 2}', "format 2"),
    (b"\xff\xfe", "cannot be used"),
    ('{"format": 1, "assignment_id": "backprop", "student_id": "s", "cells": {}}', "no list of cells"),
    ('{"format": 1, "assignment_id": "backprop", "student_id": "s", "cells": [{"notebook": "b"}]}',
     "a cell's verdict has the fields"),
    ('{"format": 1, "assignment_id": "backprop", "student_id": "s", "cells": [], "notes": [1]}', "notes"),
    ("[" * 100000 + "]" * 100000, "not JSON"),
    (json.dumps({"format": 1, "assignment_id": "backprop", "student_id": "s", "notes": [],
                 "cells": [verdict("backprop", RATE, True, answers={"nested": {"a": 1}})]}), "not a plain value"),
])
def test_a_malformed_verdict_file_is_said_so_never_raised(tmp_path, text, problem):
    path = tmp_path / class_report.VERDICT_FILE
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    found = read_verdicts(tmp_path, "backprop", "s")
    assert found.status == MALFORMED and problem in found.problem
    assert found.cells == []


@pytest.mark.fast
def test_answers_are_shown_as_short_text(tmp_path):
    cells = [verdict("backprop", RATE, False, ["wrong_value"],
                     answers={"rates": [0.1, 0.2], "long": "x" * 500, "sizes": [10, 30, 100], "flag": True,
                              "iteration": 120, "wd": 1e-3, "text": "early"})]
    (tmp_path / class_report.VERDICT_FILE).write_text(json.dumps(
        {"format": 1, "assignment_id": "backprop", "student_id": "s", "cells": cells, "notes": ["a note"]}))
    found = read_verdicts(tmp_path, "backprop", "s")
    assert found.status == RECORDED and found.notes == ["a note"]
    assert found.cells[0].mistakes == ["wrong_value"]
    assert found.cells[0].answers == {"rates": "[0.1, 0.2]", "long": "x" * 79 + "…", "sizes": "[10, 30, 100]",
                                      "flag": "True", "iteration": "120", "wd": "0.001", "text": "early"}


# --- in a real browser ---------------------------------------------------------------------

def test_the_page_in_chromium(written, course):
    """Every plot drawn, no console error, nothing fetched from outside the file, no
    horizontal overflow at 1280 px, links that open the feedback pages, and a print layout."""
    from playwright.sync_api import sync_playwright

    from test_browser import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium or set CHROMIUM.")
    report, html_path, _ = written
    outside, problems = [], []

    def route(request_route):
        url = request_route.request.url
        if url.startswith(("file:", "data:")):
            request_route.continue_()
        else:
            outside.append(url)
            request_route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/*", route)
            page.on("console", lambda message: message.type in ("error", "warning") and problems.append(message.text))
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("requestfailed", lambda request: problems.append(f"failed: {request.url}"))
            page.goto(html_path.as_uri(), wait_until="load")

            plots = page.locator("figure img")
            # Totals, test cells, mistakes, one per answered question.
            assert plots.count() == 3 + len(report.answers)
            sizes = page.evaluate("""() => [...document.querySelectorAll('img, svg')].map(e => {
                const box = e.getBoundingClientRect();
                return [e.complete === undefined ? 1 : e.naturalWidth, box.width, box.height]; })""")
            assert sizes and all(natural > 0 and width > 0 and height > 0 for natural, width, height in sizes)
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
            assert page.evaluate("document.body.scrollWidth") <= 1280

            page.emulate_media(media="print")
            assert page.locator("nav").is_hidden()
            assert all(box["width"] > 0 for box in (plots.nth(i).bounding_box() for i in range(plots.count())))
            pdf = page.pdf(format="A4")
            assert pdf.startswith(b"%PDF") and len(re.findall(rb"/Type\s*/Page\b", pdf)) > 1
            page.emulate_media(media="screen")

            page.get_by_role("link", name="ivy").first.click()
            page.wait_for_load_state()
            assert page.url == (course / "feedback" / "ivy" / ASSIGNMENT / "backprop.html").as_uri()
            assert "Feedback of ivy" in page.content()
        finally:
            browser.close()
    assert outside == []
    assert problems == []
