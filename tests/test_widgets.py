"""Headless tests of the interactive training lab: build the widgets, set values, click.

No browser and no kernel: ipywidgets work without a frontend, and ``Button.click()``
runs the same handler a click in JupyterLab runs.
"""

import html

import ipywidgets
import numpy as np
import pytest
from matplotlib.figure import Figure

import course_utils
from course_utils import widgets as lab

pytestmark = pytest.mark.fast  # no nbgrader run, no browser

# Iteration-by-iteration agreement with course_utils.train run separately: the dashboard
# may use another number of BLAS threads, which can change the last bits.
RTOL = 1e-10


def assert_same_run(result, expected):
    assert result.settings == expected.settings
    assert len(result.training_losses) == len(expected.training_losses)
    np.testing.assert_allclose(result.training_losses, expected.training_losses, rtol=RTOL)
    np.testing.assert_allclose(result.validation_losses, expected.validation_losses, rtol=RTOL)
    assert result.best_iteration == expected.best_iteration
    assert result.diverged == expected.diverged
    for part in ("input_to_hid", "hid_to_class"):
        np.testing.assert_allclose(result.model[part], expected.model[part], rtol=RTOL, atol=1e-12)
    for split in ("train", "val", "test"):
        for name in ("loss", "classification_loss", "error_rate"):
            assert result.metrics[split][name] == pytest.approx(expected.metrics[split][name], rel=RTOL)


def test_showing_the_widgets_trains_nothing(datas):
    calls = []

    def gradient_fn(model, data, wd_coefficient):
        calls.append(wd_coefficient)
        raise AssertionError("the gradient must not be computed before a click")

    dashboard = lab.training_dashboard(gradient_fn, datas)
    view = lab.sweep_view(gradient_fn, datas)
    assert calls == []
    assert dashboard.result is None and view.results == {}
    # Empty axes, ready for the first run.
    assert bytes(dashboard.plot.value).startswith(b"\x89PNG")
    assert bytes(view.plot.value).startswith(b"\x89PNG")


def test_train_click_gives_the_numbers_of_train(solution, datas, capfd):
    dashboard = lab.training_dashboard(solution, datas)
    empty_plot = dashboard.plot.value
    dashboard.learning_rate.value = 1.0
    dashboard.momentum_multiplier.value = 0.9
    dashboard.mini_batch_size.value = 20
    dashboard.n_iters.value = 40
    dashboard.n_hid.value = 12
    dashboard.wd_coefficient.value = 0.001
    dashboard.do_early_stopping.value = True

    dashboard.train_button.click()

    expected = course_utils.train(solution, 0.001, 12, 40, 1.0, 0.9, True, 20, datas=datas, check_gradient=False)
    assert_same_run(dashboard.result, expected)
    assert dashboard.message.value == ""
    assert dashboard.plot.value != empty_plot
    for split in ("train", "val", "test"):
        assert f"{expected.metrics[split]['loss']:.6g}" in dashboard.summary.value
        assert f"{expected.metrics[split]['error_rate']:.2%}" in dashboard.summary.value
    assert f"iteration {expected.best_iteration}" in dashboard.summary.value
    assert dashboard.progress.value == 40
    # The picture shown is of the finished run, with the iteration that early stopping kept.
    assert bytes(dashboard.plot.value) == lab.figure_png(dashboard._figure)
    lines = dashboard._figure.axes[0].get_lines()
    assert [len(line.get_xdata()) for line in lines[:2]] == [40, 40]
    assert any(list(line.get_xdata()) == [expected.best_iteration] * 2 for line in lines)
    assert capfd.readouterr().err == ""


def test_the_learning_rate_is_the_one_the_slider_shows(datas):
    dashboard = lab.training_dashboard(not_written, datas)
    dashboard.learning_rate.value = 10 ** -0.3  # a slider position: 0.50118...
    assert dashboard.settings()["learning_rate"] == 0.501
    dashboard.learning_rate.value = 50.0  # the top of the slider, 10 ** log10(50)
    assert dashboard.settings()["learning_rate"] == 50.0


def test_each_slider_change_reaches_the_kernel_in_one_message(datas):
    """No slider sends continuous updates: the browser holds back a slider's later updates
    until the kernel has answered the first, but sends a click at once, so a Train click
    right after a drag ran with a value the slider no longer showed."""
    for view in (lab.training_dashboard(not_written, datas), lab.sweep_view(not_written, datas)):
        sliders = [widget for widget in vars(view).values()
                   if isinstance(widget, ipywidgets.Widget) and "continuous_update" in widget.trait_names()]
        assert len(sliders) >= 4
        assert [slider.description for slider in sliders if slider.continuous_update] == []


def test_the_reference_run_of_exercise_2(solution, datas):
    """The default settings are those of a2(0, 10, 30, 0.01, 0, False, 10)."""
    dashboard = lab.training_dashboard(solution, datas)
    dashboard.train_button.click()
    assert dashboard.result.metrics["train"]["loss"] == pytest.approx(2.301906765216956, rel=1e-12)


def test_the_curves_update_while_training_runs(solution, datas, monkeypatch):
    # Redraw after every iteration; how often it redraws by default is a matter of speed.
    monkeypatch.setattr(lab, "REDRAW_INTERVAL", 0.0)
    dashboard = lab.training_dashboard(solution, datas)
    dashboard.n_iters.value = 4
    updates = []

    def record(change):
        lines = dashboard._figure.axes[0].get_lines()
        updates.append((dashboard.progress.value, [len(line.get_xdata()) for line in lines]))

    dashboard.plot.observe(record, "value")
    dashboard.train_button.click()

    # One picture per iteration, showing the losses so far (the finished run's picture is
    # the last one again, if it differs at all).
    assert updates[:4] == [(iteration, [iteration, iteration]) for iteration in (1, 2, 3, 4)]
    assert all(update == (4, [4, 4]) for update in updates[4:])
    assert dashboard.status.value.startswith("Finished 4 iterations")


def test_a_diverging_run_is_reported_quietly(solution, datas, capfd):
    dashboard = lab.training_dashboard(solution, datas)
    dashboard.learning_rate.value = 50.0
    dashboard.momentum_multiplier.value = 0.99
    dashboard.n_iters.value = 20

    dashboard.train_button.click()

    expected = course_utils.train(solution, 0.0, 10, 20, 50.0, 0.99, False, 10, datas=datas,
                                  check_gradient=False)
    initial_loss = course_utils.loss(course_utils.initial_model(10), datas["train"], 0)
    assert expected.training_losses[-1] > initial_loss, "these settings should make the loss grow"
    assert_same_run(dashboard.result, expected)
    assert dashboard.status.value.startswith("Diverged: the training loss ended above where it started")
    assert "Try a smaller learning rate" in dashboard.summary.value
    assert dashboard.progress.bar_style == "warning"
    assert capfd.readouterr().err == ""

    dashboard.learning_rate.value = 0.01
    dashboard.momentum_multiplier.value = 0.0
    dashboard.train_button.click()
    assert dashboard.status.value.startswith("Finished 20 iterations")
    assert "Try a smaller" not in dashboard.summary.value
    assert dashboard.progress.bar_style == "success"


def test_earlier_runs_are_kept_until_cleared(solution, datas):
    dashboard = lab.training_dashboard(solution, datas)
    dashboard.n_iters.value = 5
    dashboard.train_button.click()
    first = dashboard.result
    dashboard.learning_rate.value = 0.5
    dashboard.train_button.click()
    second = dashboard.result
    assert second.settings["learning_rate"] == 0.5
    assert dashboard.earlier_runs == [first]
    with_earlier_run = dashboard.plot.value

    dashboard.clear_button.click()

    assert dashboard.earlier_runs == []
    assert dashboard.result is second
    assert dashboard.plot.value != with_earlier_run


def scaled_hid_to_class(solution):
    def gradient_fn(model, data, wd_coefficient):
        gradient = solution(model, data, wd_coefficient)
        return {"input_to_hid": gradient["input_to_hid"], "hid_to_class": 2 * gradient["hid_to_class"]}

    return gradient_fn


def not_written(model, data, wd_coefficient):
    raise NotImplementedError()


def shape_bug(model, data, wd_coefficient):
    hid_input = data["inputs"] @ model["input_to_hid"]
    return {"input_to_hid": hid_input, "hid_to_class": model["hid_to_class"]}


def misspelt_name(model, data, wd_coefficient):
    hid_input = model["input_to_hid"] @ data["inputs"]
    return {"input_to_hid": hid_inptu, "hid_to_class": model["hid_to_class"]}  # noqa: F821


def no_return(model, data, wd_coefficient):
    {"input_to_hid": 0 * model["input_to_hid"], "hid_to_class": 0 * model["hid_to_class"]}


# What the notebook passes when the cell defining d_loss_by_d_model has not been run.
cell_not_run = lambda model, data, wd: d_loss_by_d_model(model, data, wd)  # noqa: E731, F821

BROKEN_GRADIENTS = {
    "wrong hid_to_class": (scaled_hid_to_class, [
        "did not pass the gradient test", "(hid_to_class)", "d_loss_by_d_model", "test_gradient"]),
    "unfinished": (lambda solution: not_written, [
        "not written yet", "NotImplementedError", "d_loss_by_d_model"]),
    "exception in the learner's code": (lambda solution: shape_bug, [
        "raised ValueError", f"line {shape_bug.__code__.co_firstlineno + 1} of shape_bug",
        'hid_input = data["inputs"] @ model["input_to_hid"]', "d_loss_by_d_model"]),
    "misspelt name in the learner's code": (lambda solution: misspelt_name, [
        "raised NameError", "hid_inptu", f"line {misspelt_name.__code__.co_firstlineno + 2} of misspelt_name"]),
    "no return statement": (lambda solution: no_return, [
        "did not pass the gradient test", "returned NoneType", "return statement"]),
    "cell not run": (lambda solution: cell_not_run, [
        "not defined yet", "d_loss_by_d_model", "Run the cells above"]),
}


@pytest.mark.parametrize("name", BROKEN_GRADIENTS)
def test_a_broken_gradient_gives_a_short_message(solution, datas, capfd, name):
    make_gradient, expected_words = BROKEN_GRADIENTS[name]
    dashboard = lab.training_dashboard(make_gradient(solution), datas)

    dashboard.train_button.click()

    message = dashboard.message.value
    for words in expected_words:
        assert html.escape(words, quote=False) in message
    assert "Traceback" not in message and 'File "' not in message
    assert len(message) < 1500
    assert "Nothing was trained" in message
    assert dashboard.result is None
    assert dashboard.status.value == "Training did not run."
    assert not dashboard.train_button.disabled
    assert capfd.readouterr().err == ""


def test_a_failed_click_keeps_the_last_run_and_a_fixed_gradient_trains(solution, datas):
    dashboard = lab.training_dashboard(solution, datas)
    dashboard.n_iters.value = 3
    dashboard.train_button.click()
    good_run = dashboard.result
    dashboard.gradient_fn = scaled_hid_to_class(solution)

    dashboard.train_button.click()

    assert dashboard.message.value != ""
    assert dashboard.result is good_run and dashboard.earlier_runs == []

    dashboard.gradient_fn = solution
    dashboard.train_button.click()
    assert dashboard.message.value == ""
    assert dashboard.earlier_runs == [good_run]
    assert_same_run(dashboard.result, good_run)


def test_the_sweep_is_set_up_for_exercise_3(solution, datas):
    view = lab.sweep_view(solution, datas)
    assert view.learning_rates == (0.002, 0.01, 0.05, 0.2, 1.0, 5.0, 20.0)
    assert view.momentum_multipliers == (0.0, 0.9)
    assert view.settings() == dict(wd_coefficient=0.0, n_hid=10, n_iters=70, do_early_stopping=False,
                                   mini_batch_size=4)
    assert view.run_button.description == "Run the 14 runs"


def test_the_sweep_runs_the_grid_and_marks_diverged_runs(solution, datas):
    # A small grid (the 14 runs of Exercise 3 are timed by benchmarks/bench_widgets.py).
    rates, momentums = (0.5, 50.0), (0.0, 0.99)
    view = lab.sweep_view(solution, datas, learning_rates=rates, momentum_multipliers=momentums,
                          n_iters=20, mini_batch_size=10)
    view.run_button.click()

    initial_loss = course_utils.loss(course_utils.initial_model(10), datas["train"], 0)
    expected = {(rate, mu): course_utils.train(solution, 0, 10, 20, rate, mu, False, 10, datas=datas,
                                               check_gradient=False)
                for rate in rates for mu in momentums}
    assert set(view.results) == set(expected)
    for setting, result in expected.items():
        assert_same_run(view.results[setting], result)
    expected_diverged = {setting for setting, result in expected.items()
                         if not np.isfinite(result.training_losses[-1])
                         or result.training_losses[-1] > initial_loss}
    assert expected_diverged, "the grid of this test should contain a diverging run"
    assert (0.5, 0.0) not in expected_diverged
    assert view.diverged == expected_diverged
    best = min(expected, key=lambda setting: expected[setting].training_losses[-1])
    assert f"learning rate {best[0]:g}, momentum {best[1]:g}" in view.status.value

    figure = Figure()
    lab.draw_sweep(figure.add_subplot(), view.learning_rates, view.momentum_multipliers, view.results,
                   view.diverged, view.initial_loss)
    labels = [text.get_text() for text in figure.axes[0].texts]
    assert labels.count("diverged") == len(expected_diverged)
    assert f"{expected[0.5, 0.0].training_losses[-1]:.3f}" in labels


def test_the_sweep_reports_a_broken_gradient(solution, datas, capfd):
    view = lab.sweep_view(scaled_hid_to_class(solution), datas)
    view.run_button.click()
    assert view.results == {}
    assert "hid_to_class" in view.message.value and "Traceback" not in view.message.value
    assert capfd.readouterr().err == ""


def test_hidden_units_are_shown_as_16_by_16_images():
    model = course_utils.initial_model(7)
    figure = lab.show_hidden_units(model)
    images = [ax.images[0].get_array() for ax in figure.axes]
    assert len(images) == 7
    for unit, image in enumerate(images):
        np.testing.assert_array_equal(image, model["input_to_hid"][unit].reshape(16, 16))


def test_misclassified_digits_are_the_most_confident_mistakes(solution, datas):
    model = course_utils.train(solution, 0, 10, 30, 1.0, 0.9, False, 10, datas=datas, check_gradient=False).model
    test = datas["test"]
    figure = lab.show_misclassified(model, test, count=5)

    class_prob = course_utils.forward_pass(model, test)[4]
    predicted, true = class_prob.argmax(axis=0), test["target"].argmax(axis=0)
    wrong = np.flatnonzero(predicted != true)
    most_confident = wrong[np.argsort(-class_prob.max(axis=0)[wrong], kind="stable")][:5]
    assert len(figure.axes) == 5
    for ax, case in zip(figure.axes, most_confident):
        title = ax.get_title()
        assert f"predicted {predicted[case]}" in title and f"true {true[case]}" in title
        np.testing.assert_array_equal(ax.images[0].get_array(), test["inputs"][:, case].reshape(16, 16))


def test_bad_count_is_refused(datas):
    with pytest.raises(ValueError, match="count"):
        lab.show_misclassified(course_utils.initial_model(3), datas["test"], count=0)


def test_missing_data_gives_a_short_message(monkeypatch, capfd):
    def no_data():
        raise course_utils.DataError("data.mat was not found (looked in /coursedata).")

    monkeypatch.setattr(lab, "load_data", no_data)
    dashboard = lab.training_dashboard(not_written)  # the data are loaded at the click
    dashboard.train_button.click()
    assert "The data could not be loaded" in dashboard.message.value
    assert "data.mat was not found" in dashboard.message.value
    assert capfd.readouterr().err == ""


def test_bad_arguments_are_refused_when_the_widgets_are_made(datas):
    with pytest.raises(TypeError, match="lambda model, data, wd: d_loss_by_d_model"):
        lab.training_dashboard({"input_to_hid": None, "hid_to_class": None}, datas)
    with pytest.raises(ValueError, match="learning_rates"):
        lab.sweep_view(not_written, datas, learning_rates=[])
    with pytest.raises(ValueError, match="momentum_multipliers"):
        lab.sweep_view(not_written, datas, momentum_multipliers=[0.9, -1])
    with pytest.raises(ValueError, match=r"mini_batch_size must be a positive integer \(got 0\)"):
        lab.sweep_view(not_written, datas, mini_batch_size=0)


def test_the_sweep_starts_from_any_settings(datas):
    view = lab.sweep_view(not_written, datas, n_hid=200, n_iters=500, mini_batch_size=3,
                          wd_coefficient=0.002)
    assert view.settings() == dict(wd_coefficient=0.002, n_hid=200, n_iters=500, do_early_stopping=False,
                                   mini_batch_size=3)


def test_a_name_from_another_version_is_explained_in_the_widget():
    from course_utils.widgets import failure_message

    try:
        {"inputs": None, "target": None}["targets"]
    except KeyError as error:
        message = failure_message(error)
    assert "KeyError" in message and "here it is data['target']" in message, message


def _run_like(training_losses, validation_losses):
    from types import SimpleNamespace

    return SimpleNamespace(training_losses=list(training_losses), validation_losses=list(validation_losses),
                           best_iteration=None, settings={"n_iters": len(training_losses)})


def test_the_loss_plot_fits_a_run_that_moves_little():
    """The default run (2.3026 down to 2.3019) fills the plot instead of lying flat on a
    0..2.6 scale; finished and live plots alike."""
    training = np.linspace(2.3026, 2.3019, 70)
    validation = training + 0.0001
    ax = Figure().add_subplot()
    lab.draw_loss_curves(ax, [], _run_like(training, validation))
    low, high = ax.get_ylim()
    assert low <= training.min() and high >= validation.max()
    assert high - low < 0.01, (low, high)  # the curve spans most of the height

    ax = Figure().add_subplot()
    lines = lab.start_live_curves(ax, [], None, 70)
    lab.update_live_curves(ax, lines, training[:10], validation[:10])
    low, high = ax.get_ylim()
    assert low <= training[:10].min() and high >= validation[:10].max() and high - low < 0.01


def test_the_loss_plot_shows_earlier_runs_and_caps_an_exploding_one():
    ax = Figure().add_subplot()
    earlier = _run_like([2.3, 1.0, 0.5], [2.3, 1.1, 0.6])
    lab.draw_loss_curves(ax, [earlier], _run_like([2.3026, 2.3020], [2.3027, 2.3021]))
    low, high = ax.get_ylim()
    assert low <= 0.5 and high >= 2.3027  # the faint earlier run stays in view
    ax = Figure().add_subplot()
    lab.draw_loss_curves(ax, [], _run_like([2.3, 50.0, 1e6], [2.3, 60.0, 1e7]))
    assert ax.get_ylim()[1] <= 10.0 * 1.1
