"""The instructor's pipeline on the example submissions: ``python -m demo.pipeline``.

1. ``nbgrader generate_assignment``: the learners' release (solutions and hidden tests removed);
2. the example submissions (``demo.examples``) written into ``submitted/``;
3. ``nbgrader autograde`` of all of them;
4. ``nbgrader generate_feedback``: one HTML page per learner and notebook;
5. ``nbgrader export``: the grades as CSV;
6. a table of the scores and the paths of the feedback pages.

The same nbgrader commands are the ones an instructor runs on JupyterHub (see the README).
"""

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nbgrader.api import Gradebook, MissingEntry

from .examples import ASSIGNMENT, EXAMPLES, write_submissions
from course_grading.gradebook_sync import put_alembic_on_path

COURSE = Path(__file__).resolve().parent.parent / "notebooks"


class PipelineError(RuntimeError):
    """An nbgrader step failed; the message holds its output."""


def nbgrader(course_root, *arguments):
    """Run one nbgrader command in the course folder; returns its combined output.

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


def autograde(course_root, assignment=ASSIGNMENT, extra_arguments=()):
    """Autograde every submission of ``assignment``."""
    return nbgrader(course_root, "autograde", assignment, "--force", *extra_arguments)


def autograde_examples(course_root, examples, extra_arguments=()):
    """Autograde the example submissions; those with their own ``cell_timeout`` one by one."""
    limited = {student: example.cell_timeout for student, example in examples.items()
               if example.cell_timeout}
    if len(limited) < len(examples):
        exclude = [f"--CourseDirectory.student_id_exclude={','.join(limited)}"] if limited else []
        autograde(course_root, ASSIGNMENT, [*extra_arguments, *exclude])
    for student, timeout in limited.items():
        autograde(course_root, ASSIGNMENT,
                  [*extra_arguments, f"--student={student}", f"--Execute.timeout={timeout}"])


def feedback(course_root, assignment=ASSIGNMENT):
    """Generate the feedback pages in ``feedback/<student>/<assignment>``."""
    return nbgrader(course_root, "generate_feedback", assignment, "--force")


def export(course_root, csv_path):
    """Export all grades to ``csv_path``."""
    return nbgrader(course_root, "export", "--to", str(csv_path))


@dataclass
class NotebookScore:
    """One learner's scores in one notebook."""

    auto_score: float
    auto_max: float
    manual_max: float
    needs_manual_grade: bool
    submitted: bool


def scores(course_root, assignment=ASSIGNMENT):
    """``{student: {notebook: NotebookScore}}`` from the gradebook."""
    course_root = Path(course_root)
    put_alembic_on_path()  # the Gradebook below runs nbgrader's `alembic` command
    table = {}
    with Gradebook(f"sqlite:///{course_root / 'gradebook.db'}") as gradebook:
        notebooks = [notebook.name for notebook in gradebook.find_assignment(assignment).notebooks]
        for student in sorted(student.id for student in gradebook.students):
            for notebook in notebooks:
                try:
                    submission = gradebook.find_submission_notebook(notebook, assignment, student)
                except MissingEntry:
                    continue
                submitted = (course_root / "submitted" / student / assignment / f"{notebook}.ipynb").exists()
                auto = [grade for grade in submission.grades if grade.cell.cell_type == "code"]
                manual = [grade for grade in submission.grades if grade.cell.cell_type != "code"]
                table.setdefault(student, {})[notebook] = NotebookScore(
                    auto_score=sum(grade.auto_score or 0 for grade in auto),
                    auto_max=sum(grade.max_score for grade in auto),
                    manual_max=sum(grade.max_score for grade in manual),
                    needs_manual_grade=any(grade.needs_manual_grade for grade in manual),
                    submitted=submitted,
                )
    return table


def format_table(table, about=None):
    """The scores as a text table: autograded points per notebook, and what waits for a person."""
    about = about or {}
    notebooks = sorted({notebook for row in table.values() for notebook in row})
    header = ["learner"] + [f"{notebook} (auto)" for notebook in notebooks] + ["written answers", "example of"]
    rows = []
    for student, row in table.items():
        cells = [student]
        for notebook in notebooks:
            score = row.get(notebook)
            if score is None or not score.submitted:
                cells.append("not submitted")
            else:
                cells.append(f"{score.auto_score:g} / {score.auto_max:g}")
        waiting = [notebook for notebook, score in row.items() if score.needs_manual_grade]
        cells.append("to grade by hand" if waiting else "none given")
        cells.append(about.get(student, ""))
        rows.append(cells)
    widths = [max(len(str(line[column])) for line in [header] + rows) for column in range(len(header))]
    lines = ["  ".join(str(text).ljust(width) for text, width in zip(line, widths)).rstrip()
             for line in [header, ["-" * width for width in widths]] + rows]
    return "\n".join(lines)


def feedback_pages(course_root, assignment=ASSIGNMENT):
    """Paths of all feedback pages, sorted."""
    return sorted((Path(course_root) / "feedback").glob(f"*/{assignment}/*.html"))


def run(course_root=COURSE, examples=None, extra_autograde_arguments=(), out=print):
    """The whole pipeline on the example submissions; returns ``scores(course_root)``."""
    course_root = Path(course_root)
    examples = EXAMPLES if examples is None else examples
    timings = {}

    def step(name, function, *arguments):
        out(f"{name} ...")
        start = time.perf_counter()
        result = function(*arguments)
        timings[name] = time.perf_counter() - start
        return result

    step("Generating the release", release, course_root)
    step("Writing the example submissions", write_submissions, course_root, examples)
    step(f"Autograding {len(examples)} submissions", autograde_examples, course_root, examples,
         extra_autograde_arguments)
    step("Generating feedback", feedback, course_root)
    csv_path = course_root / "grades.csv"
    step("Exporting grades", export, course_root, csv_path)

    table = scores(course_root)
    out("")
    out(format_table(table, {student: example.about for student, example in examples.items()}))
    out("")
    out(f"Release notebooks: {course_root / 'release' / ASSIGNMENT}")
    out(f"Grades (CSV):      {csv_path}")
    out("Feedback pages:")
    for page in feedback_pages(course_root):
        out(f"  {page}")
    out("")
    out("Seconds per step: " + ", ".join(f"{name.lower()} {seconds:.1f}" for name, seconds in timings.items()))
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--course", default=str(COURSE), help="the nbgrader course folder")
    parser.add_argument("--students", nargs="*", help="only these example submissions")
    arguments = parser.parse_args(argv)
    examples = EXAMPLES
    if arguments.students:
        unknown = sorted(set(arguments.students) - set(EXAMPLES))
        if unknown:
            parser.error(f"unknown example submissions {unknown}; choose from {sorted(EXAMPLES)}")
        examples = {student: EXAMPLES[student] for student in arguments.students}
    try:
        run(arguments.course, examples)
    except PipelineError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
