"""The training driver reproduces the assignment's reference numbers on the real data."""

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from course_utils import a2, format_report, initial_model, loss, model_to_theta, progress, theta_to_model, train

pytestmark = pytest.mark.fast  # no nbgrader run, no browser

REPORTED_TRAINING_LOSS = 2.301906765216956  # a2(0, 10, 30, 0.01, 0, False, 10)
INITIAL_TRAINING_LOSS = 2.30264159691321
MOMENTUM_RUN = {  # a2(0, 10, 30, 1.0, 0.9, False, 10)
    ("train", "loss"): 1.2970068723054315,
    ("val", "loss"): 1.348941780984258,
    ("test", "loss"): 1.3215141541942848,
    ("test", "error_rate"): 0.49044444444444446,
}


@pytest.fixture(params=[1, 2], ids=["1 BLAS thread", "2 BLAS threads"])
def threads(request):
    """Call train with BLAS on one thread or on two (train holds it to one while it runs)."""
    with threadpool_limits(limits=request.param, user_api="blas"):
        yield request.param


def zero_gradient(model, data, wd_coefficient):
    return {part: np.zeros_like(model[part]) for part in model}


def test_reference_training_loss(datas, solution, threads):
    result = train(solution, 0, 10, 30, 0.01, 0, False, 10, datas=datas)
    assert abs(result.metrics["train"]["loss"] - REPORTED_TRAINING_LOSS) < 1e-12
    assert len(result.training_losses) == len(result.validation_losses) == 30
    assert result.training_losses[-1] == pytest.approx(REPORTED_TRAINING_LOSS, abs=1e-12)
    assert result.best_iteration is None and not result.diverged
    assert len(result.gradient_checks) == 2


def test_momentum_run_reference_numbers(datas, solution):
    result = train(solution, 0, 10, 30, 1.0, 0.9, False, 10, datas=datas)
    for (split, name), expected in MOMENTUM_RUN.items():
        assert abs(result.metrics[split][name] - expected) < 1e-10, (split, name)


def test_a_zero_gradient_leaves_the_initial_loss(datas):
    result = train(zero_gradient, 0, 10, 30, 0.01, 0, False, 10, datas=datas, check_gradient=False)
    assert result.metrics["train"]["loss"] == pytest.approx(INITIAL_TRAINING_LOSS, abs=1e-13)
    assert result.training_losses == [result.training_losses[0]] * 30


def test_the_gradient_tester_runs_before_training(datas):
    with pytest.raises(AssertionError, match="Gradient test failed"):
        train(zero_gradient, 0, 10, 30, 0.01, 0, False, 10, datas=datas)


def test_the_model_trains_on_the_documented_mini_batches(datas):
    seen = []

    def recording(model, data, wd_coefficient):
        seen.append(data["inputs"][0, 0] if data["inputs"].shape[1] else None)
        seen.append(data["inputs"].shape[1])
        return zero_gradient(model, data, wd_coefficient)

    train(recording, 0, 3, 3, 0.1, 0, False, 400, datas=datas, check_gradient=False)
    inputs = datas["train"]["inputs"]
    # start = ((i - 1) * 400) mod 1000: 0, 400, 800; the last batch is cut at the end.
    assert seen == [inputs[0, 0], 400, inputs[0, 400], 400, inputs[0, 800], 200]


def test_early_stopping_keeps_the_best_validation_model(datas, solution):
    result = train(solution, 0, 10, 40, 5.0, 0.9, True, 10, datas=datas)
    best = int(np.argmin(result.validation_losses)) + 1
    assert result.best_iteration == best
    assert best < 40  # this chaotic run is worse at the end than at its best
    assert result.metrics["val"]["loss"] == pytest.approx(result.validation_losses[best - 1], abs=1e-12)
    assert "Early stopping: validation loss was lowest after" in format_report(result)


def test_weight_decay_reports_the_classification_loss(datas, solution):
    result = train(solution, 0.001, 10, 20, 0.5, 0.9, False, 10, datas=datas)
    metrics = result.metrics["train"]
    assert metrics["classification_loss"] == pytest.approx(loss(result.model, datas["train"], 0), abs=1e-15)
    assert metrics["loss"] > metrics["classification_loss"]
    assert "The classification loss (i.e. without weight decay) on the training data" in format_report(result)


@pytest.mark.parametrize("learning_rate", [5.0, 20.0])
def test_large_learning_rates_are_silent(datas, solution, capfd, learning_rate, threads):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = train(solution, 0, 10, 70, learning_rate, 0.9, False, 10, datas=datas)
    assert np.all(np.isfinite(result.training_losses))
    assert capfd.readouterr().err == ""


def test_a_gradient_of_nans_stops_as_diverged(datas, capfd, threads):
    def nan_later(model, data, wd_coefficient):
        return {part: np.full_like(model[part], np.inf) for part in model}

    with pytest.raises(AssertionError, match="NaN or infinity"):
        train(nan_later, 0, 10, 5, 0.1, 0, False, 10, datas=datas, check_gradient=False)
    assert capfd.readouterr().err == ""


def test_huge_steps_are_reported_as_divergence_without_warnings(datas, capfd, threads):
    def huge(model, data, wd_coefficient):
        return {part: np.full_like(model[part], -1e300) for part in model}

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = train(huge, 0, 4, 10, 1e10, 0.9, False, 10, datas=datas, check_gradient=False)
    assert result.diverged and len(result.training_losses) < 10
    assert "Training diverged" in format_report(result)
    assert capfd.readouterr().err == ""


def test_callback_sees_every_iteration_and_can_stop(datas, solution, threads):
    calls = []

    def callback(iteration, training_loss, validation_loss):
        calls.append((iteration, training_loss, validation_loss))
        return "stop" if iteration == 4 else None

    result = train(solution, 0, 10, 30, 0.01, 0, False, 10, datas=datas, callback=callback)
    assert result.stopped_early and len(result.training_losses) == 4
    assert calls == list(zip(range(1, 5), result.training_losses, result.validation_losses))


def test_two_threads_train_to_the_same_numbers_as_one(datas, solution):
    runs = {}
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            runs[threads] = train(solution, 0.001, 30, 40, 0.35, 0.9, True, 100, datas=datas,
                                  check_gradient=False)
    one, two = runs[1], runs[2]
    # train holds BLAS to one thread, so every number is the same to the bit.
    np.testing.assert_array_equal(model_to_theta(one.model), model_to_theta(two.model))
    assert one.metrics == two.metrics and one.best_iteration == two.best_iteration
    assert one.training_losses == two.training_losses and one.validation_losses == two.validation_losses


def test_train_holds_blas_to_one_thread_and_restores_it(datas, solution):
    seen = []

    def recording(model, data, wd_coefficient):
        seen.append(max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"))
        return solution(model, data, wd_coefficient)

    with threadpool_limits(limits=2, user_api="blas"):
        train(recording, 0, 10, 3, 0.01, 0, False, 10, datas=datas)
        after = max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")
    assert seen and set(seen) == {1}
    assert after == 2


def counting(gradient_fn, calls, fail_on_call=None):
    def counted(model, data, wd_coefficient):
        calls.append(np.isfinite(model_to_theta(model)).all())
        if len(calls) == fail_on_call:
            raise ValueError("a learner's error")
        return gradient_fn(model, data, wd_coefficient)
    return counted


def test_the_gradient_is_called_once_per_iteration_after_the_previous_callback(datas, solution, threads):
    events = []

    def recording_gradient(model, data, wd_coefficient):
        events.append(("gradient", data["inputs"][0, 0], float(model_to_theta(model) @ model_to_theta(model))))
        return solution(model, data, wd_coefficient)

    def recording_callback(iteration, training_loss, validation_loss):
        events.append(("callback", iteration))
        return "stop" if iteration == 4 else None

    result = train(recording_gradient, 0, 10, 30, 0.01, 0, False, 10, datas=datas, check_gradient=False,
                   callback=recording_callback)
    assert [event[0] for event in events] == ["gradient", "callback"] * 4
    assert [event[1] for event in events[1::2]] == [1, 2, 3, 4]
    # Each call sees its own iteration's mini-batch and the weights the previous step left.
    inputs = datas["train"]["inputs"]
    assert [event[1] for event in events[0::2]] == [inputs[0, 0], inputs[0, 10], inputs[0, 20], inputs[0, 30]]
    reference = train(solution, 0, 10, 4, 0.01, 0, False, 10, datas=datas, check_gradient=False)
    assert result.training_losses == pytest.approx(reference.training_losses, rel=0, abs=1e-12)
    np.testing.assert_array_equal(model_to_theta(result.model), model_to_theta(reference.model))
    assert events[0][2] == float(model_to_theta(initial_model(10)) @ model_to_theta(initial_model(10)))
    assert len({event[2] for event in events[0::2]}) == 4


def test_an_error_in_the_gradient_stops_training_at_its_iteration(datas, solution, threads):
    calls, callbacks = [], []
    with pytest.raises(ValueError, match="a learner's error"):
        train(counting(solution, calls, fail_on_call=5), 0, 10, 30, 0.01, 0, False, 10,
              datas=datas, check_gradient=False, callback=lambda iteration, *losses: callbacks.append(iteration))
    assert len(calls) == 5 and callbacks == [1, 2, 3, 4]


def plain_gradient(model, data, wd_coefficient):
    """A learner's gradient with the logistic written out with np.exp, and no errstate."""
    input_to_hid, hid_to_class, inputs = model["input_to_hid"], model["hid_to_class"], data["inputs"]
    hid_output = 1 / (1 + np.exp(-(input_to_hid @ inputs)))
    class_input = hid_to_class @ hid_output
    class_prob = np.exp(class_input - class_input.max(axis=0))
    class_prob /= class_prob.sum(axis=0)
    d_class_input = (class_prob - data["target"]) / inputs.shape[1]
    d_hid_input = (hid_to_class.T @ d_class_input) * hid_output * (1 - hid_output)
    return {"input_to_hid": d_hid_input @ inputs.T + wd_coefficient * input_to_hid,
            "hid_to_class": d_class_input @ hid_output.T + wd_coefficient * hid_to_class}


def test_no_gradient_runs_ahead_of_a_run_that_diverges(datas, capfd, threads):
    """The step that makes the loss non-finite ends training without a call for the next
    gradient: a learner's np.exp never meets those weights, and prints no overflow warning."""
    calls = []
    result = train(counting(plain_gradient, calls), 0, 10, 50, 1e200, 0.9, False, 10, datas=datas,
                   check_gradient=False)
    assert result.diverged and len(calls) == len(result.training_losses) < 50
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    "arguments, message",
    [
        ((0, 10, 30, 0.01, 0, False, 0), "mini_batch_size must be a positive integer"),
        ((0, 10.5, 30, 0.01, 0, False, 10), "n_hid must be a positive integer"),
        ((0, 10, -1, 0.01, 0, False, 10), "n_iters must be an integer >= 0"),
        ((-0.1, 10, 30, 0.01, 0, False, 10), "wd_coefficient must be a number >= 0"),
        ((0, 10, 30, float("nan"), 0, False, 10), "learning_rate must be a number >= 0"),
    ],
)
def test_invalid_settings_are_rejected_clearly(datas, arguments, message):
    with pytest.raises(ValueError, match=message):
        train(zero_gradient, *arguments, datas=datas)


def test_a2_prints_the_report_and_plots_in_a_new_figure_each_call(datas, solution, capsys):
    figures_before = plt.get_fignums()
    a2(solution, 0, 10, 30, 0.01, 0, False, 10, datas=datas)
    a2(solution, 0, 10, 5, 0.01, 0, False, 10, datas=datas)
    out, err = capsys.readouterr()
    assert f"The loss on the training data is {REPORTED_TRAINING_LOSS}" in out
    assert out.count("Gradient test passed") == 4
    assert "The classification error rate on the test data is" in out
    assert err == ""
    new = [number for number in plt.get_fignums() if number not in figures_before]
    assert len(new) == 2
    lines = plt.figure(new[0]).axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["training", "validation"]
    assert len(lines[0].get_ydata()) == 30


def test_the_model_passed_to_the_gradient_is_a_copy(datas, solution, threads):
    def vandal(model, data, wd_coefficient):
        gradient = solution(model, data, wd_coefficient)
        model["input_to_hid"][:] = 0
        return gradient

    honest = train(solution, 0, 10, 10, 0.01, 0, False, 10, datas=datas, check_gradient=False)
    vandalised = train(vandal, 0, 10, 10, 0.01, 0, False, 10, datas=datas, check_gradient=False)
    assert honest.training_losses == vandalised.training_losses


def test_initial_model_is_where_training_starts(datas):
    result = train(zero_gradient, 0, 10, 0, 0.01, 0, False, 10, datas=datas, check_gradient=False)
    assert result.training_losses == []
    for part, value in initial_model(10).items():
        np.testing.assert_array_equal(result.model[part], value)


def original_style_losses(gradient_fn, datas, wd, n_hid, n_iters, learning_rate, momentum, batch_size):
    """The run written as the original notebook does it: ``1 / (1 + exp(-x))``, a forward
    pass per split."""
    def original_loss(model, data):
        with np.errstate(over="ignore"):
            hid_output = 1 / (1 + np.exp(-(model["input_to_hid"] @ data["inputs"])))
        class_input = model["hid_to_class"] @ hid_output
        log_class_prob = class_input - np.log(np.sum(np.exp(class_input - class_input.max(0)), 0)) - class_input.max(0)
        return -np.mean(np.sum(log_class_prob * data["target"], 0)) + np.sum(model_to_theta(model) ** 2) / 2 * wd

    theta = model_to_theta(initial_model(n_hid))
    speed = theta * 0
    losses = []
    for i in range(n_iters):
        start = (i * batch_size) % 1000
        batch = {key: datas["train"][key][:, start:start + batch_size] for key in ("inputs", "target")}
        speed = speed * momentum - model_to_theta(gradient_fn(theta_to_model(theta), batch, wd))
        theta = theta + speed * learning_rate
        model = theta_to_model(theta)
        losses.append((original_loss(model, datas["train"]), original_loss(model, datas["val"])))
    return losses


@pytest.mark.parametrize("wd, do_early_stopping", [(0, True), (0.001, False)])
def test_every_recorded_loss_equals_the_original_style_run(datas, solution, wd, do_early_stopping, threads):
    result = train(solution, wd, 30, 60, 0.35, 0.9, do_early_stopping, 100, datas=datas,
                   check_gradient=False)
    original = original_style_losses(solution, datas, wd, 30, 60, 0.35, 0.9, 100)
    np.testing.assert_allclose(list(zip(result.training_losses, result.validation_losses)), original,
                               rtol=0, atol=1e-12)
    if do_early_stopping:
        best = int(np.argmin([validation for _, validation in original])) + 1
        assert result.best_iteration == best


def test_progress_shows_on_stdout_for_a_learner(capfd, monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert list(progress(range(3), "runs")) == [0, 1, 2]
    out, err = capfd.readouterr()
    assert "runs" in out and "3/3" in out
    assert err == ""


@pytest.mark.parametrize("mode", ["autograde", "validate"])
def test_progress_is_silent_while_nbgrader_grades(datas, solution, capfd, monkeypatch, mode):
    monkeypatch.setenv("NBGRADER_EXECUTION", mode)
    assert list(progress([1, 2], "runs")) == [1, 2]
    a2(solution, 0, 10, 5, 0.01, 0, False, 10, datas=datas)
    out, err = capfd.readouterr()
    assert "it/s" not in out and "iteration/s" not in out and "runs" not in out
    assert err == ""


def test_a_training_progress_bar_counts_the_iterations(datas, capfd, monkeypatch):
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    train(zero_gradient, 0, 3, 7, 0.1, 0, False, 10, datas=datas, check_gradient=False,
          progress="training")
    out, err = capfd.readouterr()
    assert "training" in out and "7/7" in out
    assert err == ""


@pytest.mark.parametrize("n_train, n_val, batch_size", [(997, 1000, 100), (1000, 995, 100), (2, 1, 2)])
def test_any_number_of_cases_trains_to_the_same_numbers_on_one_thread_and_two(datas, solution, n_train, n_val, batch_size):
    # Splits of any size, down to a single case.
    few = {"train": {key: datas["train"][key][:, :n_train] for key in ("inputs", "target")},
           "val": {key: datas["val"][key][:, :n_val] for key in ("inputs", "target")},
           "test": datas["test"]}
    assert few["train"]["inputs"].shape[1] + few["val"]["inputs"].shape[1] == n_train + n_val
    n_iters = min(5, n_train // batch_size)  # no batch wraps round
    runs = {}
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            runs[threads] = train(solution, 0, 10, n_iters, 0.35, 0.9, False, batch_size, datas=few,
                                  check_gradient=False)
    original = np.array(original_style_losses(solution, few, 0, 10, n_iters, 0.35, 0.9, batch_size))
    for threads, run in runs.items():
        np.testing.assert_allclose(run.training_losses, original[:, 0], rtol=1e-12, atol=0, err_msg=f"{threads} threads")
        np.testing.assert_allclose(run.validation_losses, original[:, 1], rtol=1e-12, atol=0, err_msg=f"{threads} threads")
    assert runs[1].training_losses == runs[2].training_losses


def test_targets_that_are_not_one_hot_get_a_clear_error(datas, solution):
    soft = {split: dict(datas[split]) for split in datas}
    soft["val"]["target"] = datas["val"]["target"] * 0.9 + 0.01
    with pytest.raises(ValueError, match="one-hot targets"):
        train(solution, 0, 10, 1, 0.35, 0.9, False, 100, datas=soft, check_gradient=False)
