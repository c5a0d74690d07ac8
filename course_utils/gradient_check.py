"""The finite-difference gradient tester of the original assignment.

It compares 100 elements of the gradient that a ``gradient_fn`` (the learner's
``d_loss_by_d_model``) returns with an 8-point central finite difference of ``loss``.
"""

from dataclasses import dataclass

import numpy as np

from .network import (
    N_CLASSES,
    N_INPUTS,
    check_data,
    check_model,
    cross_entropy,
    log_softmax,
    logistic,
    model_to_theta,
)

STEP = 1e-2
# The 8-point central stencil of the original tester: (distance in steps, weight) pairs.
STENCIL = (
    (-4, 1 / 280), (-3, -4 / 105), (-2, 1 / 5), (-1, -4 / 5),
    (1, 4 / 5), (2, -1 / 5), (3, 4 / 105), (4, -1 / 280),
)
CORRECTNESS_THRESHOLD = 1e-5
# A prime spreads the checked indices over the matrix in a random-looking way.
BIG_PRIME = 1299721
PARTS = ("input_to_hid", "hid_to_class")

PASS_MESSAGE = (
    "Gradient test passed. That means that the gradient that your code computed is within "
    "0.001% of the gradient that the finite difference approximation computed, so the "
    "gradient calculation procedure is probably correct (not certain, but probably)."
)

HINTS = {
    "hid_to_class": (
        "Look at the hid_to_class part of your d_loss_by_d_model: it is the easier one, "
        "from the output error (class_prob - target) and the hidden outputs. Compare it "
        "with your pen-and-paper answer of Exercise 1: the shape (10 x n_hid), the "
        "average over the m cases and the weight-decay term."
    ),
    "input_to_hid": (
        "The hid_to_class part passed; look at the input_to_hid part of your "
        "d_loss_by_d_model: the error sent back through hid_to_class, the derivative of "
        "the logistic function, the average over the m cases and the weight-decay term."
    ),
}


class GradientCheckError(AssertionError):
    """A gradient failed the test; the message says what was wrong and where to look.

    Attributes
    ----------
    kind : str
        ``'type'``, ``'keys'``, ``'shape'``, ``'nonfinite'`` or ``'mismatch'``.
    part : str or None
        ``'input_to_hid'`` or ``'hid_to_class'`` when one part is at fault.
    index : tuple (row, column) or None
        The failing element within ``part``.
    analytic, numeric : float or None
        The returned gradient and the finite-difference value of that element.
    """

    def __init__(self, message, kind, part=None, index=None, analytic=None, numeric=None):
        super().__init__(message)
        self.kind = kind
        self.part = part
        self.index = index
        self.analytic = analytic
        self.numeric = numeric


@dataclass
class GradientReport:
    """What a passed gradient test measured."""

    checked: int
    largest_absolute_difference: float
    largest_relative_difference: float
    """Over the elements whose absolute difference exceeds the threshold (0.0 if none)."""

    def __str__(self):
        return (
            f"Checked {self.checked} gradient elements; largest absolute difference "
            f"{self.largest_absolute_difference:.3g}, largest relative difference "
            f"{self.largest_relative_difference:.3g}."
        )


def indices_to_check(n_hid):
    """Theta indices the tester checks: 20 of ``hid_to_class``, then 80 of ``input_to_hid``.

    ``hid_to_class`` comes first because it is the easier part to get right.
    """
    input_to_hid_size = N_INPUTS * n_hid
    hid_to_class_size = N_CLASSES * n_hid
    hid_to_class = np.mod(BIG_PRIME * np.arange(1, 21), hid_to_class_size) + input_to_hid_size
    input_to_hid = np.mod(BIG_PRIME * np.arange(1, 81), input_to_hid_size)
    return np.concatenate([hid_to_class, input_to_hid])


def locate(theta_index, n_hid):
    """Map a theta index to ``(part, (row, column))`` of the model (column-major layout)."""
    input_to_hid_size = N_INPUTS * n_hid
    if theta_index < input_to_hid_size:
        return "input_to_hid", (int(theta_index % n_hid), int(theta_index // n_hid))
    local = theta_index - input_to_hid_size
    return "hid_to_class", (int(local % N_CLASSES), int(local // N_CLASSES))


def central_difference(loss_at, step=STEP):
    """The derivative at offset 0 by the 8-point central stencil: ``sum_d w_d loss_at(d h) / h``.

    This is the one place the stencil is applied; the tester and the graded checks use it.

    Parameters
    ----------
    loss_at : callable
        ``loss_at(offset)`` is the loss with the weight(s) being differentiated moved by
        ``offset`` (a float); it may return a float or an array of any shape (many weights
        at once, each moved by ``offset`` in its own evaluation).
    step : float, ``h``

    Returns
    -------
    float or array shaped like ``loss_at``'s result
    """
    total = 0.0
    for distance, weight in STENCIL:
        total = total + weight * loss_at(distance * step)
    return total / step


def finite_difference_gradient(model, data, wd_coefficient, theta_indices=None):
    """Numerical derivative of ``loss`` with the 8-point central stencil (step 1e-2).

    For theta element ``i`` this is ``central_difference`` of ``loss(theta + offset * e_i)``.

    Parameters
    ----------
    model : dict, the point where the derivative is taken
    data : dict, a data split (``inputs`` (256, m), ``target`` (10, m))
    wd_coefficient : float
    theta_indices : sequence of int, optional
        Elements of ``theta = model_to_theta(model)`` to differentiate; all if omitted.

    Returns
    -------
    array of shape (len(theta_indices),)
    """
    check_model(model)
    check_data(data)
    input_to_hid, hid_to_class = model["input_to_hid"], model["hid_to_class"]
    inputs, target = data["inputs"], data["target"]
    n_hid = input_to_hid.shape[0]
    theta = model_to_theta(model)
    squared_norm = np.sum(theta**2)
    # Changing one weight changes one row of hid_input (input_to_hid) or of class_input
    # (hid_to_class); recomputing only that row instead of the whole forward pass makes
    # each loss evaluation O(10 m) instead of O(256 n_hid m).
    hid_input = input_to_hid @ inputs
    hid_output = logistic(hid_input)
    class_input = hid_to_class @ hid_output
    if theta_indices is None:
        theta_indices = range(theta.size)
    derivatives = []
    for theta_index in theta_indices:
        part, (row, column) = locate(theta_index, n_hid)
        value = theta[theta_index]

        def loss_at(offset):
            if part == "hid_to_class":
                perturbed = class_input.copy()
                perturbed[row] += offset * hid_output[column]
            else:
                new_hidden_row = logistic(hid_input[row] + offset * inputs[column])
                perturbed = class_input + np.outer(hid_to_class[:, row], new_hidden_row - hid_output[row])
            perturbed_norm = squared_norm - value**2 + (value + offset) ** 2
            return cross_entropy(log_softmax(perturbed), target) + perturbed_norm / 2 * wd_coefficient

        derivatives.append(central_difference(loss_at))
    return np.array(derivatives)


def check_gradient(model, data, wd_coefficient, gradient_fn):
    """Test ``gradient_fn(model, data, wd_coefficient)`` against finite differences.

    Checks, in this order, that the result is a dict with the model's keys, that each
    part has the model's shape, that it has no NaN or inf, and finally 100 elements
    (see ``indices_to_check``). An element fails when both the absolute difference and
    the relative difference ``|a - f| / (|a| + |f|)`` exceed 1e-5. Prints nothing.

    Returns
    -------
    GradientReport

    Raises
    ------
    GradientCheckError
        On the first problem found, with a message for the learner.
    """
    check_model(model)
    check_data(data)
    gradient = gradient_fn(model, data, wd_coefficient)
    check_gradient_structure(gradient, model)
    analytic_theta = model_to_theta(gradient)
    n_hid = model["input_to_hid"].shape[0]
    indices = indices_to_check(n_hid)
    numeric = finite_difference_gradient(model, data, wd_coefficient, indices)
    largest_absolute = largest_relative = 0.0
    for theta_index, numeric_here in zip(indices, numeric):
        analytic_here = float(analytic_theta[theta_index])
        difference = abs(analytic_here - numeric_here)
        relative = difference / (abs(analytic_here) + abs(numeric_here)) if difference else 0.0
        if difference > CORRECTNESS_THRESHOLD and relative > CORRECTNESS_THRESHOLD:
            part, index = locate(theta_index, n_hid)
            raise GradientCheckError(
                f"Gradient test failed for {part}[{index[0]}, {index[1]}] (theta element "
                f"#{theta_index}, whose value is {model_to_theta(model)[theta_index]:.6g}): "
                f"your d_loss_by_d_model gives {analytic_here:.10g} but the finite-difference "
                f"approximation gives {numeric_here:.10g}. That looks like an error. "
                f"{HINTS[part]}",
                kind="mismatch",
                part=part,
                index=index,
                analytic=analytic_here,
                numeric=float(numeric_here),
            )
        largest_absolute = max(largest_absolute, difference)
        if difference > CORRECTNESS_THRESHOLD:
            # Only here does the relative difference decide; for values near zero it is noise.
            largest_relative = max(largest_relative, relative)
    return GradientReport(len(indices), float(largest_absolute), float(largest_relative))


def check_gradient_structure(gradient, model):
    """Raise GradientCheckError unless ``gradient`` is a finite dict shaped like ``model``."""
    if not isinstance(gradient, dict):
        hint = (
            " Did you forget the return statement?"
            if gradient is None
            else " Return a dict like {'input_to_hid': ..., 'hid_to_class': ...}."
        )
        raise GradientCheckError(
            f"d_loss_by_d_model must return a dict shaped like the model; it returned "
            f"{type(gradient).__name__}.{hint}",
            kind="type",
        )
    if set(gradient) != set(PARTS):
        raise GradientCheckError(
            f"d_loss_by_d_model must return a dict with exactly the keys 'input_to_hid' and "
            f"'hid_to_class', like the model; it returned the keys {sorted(map(str, gradient))}.",
            kind="keys",
        )
    for part in PARTS:
        expected = np.shape(model[part])
        try:
            got = np.asarray(gradient[part], dtype=np.float64).shape
        except (TypeError, ValueError):
            raise GradientCheckError(
                f"The gradient's {part} must be an array of numbers shaped like "
                f"model['{part}']; it is a {type(gradient[part]).__name__} that cannot be "
                "turned into one.",
                kind="type",
                part=part,
            ) from None
        if got != expected:
            hint = (
                " It looks transposed." if got == expected[::-1] else ""
            )
            raise GradientCheckError(
                f"The gradient's {part} has shape {got} but must have the shape of "
                f"model['{part}'], {expected}.{hint}",
                kind="shape",
                part=part,
            )
    for part in PARTS:
        values = np.asarray(gradient[part], dtype=np.float64)
        # Checked on every training iteration: the cheap test first, the search only on failure.
        if not np.isfinite(values).all():
            bad = np.argwhere(~np.isfinite(values))
            row, column = (int(i) for i in bad[0])
            raise GradientCheckError(
                f"Your gradient computation produced a NaN or infinity in {part} (first at "
                f"[{row}, {column}], {bad.shape[0]} elements in all). That is an error: look "
                f"for a division by zero or an overflowing exp in d_loss_by_d_model.",
                kind="nonfinite",
                part=part,
                index=(row, column),
            )


def test_gradient(model, data, wd_coefficient, gradient_fn):
    """Like ``check_gradient``, and print the pass message (the notebook's tester).

    Returns
    -------
    GradientReport
    """
    report = check_gradient(model, data, wd_coefficient, gradient_fn)
    print(PASS_MESSAGE)
    print(report)
    return report


# pytest would collect ``test_gradient`` from test modules that import it.
test_gradient.__test__ = False
