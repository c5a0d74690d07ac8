"""The hidden tests' checks: the instructor's side, never shown to learners.

The hidden regions of the source notebooks' test cells call these functions, with the
reference answers written in the cell itself (the source notebook is their one home).
``course-grade`` runs those cells in the grading process, where ``d_loss_by_d_model`` is
the learner's function running in a sandbox (:mod:`course_grading.learner_function`)
and the learner's answers are plain values; plain ``nbgrader autograde`` runs them in
the learner's kernel. Both give the same verdicts for honest work.

The gradient checks compare with the gradient tester or with every element of a
numerical gradient, and name the usual mistakes (``course_utils.diagnosis``, which the
learners' visible checks call too). The answer checks take the expected value as an
argument. A failed check raises ``CheckFailed``, which names the mistakes it found.
"""
from __future__ import annotations

import os

import numpy as np

from course_utils import checks, network
from course_utils.checks import (
    chosen_value,
    compare_with_tester,
    fail_with_diagnosis,
    learner_code,
    probe_gradient,
    typed_number,
)
from course_utils.data import load_data
from course_utils.diagnosis import CheckFailed, Mistake, cases, close, numerical_gradient, slightly_random_model
from course_utils.network import initial_model

from .learner_function import process_tree_cpu_seconds

TINY_MODEL = {"input_to_hid": np.array([[2.0, -1.0]]), "hid_to_class": np.array([[2.0], [0.0]])}
TINY_DATA = {"inputs": np.array([[1.0], [2.0]]), "target": np.array([[0.0], [1.0]])}
TINY_TOLERANCE = 1e-4


# --- Exercise 1: the tiny network computed by hand --------------------------------------------

def check_tiny_gradient(part, answer, expected):
    """Exercise 1 c: the learner's hand-computed gradient of one layer of the tiny network.

    ``expected`` is the right gradient of that layer (nested list).
    """
    __tracebackhide__ = True
    name = checks.TINY_ANSWER_NAMES[part]
    values = checks.hand_computed_layer(part, answer)
    expected = np.asarray(expected, dtype=np.float64)
    if np.allclose(values, expected, atol=TINY_TOLERANCE, rtol=0):
        return
    hints, mistakes = [], []
    if np.allclose(values, -expected, atol=TINY_TOLERANCE, rtol=0):
        hints.append("The sign is flipped: the output error is y - t, not t - y.")
        mistakes.append(Mistake.SIGN_FLIPPED)
    h = float(network.logistic(TINY_MODEL["input_to_hid"] @ TINY_DATA["inputs"])[0, 0])
    if part == "input_to_hid" and np.allclose(values, expected / (h * (1 - h)), atol=TINY_TOLERANCE, rtol=0):
        hints.append("The derivative of the logistic function, h (1 - h), is missing.")
        mistakes.append(Mistake.MISSING_LOGISTIC_DERIVATIVE)
    if not hints:
        hints.append("Compute h, then y, then y - t, and follow your formulas from 1 b step by "
                     "step; keep at least 4 decimals in every intermediate result.")
        mistakes.append(Mistake.WRONG_VALUE)
    raise CheckFailed(f"{name} is not right yet (it should agree to 4 decimals). " + " ".join(hints), mistakes)


# --- Exercise 2: the gradient -----------------------------------------------------------------

def check_other_hidden_sizes(gradient_fn, datas=None):
    """The gradient tester with 7 and 23 hidden units."""
    __tracebackhide__ = True
    datas = load_data() if datas is None else datas
    data = cases(datas["train"], slice(0, 50))
    for n_hid in (7, 23):
        compare_with_tester(gradient_fn, initial_model(n_hid), data, 0.0, datas,
                              f"{n_hid} hidden units (not 10) and 50 cases")


def check_small_batches(gradient_fn, datas=None):
    """The gradient tester on mini-batches of 1 and 3 cases."""
    __tracebackhide__ = True
    datas = load_data() if datas is None else datas
    for columns in (slice(17, 18), slice(40, 43)):
        m = columns.stop - columns.start
        compare_with_tester(gradient_fn, initial_model(10), cases(datas["train"], columns), 0.0,
                              datas, f"a mini-batch of {m} case{'s' if m > 1 else ''}")


def check_weight_decay(gradient_fn, datas=None):
    """The gradient tester with weight decay 0.001 and 0.1."""
    __tracebackhide__ = True
    datas = load_data() if datas is None else datas
    data = cases(datas["train"], slice(100, 120))
    for wd_coefficient in (0.001, 0.1):
        compare_with_tester(gradient_fn, initial_model(10), data, wd_coefficient, datas,
                              f"weight decay {wd_coefficient} (20 cases)")


def _compare_all(gradient_fn, model, data, wd_coefficient, datas, what, parts=("hid_to_class", "input_to_hid")):
    __tracebackhide__ = True
    answer = probe_gradient(gradient_fn, model, data, wd_coefficient)
    correct = numerical_gradient(model, data, wd_coefficient)
    for part in parts:
        difference = np.abs(answer[part] - correct[part])
        relative = difference / np.maximum(np.abs(answer[part]) + np.abs(correct[part]), 1e-300)
        bad = np.argwhere((difference > 1e-5) & (relative > 1e-5))
        if bad.size:
            row, column = (int(i) for i in bad[0])
            fail_with_diagnosis(
                f"With {what}: {bad.shape[0]} of the {answer[part].size} elements of {part} differ "
                f"from the finite-difference gradient, e.g. [{row}, {column}]: yours "
                f"{answer[part][row, column]:.10g}, finite differences {correct[part][row, column]:.10g}.",
                gradient_fn, datas, data["inputs"].shape[1])


def check_whole_gradient(gradient_fn, datas=None):
    """Every element of the gradient of a small model against finite differences."""
    __tracebackhide__ = True
    datas = load_data() if datas is None else datas
    _compare_all(gradient_fn, slightly_random_model(4), cases(datas["train"], slice(200, 206)),
                 0.01, datas, "4 hidden units, 6 cases and weight decay 0.01, every element")


def check_not_transposed(gradient_fn, datas=None):
    """With 10 hidden units, hid_to_class (10 x 10) is not transposed."""
    __tracebackhide__ = True
    datas = load_data() if datas is None else datas
    model = slightly_random_model(10)
    # The file's labels cycle through 0..9; ten cases starting at a multiple of ten have
    # an identity target matrix, which would hide a transposed target. Start elsewhere.
    data = cases(datas["train"], slice(303, 313))
    answer = probe_gradient(gradient_fn, model, data, 0.0)["hid_to_class"]
    correct = numerical_gradient(model, data, 0.0)["hid_to_class"]
    if close(answer, correct.T) and not close(answer, correct):
        raise CheckFailed(
            "With 10 hidden units, your hid_to_class gradient is the transpose of the correct "
            "one. Its shape (10 x 10) is right only because n_hid = 10 equals the number of "
            "classes. Check the order of the factors: one row per output class, one column per "
            "hidden unit.", [Mistake.TRANSPOSED])
    _compare_all(gradient_fn, model, data, 0.0, datas, "10 hidden units and 10 cases",
                 parts=("hid_to_class",))


#: The probe that tells backpropagation from finite differences: 100 hidden units (26,600
#: weights) and 10 cases, on random models that nobody can know in advance.
PROBE_HIDDEN_UNITS = 100
PROBE_CASES = 10
#: Backpropagation is exact up to float64 rounding (about 1e-15 of the gradient's norm,
#: whether vectorized or looping over the cases); a central difference is off by 1e-10
#: at best, a fourth-order stencil by 1e-11. This tolerance lies between the two.
EXACT_RTOL = 1e-12
#: CPU seconds one gradient of the probe may cost. Backpropagation costs about as much as
#: one evaluation of the loss, vectorized or looping over the 10 cases; anything that
#: evaluates the network once per weight costs 26,600 evaluations or more. The limit lies
#: well over ten times away from both (benchmarks/README.md has the figures). CPU time,
#: counted by the operating system for the learner's processes, is not wall-clock time: a
#: busy machine makes a call wait longer, not cost several times more.
MAX_GRADIENT_CPU_SECONDS = 0.1


def backpropagation(model, data, wd_coefficient):
    """The exact gradient of ``network.loss``, by backpropagation: the grader's reference.

    model : dict with 'input_to_hid' (n_hid, 256) and 'hid_to_class' (10, n_hid)
    data : dict with 'inputs' (256, m) and 'target' (10, m)
    Returns a dict shaped like ``model``.
    """
    _, hid_output, _, _, class_prob = network.forward_pass(model, data)
    d_class_input = (class_prob - data["target"]) / data["inputs"].shape[1]       # (10, m)
    d_hid_input = (model["hid_to_class"].T @ d_class_input) * hid_output * (1 - hid_output)
    return {"input_to_hid": d_hid_input @ data["inputs"].T + wd_coefficient * model["input_to_hid"],
            "hid_to_class": d_class_input @ hid_output.T + wd_coefficient * model["hid_to_class"]}


def gradient_and_cost(gradient_fn, model, data, wd_coefficient):
    """``gradient_fn``'s answer and the CPU seconds it cost.

    The grader's sandboxed learner function is measured from outside, by the operating
    system's count for the learner's processes (``last_cpu_seconds``); nothing the learner
    process says about itself is used. A function in this process (plain nbgrader, in the
    learner's kernel) is measured the same way, on this process.
    """
    __tracebackhide__ = True
    if hasattr(gradient_fn, "last_cpu_seconds"):
        answer = learner_code(gradient_fn, model, data, wd_coefficient)
        return answer, gradient_fn.last_cpu_seconds
    started = process_tree_cpu_seconds(os.getpid())
    answer = learner_code(gradient_fn, model, data, wd_coefficient)
    return answer, process_tree_cpu_seconds(os.getpid()) - started


def _relative_error(answer, exact):
    return max(np.linalg.norm(answer[part] - exact[part]) / np.linalg.norm(exact[part]) for part in exact)


def check_uses_backpropagation(gradient_fn, datas=None, rng=None):
    """A right gradient, computed by backpropagation, not by finite differences.

    Gradients on random models with 10, 100 and 100 hidden units: each must be exact to
    float64 rounding (``EXACT_RTOL``), which no finite difference reaches, whatever it
    calls, and the cheaper of the two with 100 hidden units (the first call may import
    something) must cost at most ``MAX_GRADIENT_CPU_SECONDS`` of CPU time,
    hundreds of times what backpropagation costs and a fraction of any gradient that
    evaluates the loss once per weight. Decided by counts of the operating system and by
    rounding, never by the wall clock.
    """
    __tracebackhide__ = True
    datas = load_data() if datas is None else datas
    rng = np.random.default_rng() if rng is None else rng
    columns = rng.choice(datas["train"]["inputs"].shape[1], PROBE_CASES, replace=False)
    data = cases(datas["train"], columns)
    costs = []
    # The small model first: a gradient that is not exact fails there, at a small cost.
    for n_hid in (10, PROBE_HIDDEN_UNITS, PROBE_HIDDEN_UNITS):
        what = f"{n_hid} hidden units and {PROBE_CASES} cases"
        model = {part: weights * rng.uniform(0.5, 2.0, weights.shape)
                 for part, weights in initial_model(n_hid).items()}
        answer, cost = gradient_and_cost(gradient_fn, model, data, 0.0)
        exact = backpropagation(model, data, 0.0)
        if not (isinstance(answer, dict) and all(
                np.shape(answer.get(part)) == exact[part].shape for part in exact)):
            compare_with_tester(gradient_fn, model, data, 0.0, datas, what)
        answer = {part: np.asarray(answer[part], dtype=np.float64) for part in exact}
        error = _relative_error(answer, exact)
        if not error <= EXACT_RTOL:
            if not error <= 1e-6:  # plainly wrong: the tester and the diagnosis say how
                compare_with_tester(gradient_fn, model, data, 0.0, datas, what)
            raise BackpropagationNotUsed(
                "d_loss_by_d_model must compute the gradient by backpropagation (your formulas from "
                "Exercise 1), not by finite differences, which are slower and only approximate: "
                f"with {what} its gradient is off by {error:.1e} of its size; backpropagation is "
                "exact up to rounding (1e-15).")
        if n_hid == PROBE_HIDDEN_UNITS:
            costs.append(cost)
    if min(costs) > MAX_GRADIENT_CPU_SECONDS:
        raise BackpropagationNotUsed(
            "d_loss_by_d_model must compute the gradient by backpropagation (your formulas from "
            "Exercise 1), not by evaluating the network once per weight: one gradient with "
            f"{PROBE_HIDDEN_UNITS} hidden units and {PROBE_CASES} cases took {min(costs):.2f} s "
            "of CPU time, where backpropagation takes about a millisecond.")


class BackpropagationNotUsed(CheckFailed):
    """The gradient is right but not computed by backpropagation."""

    def __init__(self, message):
        super().__init__(message, [Mistake.FINITE_DIFFERENCES])


def check_not_precomputed(gradient_fn, datas, rng):
    """A gradient that is right on the tested inputs must be right on a random model too.

    The gradient tester on a random model and the training cases in a random order,
    which no learner can know in advance. A real gradient passes it; a precomputed answer,
    or code that recognises the tested inputs, does not. Returns None, or the reason.
    """
    from course_utils import check_gradient

    try:
        check_gradient(initial_model(10), datas["train"], 0.0, gradient_fn)
    except Exception:
        return None  # wrong on the tested inputs too: the tests themselves say so
    model = {part: weights * rng.uniform(0.5, 2.0, weights.shape) for part, weights in initial_model(10).items()}
    order = rng.permutation(datas["train"]["inputs"].shape[1])
    shuffled = {name: values[:, order] for name, values in datas["train"].items()}
    try:
        check_gradient(model, shuffled, 0.0, gradient_fn)
    except Exception as error:
        return ("right on the tested inputs but not on a random model "
                f"({type(error).__name__}: {str(error)[:300]})")
    return None


# --- Exercise 3 and Part 4: answers read off the experiments ----------------------------------

def check_best_learning_rate(answer, name, expected, other, which):
    """Exercise 3 a: ``expected`` is the right rate; ``other`` the best for the other momentum."""
    __tracebackhide__ = True
    value = typed_number(answer, name)
    if np.isclose(value, expected):
        return
    hint = " That is the best rate for the other setting of momentum." if np.isclose(value, other) else ""
    raise CheckFailed(f"{value!r} is not the learning rate with the lowest final training loss "
                      f"{which}.{hint} Compare the final training losses in the plot "
                      "(left panel) or in final_training_loss.", [Mistake.WRONG_VALUE])


def check_early_stopping_iteration(answer, expected, last_iteration=1000):
    """4 a: the iteration with the lowest validation loss in the big run."""
    __tracebackhide__ = True
    value = typed_number(answer, "early_stopping_iteration")
    if value == expected:
        return
    if value == last_iteration:
        raise CheckFailed("That is the last iteration. Early stopping keeps the iteration with the "
                          "lowest validation loss: read it from the report or big_run.best_iteration.",
                          [Mistake.WRONG_VALUE])
    raise CheckFailed(f"{value!r} is not the iteration with the lowest validation loss of "
                      "a2(0, 200, 1000, 0.35, 0.9, True, 100). Read it from the first line of the "
                      "report, or use big_run.best_iteration.", [Mistake.WRONG_VALUE])


def check_validation_loss_without_early_stopping(answer, expected):
    """4 a: the validation loss after the last iteration of the big run."""
    __tracebackhide__ = True
    value = typed_number(answer, "validation_loss_without_early_stopping")
    if abs(value - expected) <= checks.TYPED_NUMBER_TOLERANCE:
        return
    raise CheckFailed(f"{value!r} is not the validation loss after the last of the 1000 iterations. "
                      "The report describes the early-stopped model; the last iteration's "
                      "validation loss is big_run.validation_losses[-1].", [Mistake.WRONG_VALUE])


def check_best_wd_coefficient(answer, choices, expected):
    """4 b: the weight decay coefficient with the lowest validation classification loss."""
    __tracebackhide__ = True
    value = chosen_value(answer, "best_wd_coefficient", choices)
    if value == expected:
        return
    raise CheckFailed(f"{answer!r} is not the weight decay coefficient with the lowest validation "
                      "classification loss. Compare the classification loss (without the weight "
                      "decay term), not the loss, in the printed table.", [Mistake.WRONG_VALUE])


def check_hidden_size(answer, name, choices, expected, what):
    """4 c: a number of hidden units read off the size runs; ``what`` says how it was chosen."""
    __tracebackhide__ = True
    value = chosen_value(answer, name, choices)
    if value == expected:
        return
    raise CheckFailed(f"{answer!r} is not the size with {what}. Look at the two lines of the plot.",
                      [Mistake.WRONG_VALUE])
