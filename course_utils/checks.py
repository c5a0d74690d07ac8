"""The checks that the assignment notebooks' test cells run.

Each ``check_*`` function passes silently or raises ``AssertionError`` with a message for
the learner: what failed and, for a wrong gradient, which usual mistake it looks like
(``diagnose_gradient``), layer by layer, in plain words. The reference values live here,
not in the notebooks; ``tests/test_checks.py`` recomputes them by real training.

Learner code runs inside ``learner_code``: whatever it writes to stderr, and any warning
it raises, is swallowed, because nbgrader scores a test cell zero for any stderr output.
"""

import contextlib
import io
import os
import sys
import time
import warnings
from numbers import Real

import numpy as np
from scipy.special import expit, logsumexp

from .data import load_data
from .gradient_check import (
    STENCIL_DISTANCES,
    STENCIL_WEIGHTS,
    STEP,
    GradientCheckError,
    check_gradient,
    check_gradient_structure,
)
from .learner_errors import LearnerCodeError, hint_for_other_versions
from .network import N_CLASSES, forward_pass, initial_model
from .notebook_code import learner_line
from .training import train

# a2(0, 10, 30, 0.01, 0, False, 10): the training loss the learner reports in Exercise 2.
REFERENCE_TRAINING_LOSS = 2.301906765216956
REFERENCE_RUN = dict(wd_coefficient=0, n_hid=10, n_iters=30, learning_rate=0.01,
                     momentum_multiplier=0, do_early_stopping=False, mini_batch_size=10)
# The loss of initial_model(10) on the training set: what a zero gradient leaves.
INITIAL_TRAINING_LOSS = 2.30264159691321

# Exercise 3: final training loss of train(gradient, 0, 10, 70, rate, momentum, False, 4).
SWEEP_RUN = dict(wd_coefficient=0, n_hid=10, n_iters=70, do_early_stopping=False, mini_batch_size=4)
SWEEP_FINAL_TRAINING_LOSSES = {
    (0.002, 0.0): 2.302293108148208,
    (0.01, 0.0): 2.3009006724646897,
    (0.05, 0.0): 2.2934118640834638,
    (0.2, 0.0): 2.223581358966002,
    (1.0, 0.0): 1.674933214461265,
    (5.0, 0.0): 2.3016188038504537,
    (20.0, 0.0): 2.3025850918371775,
    (0.002, 0.9): 2.2995666217165343,
    (0.01, 0.9): 2.285062439744801,
    (0.05, 0.9): 1.9940517127340163,
    (0.2, 0.9): 1.292495578954033,
    (1.0, 0.9): 1.8770514360276285,
    (5.0, 0.9): 2.302585092994039,
    (20.0, 0.9): 2.3025850929940463,
}

# Part 4 (generalization.ipynb): 1000 iterations, learning rate 0.35, momentum 0.9, batches of 100.
GENERALIZATION_RUN = dict(n_iters=1000, learning_rate=0.35, momentum_multiplier=0.9, mini_batch_size=100)
# a2(0, 200, 1000, 0.35, 0.9, True, 100)
EARLY_STOPPING_ITERATION = 183
VALIDATION_LOSS_WITHOUT_EARLY_STOPPING = 0.41351756897524766
# train(gradient, wd, 200, 1000, 0.35, 0.9, False, 100): validation classification loss.
WD_VALIDATION_CLASSIFICATION_LOSSES = {
    0: 0.41351756897524766,
    0.0001: 0.340080572222586,
    0.001: 0.264461185697904,
    0.01: 0.5097726719140547,
    1: 2.3025850929940463,
    5: 2.3025850929940463,
}
# train(gradient, 0, n_hid, 1000, 0.35, 0.9, False, 100): validation loss after the last
# iteration (no early stopping) and the lowest one (what early stopping keeps).
HIDDEN_SIZE_VALIDATION_LOSSES = {
    10: (0.37863953920633214, 0.32365118576388285),
    30: (0.3009836855616073, 0.27121740639921177),
    100: (0.3765774302162421, 0.30430429603068654),
    130: (0.37888104687264945, 0.2945600389892472),
    170: (0.3720382619777314, 0.2935683472079985),
}

# Tolerance for a number the learner types from a printed report.
TYPED_NUMBER_TOLERANCE = 1e-6
# Element-wise tolerance when comparing a gradient with a numerical one or a transform of it.
GRADIENT_RTOL = 1e-4
GRADIENT_ATOL = 1e-8

PART_NAMES = {"input_to_hid": "input_to_hid (the first layer, W1)",
              "hid_to_class": "hid_to_class (the second layer, W2)"}

# Functions that were interrupted (they never returned) while the notebook was graded;
# later checks fail at once instead of waiting for the time limit again.
_never_returned = set()


# ---------------------------------------------------------------------------------------
# Running learner code


@contextlib.contextmanager
def _no_stderr():
    """Discard everything written to stderr, by Python code or at the file-descriptor level."""
    sink = io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        stack.enter_context(np.errstate(all="ignore"))
        stack.enter_context(contextlib.redirect_stderr(sink))
        # Printing is the learner's business in their own cells, not in test output.
        stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
        saved_fd = None
        try:
            sys.__stderr__.flush()
            saved_fd = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        except (OSError, AttributeError, ValueError):
            saved_fd = None
        try:
            yield
        finally:
            if saved_fd is not None:
                os.dup2(saved_fd, 2)
                os.close(saved_fd)


def _grading():
    return os.environ.get("NBGRADER_EXECUTION") == "autograde"


def _where(error):
    """' (line N of your code: <text>)' for the deepest frame in the learner's code, or ''."""
    line = error.line if isinstance(error, LearnerCodeError) else learner_line(error, of="your code")
    return f" ({line})" if line else ""


def learner_code(function, *args, name="d_loss_by_d_model"):
    """Call ``function(*args)`` quietly and turn its exceptions into learner messages.

    ``function`` may be a proxy that runs the learner's function in another process and
    raises ``LearnerCodeError`` when it failed there; the message is the same as for the
    same exception raised here.

    Raises
    ------
    AssertionError
        If the function is not implemented yet, raised an exception, or was stopped
        because it did not finish in time.
    """
    __tracebackhide__ = True
    if not callable(function):
        raise AssertionError(f"{name} must be a function; it is a {type(function).__name__}. "
                             f"Run the cell that defines {name}.")
    if function in _never_returned:
        raise AssertionError(f"{name} did not finish in an earlier test (it was stopped after the "
                             "time limit), so it is not tried again. Look for a loop that never ends.")
    try:
        with _no_stderr():
            return function(*args)
    except KeyboardInterrupt:
        if _grading():
            _never_returned.add(function)
        raise
    except AssertionError:
        raise
    except Exception as error:  # any mistake in learner code, here or in another process
        remote = isinstance(error, LearnerCodeError)
        type_name = error.type_name if remote else type(error).__name__
        message = error.message if remote else str(error)
        raise AssertionError(_learner_error_message(name, type_name, message, _where(error))) from None


def _learner_error_message(name, type_name, message, where):
    """The message for an exception of type ``type_name`` with text ``message`` from ``name``."""
    if type_name == "NotImplementedError":
        return (f"{name} is not implemented yet: replace the line 'raise NotImplementedError(...)' "
                "with your code and run its cell again.")
    if type_name == "AssertionError":  # the learner's own assert, as it would be raised here
        return message
    return (f"{name} raised {type_name}: {message}{where}. Fix the error and run its cell "
            f"again.{hint_for_other_versions(type_name, message)}")


# ---------------------------------------------------------------------------------------
# A numerical gradient fast enough to compare every element


def _cross_entropy(class_input, target):
    """Mean cross-entropy of softmax(class_input) over the last axis (cases).

    class_input : (..., 10, m) array; target : (10, m) array. Returns an array of shape (...).
    """
    log_class_prob = class_input - logsumexp(class_input, axis=-2, keepdims=True)
    return -np.sum(log_class_prob * target, axis=(-2, -1)) / target.shape[1]


def numerical_gradient(model, data, wd_coefficient):
    """Every element of the gradient by the tester's 8-point finite difference (step 1e-2).

    The same numbers as ``finite_difference_gradient`` (up to rounding), but each stencil
    point moves all elements of one row at once, which keeps it fast for small data.

    Parameters
    ----------
    model : dict with 'input_to_hid' (n_hid, 256) and 'hid_to_class' (10, n_hid)
    data : dict with 'inputs' (256, m) and 'target' (10, m); keep m small (memory grows as
        n_hid * 256 * 10 * m)
    wd_coefficient : float

    Returns
    -------
    dict shaped like ``model``
    """
    input_to_hid, hid_to_class = model["input_to_hid"], model["hid_to_class"]
    inputs, target = data["inputs"], data["target"]
    hid_input = input_to_hid @ inputs                    # (n_hid, m)
    hid_output = expit(hid_input)                        # (n_hid, m)
    class_input = hid_to_class @ hid_output              # (10, m)
    n_hid = input_to_hid.shape[0]
    d_input_to_hid = np.zeros_like(input_to_hid)
    d_hid_to_class = np.zeros_like(hid_to_class)
    for distance, weight in zip(STENCIL_DISTANCES, STENCIL_WEIGHTS):
        step = distance * STEP
        # hid_to_class[k, j] + step adds step * hid_output[j] to class_input[k]: (10, n_hid, 10, m)
        moved = (class_input[None, None]
                 + step * np.eye(N_CLASSES)[:, None, :, None] * hid_output[None, :, None, :])
        decay = wd_coefficient / 2 * ((hid_to_class + step) ** 2 - hid_to_class ** 2)
        d_hid_to_class += weight * (_cross_entropy(moved, target) + decay)
        # input_to_hid[i, j] + step changes hidden unit i's output: (n_hid, 256, 10, m)
        for unit in range(n_hid):
            new_output = expit(hid_input[unit][None, :] + step * inputs)          # (256, m)
            change = new_output - hid_output[unit][None, :]                       # (256, m)
            moved = class_input[None] + hid_to_class[:, unit][None, :, None] * change[:, None, :]
            decay = wd_coefficient / 2 * ((input_to_hid[unit] + step) ** 2 - input_to_hid[unit] ** 2)
            d_input_to_hid[unit] += weight * (_cross_entropy(moved, target) + decay)
    return {"input_to_hid": d_input_to_hid / STEP, "hid_to_class": d_hid_to_class / STEP}


# ---------------------------------------------------------------------------------------
# Diagnosis of the usual mistakes


def _close(answer, expected):
    answer = np.asarray(answer, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if answer.shape != expected.shape:
        return False
    scale = max(float(np.max(np.abs(expected))), 1e-12)
    return bool(np.allclose(answer, expected, rtol=GRADIENT_RTOL, atol=GRADIENT_ATOL * scale + 1e-15))


def _cases(data, columns):
    return {"inputs": data["inputs"][:, columns], "target": data["target"][:, columns]}


def _slightly_random_model(n_hid):
    """initial_model(n_hid) made less regular, so that no mistake can agree with it by accident."""
    model = initial_model(n_hid)
    rng = np.random.default_rng(1299721)
    return {part: weights + 0.1 * rng.standard_normal(weights.shape)
            for part, weights in model.items()}


def _probe(gradient_fn, model, data, wd_coefficient):
    """The learner's gradient, converted to float arrays; raises AssertionError when unusable."""
    __tracebackhide__ = True
    gradient = learner_code(gradient_fn, model, data, wd_coefficient)
    try:
        check_gradient_structure(gradient, model)
    except GradientCheckError as error:
        raise AssertionError(_structure_message(error)) from None
    return {part: np.asarray(gradient[part], dtype=np.float64) for part in model}


def _structure_message(error):
    if error.kind == "shape" and "transposed" in str(error):
        return (f"{error} Check the order of the factors in your product for "
                f"{error.part}: the result must have one row per "
                f"{'hidden unit' if error.part == 'input_to_hid' else 'output class'}.")
    if error.kind == "nonfinite":
        return (f"{error} NaN or infinity usually comes from computing exp or log of large "
                "numbers yourself: use forward_pass's outputs (class_prob, hid_output) instead.")
    return str(error)


# The diagnosis models each layer of the learner's answer as
#     answer = alpha * (cross-entropy part) + c * (the layer's weights)
# and fits alpha and c on probes with two batch sizes (a factor m is not a constant) and
# three weight decays, one of them 0 (c should be wd_coefficient, nothing more).
DIAGNOSIS_BATCHES = (slice(1, 6), slice(6, 14))       # 5 and 8 cases of the training set
DIAGNOSIS_WD_COEFFICIENTS = (0.0, 0.1, 0.03)
FIT_RTOL = 1e-6          # residual of a fit, relative to the answer: it explains the answer
COEFFICIENT_RTOL = 1e-4  # two fitted coefficients that agree to this are the same number
COEFFICIENT_ATOL = 1e-7
UNUSUAL = "its values are wrong, in a way that is not one of the usual mistakes"
VARIANT_TEXT = {
    "transposed": "it is the transpose of the correct gradient (with 10 hidden units the shape is "
                  "right by accident): check the order of the factors, the result has one row "
                  "per output class and one column per hidden unit",
    "no logistic derivative": "the derivative of the logistic function is missing: multiply the "
                              "error that reaches the hidden units by hid_output * (1 - hid_output)",
    "logistic derivative twice": "the derivative of the logistic function is applied twice: "
                                 "multiply by hid_output * (1 - hid_output) once",
}


def _cross_entropy_parts(model, data):
    """The correct cross-entropy part of each layer's gradient, and its usual wrong versions.

    The loss is the mean over the cases, so the batch's gradient is the mean of one-case
    gradients. For one case each row of input_to_hid's gradient carries that hidden unit's
    logistic slope h (1 - h) as a factor: dividing it out (or applying it again) gives the
    gradient without (or with twice) the logistic derivative.

    Returns
    -------
    dict {part: {variant: array shaped like model[part]}}, variant '' being the correct one
    """
    m = data["inputs"].shape[1]
    parts = {"hid_to_class": {"": 0}, "input_to_hid": {"": 0, "no logistic derivative": 0,
                                                        "logistic derivative twice": 0}}
    for case in range(m):
        one_case = _cases(data, slice(case, case + 1))
        gradient = numerical_gradient(model, one_case, 0.0)
        hid_output = forward_pass(model, one_case)[1]                     # (n_hid, 1)
        slope = hid_output * (1 - hid_output)
        parts["hid_to_class"][""] += gradient["hid_to_class"] / m
        parts["input_to_hid"][""] += gradient["input_to_hid"] / m
        parts["input_to_hid"]["no logistic derivative"] += gradient["input_to_hid"] / slope / m
        parts["input_to_hid"]["logistic derivative twice"] += gradient["input_to_hid"] * slope / m
    correct = parts["hid_to_class"][""]
    if correct.shape[0] == correct.shape[1]:
        parts["hid_to_class"]["transposed"] = correct.T
    return parts


def _fit(answer, cross_entropy_part, weights):
    """(alpha, c) with answer = alpha * cross_entropy_part + c * weights, or None if no such pair."""
    basis = np.stack([cross_entropy_part.ravel(), weights.ravel()], axis=1)
    coefficients = np.linalg.lstsq(basis, answer.ravel(), rcond=None)[0]
    residual = np.linalg.norm(answer.ravel() - basis @ coefficients)
    return tuple(coefficients) if residual <= FIT_RTOL * np.linalg.norm(answer) else None


def _times_power_of_m(values):
    """(k, p) with values[m] = k * m**p for every batch size m, p in 0, 1, -1; or None.

    k is rounded when it is a whole number (1, 2, -1), so that messages can name it.
    """
    for p in (0, 1, -1):
        ks = [value / m ** p for m, value in values.items()]
        if np.allclose(ks, ks[0], rtol=COEFFICIENT_RTOL, atol=COEFFICIENT_ATOL):
            k = float(ks[0])
            whole = abs(k - round(k)) <= COEFFICIENT_ATOL + COEFFICIENT_RTOL * abs(k)
            return (round(k) if whole else k), p
    return None


def _m_times(how, batch_size):
    """'m times too large (1000 in the test above)': the factor, and its value in the failing check."""
    return f"m times too {how} ({batch_size} in the test above)" if batch_size else f"m times too {how}"


def _describe(variant, alpha, beta, gamma, batch_size):
    """One sentence for one layer from the fitted forms, or None when they are the right ones.

    variant : '' or a key of VARIANT_TEXT; alpha, beta, gamma : (k, p) from
    _times_power_of_m (k * m**p), or None when they have no such form. The answer was
    alpha * (cross-entropy part) + (beta * wd_coefficient + gamma) * weights.
    """
    clauses = [VARIANT_TEXT[variant]] if variant else []
    if alpha is None:
        clauses.append("the cross-entropy part is not a fixed multiple of the right one")
    elif alpha[0] == 0:
        clauses.append("the cross-entropy part is missing: there is only the weight decay term")
    elif alpha != (1, 0):
        k, p = alpha
        if k < 0:
            clauses.append("its sign is flipped (it points uphill): the output error is "
                           "class_prob minus target, not target minus class_prob")
        if abs(k) != 1:
            clauses.append(f"the cross-entropy part is {abs(k):.3g} times what it should be")
        if p == 1:
            clauses.append(f"the cross-entropy part is {_m_times('large', batch_size)}: it is "
                           "the sum over the cases, not the average. Divide by the number of cases m")
        if p == -1:
            clauses.append(f"the cross-entropy part is {_m_times('small', batch_size)}: you "
                           "divide by the number of cases m twice")
    if beta is None:
        clauses.append("the weight decay term is not a fixed multiple of wd_coefficient times the weights")
    elif beta[0] == 0:
        clauses.append("the weight decay term is missing: add wd_coefficient times the weights")
    elif beta != (1, 0):
        k, p = beta
        how = {1: [], 2: ["added twice"], -1: ["subtracted instead of added"],
               -2: ["subtracted twice"]}.get(k, [f"{k:.3g} times what it should be"])
        how += {1: ["multiplied by the number of cases m"], 0: [],
                -1: ["divided by the number of cases m (only the cross-entropy part is averaged)"]}[p]
        clauses.append("the weight decay term is " + " and ".join(how) +
                       ": it is wd_coefficient times the weights")
    if gamma is None:
        clauses.append("it contains a multiple of the weights that does not depend on wd_coefficient "
                       "in the usual way")
    elif gamma[0] != 0:
        k, p = gamma
        times = "the weights" if k == 1 else f"{k:.3g} times the weights"
        times += {1: " times m", 0: "", -1: " divided by m"}[p]
        clauses.append(f"it contains {times} even when wd_coefficient is 0: the weight decay "
                       "term is wd_coefficient times the weights, nothing else")
    return "; ".join(clauses) or None


def _layer_mistake(probes, weights, batch_size):
    """Name the mistakes in one layer, or None when it looks right.

    probes : list of (m, wd_coefficient, answer, parts), answer the learner's gradient of
        this layer and parts this layer's dict {variant: array} from ``_cross_entropy_parts``
    weights : the layer's weights, shaped like answer
    batch_size : int or None, the number of cases of the failing check, for the message
    """
    if not any(np.any(answer) for _, _, answer, _ in probes):
        return "it is all zeros: it looks not implemented yet"
    for variant in probes[0][3]:
        # A transposed gradient usually has its weight decay term transposed too.
        basis = weights.T if variant == "transposed" else weights
        fits = [_fit(answer, parts[variant], basis) for _, _, answer, parts in probes]
        if all(fits):
            break
    else:
        return UNUSUAL
    # alpha must be one number per batch size; c = beta * wd_coefficient + gamma.
    alphas, betas, gammas = {}, {}, {}
    for m in {m for m, *_ in probes}:
        rows = [(wd, alpha, c) for (m_probe, wd, _, _), (alpha, c) in zip(probes, fits) if m_probe == m]
        wds, alpha, c = (np.array(column) for column in zip(*rows))
        if not np.allclose(alpha, alpha[0], rtol=COEFFICIENT_RTOL, atol=COEFFICIENT_ATOL):
            return UNUSUAL
        betas[m], gammas[m] = np.linalg.lstsq(np.stack([wds, np.ones_like(wds)], axis=1), c,
                                              rcond=None)[0]
        if not np.allclose(betas[m] * wds + gammas[m], c, rtol=COEFFICIENT_RTOL, atol=COEFFICIENT_ATOL):
            return UNUSUAL
        alphas[m] = alpha[0]
    return _describe(variant, _times_power_of_m(alphas), _times_power_of_m(betas),
                     _times_power_of_m(gammas), batch_size)


def diagnose_gradient(gradient_fn, datas=None, batch_size=None):
    """Name the usual mistakes in ``gradient_fn``, layer by layer.

    Six probes on a model with 10 hidden units: batches of 5 and 8 cases, each with weight
    decay 0, 0.1 and 0.03. ``batch_size``, the number of cases of the check that failed,
    only goes into the messages ("m times too large (1000 in the test above)").

    Returns
    -------
    dict
        ``{part: message or None}`` for 'hid_to_class' and 'input_to_hid'; None means the
        part looked right in every probe.

    Raises
    ------
    AssertionError
        When the function cannot be probed at all (not implemented, raised, wrong
        keys or shapes, NaN); the message says so.
    """
    __tracebackhide__ = True
    datas = load_data() if datas is None else datas
    model = _slightly_random_model(10)
    probes = {"hid_to_class": [], "input_to_hid": []}
    for columns in DIAGNOSIS_BATCHES:
        data = _cases(datas["train"], columns)
        parts = _cross_entropy_parts(model, data)
        for wd_coefficient in DIAGNOSIS_WD_COEFFICIENTS:
            answer = _probe(gradient_fn, model, data, wd_coefficient)
            for part in probes:
                probes[part].append((data["inputs"].shape[1], wd_coefficient, answer[part], parts[part]))
    return {part: _layer_mistake(probes[part], model[part], batch_size) for part in probes}


def _diagnosis_text(gradient_fn, datas, batch_size=None):
    __tracebackhide__ = True
    found = diagnose_gradient(gradient_fn, datas, batch_size)
    lines = [f"- {PART_NAMES[part]}: {message}." for part, message in found.items() if message]
    if not lines:
        return ""
    return "\nWhat looks wrong, layer by layer:\n" + "\n".join(lines)


def _fail_with_diagnosis(problem, gradient_fn, datas, batch_size):
    """Raise AssertionError with ``problem`` and the diagnosis; batch_size is the failing check's m."""
    __tracebackhide__ = True
    try:
        diagnosis = _diagnosis_text(gradient_fn, datas, batch_size)
    except AssertionError as error:
        diagnosis = f"\n{error}"
    raise AssertionError(f"{problem}{diagnosis}")


def _check_against_tester(gradient_fn, model, data, wd_coefficient, datas, what):
    """Run the gradient tester; on failure add what was tested and the diagnosis."""
    __tracebackhide__ = True
    _probe(gradient_fn, model, data, wd_coefficient)
    try:
        with _no_stderr():
            check_gradient(model, data, wd_coefficient, gradient_fn)
    except GradientCheckError as error:
        _fail_with_diagnosis(f"With {what}: {error}", gradient_fn, datas, data["inputs"].shape[1])


# ---------------------------------------------------------------------------------------
# Exercise 1: the tiny network computed by hand

TINY_MODEL = {"input_to_hid": np.array([[2.0, -1.0]]), "hid_to_class": np.array([[2.0], [0.0]])}
TINY_DATA = {"inputs": np.array([[1.0], [2.0]]), "target": np.array([[0.0], [1.0]])}
TINY_TOLERANCE = 1e-4


def tiny_gradient():
    """The numerical gradient of the Exercise 1 c network (2 inputs, 1 hidden unit, 2 classes)."""
    input_to_hid, hid_to_class = TINY_MODEL["input_to_hid"], TINY_MODEL["hid_to_class"]
    inputs, target = TINY_DATA["inputs"], TINY_DATA["target"]

    def tiny_loss(w1, w2):
        return float(_cross_entropy(w2 @ expit(w1 @ inputs), target))

    gradient = {}
    for part, weights in TINY_MODEL.items():
        derivative = np.zeros_like(weights)
        for index in np.ndindex(weights.shape):
            for distance, weight in zip(STENCIL_DISTANCES, STENCIL_WEIGHTS):
                moved = weights.copy()
                moved[index] += distance * STEP
                if part == "input_to_hid":
                    derivative[index] += weight * tiny_loss(moved, hid_to_class)
                else:
                    derivative[index] += weight * tiny_loss(input_to_hid, moved)
        gradient[part] = derivative / STEP
    return gradient


def check_tiny_gradient(part, answer):
    """Exercise 1 c: the learner's hand-computed gradient of one layer of the tiny network."""
    __tracebackhide__ = True
    name = {"hid_to_class": "tiny_d_hid_to_class", "input_to_hid": "tiny_d_input_to_hid"}[part]
    expected = tiny_gradient()[part]
    try:
        values = np.asarray(answer, dtype=np.float64)
    except (TypeError, ValueError):
        raise AssertionError(f"{name} must be numbers in a nested list or an array, e.g. "
                             f"{np.zeros(expected.shape).tolist()}; it is {answer!r}.") from None
    if values.shape != expected.shape:
        hint = " It looks transposed." if values.shape == expected.shape[::-1] else ""
        raise AssertionError(f"{name} must have shape {expected.shape}, like the weights; it has "
                             f"shape {values.shape}.{hint} Write it as a nested list, one inner "
                             "list per row.")
    if not np.all(np.isfinite(values)):
        raise AssertionError(f"{name} contains NaN or infinity.")
    if np.allclose(values, expected, atol=TINY_TOLERANCE, rtol=0):
        return
    hints = []
    if np.allclose(values, -expected, atol=TINY_TOLERANCE, rtol=0):
        hints.append("The sign is flipped: the output error is y - t, not t - y.")
    h = float(expit(TINY_MODEL["input_to_hid"] @ TINY_DATA["inputs"])[0, 0])
    if part == "input_to_hid" and np.allclose(values, expected / (h * (1 - h)), atol=TINY_TOLERANCE, rtol=0):
        hints.append("The derivative of the logistic function, h (1 - h), is missing.")
    if not hints:
        hints.append("Compute h, then y, then y - t, and follow your formulas from 1 b step by "
                     "step; keep at least 4 decimals in every intermediate result.")
    raise AssertionError(f"{name} is not right yet (it should agree to 4 decimals). " + " ".join(hints))


# ---------------------------------------------------------------------------------------
# Exercise 2: the gradient


def _datas(datas):
    return load_data() if datas is None else datas


def check_gradient_keys_and_shapes(gradient_fn, datas=None):
    """The gradient is a dict with the model's keys and shapes (7 hidden units, 5 cases)."""
    __tracebackhide__ = True
    datas = _datas(datas)
    model = initial_model(7)
    gradient = _probe(gradient_fn, model, _cases(datas["train"], slice(0, 5)), 0.0)
    if not any(np.any(part) for part in gradient.values()):
        raise AssertionError("d_loss_by_d_model returns only zeros: it is not implemented yet. "
                             "Compute the gradient with your formulas from Exercise 1.")


def check_gradient_on_training_set(gradient_fn, datas=None):
    """The gradient tester on the whole training set, 10 hidden units, no weight decay."""
    __tracebackhide__ = True
    datas = _datas(datas)
    _check_against_tester(gradient_fn, initial_model(10), datas["train"], 0.0, datas,
                          "10 hidden units on the whole training set, no weight decay")


def check_training_loss(gradient_fn, datas=None):
    """Training with the gradient, as a2(0, 10, 30, 0.01, 0, False, 10), gives the reference loss."""
    __tracebackhide__ = True
    datas = _datas(datas)
    _probe(gradient_fn, initial_model(REFERENCE_RUN["n_hid"]), _cases(datas["train"], slice(0, 5)), 0.0)
    result = learner_code(
        lambda: train(gradient_fn, **REFERENCE_RUN, datas=datas, check_gradient=False))
    final = result.training_losses[-1]
    if abs(final - REFERENCE_TRAINING_LOSS) <= 1e-9 * REFERENCE_TRAINING_LOSS:
        return
    if abs(final - INITIAL_TRAINING_LOSS) < 1e-12:
        problem = ("After training with your gradient the training loss is still that of the "
                   f"untrained network ({final!r}): the gradient is zero.")
    else:
        problem = (f"After a2(0, 10, 30, 0.01, 0, False, 10) with your gradient the training "
                   f"loss is {final!r}, which is not the reference value.")
    _fail_with_diagnosis(problem, gradient_fn, datas, REFERENCE_RUN["mini_batch_size"])


def _typed_number(value, name):
    __tracebackhide__ = True
    if value is None or value is Ellipsis:
        raise AssertionError(f"Set {name} to a number.")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise AssertionError(f"{name} must be a number; it is the text {value!r}.") from None
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        raise AssertionError(f"{name} must be a number; it is a {type(value).__name__}.")
    return float(value)


def check_reported_training_loss(reported_training_loss):
    """The training loss the learner typed from the a2 report."""
    __tracebackhide__ = True
    value = _typed_number(reported_training_loss, "reported_training_loss")
    if abs(value - REFERENCE_TRAINING_LOSS) <= TYPED_NUMBER_TOLERANCE:
        return
    if abs(value - INITIAL_TRAINING_LOSS) <= TYPED_NUMBER_TOLERANCE:
        raise AssertionError("That is the loss of the untrained network: your gradient does not "
                             "change the weights yet. Fix d_loss_by_d_model, run a2 again and "
                             "report the training loss it prints.")
    raise AssertionError(f"{value!r} is not the training loss that a correct gradient gives. Make "
                         "sure the tests above pass, run a2(0, 10, 30, 0.01, 0, False, 10) again "
                         "and copy the loss on the training data with all its digits.")


def check_other_hidden_sizes(gradient_fn, datas=None):
    """Hidden test: the gradient tester with 7 and 23 hidden units."""
    __tracebackhide__ = True
    datas = _datas(datas)
    data = _cases(datas["train"], slice(0, 50))
    for n_hid in (7, 23):
        _check_against_tester(gradient_fn, initial_model(n_hid), data, 0.0, datas,
                              f"{n_hid} hidden units (not 10) and 50 cases")


def check_small_batches(gradient_fn, datas=None):
    """Hidden test: the gradient tester on mini-batches of 1 and 3 cases."""
    __tracebackhide__ = True
    datas = _datas(datas)
    for columns in (slice(17, 18), slice(40, 43)):
        m = columns.stop - columns.start
        _check_against_tester(gradient_fn, initial_model(10), _cases(datas["train"], columns), 0.0,
                              datas, f"a mini-batch of {m} case{'s' if m > 1 else ''}")


def check_weight_decay(gradient_fn, datas=None):
    """Hidden test: the gradient tester with weight decay 0.001 and 0.1."""
    __tracebackhide__ = True
    datas = _datas(datas)
    data = _cases(datas["train"], slice(100, 120))
    for wd_coefficient in (0.001, 0.1):
        _check_against_tester(gradient_fn, initial_model(10), data, wd_coefficient, datas,
                              f"weight decay {wd_coefficient} (20 cases)")


def _compare_all(gradient_fn, model, data, wd_coefficient, datas, what, parts=("hid_to_class", "input_to_hid")):
    __tracebackhide__ = True
    answer = _probe(gradient_fn, model, data, wd_coefficient)
    correct = numerical_gradient(model, data, wd_coefficient)
    for part in parts:
        difference = np.abs(answer[part] - correct[part])
        relative = difference / np.maximum(np.abs(answer[part]) + np.abs(correct[part]), 1e-300)
        bad = np.argwhere((difference > 1e-5) & (relative > 1e-5))
        if bad.size:
            row, column = (int(i) for i in bad[0])
            _fail_with_diagnosis(
                f"With {what}: {bad.shape[0]} of the {answer[part].size} elements of {part} differ "
                f"from the finite-difference gradient, e.g. [{row}, {column}]: yours "
                f"{answer[part][row, column]:.10g}, finite differences {correct[part][row, column]:.10g}.",
                gradient_fn, datas, data["inputs"].shape[1])


def check_whole_gradient(gradient_fn, datas=None):
    """Hidden test: every element of the gradient of a small model against finite differences."""
    __tracebackhide__ = True
    datas = _datas(datas)
    _compare_all(gradient_fn, _slightly_random_model(4), _cases(datas["train"], slice(200, 206)),
                 0.01, datas, "4 hidden units, 6 cases and weight decay 0.01, every element")


def check_not_transposed(gradient_fn, datas=None):
    """Hidden test: with 10 hidden units, hid_to_class (10 x 10) is not transposed."""
    __tracebackhide__ = True
    datas = _datas(datas)
    model = _slightly_random_model(10)
    # The file's labels cycle through 0..9; ten cases starting at a multiple of ten have
    # an identity target matrix, which would hide a transposed target. Start elsewhere.
    data = _cases(datas["train"], slice(303, 313))
    answer = _probe(gradient_fn, model, data, 0.0)["hid_to_class"]
    correct = numerical_gradient(model, data, 0.0)["hid_to_class"]
    if _close(answer, correct.T) and not _close(answer, correct):
        raise AssertionError(
            "With 10 hidden units, your hid_to_class gradient is the transpose of the correct "
            "one. Its shape (10 x 10) is right only because n_hid = 10 equals the number of "
            "classes. Check the order of the factors: one row per output class, one column per "
            "hidden unit.")
    _compare_all(gradient_fn, model, data, 0.0, datas, "10 hidden units and 10 cases",
                 parts=("hid_to_class",))


class _TooManyEvaluations(BaseException):
    """Stops a numerical gradient early (a BaseException, so learner code does not catch it)."""


def _call_counter(function, counts):
    def counted(*args, **kwargs):
        counts[0] += 1
        if counts[0] > MAX_FORWARD_CALLS:
            raise _TooManyEvaluations()
        return function(*args, **kwargs)
    counted.__wrapped__ = function
    return counted


# A backpropagation gradient costs a few forward passes; a numerical one at least one per
# weight (2660 here). The limits sit far from both.
MAX_FORWARD_CALLS = 20
MAX_TIME_IN_FORWARD_PASSES = 200


def check_uses_backpropagation(gradient_fn, datas=None):
    """Hidden test: a right gradient, computed by backpropagation, not by finite differences.

    First the gradient tester (10 hidden units, 10 cases); then counts the calls of ``loss``
    and ``forward_pass`` during one gradient computation, and compares its time with that
    of one forward pass.
    """
    __tracebackhide__ = True
    datas = _datas(datas)
    import course_utils  # the names through which learners' code calls the network

    from . import network

    model = initial_model(10)
    data = datas["train"]
    message = ("d_loss_by_d_model must compute the gradient by backpropagation (your formulas "
               "from Exercise 1), not by finite differences, which are far slower and only "
               "approximate. {}")
    counts = [0]
    patched = []
    for namespace in (getattr(gradient_fn, "__globals__", {}), network.__dict__, course_utils.__dict__):
        for name in ("loss", "forward_pass"):
            original = namespace.get(name)
            if callable(original):
                patched.append((namespace, name, original))
                namespace[name] = _call_counter(original, counts)
    try:
        learner_code(gradient_fn, model, _cases(data, slice(503, 513)), 0.0)
    except _TooManyEvaluations:
        raise AssertionError(message.format(
            f"It evaluated the network more than {MAX_FORWARD_CALLS} times for one gradient.")) from None
    finally:
        for namespace, name, original in reversed(patched):
            namespace[name] = original
    _check_against_tester(gradient_fn, model, _cases(data, slice(503, 513)), 0.0, datas,
                          "10 hidden units and 10 cases")
    forward_time = min(_timed(forward_pass, model, data) for _ in range(5))
    limit = MAX_TIME_IN_FORWARD_PASSES * forward_time
    gradient_time = _timed(learner_code, gradient_fn, model, data, 0.0)
    if gradient_time > limit:  # retry: a busy machine can slow any single call down
        gradient_time = min(gradient_time, *(_timed(learner_code, gradient_fn, model, data, 0.0)
                                             for _ in range(2)))
    if gradient_time > limit:
        raise AssertionError(message.format(
            f"One gradient took as long as {gradient_time / forward_time:.0f} forward passes."))


def _timed(function, *args):
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------
# Exercise 3: learning rate and momentum


def best_learning_rate(momentum_multiplier):
    """The learning rate with the lowest reference final training loss for a momentum."""
    rates = [rate for rate, momentum in SWEEP_FINAL_TRAINING_LOSSES if momentum == momentum_multiplier]
    return min(rates, key=lambda rate: SWEEP_FINAL_TRAINING_LOSSES[rate, momentum_multiplier])


def check_best_learning_rate(answer, momentum_multiplier):
    """Exercise 3 a: the learning rate with the lowest final training loss."""
    __tracebackhide__ = True
    which = "without momentum" if momentum_multiplier == 0 else f"with momentum {momentum_multiplier}"
    name = "best_rate_without_momentum" if momentum_multiplier == 0 else "best_rate_with_momentum"
    value = _typed_number(answer, name)
    rates = sorted({rate for rate, _ in SWEEP_FINAL_TRAINING_LOSSES})
    if not any(np.isclose(value, rate) for rate in rates):
        raise AssertionError(f"{name} must be one of the learning rates tried, {rates}; it is {value!r}.")
    expected = best_learning_rate(momentum_multiplier)
    if np.isclose(value, expected):
        return
    other = best_learning_rate(0.9 if momentum_multiplier == 0 else 0.0)
    hint = (" That is the best rate for the other setting of momentum." if np.isclose(value, other)
            else "")
    raise AssertionError(f"{value!r} is not the learning rate with the lowest final training loss "
                         f"{which}.{hint} Compare the final training losses in the plot "
                         "(left panel) or in final_training_loss.")


# ---------------------------------------------------------------------------------------
# Part 4: generalization


def _choice(answer, name, choices):
    __tracebackhide__ = True
    value = _typed_number(answer, name)
    matches = [choice for choice in choices if np.isclose(value, choice, rtol=1e-9, atol=0)]
    if not matches:
        raise AssertionError(f"{name} must be one of {list(choices)}; it is {answer!r}.")
    return matches[0]


def check_early_stopping_iteration(early_stopping_iteration):
    """4 a: the iteration with the lowest validation loss in the big run."""
    __tracebackhide__ = True
    value = _typed_number(early_stopping_iteration, "early_stopping_iteration")
    if value == EARLY_STOPPING_ITERATION:
        return
    if value == GENERALIZATION_RUN["n_iters"]:
        raise AssertionError("That is the last iteration. Early stopping keeps the iteration with the "
                             "lowest validation loss: read it from the report or big_run.best_iteration.")
    raise AssertionError(f"{value!r} is not the iteration with the lowest validation loss of "
                         "a2(0, 200, 1000, 0.35, 0.9, True, 100). Read it from the first line of the "
                         "report, or use big_run.best_iteration.")


def check_validation_loss_without_early_stopping(validation_loss_without_early_stopping):
    """4 a: the validation loss after the last iteration of the big run."""
    __tracebackhide__ = True
    value = _typed_number(validation_loss_without_early_stopping, "validation_loss_without_early_stopping")
    if abs(value - VALIDATION_LOSS_WITHOUT_EARLY_STOPPING) <= TYPED_NUMBER_TOLERANCE:
        return
    raise AssertionError(f"{value!r} is not the validation loss after the last of the 1000 iterations. "
                         "The report describes the early-stopped model; the last iteration's "
                         "validation loss is big_run.validation_losses[-1].")


def best_wd_coefficient():
    """The weight decay coefficient with the lowest reference validation classification loss."""
    return min(WD_VALIDATION_CLASSIFICATION_LOSSES, key=WD_VALIDATION_CLASSIFICATION_LOSSES.get)


def check_best_wd_coefficient(answer):
    """4 b: the weight decay coefficient with the lowest validation classification loss."""
    __tracebackhide__ = True
    value = _choice(answer, "best_wd_coefficient", list(WD_VALIDATION_CLASSIFICATION_LOSSES))
    if value == best_wd_coefficient():
        return
    raise AssertionError(f"{answer!r} is not the weight decay coefficient with the lowest validation "
                         "classification loss. Compare the classification loss (without the weight "
                         "decay term), not the loss, in the printed table.")


def best_n_hid(early_stopping):
    """The hidden-layer size with the lowest reference validation loss, without or with early stopping."""
    column = 1 if early_stopping else 0
    return min(HIDDEN_SIZE_VALIDATION_LOSSES, key=lambda n_hid: HIDDEN_SIZE_VALIDATION_LOSSES[n_hid][column])


def check_best_n_hid(answer, early_stopping):
    """4 c: the number of hidden units with the lowest validation loss."""
    __tracebackhide__ = True
    name = f"best_n_hid_{'with' if early_stopping else 'without'}_early_stopping"
    value = _choice(answer, name, list(HIDDEN_SIZE_VALIDATION_LOSSES))
    if value == best_n_hid(early_stopping):
        return
    which = ("the lowest validation loss of each run (early stopping)" if early_stopping
             else "the validation loss after the last iteration of each run")
    raise AssertionError(f"{answer!r} is not the size with the lowest validation loss when you compare "
                         f"{which}. Look at the matching line of the plot.")
