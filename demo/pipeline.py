"""The instructor's pipeline on the example submissions: ``python -m demo.pipeline``.

Run from the project folder (``make demo``); in the course folder ``notebooks/`` it runs

1. ``nbgrader generate_assignment``: the learners' release (solutions and hidden tests removed);
2. the example submissions (``demo.examples``) written into ``submitted/``;
3. ``course-grade`` (``course_grading.grade.grade_assignment``) on them: in parallel, in the
   sandbox where the machine has one, every verdict decided outside the learner's kernel,
   a progress bar;
4. ``nbgrader generate_feedback``: one HTML page per learner and notebook;
5. ``nbgrader export``: the grades as CSV;
6. ``course-report``: the class report (``class_report_backprop.html`` and ``.json``);
7. a table of the scores (the totals those of the CSV) and the paths of the feedback pages.

With ``--students`` only the named examples are written, graded and given feedback.
The nbgrader commands are the ones an instructor runs on JupyterHub (see hub/README.md).
"""

import argparse
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from course_grading import sandbox
from course_grading.class_report import ReportError, make_report
from course_grading.grade import GradingError, grade_assignment
from course_grading.gradebook_sync import put_alembic_on_path

from .examples import ASSIGNMENT, EXAMPLES, write_submissions

COURSE = Path(__file__).resolve().parent.parent / "notebooks"
#: MathJax 2 from npm (``make hub-assets``), and the template that points the feedback
#: pages at it (``feedback/mathjax``, a link to that folder).
MATHJAX = Path(__file__).resolve().parent.parent / "hub" / "node_modules" / "mathjax"
FEEDBACK_TEMPLATES = Path(__file__).resolve().parent / "share"
# The grade table fits a terminal this wide.
TABLE_WIDTH = 100


class PipelineError(RuntimeError):
    """An nbgrader step failed; the message holds its output."""


def nbgrader(course_root, *arguments, jupyter_path=None):
    """Run one nbgrader command in the course folder; returns its combined output.

    ``jupyter_path``: a folder put first on ``JUPYTER_PATH`` (where templates are found).

    Raises
    ------
    PipelineError
        If the command exits with an error.
    """
    put_alembic_on_path()
    env = dict(os.environ)
    # One BLAS thread per kernel: several processes share the machine while grading.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MPLBACKEND", "Agg")
    if jupyter_path is not None:
        env["JUPYTER_PATH"] = os.pathsep.join([str(jupyter_path)] + [
            folder for folder in env.get("JUPYTER_PATH", "").split(os.pathsep) if folder])
    completed = subprocess.run([sys.executable, "-m", "nbgrader", *arguments], cwd=course_root,
                               capture_output=True, text=True, env=env)
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise PipelineError(f"nbgrader {' '.join(arguments)} failed (exit code "
                            f"{completed.returncode}):\n{output}")
    return output


def release(course_root, assignment=ASSIGNMENT):
    """Generate the release notebooks in ``release/<assignment>``."""
    return nbgrader(course_root, "generate_assignment", assignment, "--force")


def sandbox_settings(out=print):
    """The sandbox where this machine can make one; else, said why, grading without it."""
    try:
        sandbox.check_available()
    except sandbox.SandboxUnavailable as error:
        out(f"Grading the examples without the sandbox: {error}")
        out("(The demo's example answers are trusted code; a class's submissions are not.)")
        return sandbox.SandboxSettings(enabled=False)
    return sandbox.SandboxSettings()


def grading_calls(examples):
    """``[(students, cell_timeout)]``: one ``grade_assignment`` call per per-cell time limit,
    the examples without their own limit (the course's) first."""
    calls = {}
    for student, example in examples.items():
        calls.setdefault(example.cell_timeout, []).append(student)
    return sorted(calls.items(), key=lambda call: call[0] is not None)


def grade_examples(course_root, examples, settings, stream=sys.stdout):
    """Grade the example submissions with ``course-grade`` (all of them again, as a
    resubmission would be); returns ``{student: reason}`` of those that failed."""
    failed = {}
    for cell_timeout, students in grading_calls(examples):
        summary = grade_assignment(str(course_root), ASSIGNMENT, students=students, settings=settings,
                                   cell_timeout=cell_timeout, force=True, out=stream)
        failed.update(summary["failed"])
    return failed


def local_mathjax(course_root):
    """Link ``feedback/mathjax`` to the MathJax installed from npm; returns whether it is there."""
    if not (MATHJAX / "MathJax.js").is_file():
        return False
    folder = Path(course_root) / "feedback"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "mathjax"
    target = os.path.relpath(MATHJAX, folder)
    if not (link.is_symlink() and os.readlink(link) == target):
        if link.is_symlink() or link.is_file():
            link.unlink()
        link.symlink_to(target, target_is_directory=True)
    return True


def feedback(course_root, students=None, assignment=ASSIGNMENT):
    """Generate the feedback pages in ``feedback/<student>/<assignment>`` (all, or of ``students``).

    The pages load MathJax from ``feedback/mathjax`` (see :func:`local_mathjax`), so that they
    show their maths opened from disk with no internet; without MathJax installed
    (``make hub-assets``), from nbconvert's CDN.
    """
    templates = FEEDBACK_TEMPLATES if local_mathjax(course_root) else None
    if students is None:
        return nbgrader(course_root, "generate_feedback", assignment, "--force", jupyter_path=templates)
    return "".join(nbgrader(course_root, "generate_feedback", assignment, "--force", f"--student={student}",
                            jupyter_path=templates)
                   for student in students)


def export(course_root, csv_path):
    """Export all grades to ``csv_path``."""
    return nbgrader(course_root, "export", "--to", str(csv_path))


def class_report(course_root, assignment=ASSIGNMENT):
    """Write the class report into the course folder; returns the path of its HTML page."""
    return make_report(course_root, assignment)[1]


@dataclass
class NotebookScore:
    """One learner's autograded points in one notebook."""

    auto_score: float
    auto_max: float
    submitted: bool


@dataclass
class LearnerScore:
    """One learner's scores, as nbgrader counts them (``score`` and ``max_score`` are those of
    ``nbgrader export``, the whole assignment's, written answers included).

    ``to_grade_by_hand`` is the maximum of the written answers that wait for a person.
    """

    score: float
    max_score: float
    to_grade_by_hand: float
    notebooks: dict = field(default_factory=dict)


def scores(course_root, assignment=ASSIGNMENT):
    """``{student: LearnerScore}`` from the gradebook, for every learner who submitted."""
    course_root = Path(course_root)
    put_alembic_on_path()  # the Gradebook below runs nbgrader's `alembic` command
    table = {}
    with Gradebook(f"sqlite:///{course_root / 'gradebook.db'}") as gradebook:
        max_score = gradebook.find_assignment(assignment).max_score
        for student in sorted(student.id for student in gradebook.students):
            try:
                submission = gradebook.find_submission(assignment, student)
            except MissingEntry:
                continue
            learner = LearnerScore(score=submission.score - submission.late_submission_penalty,
                                   max_score=max_score, to_grade_by_hand=0.0)
            for notebook in submission.notebooks:
                path = course_root / "submitted" / student / assignment / f"{notebook.name}.ipynb"
                auto = [grade for grade in notebook.grades if grade.cell.cell_type == "code"]
                learner.to_grade_by_hand += sum(grade.max_score for grade in notebook.grades
                                                if grade.cell.cell_type != "code" and grade.needs_manual_grade)
                learner.notebooks[notebook.name] = NotebookScore(
                    auto_score=sum(grade.auto_score or 0 for grade in auto),
                    auto_max=sum(grade.max_score for grade in auto), submitted=path.exists())
            table[student] = learner
    return table


def format_table(table, about=None, width=TABLE_WIDTH):
    """The scores as a text table at most ``width`` characters wide.

    Per notebook the autograded points; the total out of the assignment's maximum (as in
    ``nbgrader export``'s CSV) and the points of written answers still to grade by hand;
    what each example shows, wrapped to the room that is left.
    """
    about = about or {}
    notebooks = sorted({notebook for row in table.values() for notebook in row.notebooks})
    header = [["learner", ""]] + [[notebook, "(auto)"] for notebook in notebooks] + \
        [["total", "(as CSV)"], ["by hand", "to give"], ["example of", ""]]
    rows = []
    for student, row in table.items():
        cells = [student]
        for notebook in notebooks:
            score = row.notebooks.get(notebook)
            cells.append(f"{score.auto_score:g}/{score.auto_max:g}" if score and score.submitted else "none")
        cells += [f"{row.score:g}/{row.max_score:g}", f"{row.to_grade_by_hand:g}", about.get(student, "")]
        rows.append(cells)
    widths = [max(len(text) for text in [*header[column], *(row[column] for row in rows)])
              for column in range(len(header) - 1)]
    room = max(20, width - sum(widths) - 2 * len(widths))
    widths.append(min(room, max([len(text) for text in header[-1]] + [len(row[-1]) for row in rows])))

    def lines(cells):
        """One row; its last cell wrapped onto further lines."""
        for number, last in enumerate(textwrap.wrap(cells[-1], widths[-1]) or [""]):
            line = [text if number == 0 else "" for text in cells[:-1]] + [last]
            yield "  ".join(text.ljust(w) for text, w in zip(line, widths)).rstrip()

    out = [*lines([text for text, _ in header]), *lines([text for _, text in header]),
           "  ".join("-" * w for w in widths)]
    for cells in rows:
        out += lines(cells)
    return "\n".join(out)


def feedback_pages(course_root, students=None, assignment=ASSIGNMENT):
    """Paths of the feedback pages (all, or of ``students``), sorted."""
    pages = sorted((Path(course_root) / "feedback").glob(f"*/{assignment}/*.html"))
    return [page for page in pages if students is None or page.parent.parent.name in students]


def run(course_root=COURSE, examples=None, out=print, settings=None, only_these=False):
    """The whole pipeline on the example submissions; returns ``scores(course_root)``.

    ``only_these``: feedback and the table for ``examples`` alone (the CSV has everyone).
    Raises PipelineError, GradingError or ReportError when a step cannot run.
    """
    course_root = Path(course_root)
    examples = EXAMPLES if examples is None else examples
    students = list(examples) if only_these else None
    timings = {}

    def step(name, function, *arguments):
        out(f"{name} ...")
        start = time.perf_counter()
        result = function(*arguments)
        timings[name] = time.perf_counter() - start
        return result

    settings = settings or sandbox_settings(out)
    step("Generating the release", release, course_root)
    step("Writing the example submissions", write_submissions, course_root, examples)
    step(f"Grading {len(examples)} submissions with course-grade", grade_examples, course_root, examples,
         settings)
    if not (MATHJAX / "MathJax.js").is_file():
        out(f"No MathJax in {MATHJAX} (make hub-assets installs it): the feedback pages will "
            "load it from the internet to show their maths.")
    step("Generating feedback", feedback, course_root, students)
    csv_path = course_root / "grades.csv"
    step("Exporting grades", export, course_root, csv_path)
    report_path = step("Writing the class report", class_report, course_root)

    table = scores(course_root)
    shown = {student: row for student, row in table.items() if students is None or student in students}
    out("")
    out(format_table(shown, {student: example.about for student, example in EXAMPLES.items()}))
    out("")
    if shown:
        some = next(iter(shown.values()))
        auto = sum(score.auto_max for score in some.notebooks.values())
        out(textwrap.fill(f"Totals are out of {some.max_score:g}, as in grades.csv: {auto:g} autograded points "
                          f"and {some.max_score - auto:g} for the written answers, graded by hand in formgrader "
                          "(\"by hand\": the points still to give).", TABLE_WIDTH))
    out(f"Release notebooks: {course_root / 'release' / ASSIGNMENT}")
    out(f"Grades (CSV):      {csv_path}")
    out(f"Class report:      {report_path}")
    out("Feedback pages:")
    for page in feedback_pages(course_root, students):
        out(f"  {page}")
    out("")
    out("Seconds per step: " + ", ".join(f"{name.lower()} {seconds:.1f}" for name, seconds in timings.items()))
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--course", default=str(COURSE), help="the nbgrader course folder")
    parser.add_argument("--students", nargs="*", help="only these example submissions (the others "
                        "keep their grades)")
    arguments = parser.parse_args(argv)
    examples = EXAMPLES
    if arguments.students:
        unknown = sorted(set(arguments.students) - set(EXAMPLES))
        if unknown:
            parser.error(f"unknown example submissions {unknown}; choose from {sorted(EXAMPLES)}")
        examples = {student: EXAMPLES[student] for student in arguments.students}
    try:
        run(arguments.course, examples, only_these=bool(arguments.students))
    except (PipelineError, GradingError, ReportError) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
