"""The finite-difference gradient tester: it passes correct gradients and names what is wrong."""

import numpy as np
import pytest

from course_utils import (
    GradientCheckError,
    check_gradient,
    finite_difference_gradient,
    initial_model,
    loss,
    model_to_theta,
    test_gradient,
    theta_to_model,
)
from course_utils.gradient_check import PASS_MESSAGE, indices_to_check, locate

pytestmark = pytest.mark.fast  # no nbgrader run, no browser


def mini_batch(datas, size):
    return {key: datas["train"][key][:, 100 : 100 + size] for key in ("inputs", "target")}


@pytest.mark.parametrize("n_hid", [10, 7])
@pytest.mark.parametrize("wd_coefficient", [0, 0.01])
@pytest.mark.parametrize("batch_size", [None, 10])
def test_the_solution_passes(datas, solution, n_hid, wd_coefficient, batch_size):
    data = datas["train"] if batch_size is None else mini_batch(datas, batch_size)
    report = check_gradient(initial_model(n_hid), data, wd_coefficient, solution)
    assert report.checked == 100
    assert report.largest_absolute_difference < 1e-9
    assert report.largest_relative_difference < 1e-5


def test_test_gradient_prints_the_pass_message_and_returns_the_report(datas, solution, capsys):
    report = test_gradient(initial_model(10), datas["train"], 0, solution)
    out, err = capsys.readouterr()
    assert PASS_MESSAGE in out and "0.001%" in out and "%%" not in out
    assert str(report) in out
    assert err == ""


def test_checked_indices_are_the_originals():
    indices = indices_to_check(10)
    assert len(indices) == 100
    # 20 of hid_to_class first (they follow the 2560 input_to_hid elements), then 80 of input_to_hid.
    assert all(index >= 2560 for index in indices[:20]) and all(index < 2560 for index in indices[20:])
    assert indices[0] == (1299721 * 1) % 100 + 2560
    assert indices[20] == 1299721 % 2560


def test_locate_inverts_the_column_major_layout():
    n_hid = 7
    model = theta_to_model(np.arange(266.0 * n_hid))
    for theta_index in [0, 5, 7, 1791, 1792, 1800, 1861]:
        part, (row, column) = locate(theta_index, n_hid)
        assert model[part][row, column] == theta_index


def test_finite_differences_match_the_solution_everywhere_on_a_small_model(datas, solution):
    model = initial_model(2)
    data = mini_batch(datas, 5)
    numeric = finite_difference_gradient(model, data, 0.1)
    analytic = model_to_theta(solution(model, data, 0.1))
    np.testing.assert_allclose(numeric, analytic, rtol=1e-7, atol=1e-10)


def direct_finite_difference(model, data, wd_coefficient, theta_index):
    """The stencil written out with a full ``loss`` evaluation per step, as in the original."""
    theta = model_to_theta(model)
    weights = [1 / 280, -4 / 105, 1 / 5, -4 / 5, 4 / 5, -1 / 5, 4 / 105, -1 / 280]
    total = 0.0
    for distance, weight in zip([-4, -3, -2, -1, 1, 2, 3, 4], weights):
        step = np.zeros_like(theta)
        step[theta_index] = 1e-2
        total += loss(theta_to_model(theta + step * distance), data, wd_coefficient) * weight
    return total / 1e-2


@pytest.mark.parametrize("n_hid, wd_coefficient", [(10, 0), (7, 0.05)])
def test_finite_differences_equal_the_direct_stencil(datas, n_hid, wd_coefficient):
    rng = np.random.default_rng(n_hid)
    model = theta_to_model(rng.normal(scale=0.3, size=266 * n_hid))
    indices = list(indices_to_check(n_hid)[::9]) + [0, 266 * n_hid - 1]
    fast = finite_difference_gradient(model, datas["val"], wd_coefficient, indices)
    direct = [direct_finite_difference(model, datas["val"], wd_coefficient, i) for i in indices]
    np.testing.assert_allclose(fast, direct, rtol=1e-9, atol=1e-12)
    assert np.max(np.abs(fast)) > 1e-3  # not trivially zero


def broken(solution, change):
    def gradient_fn(model, data, wd_coefficient):
        return change(solution(model, data, wd_coefficient), model, data, wd_coefficient)

    return gradient_fn


def cases(data):
    return data["inputs"].shape[1]


MISTAKES = {
    "transposed hid_to_class": (
        lambda g, model, data, wd: {**g, "hid_to_class": g["hid_to_class"].T}, "hid_to_class"),
    "missing 1/m": (
        lambda g, model, data, wd: {part: (g[part] - wd * model[part]) * cases(data) + wd * model[part]
                                    for part in g}, "hid_to_class"),
    "missing 1/m in input_to_hid only": (
        lambda g, model, data, wd: {**g, "input_to_hid": g["input_to_hid"] * cases(data)}, "input_to_hid"),
    "missing weight decay": (
        lambda g, model, data, wd: {part: g[part] - wd * model[part] for part in g}, "hid_to_class"),
    "flipped sign": (lambda g, model, data, wd: {part: -g[part] for part in g}, "hid_to_class"),
}


@pytest.mark.parametrize("mistake", MISTAKES)
def test_mistakes_fail_with_the_part_named(datas, solution, mistake):
    change, part = MISTAKES[mistake]
    wd_coefficient = 0.01
    with pytest.raises(GradientCheckError) as error:
        check_gradient(initial_model(10), datas["train"], wd_coefficient, broken(solution, change))
    assert error.value.kind == "mismatch"
    assert error.value.part == part
    message = str(error.value)
    assert f"Gradient test failed for {part}[" in message
    assert f"{error.value.analytic:.10g}" in message and f"{error.value.numeric:.10g}" in message
    assert abs(error.value.analytic - error.value.numeric) > 1e-5


def test_nan_is_reported_before_any_element_is_compared(datas, solution):
    def with_nan(g, model, data, wd):
        g["input_to_hid"][3, 4] = np.nan
        return g

    with pytest.raises(GradientCheckError, match="NaN or infinity in input_to_hid") as error:
        check_gradient(initial_model(10), datas["train"], 0, broken(solution, with_nan))
    assert (error.value.kind, error.value.part, error.value.index) == ("nonfinite", "input_to_hid", (3, 4))


@pytest.mark.parametrize(
    "returned, kind, text",
    [
        (None, "type", "Did you forget the return statement?"),
        ({"input_to_hid": 0}, "keys", "exactly the keys 'input_to_hid' and 'hid_to_class'"),
        ({"input_to_hid": [[1], [2, 3]], "hid_to_class": 0}, "type", "cannot be turned into one"),
        ({"input_to_hid": np.zeros((7, 256)), "hid_to_class": np.zeros((7, 10))}, "shape",
         "hid_to_class has shape (7, 10) but must have the shape of model['hid_to_class'], (10, 7). It looks transposed."),
    ],
)
def test_structure_problems_are_reported_first(datas, returned, kind, text):
    with pytest.raises(GradientCheckError) as error:
        check_gradient(initial_model(7), datas["train"], 0, lambda model, data, wd: returned)
    assert error.value.kind == kind
    assert text in str(error.value)


def test_failure_is_an_assertion_error_and_never_exits(datas):
    def zeros(model, data, wd):
        return {part: np.zeros_like(model[part]) for part in model}

    with pytest.raises(AssertionError):
        check_gradient(initial_model(10), datas["train"], 0, zeros)


def test_one_stencil_serves_the_tester_and_the_graded_checks():
    from course_utils import checks, diagnosis, gradient_check

    assert diagnosis.central_difference is gradient_check.central_difference
    assert not hasattr(checks, "_cross_entropy") and not hasattr(diagnosis, "_cross_entropy")
    # The 8-point stencil is exact for polynomials up to degree 8.
    derivative = gradient_check.central_difference(lambda offset: (0.3 + offset) ** 7)
    assert derivative == pytest.approx(7 * 0.3**6, rel=1e-10)
    # Array-valued losses: many derivatives at once.
    values = np.array([0.5, -1.0, 2.0])
    np.testing.assert_allclose(
        gradient_check.central_difference(lambda offset: np.sin(values + offset)), np.cos(values),
        rtol=1e-10)


def test_numerical_gradient_of_the_checks_agrees_with_the_tester(datas):
    from course_utils import diagnosis

    model = theta_to_model(np.random.default_rng(3).normal(scale=0.3, size=266 * 2))
    data = mini_batch(datas, 4)
    whole = model_to_theta(diagnosis.numerical_gradient(model, data, 0.05))
    np.testing.assert_allclose(whole, finite_difference_gradient(model, data, 0.05), rtol=1e-8, atol=1e-11)
