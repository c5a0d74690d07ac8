"""The pure parts of trusted grading: messages read on arrival, reports, verdicts, definitions."""
import json
import os

import numpy as np
import pytest

from course_grading import kernel_answers
from course_grading import learner_protocol as protocol
from course_grading import verdicts
from course_grading.learner_function import GradingMachineryError, LearnerFunction, LearnerProcessFailure
from course_grading.sandbox import SandboxSettings
from course_utils.notebook_code import define_function, learner_namespace

pytestmark = pytest.mark.fast


def _roundtrip(message):
    read, write = os.pipe()
    os.write(write, protocol.encode(message))
    os.close(write)
    try:
        return protocol.receive(read)
    finally:
        os.close(read)


def _frame(kind, header, payload=b""):
    text = json.dumps(header).encode()
    return protocol._FRAME.pack(kind, len(text), len(payload)) + text + payload


def _receive_bytes(data):
    read, write = os.pipe()
    os.write(write, data)
    os.close(write)
    try:
        return protocol.receive(read)
    finally:
        os.close(read)


def test_messages_survive_the_pipe():
    gradient = {"input_to_hid": np.arange(6.0).reshape(2, 3), "hid_to_class": -np.ones((10, 2))}
    reply = _roundtrip(protocol.GradientReply(arrays=gradient, opaque={"x": "str"}))
    assert reply.opaque == {"x": "str"}
    for part, value in gradient.items():
        np.testing.assert_array_equal(reply.arrays[part], value)
    call = _roundtrip(protocol.GradientCall(model=gradient, data={"inputs": np.eye(3), "target": np.eye(3)},
                                            wd_coefficient=0.1))
    assert call.wd_coefficient == 0.1 and call.model["hid_to_class"].shape == (10, 2)
    assert _roundtrip(protocol.ErrorReply("KeyError", "'targets'", "line 3 of your code: x")).type_name == "KeyError"


@pytest.mark.parametrize("data, reason", [
    (b"Z" + bytes(12), "unknown message kind"),
    (_frame(b"A", {"shapes": {"a": [2, 2]}}, bytes(8)), "shorter than their shapes"),
    (_frame(b"A", {"shapes": {"a": [1]}}, bytes(16)), "longer than their shapes"),
    (_frame(b"A", {"shapes": {"a": [1, 1, 1]}}, bytes(8)), "malformed"),
    (_frame(b"R", {}, b"x"), "unexpected payload"),
    (protocol._FRAME.pack(b"A", 3, 0) + b"{{{", "not JSON"),
    (protocol._FRAME.pack(b"A", 10**6, 0), "header of"),
    (protocol._FRAME.pack(b"A", 2, 10**9), "bytes of arrays"),
    (b"A", "stopped"),
])
def test_malformed_messages_are_refused_with_a_reason(data, reason):
    with pytest.raises(protocol.ProtocolError, match=reason):
        _receive_bytes(data)


def test_reports_are_read_strictly():
    namespace = {"rate": 0.5, "iteration": np.int64(183), "answer": [[0.1], [-0.2]], "text": "1.0",
                 "none": None, "flag": True, "infinite": float("inf"), "thing": object()}
    names = list(namespace) + ["unset"]
    values = kernel_answers.decode_values(json.loads(json.dumps(kernel_answers.encode_values(namespace, names))), names)
    assert values["rate"] == 0.5 and values["iteration"] == 183 and values["text"] == "1.0"
    assert values["none"] is None and values["flag"] is True and values["infinite"] == float("inf")
    np.testing.assert_array_equal(values["answer"], [[0.1], [-0.2]])
    assert type(values["thing"]).__name__ == "object" and values["unset"] is kernel_answers.MISSING
    for bad in ({"rate": {"float": "1e3"}}, {"rate": {"float": True}}, {"rate": {"array": [1], "shape": [2]}},
                {"rate": {"code": "import os"}}, {"other": {"int": 1}}, ["rate"]):
        with pytest.raises(kernel_answers.MalformedAnswers):
            kernel_answers.decode_values(bad, ["rate"])


def test_a_test_cell_reads_only_the_learners_free_names():
    source = ("# a test\ncheck = checks.check_choice\nfrom course_grading import hidden_tests\n"
              "hidden_tests.check_hidden_size(best_n, 'best_n', [1, 2], expected=2, what=str(len(datas)))")
    assert verdicts.learner_names(source) == ["best_n"]
    assert verdicts.free_names("checks.check_gradient(d_loss_by_d_model, datas)") == [
        "checks", "d_loss_by_d_model", "datas"]


def test_verdicts_of_a_test_cell():
    from course_utils.diagnosis import CheckFailed, Mistake

    passed = verdicts.run_test_cell("t", "assert x == 1", {"x": 1}, notebook="backprop")
    assert passed.passed and passed.mistakes == () and passed.notebook == "backprop"
    failed = verdicts.run_test_cell("t", "assert x == 1, 'x is not one'", {"x": 2})
    assert not failed.passed and failed.message == "x is not one" and not failed.learner_process
    assert failed.mistakes == (Mistake.UNUSUAL,)  # a plain assert names nothing
    named = verdicts.run_test_cell("t", "raise CheckFailed('flipped', [Mistake.SIGN_FLIPPED])",
                                   {"CheckFailed": CheckFailed, "Mistake": Mistake})
    assert (named.message, named.mistakes) == ("flipped", (Mistake.SIGN_FLIPPED,))
    missing = verdicts.run_test_cell("t", "print(best)", {}, missing=["best"])
    assert not missing.passed and "best is not set" in missing.message
    assert missing.mistakes == (Mistake.NOT_ANSWERED,)
    with pytest.raises(GradingMachineryError, match="needs a name nobody defines"):
        verdicts.run_test_cell("t", "print(undefined_by_anyone)", {})
    strange = verdicts.run_test_cell("t", "float(x)", {"x": kernel_answers.decode_value({"type": "Foo"})})
    assert not strange.passed and "TypeError" in strange.message and strange.mistakes == (Mistake.WRONG_VALUE,)

    def crash(*args):
        raise LearnerProcessFailure("the process stopped", [Mistake.PROCESS_FAILED])

    lost = verdicts.run_test_cell("t", "f()", {"f": crash})
    assert not lost.passed and lost.learner_process and lost.mistakes == (Mistake.PROCESS_FAILED,)


def test_definitions_of_other_cells_come_with_the_function():
    cells = ["import math\nSCALE = 2.0\nresult = train_for_minutes()\nfor i in range(10**9): pass\n"
             "def helper(x):\n    return SCALE * math.sqrt(x)\n%matplotlib inline",
             "def f(x):\n    return helper(x)\nnot_defined_anywhere()",
             "def f(x):\n    return 'an earlier draft'"]
    namespace = learner_namespace()
    assert define_function(cells[2:] + cells[:2], 2, "f", namespace) == ""
    assert namespace["f"](4.0) == 4.0
    assert "result" not in namespace
    # A later cell that defines it again (an edited copy pasted below) is what the kernel
    # calls afterwards, and so is what is graded.
    later = learner_namespace()
    assert define_function(cells[:2] + ["def f(x):\n    return 'edited copy'\nraise ValueError"], 1, "f", later) == ""
    assert later["f"](4.0) == "edited copy"
    assert "no cell defines" in define_function(["x = 1"], -1, "f", {})
    assert "failed: SyntaxError" in define_function(["def f(:"], 0, "f", {})


def test_a_learner_process_that_cannot_start_is_the_machinerys_failure(monkeypatch):
    function = LearnerFunction(["def d_loss_by_d_model(m, d, w):\n    return {}"], 0, SandboxSettings(enabled=False),
                               start_timeout=30)
    monkeypatch.setattr(function, "_command", lambda: ["python3", "-c", "import sys; sys.exit(3)"])
    with pytest.raises(GradingMachineryError, match="did not start"):
        function.__enter__()


def test_a_learner_process_without_sandbox_answers_calls():
    cells = ["def d_loss_by_d_model(model, data, wd):\n"
             "    forward_pass(model, data)\n"
             "    if wd:\n        raise KeyError('targets')\n"
             "    return {part: 2 * w for part, w in model.items()}"]
    model = {"input_to_hid": np.ones((2, 256)), "hid_to_class": np.ones((10, 2))}
    data = {"inputs": np.zeros((256, 3)), "target": np.eye(10)[:, :3]}
    from course_utils.learner_errors import LearnerCodeError

    with LearnerFunction(cells, 0, SandboxSettings(enabled=False)) as function:
        gradient = function(model, data, 0.0)
        np.testing.assert_array_equal(gradient["hid_to_class"], 2 * model["hid_to_class"])
        assert 0 <= function.last_cpu_seconds < 1
        with pytest.raises(LearnerCodeError) as raised:
            function(model, data, 0.5)
        assert raised.value.type_name == "KeyError" and "line 4 of your code" in raised.value.line


def test_the_cpu_time_of_the_learners_processes_is_counted_from_outside(tmp_path):
    """Work done in a child process or a thread of the learner's counts, and nothing the
    learner process says about itself enters the measure. The child and the thread write
    down the CPU time they used (this test's own record, not the grader's): the grader's
    count must hold at least their sum, less one clock tick each."""
    burn = "n = 0\nfor _ in range(3_000_000): n += 1"
    child = (f"import time\n{burn}\n"
             f"open({str(tmp_path / 'child')!r}, 'w').write(str(time.process_time()))")
    cells = ["import subprocess, sys, threading, time\n"
             "def burn_in_thread():\n"
             f"    exec({burn!r}, {{}})\n"
             f"    open({str(tmp_path / 'thread')!r}, 'w').write(str(time.thread_time()))\n"
             "def d_loss_by_d_model(model, data, wd):\n"
             f"    subprocess.run([sys.executable, '-c', {child!r}], check=True)\n"
             "    worker = threading.Thread(target=burn_in_thread)\n"
             "    worker.start(); worker.join()\n"
             "    return {part: 0 * w for part, w in model.items()}"]
    model = {"input_to_hid": np.ones((2, 256)), "hid_to_class": np.ones((10, 2))}
    data = {"inputs": np.zeros((256, 3)), "target": np.eye(10)[:, :3]}
    with LearnerFunction(cells, 0, SandboxSettings(enabled=False)) as function:
        function(model, data, 0.0)
        used = sum(float((tmp_path / name).read_text()) for name in ("child", "thread"))
        assert used > 0.05  # enough work to be measured in clock ticks
        assert function.last_cpu_seconds >= used - 2 * 0.01


# --- the typed messages between the grading processes ------------------------------------------

def _task(**changes):
    from course_grading.messages import GradingTask

    fields = dict(assignment_id="backprop", student_id="alice", digest="d1", submission_files={},
                  submission_path="submitted/alice/backprop", autograded_path="autograded/alice/backprop",
                  source_path="source/backprop", source_files={}, course_config=None, template_db=b"",
                  kernel_names=("python3",), sandbox=SandboxSettings(), cell_timeout=None, timeout=60.0)
    return GradingTask(**{**fields, **changes})


def test_a_task_in_a_slot_changes_only_the_sandbox_user():
    task = _task()
    slotted = task.in_slot(61003)
    assert slotted.sandbox.user_id == 61003 and task.sandbox.user_id == SandboxSettings().user_id
    assert slotted.sandbox.memory == task.sandbox.memory and slotted.digest == task.digest


def test_a_submission_is_graded_notebook_by_notebook_and_recorded_whole():
    from course_grading.messages import VERDICT_FILE, CellVerdict, GradingResult, VerdictFile

    task = _task(submission_files={"backprop.ipynb": b"{}", "generalization.ipynb": b"{}", "notes.txt": b""},
                 intake_notes=("moved a cell back",))
    # Only the notebooks of the assignment that the submission holds, in the course's order.
    parts = task.per_notebook(["backprop", "generalization", "bonus"])
    assert [part.notebook for part in parts] == ["backprop", "generalization"]
    assert all(part.submission_files == task.submission_files for part in parts)
    assert task.per_notebook(["backprop"]) == [task] and task.notebook is None

    def ungraded():
        return {"late_submission_penalty": None, "flagged": False,
                "grades": {"g": {"auto_score": None, "needs_manual_grade": False}}, "comments": {}}

    def part_result(part, score):
        # Each part's gradebook lists every notebook, only its own graded.
        notebooks = {name: ungraded() for name in ("backprop", "generalization")}
        notebooks[part.notebook]["grades"]["g"]["auto_score"] = score
        verdict = CellVerdict(part.notebook, "g", score > 0)
        files = {f"{part.notebook}.ipynb": (b"graded", 0o444), "notes.txt": (b"", 0o644),
                 VERDICT_FILE: (VerdictFile("backprop", "alice", (verdict,)).to_json().encode(), 0o444)}
        return GradingResult.graded(part, scores={"timestamp": "t", "notebooks": notebooks}, autograded_files=files,
                                    problems=[f"limit in {part.notebook}"], verdicts=[verdict]).timed(2.0)

    whole = GradingResult.combined(task, [(part, part_result(part, score)) for part, score in zip(parts, (3, 0))])
    assert whole.status == "graded" and whole.seconds == 4.0 and whole.notes == ("moved a cell back",)
    assert {name: nb["grades"]["g"]["auto_score"] for name, nb in whole.scores["notebooks"].items()} == {
        "backprop": 3, "generalization": 0}
    assert sorted(whole.autograded_files) == sorted(["backprop.ipynb", "generalization.ipynb", "notes.txt", VERDICT_FILE])
    assert whole.problems == ("limit in backprop", "limit in generalization")
    verdicts = VerdictFile.from_json(whole.autograded_files[VERDICT_FILE][0].decode())
    assert [cell.notebook for cell in verdicts.cells] == ["backprop", "generalization"]
    assert verdicts.notes == ("moved a cell back",) and whole.verdicts == verdicts.cells

    # One notebook failing fails the submission (its earlier grades are kept whole), saying which.
    failed = GradingResult.combined(task, [(parts[0], part_result(parts[0], 3)),
                                           (parts[1], GradingResult.failed(parts[1], "the kernel died"))])
    assert failed.status == "failed" and failed.reason == "generalization.ipynb: the kernel died"
    assert failed.scores is None and not failed.autograded_files
    # A part whose gradebook lacks its notebook is a failure too, never a silent gap.
    lacking = part_result(parts[1], 1)
    del lacking.scores["notebooks"]["generalization"]
    assert GradingResult.combined(task, [(parts[0], part_result(parts[0], 3)), (parts[1], lacking)]).status == "failed"


def test_results_cross_from_the_grading_process_checked():
    from course_grading.messages import CellVerdict, GradingResult, MessageError
    from course_utils.diagnosis import Mistake

    task = _task()
    verdict = CellVerdict("backprop", "test_gradient", False, (Mistake.SIGN_FLIPPED,), "its sign is flipped",
                          {"best_learning_rate": 0.35}, learner_process=False)
    result = GradingResult.graded(task, scores={"notebooks": {}}, autograded_files={"a.ipynb": (b"{}", 0o644)},
                                  verdicts=[verdict], notes=["left out x"])
    back = GradingResult.from_plain(result.to_plain(), task)
    assert back == result and back.verdicts[0].mistakes == (Mistake.SIGN_FLIPPED,)
    failed = GradingResult.failed(task, "the kernel died")
    assert GradingResult.from_plain(failed.to_plain(), task).reason == "the kernel died"
    assert failed.status == "failed" and failed.scores is None and not failed.autograded_files

    def tampered(**changes):
        return {**result.to_plain(), **changes}

    for plain, why in [
        (tampered(student_id="bob"), "another task"),
        (tampered(status="passed"), "status"),
        (tampered(scores=None), "without scores"),
        (tampered(autograded_files={"../../gradebook.db": (b"", 0o644)}), "leaves the autograded folder"),
        (tampered(autograded_files={"a": b""}), "bytes, mode"),
        (tampered(verdicts=[{**verdict.to_plain(), "mistakes": ["looks_fine"]}]), "unknown mistake"),
        (tampered(verdicts=[{**verdict.to_plain(), "passed": "yes"}]), "true or false"),
        (tampered(verdicts=[{**verdict.to_plain(), "answers": {"x": {"code": "1"}}}]), "not a plain value"),
        (tampered(extra=1), "fields"),
        ([], "not an object"),
    ]:
        with pytest.raises(MessageError, match=why):
            GradingResult.from_plain(plain, task)


def test_the_verdict_file_reads_back_and_refuses_other_files(tmp_path):
    from course_grading.messages import CellVerdict, MessageError, VerdictFile, read_verdict_file
    from course_utils.diagnosis import Mistake

    cells = (CellVerdict("backprop", "test_gradient_training_set", False, (Mistake.SIGN_FLIPPED,), "flipped"),
             CellVerdict("generalization", "test_best_wd_coefficient", True, answers={"best_wd_coefficient": 0.001}))
    path = tmp_path / "course_grade_verdicts.json"
    path.write_text(VerdictFile("backprop", "alice", cells, ("a note",)).to_json())
    plain = json.loads(path.read_text())
    assert plain["format"] == 1 and plain["cells"][0]["mistakes"] == ["sign_flipped"]
    assert plain["cells"][1] == {"notebook": "generalization", "grade_id": "test_best_wd_coefficient",
                                 "passed": True, "mistakes": [], "message": "",
                                 "answers": {"best_wd_coefficient": 0.001}, "learner_process": False}
    assert read_verdict_file(path) == VerdictFile("backprop", "alice", cells, ("a note",))
    path.write_text(json.dumps({**plain, "format": 2}))
    with pytest.raises(MessageError, match="format 2"):
        read_verdict_file(path)
    path.write_text("{")
    with pytest.raises(MessageError, match="not JSON"):
        read_verdict_file(path)


def test_answers_keep_plain_values_only():
    from course_grading.messages import keep_answer, plain_answer

    assert plain_answer(np.float64(0.35)) == 0.35 and plain_answer(np.int64(183)) == 183
    assert plain_answer(np.array([[0.1], [-0.2]])) == [0.1, -0.2]
    assert plain_answer(float("nan")) == "nan" and plain_answer("x" * 500) == "x" * 200
    assert not keep_answer(np.zeros((256, 10))) and not keep_answer(kernel_answers.decode_value({"type": "Foo"}))
    assert keep_answer(True) and not keep_answer(None)


def test_a_machinery_failure_is_recorded_as_a_value(tmp_path):
    from course_grading.messages import CellVerdict, MachineryFailure, VerdictRecord

    record = VerdictRecord(str(tmp_path / "verdicts.jsonl"))
    assert record.read() == ((), None)
    record.add_notebook([CellVerdict("backprop", "t", True)])
    record.add_failure("the setup cell 'setup' failed: OSError: no data")
    cells, failure = record.read()
    assert (tmp_path / "verdicts.jsonl").stat().st_mode & 0o777 == 0o600
    assert [cell.grade_id for cell in cells] == ["t"]
    assert failure == MachineryFailure("the setup cell 'setup' failed: OSError: no data")
