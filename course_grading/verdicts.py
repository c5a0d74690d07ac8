"""Every autograded cell's verdict, decided in the grading process: nbgrader preprocessors.

nbgrader runs the test cells in the learner's kernel, after the learner's code, which
can change what later cells run, redefine the checks, read the hidden tests and print
whatever it likes. So when ``course-grade`` grades, the test cells never run there:

1. :class:`StubTestCells` (before nbgrader's ``Execute``) replaces each test cell's code
   by a call of ``course_grading.kernel_answers.report`` (the one file of the grader's
   side that the kernel's sandbox shows), which hands the grader the plain
   values of the names the test needs (``best_wd_coefficient``, ...). The kernel never
   sees the tests' code.
2. The kernel runs the notebook (in the sandbox): it decides what the learner's own
   cells print, nothing else.
3. :class:`TrustedVerdicts` (after ``Execute``) runs each test cell's own code here, in
   the grading process, on the values read strictly from the report, with
   ``d_loss_by_d_model`` called in a separate sandboxed process
   (:class:`~course_grading.learner_function.LearnerFunction`). It puts the code back
   and replaces the cell's output by the grader's message: nothing the kernel printed in
   a test cell is kept. nbgrader's ``SaveAutoGrades`` then scores the cells from those
   outputs as usual.

Each verdict is a :class:`~course_grading.messages.CellVerdict` that names the mistakes the
checks recognized (``course_utils.diagnosis.CheckFailed.mistakes``) and the plain answers
the test read; :class:`TrustedVerdicts` hands them to the grading process through its
:class:`~course_grading.messages.VerdictRecord`. A setup cell that failed before any
learner code ran, or a learner process that did not start, is the grading machinery's
failure: :class:`GradingMachineryError` stops the grading of the submission (recorded as a
``MachineryFailure``), which is reported as failed and keeps its earlier grades.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import dataclasses
import functools
import io

import nbformat
import numpy as np
from nbgrader import utils
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Float, Unicode

from course_utils.diagnosis import Mistake
from course_utils.notebook_code import is_learner_code_cell, learner_cells, notebook_cells

from . import kernel_answers
from .learner_function import GradingMachineryError, LearnerFunction, LearnerProcessFailure
from .messages import CellVerdict, VerdictRecord, keep_answer, plain_answer
from .sandbox import SandboxSettings

#: The learner's function, the cell that defines it and the notebook that holds that cell.
FUNCTION_NAME = "d_loss_by_d_model"
FUNCTION_NOTEBOOK = "backprop"
#: Names the grader gives the test cells itself; every other free name of a test cell is
#: the learner's and is read from the kernel's report.
GRADER_NAMES = frozenset({"np", "checks", "course_utils", "datas", FUNCTION_NAME})

_STUB = ("# Graded outside this kernel: these values are handed to the grader.\n"
         "__import__('runpy').run_path({module!r})['report'](globals(), {names!r})\n")
_PASSED = "Passed (checked by the grader).\n"


def _is_test_cell(cell):
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


def free_names(source):
    """The names a test cell reads without defining them (builtins left out)."""
    tree = ast.parse(source)
    loaded, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return sorted(loaded - bound - set(dir(builtins)))


def learner_names(source):
    """The names of a test cell's code that are the learner's (read from the report)."""
    return [name for name in free_names(source) if name not in GRADER_NAMES]


class StubTestCells(NbGraderPreprocessor):
    """Replace every test cell's code by a report of the learner's values it needs."""

    report_module = Unicode(help="path of kernel_answers.py as the kernel sees it "
                                 "(sandbox.kernel_answers_path)").tag(config=True)

    def preprocess(self, nb, resources):
        tests = {}
        for cell in nb.cells:
            if _is_test_cell(cell):
                names = learner_names(cell.source)
                tests[cell.metadata.nbgrader["grade_id"]] = cell.source
                cell.source = (_STUB.format(module=self.report_module, names=names) if names
                               else "# Graded outside this kernel.\n")
        resources["course_grade_tests"] = tests
        return nb, resources


def _read_report(outputs, names):
    """({name: value}, None), or (None, the reason the values could not be read)."""
    if not names:
        return {}, None
    reports = [output for output in outputs if output.get("output_type") == "display_data"
               and kernel_answers.MIME_TYPE in output.get("data", {})]
    errors = [f"{output.get('ename')}: {output.get('evalue')}" for output in outputs
              if output.get("output_type") == "error"]
    if len(reports) != 1:
        why = (f"the cell raised {errors[0][:300]}" if errors and not reports else
               "the cell did not hand them over as it should: did code in an earlier cell change how cells run?")
        return None, f"The values of {', '.join(names)} could not be read from your notebook ({why})."
    try:
        return kernel_answers.decode_values(reports[0]["data"][kernel_answers.MIME_TYPE], names), None
    except kernel_answers.MalformedAnswers as error:
        return None, f"The values of {', '.join(names)} could not be read from your notebook ({error})."


def _setup_failure(nb):
    """The error of an instructor's cell that failed before any learner code ran, or None."""
    for cell in nb.cells:
        if is_learner_code_cell(cell):
            return None
        if cell.cell_type == "code":
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "?")
                    return f"the setup cell '{grade_id}' failed: {output.get('ename')}: {output.get('evalue')}"[:1000]
    return None


def run_test_cell(grade_id, source, namespace, missing=(), notebook=""):
    """Run one test cell's code in ``namespace``; returns its CellVerdict.

    A failing check's ``AssertionError`` names the mistakes it recognized (``.mistakes``,
    see ``course_utils.diagnosis.CheckFailed``). Raises GradingMachineryError for what is
    not the learner's doing: a name the test needs that is neither the grader's nor the
    learner's (a mistake in the test).
    """
    def failed(message, mistakes=(), learner_process=False):
        return CellVerdict(notebook, grade_id, False, tuple(mistakes) or (Mistake.UNUSUAL,),
                           message, learner_process=learner_process)

    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(source, f"test cell {grade_id}", "exec"), namespace)
    except LearnerProcessFailure as error:
        return failed(str(error), getattr(error, "mistakes", ()), learner_process=True)
    except AssertionError as error:
        return failed(str(error), getattr(error, "mistakes", ()))
    except NameError as error:
        if error.name in missing:
            return failed(f"{error.name} is not set: write your answer in its cell and run it (it may "
                          "still raise NotImplementedError, or have failed).", [Mistake.NOT_ANSWERED])
        raise GradingMachineryError(f"the test cell {grade_id} needs a name nobody defines: {error}") from None
    except GradingMachineryError:
        raise
    except Exception as error:  # the checks given values they cannot handle
        return failed(f"{type(error).__name__}: {str(error)[:500]}", [Mistake.WRONG_VALUE])
    return CellVerdict(notebook, grade_id, True)


class TrustedVerdicts(NbGraderPreprocessor):
    """Decide every test cell here, put its code back and show the grader's message."""

    sandbox_settings_file = Unicode(help="JSON file of the SandboxSettings for the learner process").tag(config=True)
    record_file = Unicode(help="where the verdicts go (a messages.VerdictRecord)").tag(config=True)
    call_timeout = Float(60.0, help="seconds one call of the learner's function may take").tag(config=True)

    def _learner_function(self, nb, resources):
        """The sandboxed learner function, from this notebook or the one beside it."""
        cells = nb.cells
        if not any(cell.metadata.get("nbgrader", {}).get("grade_id") == FUNCTION_NAME for cell in cells):
            path = resources.get("metadata", {}).get("path", ".")
            try:
                cells = notebook_cells(f"{path}/{FUNCTION_NOTEBOOK}.ipynb")
            except Exception:
                cells = []
        sources, index = learner_cells(cells, FUNCTION_NAME)
        with open(self.sandbox_settings_file) as stream:
            settings = SandboxSettings.from_json(stream.read())
        return LearnerFunction(sources, index, settings, call_timeout=self.call_timeout)

    def preprocess(self, nb, resources):
        record = VerdictRecord(self.record_file)
        try:
            return self._decide(nb, resources, record)
        except GradingMachineryError as error:
            # nbgrader only logs a preprocessor's exception; the grading process reads this.
            record.add_failure(str(error))
            raise

    def _decide(self, nb, resources, record):
        from course_utils import checks, load_data
        import course_utils

        notebook = resources["nbgrader"]["notebook"]
        tests = resources.pop("course_grade_tests", None)
        if tests is None:
            raise GradingMachineryError("the test cells were not replaced before the notebook ran")
        failure = _setup_failure(nb)
        if failure:
            raise GradingMachineryError(failure)
        datas = _datas(load_data)
        verdicts, gradient_cells = [], []
        with contextlib.ExitStack() as stack:
            function = None
            for cell in nb.cells:
                if not _is_test_cell(cell):
                    continue
                grade_id = cell.metadata.nbgrader["grade_id"]
                source = tests.get(grade_id)
                if source is None:
                    raise GradingMachineryError(f"the test cell {grade_id} was not replaced before the notebook ran")
                names = learner_names(source)
                values, problem = _read_report(cell.get("outputs", []), names)
                if problem:
                    verdict = CellVerdict(notebook, grade_id, False, (Mistake.UNREADABLE_ANSWER,), problem,
                                          learner_process=True)
                else:
                    namespace = {"np": np, "checks": checks, "course_utils": course_utils, "datas": datas,
                                 "__name__": "__grader__"}
                    given = {k: v for k, v in values.items() if v is not kernel_answers.MISSING}
                    namespace.update(given)
                    if FUNCTION_NAME in free_names(source):
                        if function is None:
                            function = stack.enter_context(self._learner_function(nb, resources))
                        namespace[FUNCTION_NAME] = function
                        gradient_cells.append(grade_id)
                    verdict = run_test_cell(grade_id, source, namespace, notebook=notebook,
                                            missing=[k for k, v in values.items() if v is kernel_answers.MISSING])
                    verdict = dataclasses.replace(verdict, answers={
                        name: plain_answer(value) for name, value in given.items() if keep_answer(value)})
                verdicts.append((cell, source, verdict))
            if function is not None and any(v.passed for _, _, v in verdicts if v.grade_id in gradient_cells):
                from .hidden_tests import check_not_precomputed

                reason = check_not_precomputed(function, datas, np.random.default_rng())
                if reason:
                    verdicts = [(cell, source, dataclasses.replace(
                        verdict, passed=False, mistakes=(Mistake.RIGHT_ONLY_ON_TESTED_INPUTS,),
                        message=f"d_loss_by_d_model is {reason}.")
                        if verdict.grade_id in gradient_cells and verdict.passed else verdict)
                        for cell, source, verdict in verdicts]
        for cell, source, verdict in verdicts:
            cell.source = source
            cell.outputs = [_output(verdict)]
        record.add_notebook([verdict for _, _, verdict in verdicts])
        return nb, resources


def _output(verdict):
    if verdict.passed:
        return nbformat.v4.new_output("stream", name="stdout", text=_PASSED)
    message = verdict.message or "The test failed."
    return nbformat.v4.new_output("error", ename="AssertionError", evalue=message, traceback=[message])


@functools.cache
def _datas(load_data):
    """The data set, loaded once per grading process."""
    try:
        return load_data()
    except Exception as error:
        raise GradingMachineryError(f"the grader could not load the data set: {error}") from None


def autograde_preprocessors(execute="course_grading.outputs.CappedExecute"):
    """nbgrader's autograde preprocessors with the test cells decided here (see above), the
    learner's output capped in bytes and made inert (:mod:`course_grading.outputs`)."""
    from nbgrader.converters.autograde import Autograde
    from nbgrader.preprocessors import Execute

    steps = []
    for step in Autograde().autograde_preprocessors:
        if step is Execute:
            steps += [StubTestCells, execute, TrustedVerdicts, "course_grading.outputs.NeutralizeOutputs"]
        else:
            steps.append(step)
    return steps
