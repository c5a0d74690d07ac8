"""Learner code under ``course-grade``: contained by the sandbox, and unable to game the checks.

One course, graded once with one ``course-grade`` call, holds a correct submission and
one submission per attack (``tests/attacks/``). Each test asserts what that attack got.
"""
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

import grading_support as support

pytestmark = pytest.mark.skipif(not support.COURSE.joinpath("source", "backprop", "backprop.ipynb").exists(),
                                reason="the course's source notebook is missing")

CELL_TIMEOUT = 20


class Listener:
    """A TCP server on loopback that records whether anything connected."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.5)
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self):
        self.running = False
        self.thread.join()
        self.server.close()


def _fingerprint(root):
    """sha256 of every file a learner must not touch: source, release, other submissions."""
    found = {}
    for folder in ("source", "release", "submitted/correct"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _precomputed_attack(solution, datas):
    """The precomputed attack with the right gradient for the tester's inputs pasted in."""
    from course_utils import initial_model

    gradient = solution(initial_model(10), datas["train"], 0.0)
    literal = repr({part: np.asarray(values).tolist() for part, values in gradient.items()})
    return support.attack("precomputed").replace("__PRECOMPUTED__", literal)


@pytest.fixture(scope="module")
def graded(tmp_path_factory, solution, datas):
    root = support.released_course(tmp_path_factory.mktemp("safety") / "course")
    listener = Listener()
    support.submit_examples(root, ["correct"])
    support.submit_gradient(root, "redefine_checkers", support.attack("redefine_checkers"))
    support.submit_gradient(root, "patch_numpy_and_assertions",
                            support.attack("patch_numpy_and_assertions", gradient="flipped_sign.py"))
    support.submit_gradient(root, "precomputed", _precomputed_attack(solution, datas))
    support.submit_gradient(root, "escape_and_fake_score", support.attack("escape_and_fake_score")
                            .replace("__COURSE_ROOT__", repr(str(root))).replace("__PORT__", str(listener.port)))
    support.submit_gradient(root, "exhaust_resources", support.attack("exhaust_resources", "solution", root),
                            extra_cells=["exhaust_memory()", "fill_disk()", "hang()"])
    support.submit_gradient(root, "crash_kernel", support.attack("crash_kernel"))
    # The gradebook before: every learner's submission exists, none is graded.
    before = _fingerprint(root)
    try:
        result = support.course_grade(root, "--workers", "2", "--cell-timeout", str(CELL_TIMEOUT))
    finally:
        listener.close()
    # Exit code 1: a submission failed (the crash); 2 would mean grading could not start,
    # e.g. no working bubblewrap, and stderr says why.
    assert result.returncode == 1 and not result.stderr, result.stdout + result.stderr
    return root, result, before, listener


def _scores(graded, student):
    root = graded[0]
    return {cell: auto for cell, (auto, _) in support.student_scores(root / "gradebook.db", student).items()}


def _gradient_cells(graded):
    """The test cells of the source notebook that call the learner's gradient."""
    import nbformat

    root = graded[0]
    notebook = nbformat.read(root / "source" / "backprop" / "backprop.ipynb", as_version=4)
    return {cell.metadata.nbgrader["grade_id"] for cell in notebook.cells
            if cell.metadata.get("nbgrader", {}).get("grade") and not cell.metadata.nbgrader.get("solution")
            and "d_loss_by_d_model" in cell.source}


def _test_outputs(graded, student):
    """{grade_id: outputs} of the test cells in a learner's autograded notebook."""
    root = graded[0]
    notebook = json.loads((root / "autograded" / student / "backprop" / "backprop.ipynb").read_text())
    return {cell["metadata"]["nbgrader"]["grade_id"]: cell["outputs"] for cell in notebook["cells"]
            if cell["metadata"].get("nbgrader", {}).get("grade") and not cell["metadata"]["nbgrader"].get("solution")
            and cell["cell_type"] == "code"}


def test_correct_submission_is_graded_in_full(graded):
    root, result, _, _ = graded
    scores = _scores(graded, "correct")
    full = support.autograded_max_scores(root / "gradebook.db")
    assert len(full) > 10
    # Every autograded cell gets its points.
    assert {cell: scores[cell] for cell in full} == full, result.stdout
    assert support.journal(root / "gradebook.db")["correct"][0] == "graded"


@pytest.mark.parametrize("student", ["redefine_checkers", "patch_numpy_and_assertions", "precomputed"])
def test_gaming_the_checks_earns_no_gradient_points(graded, student):
    scores = _scores(graded, student)
    # Every cell that tests the gradient's values (the keys-and-shapes cell tests only the
    # form, which these wrong gradients may well have).
    value_cells = _gradient_cells(graded) - {"test_keys_and_shapes"}
    assert {"test_gradient_training_set", "test_whole_gradient", "test_weight_decay"} <= value_cells
    assert {cell: scores[cell] for cell in value_cells} == {cell: 0.0 for cell in value_cells}
    # The hand-computed answers are right and keep their points.
    assert scores["test_tiny_hid_to_class"] == 1.0


@pytest.mark.parametrize("student", ["correct", "redefine_checkers", "patch_numpy_and_assertions"])
def test_each_test_cell_shows_only_the_graders_message(graded, student):
    for grade_id, outputs in _test_outputs(graded, student).items():
        assert len(outputs) == 1, (grade_id, outputs)
        text = "".join(outputs[0].get("text") or outputs[0].get("evalue"))
        assert text.startswith("Passed (checked by the grader)") or outputs[0]["output_type"] == "error", text
        # What the learner's own test_gradient printed never reaches a test cell.
        assert "Gradient test passed." not in json.dumps(outputs)


def test_precomputed_gradient_is_caught_by_the_random_probe(graded):
    outputs = _test_outputs(graded, "precomputed")["test_gradient_training_set"]
    assert "random model" in outputs[0]["evalue"], outputs
    assert _scores(graded, "precomputed")["test_gradient_training_set"] == 0.0
    # The verdict file names it, for the class report.
    from course_grading.messages import VERDICT_FILE, read_verdict_file
    from course_utils.diagnosis import Mistake

    verdicts = read_verdict_file(graded[0] / "autograded" / "precomputed" / "backprop" / VERDICT_FILE)
    cell = next(cell for cell in verdicts.cells if cell.grade_id == "test_gradient_training_set")
    assert not cell.passed and cell.mistakes == (Mistake.RIGHT_ONLY_ON_TESTED_INPUTS,)


def test_sandbox_blocks_escapes_and_fake_scores(graded):
    root, _, before, listener = graded
    notebook = json.loads((root / "autograded" / "escape_and_fake_score" / "backprop" / "backprop.ipynb").read_text())
    printed = "".join("".join(output.get("text", "")) for cell in notebook["cells"]
                      for output in cell.get("outputs", []) if output.get("output_type") == "stream")
    for attempt in ("read_source", "fake_score", "damage_other_learner", "reach_network", "read_instructor_home"):
        assert f"ATTEMPT {attempt}: blocked" in printed, printed
    assert "SUCCEEDED" not in printed
    assert listener.connections == 0
    assert _fingerprint(root) == before
    # No grade of 100 anywhere, and the attacker got nothing for the zero gradient.
    assert all(auto is None or auto <= 2.0 for auto, _ in support.scores(root / "gradebook.db").values())
    assert _scores(graded, "escape_and_fake_score")["test_gradient_training_set"] == 0.0
    # The process it started to outlive grading is gone.
    assert not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] and "31337" in p.info["cmdline"]]


def test_the_control_without_sandbox_the_same_escapes_work(graded, tmp_path):
    root = graded[0]
    copy = support.copy_course(root, tmp_path / "course")
    listener = Listener()
    support.submit_gradient(copy, "escape_and_fake_score", support.attack("escape_and_fake_score")
                            .replace("__COURSE_ROOT__", repr(str(copy))).replace("__PORT__", str(listener.port)))
    try:
        support.course_grade(copy, "--no-sandbox", "--student", "escape_and_fake_score", "--force",
                             "--cell-timeout", str(CELL_TIMEOUT))
    finally:
        listener.close()
        for process in psutil.process_iter(["cmdline"]):
            if process.info["cmdline"] and "31337" in process.info["cmdline"]:
                process.kill()
    notebook = json.loads((copy / "autograded" / "escape_and_fake_score" / "backprop" / "backprop.ipynb").read_text())
    printed = "".join("".join(output.get("text", "")) for cell in notebook["cells"]
                      for output in cell.get("outputs", []) if output.get("output_type") == "stream")
    attempts = ["read_source", "damage_other_learner", "reach_network"]
    attempts += ["read_instructor_home"] if os.access("/root/.bashrc", os.R_OK) else []
    for attempt in attempts:
        assert f"ATTEMPT {attempt}: SUCCEEDED" in printed, printed
    assert listener.connections >= 1
    assert not (copy / "submitted" / "correct" / "backprop" / "backprop.ipynb").exists()


def test_exhausting_memory_disk_and_time_is_reported_and_contained(graded):
    root, result, _, _ = graded
    status, _, details = support.journal(root / "gradebook.db")["exhaust_resources"]
    problems = " ".join(json.loads(details)["problems"])
    assert status == "graded"
    assert "memory limit reached" in problems
    assert "disk limit reached" in problems
    assert "time limit of a cell reached" in problems
    assert "exhaust_resources" in result.stdout
    # Its gradient is right and still earns its points.
    assert _scores(graded, "exhaust_resources")["test_gradient_training_set"] == 2.0


def test_crashed_kernel_is_reported_and_the_others_are_graded(graded):
    root, result, _, _ = graded
    status, reason, _ = support.journal(root / "gradebook.db")["crash_kernel"]
    assert status == "failed"
    assert "kernel died" in reason
    assert "crash_kernel: the kernel died" in result.stdout
    assert not (root / "autograded" / "crash_kernel").joinpath("backprop").exists()
    graded_students = {s for s, (st, _, _) in support.journal(root / "gradebook.db").items() if st == "graded"}
    assert graded_students == {"correct", "redefine_checkers", "patch_numpy_and_assertions", "precomputed",
                               "escape_and_fake_score", "exhaust_resources"}


def test_missing_bubblewrap_fails_with_a_clear_message(tmp_path, monkeypatch):
    from course_grading import sandbox

    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on this PATH
    with pytest.raises(sandbox.SandboxUnavailable, match="--no-sandbox"):
        sandbox.check_available()


def test_only_a_private_folder_is_ever_writable_or_handed_over(tmp_path):
    """The sandbox refuses shared folders, and its chown touches only its own tmpfs."""
    from course_grading import sandbox, sandbox_launcher

    settings = sandbox.SandboxSettings()
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    for folder in ("/tmp", "/", str(shared), os.path.expanduser("~")):
        with pytest.raises(sandbox.SandboxUnavailable, match="refusing"):
            sandbox_launcher.sandbox_command(settings, ["true"], read_write=[folder])
        with pytest.raises(sandbox.SandboxUnavailable, match="refusing"):
            sandbox.prepare_for_sandbox_user(folder)
    with pytest.raises(sandbox.SandboxUnavailable, match="refusing"):
        sandbox_launcher.sandbox_command(settings, ["true"], workdir="/usr/lib")

    private = tmp_path / "runtime"
    private.mkdir(mode=0o700)
    workdir = str(tmp_path / "work")
    command = sandbox_launcher.sandbox_command(settings, ["true"], workdir=workdir, seed_from=str(tmp_path),
                                               read_write=[str(private)])
    writable = [command[i + 2] for i, arg in enumerate(command) if arg == "--bind"]
    assert writable == [str(private)]
    # The working folder's tmpfs is mounted after every shown folder, so it hides any of them.
    binds = [i for i, arg in enumerate(command) if arg in ("--bind", "--ro-bind")]
    assert command.index("--tmpfs", command.index("--tmpfs") + 1) > max(binds)
    assert command[command.index("--tmpfs", command.index("--tmpfs") + 1) + 1] == workdir
    script = command[command.index("-c", command.index("/bin/sh")) + 1]
    if os.geteuid() == 0:
        assert f"chown -R 65534:65534 /tmp/home {workdir} " in script + " "
        assert script.count("chown") == 1


def test_the_scratch_folder_is_private_while_grading(tmp_path):
    """Other users of the machine cannot read a submission or the assignment's definitions
    from a worker's scratch folder: it is only passable (0711), and everything in it is private
    (the runtime folder belongs to the sandbox user)."""
    from course_grading import gradebook_sync, grade, sandbox, supervisor

    gradebook_sync.put_alembic_on_path()
    sandbox.set_data_dir()
    root = support.released_course(tmp_path / "course")
    support.submit_examples(root, ["correct"])
    # Short, for the kernel's sockets (see the next test); mkdtemp makes it 0700.
    scratch_root = Path(tempfile.mkdtemp(prefix="scratch-"))
    course = grade.Course(str(root), support.ASSIGNMENT, settings=sandbox.SandboxSettings(),
                          scratch_root=str(scratch_root))
    task = course.make_task("correct")
    seen, done = {}, threading.Event()

    def watch():
        while not done.is_set():
            for scratch in scratch_root.glob("course-grade-*"):
                try:
                    seen["."] = scratch.stat().st_mode & 0o777
                    for entry in scratch.iterdir():
                        seen[entry.name] = entry.lstat().st_mode & 0o777
                except FileNotFoundError:
                    pass
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = supervisor.grade_submission(task)
    finally:
        done.set()
        watcher.join()
        shutil.rmtree(scratch_root)
    assert result.status == "graded", result.log_tail
    assert {"task.pickle", "autograde.log", "course", "runtime", "tmp"} <= set(seen), seen
    assert seen.pop(".") == 0o711
    assert {name: oct(mode) for name, mode in seen.items() if mode & 0o077} == {}


def test_a_scratch_folder_too_long_for_the_kernels_sockets_is_refused_up_front(tmp_path):
    root = support.released_course(tmp_path / "course")
    deep = tmp_path / ("x" * 60)
    deep.mkdir()
    result = support.course_grade(root, env={**os.environ, "TMPDIR": str(deep)})
    assert result.returncode == 2
    assert "too long a path" in result.stderr and "TMPDIR" in result.stderr


@pytest.mark.parametrize("linked", [True, False], ids=["link", "file"])
def test_sandboxed_code_loads_the_data_file(linked, linked_data_dir, monkeypatch):
    """The grading sandbox shows the data file to learner code, also through a link.

    (Here, not among the fast data tests: it needs bubblewrap.)"""
    from course_grading import sandbox

    if not linked:
        monkeypatch.setenv("COURSE_DATA_DIR", str((linked_data_dir / "data.mat").resolve().parent))
    settings = sandbox.SandboxSettings()
    code = ("import course_utils; d = course_utils.load_data(); "
            "print(course_utils.data.find_data_file(), d['test']['inputs'].shape)")
    returncode, out, err = sandbox.run(settings, [sys.executable, "-c", code], timeout=120)
    assert returncode == 0, err.decode()
    assert out.decode().split()[-2:] == ["(256,", "9000)"]


def test_backpropagation_is_decided_from_outside_the_sandbox(datas):
    """The learner process can say nothing about its cost: the CPU time of everything it runs
    in the sandbox (here a child process) is read by the grading process, and finite
    differences over a forward pass of its own fail on exactness."""
    from course_grading import hidden_tests
    from course_grading.learner_function import LearnerFunction
    from course_grading.sandbox import SandboxSettings

    correct = (support.examples.ANSWER_FILES / "learner_style.py").read_text()
    costly = (correct + "\n\nimport subprocess, sys\n_exact = d_loss_by_d_model\n"
              "def d_loss_by_d_model(model, data, wd_coefficient):\n"
              "    subprocess.run([sys.executable, '-c', 'n = 0\\nfor _ in range(5_000_000): n += 1'], check=True)\n"
              "    return _exact(model, data, wd_coefficient)\n")
    settings = SandboxSettings()
    with LearnerFunction([correct], 0, settings) as function:
        hidden_tests.check_uses_backpropagation(function, datas)
    with LearnerFunction([costly], 0, settings) as function:
        with pytest.raises(hidden_tests.BackpropagationNotUsed, match="CPU time"):
            hidden_tests.check_uses_backpropagation(function, datas)
    with LearnerFunction([(support.examples.ANSWER_FILES / "finite_differences.py").read_text()], 0, settings) as function:
        with pytest.raises(hidden_tests.BackpropagationNotUsed, match="finite differences"):
            hidden_tests.check_uses_backpropagation(function, datas)


def test_the_kernel_is_shown_its_answers_module_and_never_the_hidden_tests():
    """The one file of course_grading the kernel's sandbox shows is kernel_answers.py: the
    stub cells run it; hidden_tests.py and the rest of the package stay out of sight."""
    from course_grading import hidden_tests, sandbox, sandbox_launcher

    settings = sandbox.SandboxSettings()
    shown = sandbox.kernel_answers_path(settings)
    code = ("import importlib.util, os, runpy\n"
            f"print(os.path.isfile({shown!r}), callable(runpy.run_path({shown!r})['report']))\n"
            f"print(os.path.exists({hidden_tests.__file__!r}), os.listdir(os.path.dirname({shown!r})))\n"
            "print(importlib.util.find_spec('course_grading'))\n")
    returncode, out, err = sandbox.run(settings, [sys.executable, "-c", code], timeout=120, workdir="/tmp/work",
                                       read_only_files=sandbox_launcher.kernel_files())
    assert returncode == 0, err.decode()
    assert out.decode().splitlines() == ["True True", "False ['kernel_answers.py']", "None"]
    # The control: outside the sandbox the hidden tests are right there.
    assert os.path.isfile(hidden_tests.__file__) and os.path.basename(hidden_tests.__file__) == "hidden_tests.py"
