"""The network's math: layout, forward pass, loss, and the errors at the public boundary."""

import warnings

import numpy as np
import pytest

from course_utils import (
    classification_performance,
    cross_entropy,
    forward_pass,
    initial_model,
    log_softmax,
    log_sum_exp_over_rows,
    logistic,
    loss,
    model_to_theta,
    theta_to_model,
    weight_decay_loss,
)

pytestmark = pytest.mark.fast  # no nbgrader run, no browser

INITIAL_TRAINING_LOSS = 2.30264159691321  # assignment.md, n_hid = 10


@pytest.mark.parametrize("n_hid", [1, 7, 10, 37, 200])
def test_theta_model_round_trips_are_exact(n_hid):
    theta = np.random.default_rng(n_hid).standard_normal(266 * n_hid)
    model = theta_to_model(theta)
    assert model["input_to_hid"].shape == (n_hid, 256)
    assert model["hid_to_class"].shape == (10, n_hid)
    np.testing.assert_array_equal(model_to_theta(model), theta)
    again = theta_to_model(model_to_theta(model))
    for part in model:
        np.testing.assert_array_equal(again[part], model[part])


def test_layout_is_column_major():
    n_hid = 3
    model = theta_to_model(np.arange(266.0 * n_hid))
    # Going down a column first: element (1, 0) follows (0, 0).
    assert model["input_to_hid"][1, 0] == 1
    assert model["input_to_hid"][0, 1] == n_hid
    assert model["hid_to_class"][0, 0] == 256 * n_hid
    assert model["hid_to_class"][1, 0] == 256 * n_hid + 1


def test_initial_model_is_the_cosine_model():
    model = initial_model(4)
    np.testing.assert_array_equal(model_to_theta(model), 0.1 * np.cos(np.arange(266 * 4)))


def test_initial_loss_is_the_reference(datas):
    assert loss(initial_model(10), datas["train"], 0) == pytest.approx(INITIAL_TRAINING_LOSS, abs=1e-13)


def test_weight_decay_adds_half_the_squared_norm(datas):
    model = initial_model(10)
    theta = model_to_theta(model)
    difference = loss(model, datas["train"], 0.3) - loss(model, datas["train"], 0)
    assert difference == pytest.approx(0.3 / 2 * np.sum(theta**2), rel=1e-12)


def test_logistic_is_accurate_and_silent_at_any_input():
    x = np.array([-1e6, -800.0, -40.0, 0.0, 3.0, 800.0, 1e6])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            y = logistic(x)
    assert y[0] == 0 and y[-1] == 1 and y[3] == 0.5
    assert y[4] == pytest.approx(1 / (1 + np.exp(-3.0)), rel=1e-15)
    assert y[2] == pytest.approx(np.exp(-40.0), rel=1e-12)


def test_log_sum_exp_over_rows_is_stable():
    a = np.array([[1000.0, -1000.0, 0.0], [1000.0, -1001.0, np.log(3.0)]])
    result = log_sum_exp_over_rows(a)
    assert result.shape == (3,)
    np.testing.assert_allclose(result, [1000 + np.log(2), -1000 + np.log1p(np.exp(-1)), np.log(4)])


def test_forward_pass_shapes_and_probabilities(datas):
    n_hid = 7
    outputs = forward_pass(initial_model(n_hid), datas["val"])
    shapes = [(n_hid, 1000), (n_hid, 1000), (10, 1000), (10, 1000), (10, 1000)]
    assert [output.shape for output in outputs] == shapes
    hid_input, hid_output, class_input, log_class_prob, class_prob = outputs
    np.testing.assert_allclose(hid_output, 1 / (1 + np.exp(-hid_input)), rtol=1e-15)
    np.testing.assert_allclose(class_prob.sum(axis=0), 1, rtol=1e-14)
    np.testing.assert_allclose(np.exp(log_class_prob), class_prob)


def test_classification_performance_is_the_error_rate(datas):
    model = initial_model(10)
    class_input = forward_pass(model, datas["test"])[2]
    wrong = np.argmax(class_input, 0) != np.argmax(datas["test"]["target"], 0)
    assert classification_performance(model, datas["test"]) == wrong.mean()
    assert 0 < wrong.mean() < 1


@pytest.mark.parametrize(
    "model, message",
    [
        ({"input_to_hid": np.zeros((5, 256))}, "keys 'input_to_hid' and 'hid_to_class'"),
        ({"input_to_hid": np.zeros((256, 5)), "hid_to_class": np.zeros((10, 5))},
         "model['input_to_hid'] must have shape (n_hid, 256); got (256, 5)"),
        ({"input_to_hid": np.zeros((5, 256)), "hid_to_class": np.zeros((5, 10))},
         "model['hid_to_class'] must have shape (10, n_hid) = (10, 5); got (5, 10)"),
    ],
)
def test_bad_models_get_clear_errors(datas, model, message):
    with pytest.raises(ValueError) as error:
        forward_pass(model, datas["train"])
    assert message in str(error.value)


def test_bad_data_gets_a_clear_error(datas):
    with pytest.raises(ValueError, match=r"data\['inputs'\] must have shape \(256, m\); got \(1000, 256\)"):
        loss(initial_model(3), {"inputs": datas["train"]["inputs"].T, "target": datas["train"]["target"]}, 0)
    with pytest.raises(ValueError, match=r"e\.g\. datas\['train'\]"):
        loss(initial_model(3), datas, 0)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_initial_model_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="n_hid must be a positive integer"):
        initial_model(bad)


def test_theta_to_model_rejects_wrong_lengths():
    with pytest.raises(ValueError, match=r"multiple of 266"):
        theta_to_model(np.zeros(267))


def original_logistic(x):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def test_logistic_is_the_original_formula_and_works_in_place():
    x = np.random.default_rng(0).normal(scale=30, size=(40, 50))
    expected = original_logistic(x)
    np.testing.assert_allclose(logistic(x), expected, rtol=0, atol=1e-12)
    buffer = x.copy()
    assert logistic(buffer, out=buffer) is buffer
    np.testing.assert_array_equal(buffer, logistic(x))
    assert logistic(0) == 0.5 and isinstance(logistic(0), float)


def test_cross_entropy_is_the_original_loss(datas):
    model = theta_to_model(np.random.default_rng(1).normal(scale=0.2, size=266 * 8))
    data = datas["val"]
    hid_output = original_logistic(model["input_to_hid"] @ data["inputs"])
    class_input = model["hid_to_class"] @ hid_output
    log_class_prob = class_input - log_sum_exp_over_rows(class_input)
    original = -np.mean(np.sum(log_class_prob * data["target"], 0))
    assert abs(cross_entropy(log_softmax(class_input), data["target"]) - original) < 1e-12
    theta = model_to_theta(model)
    original_with_decay = original + np.sum(theta**2) / 2 * 0.01
    assert abs(loss(model, data, 0.01) - original_with_decay) < 1e-12
    assert weight_decay_loss(theta, 0.01) == pytest.approx(np.sum(theta**2) / 2 * 0.01, rel=1e-13)


def test_cross_entropy_of_a_stack_is_each_one():
    rng = np.random.default_rng(2)
    stack = rng.normal(size=(3, 4, 10, 6))
    target = np.eye(10)[:, rng.integers(0, 10, size=6)]
    losses = cross_entropy(log_softmax(stack), target)
    assert losses.shape == (3, 4)
    assert losses[2, 1] == pytest.approx(cross_entropy(log_softmax(stack[2, 1]), target), rel=1e-14)


def test_logistic_of_negated_gives_the_same_numbers():
    from course_utils.network import logistic_of_negated

    x = np.random.default_rng(4).normal(scale=50, size=(7, 9))
    np.testing.assert_array_equal(logistic_of_negated(-x), logistic(x))


def test_target_log_prob_is_cross_entropys_numbers(datas):
    from course_utils.network import cross_entropy_of_cases, target_log_prob

    data = datas["train"]
    for scale in (0.1, 3.0, 40.0):  # up to class inputs of hundreds: softmax's lopsided cases
        model = theta_to_model(np.random.default_rng(5).normal(scale=scale, size=266 * 30))
        class_input = forward_pass(model, data)[2]
        log_prob = target_log_prob(class_input, np.argmax(data["target"], axis=0))
        np.testing.assert_array_equal(log_prob, np.sum(log_softmax(class_input) * data["target"], axis=0))
        assert cross_entropy_of_cases(log_prob) == cross_entropy(log_softmax(class_input), data["target"])
