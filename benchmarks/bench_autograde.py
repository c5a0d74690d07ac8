"""Seconds to autograde one submission, split into notebook execution and nbgrader overhead.

    python benchmarks/bench_autograde.py

In a temporary copy of the course it releases the assignment and submits the model answers
("correct", both notebooks) and, as the baseline measured in the same run, the untouched
release ("untouched": every cell fails at once, so it is nearly all overhead). For each it
times ``nbgrader autograde`` for that one learner, and executes the same notebooks with
nbclient (kernel start included): the difference is nbgrader's own work.
"""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from demo import pipeline  # noqa: E402
from demo.examples import ASSIGNMENT, EXAMPLES  # noqa: E402


def execute(folder, notebook_name):
    """Seconds to run one notebook in ``folder`` with a fresh kernel, as nbgrader does."""
    notebook = nbformat.read(folder / f"{notebook_name}.ipynb", as_version=4)
    client = NotebookClient(notebook, timeout=600, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    start = time.perf_counter()
    client.execute()
    return time.perf_counter() - start


def measure(course, student):
    start = time.perf_counter()
    pipeline.nbgrader(course, "autograde", ASSIGNMENT, "--force", f"--student={student}")
    autograde_seconds = time.perf_counter() - start
    # Execute a copy of the submission (the autograde above used the submitted one).
    folder = Path(tempfile.mkdtemp(dir=course))
    for notebook in EXAMPLES[student].notebooks:
        shutil.copy(course / "submitted" / student / ASSIGNMENT / f"{notebook}.ipynb", folder)
    execution = {notebook: execute(folder, notebook) for notebook in EXAMPLES[student].notebooks}
    return autograde_seconds, execution


def main():
    with tempfile.TemporaryDirectory() as temporary:
        course = Path(temporary) / "course"
        course.mkdir()
        shutil.copy(PROJECT / "notebooks" / "nbgrader_config.py", course)
        shutil.copytree(PROJECT / "notebooks" / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT)
        pipeline.release(course)
        students = ["untouched", "correct"]
        pipeline.write_submissions(course, {student: EXAMPLES[student] for student in students})
        print(f"{'submission':<12} {'autograde':>10} {'execution':>10} {'overhead':>10}   per notebook")
        for student in students:
            total, execution = measure(course, student)
            executed = sum(execution.values())
            detail = ", ".join(f"{name} {seconds:.1f}" for name, seconds in execution.items())
            print(f"{student:<12} {total:>9.1f}s {executed:>9.1f}s {total - executed:>9.1f}s   {detail}")
        print("(untouched is the baseline: its cells fail at once, so nearly all of it is overhead "
              "and kernel start.)")


if __name__ == "__main__":
    main()
