"""The notebooks' checkers: reference values from real training, and the mistake diagnosis."""

import sys
from pathlib import Path

import numpy as np
import pytest

import course_utils
from course_utils import checks
from course_utils.notebook_code import learner_namespace

pytestmark = pytest.mark.fast  # no nbgrader run, no browser

SUBMISSIONS = Path(__file__).resolve().parent.parent / "demo" / "submissions"


def answer(file_name):
    """The ``d_loss_by_d_model`` of an example answer file, in a notebook-like namespace."""
    namespace = learner_namespace()
    exec(compile((SUBMISSIONS / file_name).read_text(), file_name, "exec"), namespace)
    return namespace["d_loss_by_d_model"]


def test_reference_training_loss_comes_from_real_training(solution, datas):
    result = course_utils.train(solution, **checks.REFERENCE_RUN, datas=datas, check_gradient=False)
    assert result.training_losses[-1] == pytest.approx(checks.REFERENCE_TRAINING_LOSS, rel=1e-12)
    assert course_utils.loss(course_utils.initial_model(10), datas["train"], 0) == pytest.approx(
        checks.INITIAL_TRAINING_LOSS, rel=1e-12)


def test_sweep_reference_comes_from_real_training(solution, datas):
    for (rate, momentum), expected in checks.SWEEP_FINAL_TRAINING_LOSSES.items():
        result = course_utils.train(solution, learning_rate=rate, momentum_multiplier=momentum,
                                    **checks.SWEEP_RUN, datas=datas, check_gradient=False)
        # Large learning rates are chaotic: agreement to about 1e-9, not bit for bit.
        assert result.training_losses[-1] == pytest.approx(expected, rel=1e-8), (rate, momentum)
    assert checks.best_learning_rate(0.0) == 1.0 and checks.best_learning_rate(0.9) == 0.2


def test_numerical_gradient_agrees_with_the_tester(datas):
    model = checks._slightly_random_model(6)
    data = checks._cases(datas["train"], slice(0, 7))
    fast = course_utils.model_to_theta(checks.numerical_gradient(model, data, 0.05))
    indices = course_utils.gradient_check.indices_to_check(6)
    slow = course_utils.finite_difference_gradient(model, data, 0.05, indices)
    np.testing.assert_allclose(fast[indices], slow, rtol=1e-7, atol=1e-12)


def test_tiny_gradient_matches_the_model_answer_by_hand():
    # Exercise 1 c by hand: h = 1/2, y = (e, 1) / (e + 1).
    y1 = np.e / (np.e + 1)
    gradient = checks.tiny_gradient()
    np.testing.assert_allclose(gradient["hid_to_class"], [[y1 / 2], [-y1 / 2]], atol=1e-9)
    np.testing.assert_allclose(gradient["input_to_hid"], [[y1 / 2, y1]], atol=1e-9)
    checks.check_tiny_gradient("hid_to_class", [[0.3655], [-0.3655]])
    with pytest.raises(AssertionError, match="sign is flipped"):
        checks.check_tiny_gradient("hid_to_class", [[-0.3655], [0.3655]])
    with pytest.raises(AssertionError, match="logistic function"):
        checks.check_tiny_gradient("input_to_hid", [[1.4621, 2.9242]])
    with pytest.raises(AssertionError, match="shape"):
        checks.check_tiny_gradient("input_to_hid", [[0.3655], [0.7311]])


@pytest.mark.parametrize("file_name, part, phrase", [
    ("transposed.py", "hid_to_class", "transpose"),
    ("missing_1_over_m.py", "hid_to_class", "5 times too large"),
    ("missing_1_over_m.py", "input_to_hid", "5 times too large"),
    ("flipped_sign.py", "input_to_hid", "sign is flipped"),
    ("missing_weight_decay.py", "input_to_hid", "weight decay term is missing"),
    ("doubled_weight_decay.py", "hid_to_class", "there twice"),
    ("missing_logistic_derivative.py", "input_to_hid", "logistic function is missing"),
])
def test_diagnosis_names_the_mistake_per_layer(datas, file_name, part, phrase):
    found = checks.diagnose_gradient(answer(file_name), datas)
    assert phrase in found[part]


def test_diagnosis_finds_nothing_wrong_in_correct_answers(solution, datas):
    for gradient_fn in (solution, answer("learner_style.py")):
        assert checks.diagnose_gradient(gradient_fn, datas) == {"hid_to_class": None, "input_to_hid": None}
    found = checks.diagnose_gradient(answer("missing_logistic_derivative.py"), datas)
    assert found["hid_to_class"] is None


@pytest.mark.parametrize("file_name, phrase", [
    ("wrong_keys.py", "exactly the keys"),
    ("wrong_shape.py", "It looks transposed"),
    ("nan_gradient.py", "NaN or infinity"),
    ("raises.py", "raised ValueError"),
    ("returns_zeros.py", "not implemented yet"),
])
def test_unusable_answers_get_a_clear_message(datas, file_name, phrase):
    with pytest.raises(AssertionError, match=phrase):
        checks.check_gradient_keys_and_shapes(answer(file_name), datas)


def test_not_implemented_stub(datas):
    def d_loss_by_d_model(model, data, wd_coefficient):
        raise NotImplementedError("Not implemented yet: write your code in this cell.")

    with pytest.raises(AssertionError, match="not implemented yet"):
        checks.check_gradient_on_training_set(d_loss_by_d_model, datas)


def test_correct_answers_pass_every_check(solution, datas):
    for gradient_fn in (solution, answer("learner_style.py")):
        checks.check_gradient_keys_and_shapes(gradient_fn, datas)
        checks.check_gradient_on_training_set(gradient_fn, datas)
        checks.check_other_hidden_sizes(gradient_fn, datas)
        checks.check_small_batches(gradient_fn, datas)
        checks.check_weight_decay(gradient_fn, datas)
        checks.check_whole_gradient(gradient_fn, datas)
        checks.check_not_transposed(gradient_fn, datas)
        checks.check_uses_backpropagation(gradient_fn, datas)


def test_a_numerical_gradient_is_not_accepted(solution, datas):
    namespace = learner_namespace()
    namespace["finite_difference_gradient"] = course_utils.finite_difference_gradient
    exec("def d_loss_by_d_model(model, data, wd_coefficient):\n"
         "    return theta_to_model(finite_difference_gradient(model, data, wd_coefficient))\n",
         namespace)
    # It gives the right numbers, yet not by backpropagation.
    with pytest.raises(AssertionError, match="by backpropagation"):
        checks.check_uses_backpropagation(namespace["d_loss_by_d_model"], datas)


def test_the_transposition_trap_with_ten_hidden_units(datas):
    transposed = answer("transposed.py")
    with pytest.raises(AssertionError, match="transpose of the correct one"):
        checks.check_not_transposed(transposed, datas)


def test_a_transposed_target_is_caught_on_ten_cases(datas):
    # raises.py subtracts target.T; with ten cases in label order 0..9 the target matrix is
    # the identity and the mistake would be invisible.
    gradient = answer("raises.py")
    with pytest.raises(AssertionError):
        checks.check_not_transposed(gradient, datas)
    with pytest.raises(AssertionError):
        checks.check_uses_backpropagation(gradient, datas)


def test_an_error_inside_numpy_is_placed_on_the_learners_line(datas):
    def d_loss_by_d_model(model, data, wd_coefficient):
        # np.hstack raises from NumPy's own Python code, one frame deeper than this line.
        return {"input_to_hid": np.hstack([model["input_to_hid"], data["inputs"]])}

    line = d_loss_by_d_model.__code__.co_firstlineno + 2
    with pytest.raises(AssertionError, match=f"line {line} of your code: return"):
        checks.check_gradient_on_training_set(d_loss_by_d_model, datas)


def test_learner_output_on_stderr_is_swallowed(capfd, datas):
    noisy = answer("noisy_stderr.py")
    checks.check_gradient_on_training_set(noisy, datas)
    checks.check_weight_decay(noisy, datas)
    with pytest.raises(AssertionError):
        checks.check_gradient_on_training_set(answer("nan_gradient.py"), datas)
    captured = capfd.readouterr()
    assert captured.err == ""


def test_typed_answers():
    checks.check_reported_training_loss(2.301907)
    checks.check_reported_training_loss("2.301906765216956")
    with pytest.raises(AssertionError, match="untrained network"):
        checks.check_reported_training_loss(2.302642)
    with pytest.raises(AssertionError, match="a number"):
        checks.check_reported_training_loss(None)
    with pytest.raises(AssertionError, match="one of the learning rates"):
        checks.check_best_learning_rate(0.3, momentum_multiplier=0.0)
    with pytest.raises(AssertionError, match="other setting of momentum"):
        checks.check_best_learning_rate(checks.best_learning_rate(0.9), momentum_multiplier=0.0)
    checks.check_best_wd_coefficient(0.001)
    with pytest.raises(AssertionError, match="classification loss"):
        checks.check_best_wd_coefficient(0.0001)
    with pytest.raises(AssertionError, match="last iteration"):
        checks.check_early_stopping_iteration(1000)
