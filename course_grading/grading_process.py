"""The grading process: autograde one submission (or one notebook of it) in a private scratch course.

Started by the supervisor (:mod:`course_grading.supervisor`) with a
:class:`~course_grading.messages.GradingTask` in a file, it

1. builds a scratch course: the assignment's definitions (a gradebook without
   submissions), the learner's files and the course's ``nbgrader_config.py``;
2. runs nbgrader's own ``autograde`` on it, with a kernelspec that starts the kernel
   in the sandbox (:mod:`course_grading.sandbox_launcher`), and decides every test cell
   here, never in the kernel (:mod:`course_grading.verdicts`);
3. writes the :class:`~course_grading.messages.GradingResult` (scores, autograded files,
   verdicts, problems found; or why it failed) to its result file, and exits.

It runs as the instructor and never runs learner code itself. Nothing here writes to the
course folder: the coordinator does.
"""
from __future__ import annotations

import json
import os
import pickle
import sys
from pathlib import Path

from . import sandbox
from .messages import GradingResult, VerdictFile, VerdictRecord
from .supervisor import last_exception, write_private

PROBLEM_PATTERNS = (
    ("MemoryError", "memory limit reached"),
    ("CellTimeoutError", "time limit of a cell reached"),
    ("No space left on device", "disk limit reached"),
    ("File too large", "file size limit reached"),
    ("Disk quota exceeded", "disk limit reached"),
)

NBGRADER_CONFIG = """\
c = get_config()  # noqa
{course}
c.CourseDirectory.root = {root!r}
c.CourseDirectory.db_url = {db_url!r}
c.Autograde.create_student = True
{extra}
"""


def _write_files(root, files):
    for name, content in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as stream:
            stream.write(content)


def _read_files(root):
    files = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as stream:
                files[os.path.relpath(path, root)] = (stream.read(), os.stat(path).st_mode & 0o777)
    return files


def build_scratch_course(task, scratch):
    """Lay out the scratch course for ``task`` in ``scratch``; returns (course root, the
    verdict record the preprocessors write)."""
    settings = task.sandbox
    if settings.enabled:
        sandbox.check_scratch_root(os.path.dirname(scratch))
    root = os.path.join(scratch, "course")
    os.mkdir(root, 0o700)  # private, like everything at the top of the scratch folder
    with open(os.path.join(root, "gradebook.db"), "wb") as stream:
        stream.write(task.template_db)
    _write_files(os.path.join(root, task.submission_path), task.submission_files)
    _write_files(os.path.join(root, task.source_path), task.source_files)
    course = ""
    if task.course_config is not None:
        Path(root, "course_nbgrader_config.py").write_text(task.course_config)
        course = "load_subconfig('course_nbgrader_config.py')  # noqa"
    runtime = os.path.join(scratch, "runtime")
    os.makedirs(runtime, mode=0o700)
    settings_file = os.path.join(scratch, "sandbox.json")
    write_private(settings_file, settings.to_json().encode())
    record = VerdictRecord(os.path.join(scratch, "verdicts.jsonl"))
    extra = [
        # One kernel at a time per grading process: a fixed connection file in the private
        # runtime folder (jupyter_client would otherwise put it in the shared /tmp).
        f"c.KernelManager.connection_file = {os.path.join(runtime, 'kernel.json')!r}",
        # The scores are in once the last cell ran; a graceful shutdown only waits
        # for a sandbox that is thrown away anyway.
        "c.Execute.shutdown_kernel = 'immediate'",
        # Test cells are decided here, never in the learner's kernel.
        "from course_grading.verdicts import autograde_preprocessors",
        "c.Autograde.autograde_preprocessors = autograde_preprocessors()",
        f"c.StubTestCells.report_module = {sandbox.kernel_answers_path(settings)!r}",
        f"c.TrustedVerdicts.sandbox_settings_file = {settings_file!r}",
        f"c.TrustedVerdicts.record_file = {record.path!r}",
    ]
    if task.cell_timeout:
        extra.append(f"c.Execute.timeout = {int(task.cell_timeout)}")
    if settings.enabled:
        # The kernel has no network: it talks to nbgrader over Unix sockets.
        extra.append("c.KernelManager.transport = 'ipc'")
    Path(root, "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(
        course=course, root=root, db_url="sqlite:///" + os.path.join(root, "gradebook.db"),
        extra="\n".join(extra)))

    os.mkdir(os.path.join(scratch, "jupyter"), 0o700)
    for name in task.kernel_names:
        kernel_dir = os.path.join(scratch, "jupyter", "kernels", name)
        os.makedirs(kernel_dir)
        # The kernel's working folder starts as a copy of the learner's submission, not of
        # the autograded folder, which holds the notebooks graded before (with their tests).
        submitted = os.path.join(root, task.submission_path)
        # This process starts the kernels (nbgrader runs here): a kernel whose start
        # outlives it starts nothing (--parent).
        spec = {"argv": [sys.executable, "-m", "course_grading.sandbox_launcher", "kernel",
                         "--parent", str(os.getpid()), "--settings", settings_file, "--runtime-dir", runtime,
                         "--seed-from", submitted, "{connection_file}"],
                "display_name": f"{name} (grading sandbox)", "language": "python",
                "interrupt_mode": "message" if settings.enabled else "signal"}
        Path(kernel_dir, "kernel.json").write_text(json.dumps(spec))
    sandbox.prepare_for_sandbox_user(runtime, user_id=settings.user_id)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [os.path.join(scratch, "jupyter")] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p])
    os.environ["JUPYTER_RUNTIME_DIR"] = runtime
    sandbox.set_data_dir()
    return root, record


class _CheckedSchemaValidation:
    """``jsonschema.validate`` for nbgrader's cell metadata, checking its fixed schema only once.

    nbgrader validates every cell's metadata with ``jsonschema.validate``, which first
    checks the schema itself against the meta-schema, always with the same answer (a
    large share of the grading process's time per notebook). Same validator, same errors.
    """

    def __init__(self):
        self.validators = {}

    def validate(self, instance, schema):
        import jsonschema

        key = id(schema)
        if key not in self.validators:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            self.validators[key] = (schema, cls(schema))  # the schema is kept alive with its id
        error = jsonschema.exceptions.best_match(self.validators[key][1].iter_errors(instance))
        if error is not None:
            raise error


def run_autograde(root, assignment_id, student_id, notebook=None):
    """nbgrader's own autograde of one student in the scratch course (only ``notebook``, if
    given); returns its exit code."""
    from nbgrader.apps.autogradeapp import AutogradeApp
    from nbgrader.nbgraderformat import common

    if getattr(common, "jsonschema", None) is not None and hasattr(common.jsonschema, "validate"):
        common.jsonschema = _CheckedSchemaValidation()
    os.chdir(root)
    app = AutogradeApp()
    try:
        app.initialize([assignment_id, "--student", student_id, "--force",
                        *(["--notebook", notebook] if notebook else [])])
        app.start()
    except SystemExit as stop:
        return stop.code or 0
    return 0


def find_problems(autograded_files):
    """Learner-facing reasons for errors in the executed notebooks (memory, disk, time)."""
    problems = []
    for name, (content, _) in sorted(autograded_files.items()):
        if not name.endswith(".ipynb"):
            continue
        notebook = json.loads(content)
        for cell in notebook.get("cells", []):
            cell_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id", "?")
            for output in cell.get("outputs", []):
                if output.get("output_type") != "error":
                    continue
                text = f"{output.get('ename')}: {output.get('evalue')}"
                for pattern, reason in PROBLEM_PATTERNS:
                    if pattern in text:
                        problems.append(f"{reason} in {name} cell {cell_id}")
    return problems


def failure_reason(log_text):
    """Why nbgrader could not autograde, from its log (the kernel's failures are only there)."""
    known = (("DeadKernelError", "the kernel died (a crash, or the memory limit was reached)"),
             ("Kernel died", "the kernel died (a crash, or the memory limit was reached)"),
             ("Kernel didn't respond", "the kernel did not start in time"),
             ("UnresponsiveKernelError", "the kernel stopped responding (an endless loop that ignores interrupts?)"))
    for pattern, reason in known:
        if pattern in log_text:
            return reason
    return last_exception(log_text) or "nbgrader could not autograde it"


def grade_task(task, scratch, log_file):
    """Grade ``task`` in the scratch folder ``scratch``; returns its GradingResult."""
    from .gradebook_sync import put_alembic_on_path, read_scores

    put_alembic_on_path()
    root, record = build_scratch_course(task, scratch)
    exit_code = run_autograde(root, task.assignment_id, task.student_id, task.notebook)
    sys.stdout.flush()
    verdicts, failure = record.read()
    if failure is not None:
        return GradingResult.failed(task, f"grading machinery failure, not the learner's: {failure.reason[:300]}")
    autograded = os.path.join(root, task.autograded_path)
    if exit_code != 0 or not os.path.isdir(autograded):
        return GradingResult.failed(task, failure_reason(Path(log_file).read_text(errors="replace")))
    notes = tuple(task.intake_notes)
    files = VerdictFile(task.assignment_id, task.student_id, verdicts, notes).added_to(_read_files(autograded))
    return GradingResult.graded(
        task, scores=read_scores("sqlite:///" + os.path.join(root, "gradebook.db"), task.assignment_id,
                                 task.student_id),
        autograded_files=files, problems=find_problems(files), verdicts=verdicts, notes=notes)


def main(task_file, result_file, log_file):
    with open(task_file, "rb") as stream:
        task = pickle.load(stream)
    result = grade_task(task, os.path.dirname(os.path.abspath(task_file)), log_file)
    write_private(result_file + ".part", pickle.dumps(result.to_plain()))
    os.replace(result_file + ".part", result_file)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python -m course_grading.grading_process TASK_FILE RESULT_FILE LOG_FILE "
                 "(started by course-grade)")
    main(*sys.argv[1:])
