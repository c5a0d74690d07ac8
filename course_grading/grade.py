"""The coordinator: grade every submission of an assignment in parallel, ``course-grade ASSIGNMENT``.

The coordinating process (this module) finds the submissions, skips those already
finished (the journal in the gradebook), and hands each of the others (each of its notebooks,
when there are fewer submissions than cores), as a
:class:`~course_grading.messages.GradingTask`, to a supervisor
(:mod:`course_grading.supervisor`): a local thread per grading slot (as many at a time as
the machine has cores), or a Dask worker (``--scheduler tcp://host:8786``). Only this
process writes to the course: for each submission's
:class:`~course_grading.messages.GradingResult` (its notebooks' combined, once all are in) it
writes the autograded files (the learner's verdict file among them), then the scores and
the journal entry in one gradebook transaction. Killing it loses at most the
submissions in flight; running it again grades those and nothing else.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import queue
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from nbgrader.api import Gradebook
from nbgrader.coursedir import CourseDirectory
from sqlalchemy.exc import SAWarning
from tqdm import tqdm
from traitlets.config.loader import PyFileConfigLoader

from . import editors, gradebook_sync, intake, sandbox
from .messages import GradingResult, GradingTask
from .supervisor import grade_submission, start_warm_server

DEFAULT_TIMEOUT = 1200.0


class GradingError(RuntimeError):
    """The course or the command line is not usable; the message says what to do."""


def load_course(course_root):
    """The course's nbgrader settings (``CourseDirectory``) and its config file text."""
    course_root = os.path.abspath(course_root)
    config_file = os.path.join(course_root, "nbgrader_config.py")
    if not os.path.isfile(config_file):
        raise GradingError(f"{course_root} is not an nbgrader course folder: it has no nbgrader_config.py. "
                           "Pass the course folder with --course.")
    config = PyFileConfigLoader("nbgrader_config.py", path=course_root).load_config()
    coursedir = CourseDirectory(config=config)
    coursedir.root = course_root
    return coursedir, Path(config_file).read_text()


def _db_path(coursedir):
    url = coursedir.db_url
    if not url.startswith("sqlite:///"):
        raise GradingError(f"Only SQLite gradebooks are supported; the course uses {url}.")
    return url[len("sqlite:///"):]


def find_submissions(coursedir, assignment_id, students=None):
    """Student ids that submitted ``assignment_id`` (all, or those in ``students``)."""
    pattern = coursedir.format_path(coursedir.submitted_directory, "*", assignment_id)
    import glob
    found = []
    for path in sorted(glob.glob(pattern)):
        if os.path.isdir(path):
            student = Path(os.path.relpath(path, coursedir.root)).parts[
                coursedir.directory_structure.split("/").index("{student_id}")]
            if students is None or student in students:
                found.append(student)
    missing = set(students or ()) - set(found)
    if missing:
        raise GradingError(f"No submission of {assignment_id} for: {', '.join(sorted(missing))}. "
                           "Collect them first (nbgrader collect or zip_collect).")
    return found


def _read_tree(root, skip_notebooks=False):
    files = {}
    for directory, _, names in os.walk(root):
        for name in names:
            if skip_notebooks and name.endswith(".ipynb"):
                continue
            path = os.path.join(directory, name)
            files[os.path.relpath(path, root)] = Path(path).read_bytes()
    return files


class Course:
    """What every task of one grading run shares."""

    def __init__(self, course_root, assignment_id, *, settings, cell_timeout=None,
                 timeout=DEFAULT_TIMEOUT, scratch_root=None):
        self.coursedir, self.config_text = load_course(course_root)
        self.assignment_id = assignment_id
        self.db_path = _db_path(self.coursedir)
        if not os.path.isfile(self.db_path):
            raise GradingError(f"No gradebook at {self.db_path}: run 'nbgrader generate_assignment "
                               f"{assignment_id}' first.")
        with Gradebook(self.coursedir.db_url) as gb:
            try:
                gb.find_assignment(assignment_id)
            except Exception:
                raise GradingError(f"The gradebook has no assignment '{assignment_id}': run "
                                   f"'nbgrader generate_assignment {assignment_id}' first.") from None
            gradebook_sync.ensure_journal(gb)
        self.settings = settings
        self.cell_timeout = cell_timeout
        self.timeout = timeout
        self.scratch_root = scratch_root
        with tempfile.TemporaryDirectory(prefix="course-grade-template-") as work:
            template = os.path.join(work, "template.db")
            gradebook_sync.make_template(self.db_path, template)
            self.template_db = Path(template).read_bytes()
            template_url = "sqlite:///" + template
            self.kernel_names = gradebook_sync.kernel_names(template_url, assignment_id)
        source = self.coursedir.format_path(self.coursedir.source_directory, ".", assignment_id)
        self.source_files = _read_tree(source, skip_notebooks=True) if os.path.isdir(source) else {}
        # What learners were given: submissions' cells are put back in its order (intake).
        self.release = editors.release_notebooks(
            self.coursedir.format_path(self.coursedir.release_directory, ".", assignment_id))
        self.notebooks = [name.removesuffix(".ipynb") for name in self.release]

    def relative(self, step, student_id):
        return os.path.relpath(self.coursedir.format_path(step, student_id, self.assignment_id),
                               self.coursedir.root)

    def make_task(self, student_id):
        """The :class:`~course_grading.messages.GradingTask` of one learner's submission."""
        submitted = self.coursedir.format_path(self.coursedir.submitted_directory, student_id,
                                               self.assignment_id)
        submission = intake.read_submission(submitted, release=self.release)
        return GradingTask(
            assignment_id=self.assignment_id, student_id=student_id,
            digest=gradebook_sync.submission_digest(submission.files),
            submission_files=submission.files,
            submission_path=self.relative(self.coursedir.submitted_directory, student_id),
            autograded_path=self.relative(self.coursedir.autograded_directory, student_id),
            source_path=os.path.relpath(self.coursedir.format_path(
                self.coursedir.source_directory, ".", self.assignment_id), self.coursedir.root),
            source_files=self.source_files, course_config=self.config_text,
            template_db=self.template_db, kernel_names=tuple(self.kernel_names), sandbox=self.settings,
            cell_timeout=self.cell_timeout, timeout=self.timeout, scratch_root=self.scratch_root,
            intake_notes=tuple(submission.notes), intake_error=submission.error)

    def parts(self, task):
        """The tasks that grade ``task``'s submission: one per notebook (side by side on idle cores)."""
        return task.per_notebook(self.notebooks)

    def write_autograded(self, result):
        """Replace the learner's autograded folder with the worker's. A failed grading
        leaves the folder of an earlier grading as it was, like its grades."""
        dest = self.coursedir.format_path(self.coursedir.autograded_directory, result.student_id,
                                          self.assignment_id)
        staging = dest + ".incoming"
        shutil.rmtree(staging, ignore_errors=True)
        for name, (content, mode) in result.autograded_files.items():
            path = os.path.join(staging, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            Path(path).write_bytes(content)
            os.chmod(path, mode)
        if result.status == "graded":
            shutil.rmtree(dest, ignore_errors=True)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.replace(staging, dest)
        else:
            shutil.rmtree(staging, ignore_errors=True)

    def record(self, result):
        self.write_autograded(result)
        with warnings.catch_warnings():
            # nbgrader's own update_or_create_submission warns about its ORM use.
            warnings.simplefilter("ignore", SAWarning)
            with Gradebook(self.coursedir.db_url) as gb:
                gradebook_sync.record_result(gb, result)


# --- running the tasks -----------------------------------------------------------------------

def _in_slot(task, slots):
    """Grade ``task`` in a free grading slot: its learner code runs as that slot's own user."""
    slot = slots.get()
    try:
        return grade_submission(task.in_slot(sandbox.slot_user(slot)))
    finally:
        slots.put(slot)


def _local_results(tasks, workers):
    """(task, future) of each task as it finishes, ``workers`` at a time."""
    slots = queue.Queue()
    for slot in range(workers):
        slots.put(slot)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_in_slot, task, slots): task for task in tasks}
        for future in concurrent.futures.as_completed(futures):
            yield futures[future], future


def _dask_results(tasks, scheduler):
    from distributed import Client, as_completed

    with Client(scheduler, set_as_default=False) as client:
        futures = {client.submit(grade_submission, task, pure=False,
                                 key=f"course-grade-{task.assignment_id}-{task.student_id}-{task.notebook}-"
                                     f"{os.getpid()}-{time.time_ns()}"): task
                   for task in tasks}
        for future in as_completed(list(futures), loop=client.loop):
            yield futures[future], future


def _unreadable(task):
    """The failure of a submission that cannot be read, as a finished future (it needs no worker)."""
    future = concurrent.futures.Future()
    future.set_result(GradingResult.failed(task, f"the submission cannot be graded: {task.intake_error}",
                                           notes=task.intake_notes))
    return future


class Progress:
    """A tqdm progress bar on a terminal; one line per submission otherwise (logs, pipes)."""

    def __init__(self, total, stream=sys.stdout, quiet=False):
        self.total, self.done, self.failed = total, 0, 0
        self.stream, self.quiet = stream, quiet
        self.started = time.monotonic()
        self.bar = None
        if total and not quiet and stream.isatty():
            self.bar = tqdm(total=total, file=stream, unit="submission", dynamic_ncols=True)

    def update(self, result):
        self.done += 1
        self.failed += result.status == "failed"
        if self.quiet:
            return
        postfix = f"failed {self.failed}, {result.student_id}: {result.status}"
        if self.bar is not None:
            self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.update()
            if self.done == self.total:
                self.bar.close()
        else:
            self.stream.write(tqdm.format_meter(self.done, self.total, time.monotonic() - self.started,
                                                ncols=100, ascii=True, unit="submission",
                                                postfix=postfix) + "\n")
            self.stream.flush()


def grade_assignment(course_root, assignment_id, *, students=None, workers=None, scheduler=None,
                     settings=None, cell_timeout=None, timeout=DEFAULT_TIMEOUT, force=False,
                     retry_failed=False, progress=True, out=sys.stdout):
    """Grade the submissions of ``assignment_id``; returns the summary (a dict).

    Parameters
    ----------
    course_root : str, the nbgrader course folder (holding ``nbgrader_config.py``)
    assignment_id : str
    students : list of str, optional; default every submission
    workers : int, optional; local gradings at a time (default: the number of cores): submissions,
        or their notebooks side by side when there are fewer submissions than ``workers``
    scheduler : str, optional; address of a Dask scheduler to grade on instead
    settings : sandbox.SandboxSettings, optional
    force : bool; grade again what is already graded
    retry_failed : bool; grade again the submissions that failed before
    """
    settings = settings or sandbox.SandboxSettings()
    gradebook_sync.put_alembic_on_path()
    sandbox.set_data_dir()  # once here, inherited by every local worker
    if settings.enabled:
        try:
            sandbox.check_available()
            if not scheduler:
                sandbox.check_scratch_root()
        except (sandbox.SandboxUnavailable, ValueError) as error:
            raise GradingError(str(error)) from None
    if not scheduler:
        start_warm_server()
    course = Course(course_root, assignment_id, settings=settings, cell_timeout=cell_timeout,
                    timeout=timeout)
    found = find_submissions(course.coursedir, assignment_id, students)
    with Gradebook(course.coursedir.db_url) as gb:
        finished = gradebook_sync.journal(gb, assignment_id)
    tasks, skipped = [], []
    refused = []
    for student_id in found:
        task = course.make_task(student_id)
        previous = finished.get(student_id)
        if (not force and previous and previous["digest"] == task.digest
                and not (retry_failed and previous["status"] == "failed")):
            skipped.append(student_id)
        elif task.intake_error:
            refused.append(task)
        else:
            tasks.append(task)
    workers = workers or os.cpu_count() or 1
    summary = {"assignment_id": assignment_id, "graded": [], "failed": {}, "problems": {},
               "learner_process": {}, "left_out": {}, "skipped": skipped, "seconds": 0.0}
    # With cores to spare (one learner graded on submit, say) a submission's notebooks are
    # graded side by side, and it is recorded once all are in. A class keeps every core busy
    # anyway: each part's own process and scratch course would only cost time there.
    side_by_side = not scheduler and len(tasks) < workers
    started = time.monotonic()
    if progress:
        where = f"on {scheduler}" if scheduler else f"{workers} at a time"
        where += ", each one's notebooks side by side" if side_by_side else ""
        out.write(f"Grading {len(tasks)} submissions of {assignment_id} ({where}); "
                  f"{len(skipped)} already graded.\n")
    bar = Progress(len(tasks) + len(refused), stream=out, quiet=not progress)
    parts = {task.student_id: course.parts(task) if side_by_side else [task] for task in tasks}
    scheduled = [part for task in tasks for part in parts[task.student_id]]
    results = _dask_results(scheduled, scheduler) if scheduler else _local_results(scheduled, workers)
    # A submission that cannot be read as a notebook fails on its own, before any grading.
    parts.update({task.student_id: [task] for task in refused})
    refused_results = ((task, _unreadable(task)) for task in refused)
    submissions = {task.student_id: task for task in tasks + refused}
    graded_parts = {student: [] for student in submissions}
    for part, future in itertools.chain(refused_results, results):
        try:
            result = future.result()
        except Exception as error:  # a worker lost, not the learner's fault
            result = GradingResult.failed(part, f"the worker failed: {type(error).__name__}: {error}")
        task = submissions[part.student_id]
        graded_parts[task.student_id].append((part, result))
        if len(graded_parts[task.student_id]) < len(parts[task.student_id]):
            continue
        result = GradingResult.combined(task, graded_parts[task.student_id])
        if task.intake_notes:
            summary["left_out"][task.student_id] = list(task.intake_notes)
        course.record(result)
        student = result.student_id
        if result.status == "graded":
            summary["graded"].append(student)
        else:
            summary["failed"][student] = result.reason
        if result.problems:
            summary["problems"][student] = list(result.problems)
        if result.learner_process_notes:
            summary["learner_process"][student] = result.learner_process_notes
        bar.update(result)
    summary["seconds"] = time.monotonic() - started
    if progress:
        out.write(format_summary(summary))
    return summary


def format_summary(summary):
    lines = [f"\n{summary['assignment_id']}: graded {len(summary['graded'])}, failed {len(summary['failed'])}, "
             f"skipped (already graded) {len(summary['skipped'])}, in {summary['seconds']:.1f} s."]
    if summary["failed"]:
        lines.append("Failed (no autograded notebook; scores left as nbgrader leaves them):")
        lines += [f"  {student}: {reason}" for student, reason in sorted(summary["failed"].items())]
    if summary["problems"]:
        lines.append("Graded, with cells stopped by a limit:")
        for student, problems in sorted(summary["problems"].items()):
            lines += [f"  {student}: {problem}" for problem in problems]
    if summary.get("left_out"):
        lines.append("Submissions as read (files left out: never read, never graded; notebooks "
                     "repaired: graded as if the learner's editor had left them as nbgrader expects):")
        for student, notes in sorted(summary["left_out"].items()):
            lines += [f"  {student}: {note}" for note in notes]
    if summary["learner_process"]:
        lines.append("Graded, with test cells failed because the learner's code misbehaved in the grader's "
                     "process (a crash, a time-out, a malformed message or a lost answer):")
        for student, reasons in sorted(summary["learner_process"].items()):
            lines += [f"  {student}: {reason}" for reason in reasons]
    return "\n".join(lines) + "\n"


def _size(text):
    units = {"K": 2**10, "M": 2**20, "G": 2**30}
    text = text.strip().upper().removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="course-grade",
        description="Autograde every submission of an assignment in parallel, in a sandbox, "
                    "with every test decided outside the learner's kernel. Run it again after an "
                    "interruption: it grades only what is not finished.")
    parser.add_argument("assignment", help="assignment id, e.g. backprop")
    parser.add_argument("--course", default=".", help="nbgrader course folder (default: current folder)")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--workers", type=int, help="gradings at a time (default: number of cores); with fewer submissions, "
                        "their notebooks are graded side by side")
    parser.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    parser.add_argument("--force", action="store_true", help="grade again submissions already graded")
    parser.add_argument("--retry-failed", action="store_true", help="grade again submissions that failed")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds per submission (or per notebook, when graded side by side) before it is "
                        "stopped (default %(default)s)")
    parser.add_argument("--cell-timeout", type=int, help="seconds per cell (default: the course's "
                        "Execute.timeout, else nbgrader's 30)")
    parser.add_argument("--memory", default="3G", help="address-space limit of learner code (default 3G)")
    parser.add_argument("--disk", default="256M", help="private disk space of learner code (default 256M)")
    parser.add_argument("--no-sandbox", action="store_true",
                        help="run learner code without bubblewrap (resource limits only). Only where "
                             "bwrap is unavailable and learners' code is trusted.")
    parser.add_argument("--quiet", action="store_true", help="print only the summary's failures")
    args = parser.parse_args(argv)
    settings = sandbox.SandboxSettings(enabled=not args.no_sandbox, memory=_size(args.memory),
                                       disk=_size(args.disk))
    try:
        summary = grade_assignment(args.course, args.assignment, students=args.student, workers=args.workers,
                                   scheduler=args.scheduler, settings=settings, cell_timeout=args.cell_timeout,
                                   timeout=args.timeout, force=args.force, retry_failed=args.retry_failed,
                                   progress=not args.quiet)
    except GradingError as error:
        print(f"course-grade: {error}", file=sys.stderr)
        return 2
    if args.quiet and summary["failed"]:
        print(format_summary(summary), end="")
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
