"""The interactive training lab: a training dashboard, a learning-rate x momentum sweep,
and pictures of what the network learned.

The computing is ``course_utils.train``; this module only builds controls and draws.
Nothing trains when a widget is shown: training starts when the learner clicks a button,
so running all cells of a notebook (as nbgrader does) never starts a run.

Plots are drawn with matplotlib into PNG images shown by an ``ipywidgets.Image``, so they
update while training runs and need no extra JupyterLab extension.
"""

import html
import io
import time
import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from threadpoolctl import threadpool_limits

from .data import DataError, load_data
from .gradient_check import GradientCheckError, check_gradient
from .learner_errors import hint_for_other_versions
from .network import forward_pass, initial_model, loss
from .notebook_code import learner_line
from .training import check_settings, train

# The settings of Exercise 3.
SWEEP_LEARNING_RATES = (0.002, 0.01, 0.05, 0.2, 1.0, 5.0, 20.0)
SWEEP_MOMENTUM_MULTIPLIERS = (0.0, 0.9)
# Weight decay on a log scale, with 0; includes the values of the generalization part.
WD_COEFFICIENTS = (0.0, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 5.0)
MINI_BATCH_SIZES = (1, 2, 4, 5, 10, 20, 50, 100, 200, 500, 1000)
# Each redraw renders a PNG; redrawing more often than this would slow training down.
REDRAW_INTERVAL = 0.15
# The heat map takes about as long to draw as a sweep run: redrawing it more often would
# slow the 14 runs of Exercise 3 down noticeably (benchmarks/README.md).
SWEEP_REDRAW_INTERVAL = 2.0
# The gradient test before a run uses this many training cases: the full training set
# would take longer than the run itself, and a wrong gradient fails on any data.
CHECK_CASES = 100
# Earlier runs drawn faintly; older ones are dropped to keep the plot readable.
MAX_EARLIER_RUNS = 8
# OpenBLAS's threads cost more than they save for the small matrices of a small network,
# many times more on a busy machine (benchmarks/README.md); larger networks do profit from them.
SMALL_NETWORK_HIDDEN_UNITS = 64
TRAINING_COLOR, VALIDATION_COLOR = "tab:blue", "tab:orange"
CONTROL_STYLE = {"description_width": "9em"}


# --------------------------------------------------------------------------- shared parts


class _LabWidget(widgets.VBox):
    """What the dashboard and the sweep share: the learner's gradient, the data, a progress
    bar, a status line, a message area for failures and a plot. Subclasses arrange them
    (``children``)."""

    def __init__(self, gradient_fn, datas, status, plot_width):
        if not callable(gradient_fn):
            raise TypeError(
                "Pass your gradient function, e.g. "
                "lambda model, data, wd: d_loss_by_d_model(model, data, wd); "
                f"got {type(gradient_fn).__name__}.")
        super().__init__()
        self.gradient_fn = gradient_fn
        self.datas = datas
        self.progress = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="14em"))
        self.status = widgets.Label(status)
        self.message = widgets.HTML()
        self.plot = widgets.Image(format="png", layout=widgets.Layout(max_width=plot_width))

    def _start(self, button, n_steps):
        """Before a run: disable ``button`` and reset the progress bar and the message."""
        button.disabled = True
        self.message.value = ""
        self.progress.max, self.progress.value, self.progress.bar_style = n_steps, 0, ""
        self.status.value = "Testing your gradient..."

    def _prepare(self, settings):
        """The data, after checking the learner's gradient on a few cases (may raise)."""
        if self.datas is None:
            self.datas = load_data()
        _check_gradient_quickly(self.gradient_fn, self.datas, settings)
        return self.datas

    def _show_failure(self, error, status):
        """After a failed run: a red progress bar, ``status`` and the message for ``error``."""
        self.progress.bar_style = "danger"
        self.status.value = status
        self.message.value = failure_message(error)


def _slider(kind, description, **options):
    if "continuous_update" in kind.class_trait_names():
        # One message to the kernel per change, when the learner lets go or presses Enter. With
        # continuous updates a drag sends a stream of them, and the browser holds back the
        # later ones until the kernel has answered the first, while a button click is sent at
        # once: a Train click right after a drag ran with a value the slider no longer showed.
        options.setdefault("continuous_update", False)
    return kind(description=description, style=CONTROL_STYLE, layout=widgets.Layout(width="26em"),
                **options)


def _mini_batch_slider(value):
    return _slider(widgets.SelectionSlider, "mini-batch size",
                   options=_with_value(MINI_BATCH_SIZES, value), value=value)


def _weight_decay_slider(value):
    return _slider(widgets.SelectionSlider, "weight decay", value=value,
                   options=[(f"{option:g}", option) for option in _with_value(WD_COEFFICIENTS, value)])


def _with_value(options, value):
    """``options`` with ``value`` added (sorted), so any starting value can be shown."""
    return tuple(sorted(set(options) | {value}))


@contextmanager
def _quiet(n_hid):
    """No warnings on stderr (nbgrader scores such cells zero) and, for small networks, one
    BLAS thread (see ``SMALL_NETWORK_HIDDEN_UNITS``)."""
    with warnings.catch_warnings(), np.errstate(all="ignore"), ExitStack() as stack:
        warnings.simplefilter("ignore")
        if n_hid < SMALL_NETWORK_HIDDEN_UNITS:
            stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        yield


def _check_gradient_quickly(gradient_fn, datas, settings):
    """Run the gradient tester on the first ``CHECK_CASES`` training cases (inputs (256, 100),
    target (10, 100)) at the initial model; raises GradientCheckError or the learner's error."""
    subset = {name: values[:, :CHECK_CASES] for name, values in datas["train"].items()}
    check_gradient(initial_model(settings["n_hid"]), subset, settings["wd_coefficient"], gradient_fn)


def run_diverged(result, initial_loss):
    """True when a run's loss became non-finite or ended above ``initial_loss``."""
    final = _final_loss(result)
    return bool(result.diverged or not np.isfinite(final) or final > initial_loss)


def _final_loss(result):
    if not result.training_losses:
        return np.inf
    final = result.training_losses[-1]
    return final if np.isfinite(final) else np.inf


# --------------------------------------------------------------------------- the dashboard


class TrainingDashboard(_LabWidget):
    """Sliders for the training settings, a Train button and live loss curves.

    Attributes
    ----------
    result : TrainingResult or None, the last successful run
    earlier_runs : list of TrainingResult, drawn faintly for comparison
    message : ipywidgets.HTML, a short message when training could not run
    plot : ipywidgets.Image, the loss curves (PNG)
    summary : ipywidgets.HTML, the settings and final metrics of the last run
    """

    def __init__(self, gradient_fn, datas=None):
        super().__init__(gradient_fn, datas, "Choose settings and click Train.", "720px")
        self.result = None
        self.earlier_runs = []
        self._live_lines = None

        self.learning_rate = _slider(
            widgets.FloatLogSlider, "learning rate", value=0.01, base=10, min=-3, max=np.log10(50),
            # The browser rounds a typed value to the step of the exponent. With 0.001 the
            # exercises' values (0.5, 0.35, ...) stay as typed to 3 significant digits; with
            # 0.01, 0.5 became 0.501.
            step=0.001,
            # d3-format in the browser: 3 significant digits without trailing zeros ("0.01",
            # where ".3g" would show "0.0100").
            readout_format=".3",
        )
        self.momentum_multiplier = _slider(widgets.FloatSlider, "momentum", value=0.0, min=0.0,
                                           max=0.99, step=0.01)
        self.mini_batch_size = _mini_batch_slider(10)
        self.n_iters = _slider(widgets.IntSlider, "iterations", value=30, min=1, max=1000)
        self.n_hid = _slider(widgets.IntSlider, "hidden units", value=10, min=1, max=300)
        self.wd_coefficient = _weight_decay_slider(0.0)
        self.do_early_stopping = _slider(widgets.Checkbox, "early stopping", value=False)
        self.train_button = widgets.Button(description="Train", button_style="primary", icon="play")
        self.clear_button = widgets.Button(description="Clear earlier runs", icon="trash",
                                           layout=widgets.Layout(width="auto"))
        self.summary = widgets.HTML()

        self.train_button.on_click(lambda _: self.run())
        self.clear_button.on_click(lambda _: self.clear())
        controls = widgets.HBox([
            widgets.VBox([self.learning_rate, self.momentum_multiplier, self.mini_batch_size,
                          self.n_iters]),
            widgets.VBox([self.n_hid, self.wd_coefficient, self.do_early_stopping]),
        ])
        buttons = widgets.HBox([self.train_button, self.clear_button, self.progress, self.status])
        self.children = [controls, buttons, self.message, self.plot, self.summary]
        self._figure = _new_figure(7.2, 3.6)
        self._redraw()

    def settings(self):
        """The arguments of ``train`` that the controls are set to."""
        return dict(
            wd_coefficient=float(self.wd_coefficient.value),
            n_hid=int(self.n_hid.value),
            n_iters=int(self.n_iters.value),
            # As the sliders show them: what the learner reads is what trains (and what
            # a2 reproduces), e.g. 0.501 rather than 10 ** -0.3 = 0.50118...
            learning_rate=float(f"{self.learning_rate.value:.3g}"),
            momentum_multiplier=round(float(self.momentum_multiplier.value), 2),
            do_early_stopping=bool(self.do_early_stopping.value),
            mini_batch_size=int(self.mini_batch_size.value),
        )

    def run(self):
        """Train with the current settings (what the Train button does).

        Returns
        -------
        TrainingResult, or None when training could not run (``message`` says why).
        """
        settings = self.settings()
        self._start(self.train_button, settings["n_iters"])
        training_losses, validation_losses = [], []
        last_drawn = 0.0

        def show_progress(iteration, training_loss, validation_loss):
            nonlocal last_drawn
            training_losses.append(training_loss)
            validation_losses.append(validation_loss)
            self.progress.value = iteration
            # Draw after the first iteration so the learner sees the run start at once.
            if iteration == 1 or time.perf_counter() - last_drawn >= REDRAW_INTERVAL:
                self.status.value = f"Training: iteration {iteration} of {settings['n_iters']}"
                update_live_curves(self._figure.axes[0], self._live_lines, training_losses,
                                   validation_losses)
                self.plot.value = figure_png(self._figure)
                last_drawn = time.perf_counter()

        try:
            with _quiet(settings["n_hid"]):
                # Prepared before the gradient test, so the first update only draws two lines.
                self._live_lines = start_live_curves(self._figure.axes[0], self.earlier_runs,
                                                     self.result, settings["n_iters"])
                datas = self._prepare(settings)
                initial_loss = loss(initial_model(settings["n_hid"]), datas["train"],
                                    settings["wd_coefficient"])
                result = train(self.gradient_fn, **settings, datas=datas, check_gradient=False,
                               callback=show_progress)
        except Exception as error:  # the learner's code can raise anything
            self._show_failure(error, "Training did not run.")
            self._redraw()
            return None
        finally:
            self.train_button.disabled = False

        if self.result is not None:
            self.earlier_runs = (self.earlier_runs + [self.result])[-MAX_EARLIER_RUNS:]
        self.result = result
        diverged = run_diverged(result, initial_loss)
        n_done = len(result.training_losses)
        self.progress.value = n_done
        self.progress.bar_style = "warning" if diverged else "success"
        if result.diverged:
            outcome = f"Diverged at iteration {n_done}"
        elif diverged:
            outcome = f"Diverged: the training loss ended above where it started after {n_done} iterations"
        else:
            outcome = f"Finished {n_done} iterations"
        self.status.value = (f"{outcome} (learning rate {settings['learning_rate']:g}, "
                             f"momentum {settings['momentum_multiplier']:g}).")
        self.summary.value = summary_table(result, diverged)
        self._redraw()
        return result

    def clear(self):
        """Forget the earlier runs (the last run stays)."""
        self.earlier_runs = []
        self._redraw()

    def _redraw(self):
        ax = self._figure.axes[0]
        ax.clear()
        draw_loss_curves(ax, self.earlier_runs, self.result, self.n_iters.value)
        self.plot.value = figure_png(self._figure)


def training_dashboard(gradient_fn, datas=None):
    """A dashboard that trains the network with ``gradient_fn`` when the learner clicks Train.

    Parameters
    ----------
    gradient_fn : callable
        ``gradient_fn(model, data, wd_coefficient)``, the learner's ``d_loss_by_d_model``.
        Pass ``lambda model, data, wd: d_loss_by_d_model(model, data, wd)`` so that a
        corrected, re-run ``d_loss_by_d_model`` cell is used without rebuilding the dashboard.
    datas : dict, optional, the splits from ``load_data()`` (loaded at the first click otherwise)

    Returns
    -------
    TrainingDashboard (an ``ipywidgets.VBox``)
    """
    return TrainingDashboard(gradient_fn, datas)


# --------------------------------------------------------------------------- the sweep


class SweepView(_LabWidget):
    """Train once per learning rate and momentum and show the final training losses.

    Attributes
    ----------
    results : dict, ``results[learning_rate, momentum_multiplier]`` is a TrainingResult
    diverged : set of (learning_rate, momentum_multiplier), runs that diverged
    initial_loss : float or None, the training loss of the initial model of the last sweep
    """

    def __init__(self, gradient_fn, datas=None, *, learning_rates=SWEEP_LEARNING_RATES,
                 momentum_multipliers=SWEEP_MOMENTUM_MULTIPLIERS, n_hid=10, n_iters=70,
                 mini_batch_size=4, wd_coefficient=0.0):
        super().__init__(gradient_fn, datas, "Click to train once per learning rate and momentum.",
                         "760px")
        self.learning_rates = _grid_values("learning_rates", learning_rates)
        self.momentum_multipliers = _grid_values("momentum_multipliers", momentum_multipliers)
        # The grid's own rates and multipliers are checked above; a valid one stands in here.
        check_settings(wd_coefficient, n_hid, n_iters, self.learning_rates[0], self.momentum_multipliers[0],
                       mini_batch_size)
        self.results = {}
        self.diverged = set()
        self.initial_loss = None

        self.n_hid = _slider(widgets.IntSlider, "hidden units", value=n_hid, min=1, max=max(100, n_hid))
        self.n_iters = _slider(widgets.IntSlider, "iterations", value=n_iters, min=1,
                               max=max(300, n_iters))
        self.mini_batch_size = _mini_batch_slider(mini_batch_size)
        self.wd_coefficient = _weight_decay_slider(wd_coefficient)
        n_runs = len(self.learning_rates) * len(self.momentum_multipliers)
        self.run_button = widgets.Button(description=f"Run the {n_runs} runs", button_style="primary",
                                         icon="play", layout=widgets.Layout(width="auto"))
        self.run_button.on_click(lambda _: self.run())
        controls = widgets.HBox([widgets.VBox([self.n_hid, self.n_iters]),
                                 widgets.VBox([self.mini_batch_size, self.wd_coefficient])])
        self.children = [controls, widgets.HBox([self.run_button, self.progress, self.status]),
                         self.message, self.plot]
        self._figure = _new_figure(7.6, 2.0 + 0.6 * len(self.momentum_multipliers))
        self._redraw()

    def settings(self):
        """The ``train`` arguments shared by all runs of the sweep."""
        return dict(wd_coefficient=float(self.wd_coefficient.value), n_hid=int(self.n_hid.value),
                    n_iters=int(self.n_iters.value), do_early_stopping=False,
                    mini_batch_size=int(self.mini_batch_size.value))

    def run(self):
        """Run the whole grid (what the button does).

        Returns
        -------
        dict ``results[learning_rate, momentum_multiplier]``, or None when the gradient
        failed (``message`` says why).
        """
        settings = self.settings()
        grid = [(learning_rate, momentum_multiplier) for momentum_multiplier in self.momentum_multipliers
                for learning_rate in self.learning_rates]
        self._start(self.run_button, len(grid))
        self.results, self.diverged = {}, set()
        last_drawn = time.perf_counter()
        try:
            with _quiet(settings["n_hid"]):
                datas = self._prepare(settings)
                self.initial_loss = loss(initial_model(settings["n_hid"]), datas["train"],
                                         settings["wd_coefficient"])
                for learning_rate, momentum_multiplier in grid:
                    self.status.value = (f"Training: learning rate {learning_rate:g}, "
                                         f"momentum {momentum_multiplier:g}")
                    result = train(self.gradient_fn, learning_rate=learning_rate,
                                   momentum_multiplier=momentum_multiplier, **settings,
                                   datas=datas, check_gradient=False)
                    self.results[learning_rate, momentum_multiplier] = result
                    if run_diverged(result, self.initial_loss):
                        self.diverged.add((learning_rate, momentum_multiplier))
                    self.progress.value += 1
                    if time.perf_counter() - last_drawn >= SWEEP_REDRAW_INTERVAL:
                        self._redraw()
                        last_drawn = time.perf_counter()
        except Exception as error:  # the learner's code can raise anything
            self._show_failure(error, "The sweep did not run.")
            self.results, self.diverged = {}, set()
            self._redraw()
            return None
        finally:
            self.run_button.disabled = False
        self.progress.bar_style = "success"
        best = min(grid, key=lambda setting: _final_loss(self.results[setting]))
        self.status.value = (f"Done. Lowest final training loss: learning rate {best[0]:g}, "
                             f"momentum {best[1]:g}.")
        self._redraw()
        return self.results

    def _redraw(self):
        self._figure.clear()
        self._figure.subplots_adjust(bottom=0.25, right=1.0)
        ax = self._figure.add_subplot()
        draw_sweep(ax, self.learning_rates, self.momentum_multipliers, self.results, self.diverged,
                   self.initial_loss)
        self.plot.value = figure_png(self._figure)


def sweep_view(gradient_fn, datas=None, **settings):
    """The learning-rate x momentum experiment of Exercise 3 as a heat map.

    One run per learning rate in 0.002, 0.01, 0.05, 0.2, 1.0, 5.0, 20.0 and momentum
    0 and 0.9, by default with 10 hidden units, 70 iterations and mini-batches of 4.
    Each cell shows the final training loss; diverged runs (the loss became infinite or
    ended above the initial model's loss) are crossed out.

    Parameters
    ----------
    gradient_fn : callable, ``gradient_fn(model, data, wd_coefficient)`` (see ``training_dashboard``)
    datas : dict, optional, the splits from ``load_data()``
    **settings
        ``learning_rates``, ``momentum_multipliers``, ``n_hid``, ``n_iters``,
        ``mini_batch_size``, ``wd_coefficient``: the grid and the starting values of the controls.

    Returns
    -------
    SweepView (an ``ipywidgets.VBox``)
    """
    return SweepView(gradient_fn, datas, **settings)


def _grid_values(name, values):
    """``values`` as a tuple of floats, or a ValueError saying what was expected."""
    values = tuple(values)
    if not values or not all(_is_nonnegative_number(value) for value in values):
        raise ValueError(f"{name} must be a non-empty list of numbers >= 0; got {values!r}.")
    return tuple(float(value) for value in values)


def _is_nonnegative_number(value):
    return (isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
            and bool(np.isfinite(value)) and value >= 0)


# --------------------------------------------------------------------------- Part 4 pictures


def show_hidden_units(model):
    """Each hidden unit's incoming weights as a 16 x 16 image.

    Parameters
    ----------
    model : dict with ``input_to_hid`` of shape (n_hid, 256)

    Returns
    -------
    matplotlib Figure with one image per hidden unit (light: positive, dark: negative weights,
    scaled per unit). It shows when it is a cell's last expression.
    """
    weights = np.asarray(model["input_to_hid"], dtype=np.float64)
    if weights.ndim != 2 or weights.shape[1] != 256:
        raise ValueError(f"model['input_to_hid'] must have shape (n_hid, 256); got {weights.shape}.")
    n_hid = weights.shape[0]
    n_cols = min(n_hid, max(5, int(np.ceil(np.sqrt(2 * n_hid)))))
    n_rows = int(np.ceil(n_hid / n_cols))
    figure = Figure(figsize=(max(0.9 * n_cols, 6.0), 0.9 * n_rows + 0.7))
    FigureCanvasAgg(figure)
    for unit in range(n_hid):
        ax = figure.add_subplot(n_rows, n_cols, unit + 1)
        image = weights[unit].reshape(16, 16)  # each column of data['inputs'] is a row-major image
        scale = np.max(np.abs(image)) or 1.0
        ax.imshow(image, cmap="gray", vmin=-scale, vmax=scale)
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(f"Incoming weights of the {n_hid} hidden units\n(light: positive, dark: negative)",
                    fontsize=10)
    figure.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=1 - 0.7 / figure.get_figheight(),
                           wspace=0.1, hspace=0.1)
    return figure


def show_misclassified(model, data, count=8):
    """The misclassified cases of ``data`` that the model was most sure about.

    Parameters
    ----------
    model : dict, a trained model
    data : dict, a data split (``inputs`` (256, m), ``target`` (10, m)), e.g. ``datas['test']``
    count : int, at most this many cases are shown

    Returns
    -------
    matplotlib Figure; each image is titled with the predicted class (and its probability)
    and the true class.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count must be a positive integer; got {count!r}.")
    class_prob = forward_pass(model, data)[4]
    predicted = np.argmax(class_prob, axis=0)
    true = np.argmax(data["target"], axis=0)
    wrong = np.flatnonzero(predicted != true)
    # Most confident mistakes first: they show what the network gets systematically wrong.
    wrong = wrong[np.argsort(-class_prob[predicted[wrong], wrong], kind="stable")][:count]
    n_cols = max(1, min(len(wrong), 8))
    n_rows = max(1, int(np.ceil(len(wrong) / n_cols)))
    figure = Figure(figsize=(1.3 * n_cols + 0.4, 1.6 * n_rows + 0.4))
    FigureCanvasAgg(figure)
    if len(wrong) == 0:
        figure.text(0.5, 0.5, "No misclassified cases.", ha="center", va="center")
        return figure
    for position, case in enumerate(wrong):
        ax = figure.add_subplot(n_rows, n_cols, position + 1)
        ax.imshow(np.asarray(data["inputs"])[:, case].reshape(16, 16), cmap="gray_r", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"predicted {predicted[case]} ({class_prob[predicted[case], case]:.0%})\n"
                     f"true {true[case]}", fontsize=8)
    figure.suptitle(f"{len(wrong)} of the {np.count_nonzero(predicted != true)} misclassified cases",
                    fontsize=10)
    figure.tight_layout()
    return figure


# --------------------------------------------------------------------------- messages

def failure_message(error):
    """A short HTML message for the learner: what failed and where to look.

    Parameters
    ----------
    error : Exception raised while training (usually by the learner's ``d_loss_by_d_model``)
    """
    where = ("Fix the <code>d_loss_by_d_model</code> cell, run it again, check it with "
             "<code>test_gradient(initial_model(10), datas['train'], 0)</code>, then click again.")
    name = type(error).__name__
    line = learner_line(error)
    if isinstance(error, GradientCheckError):
        part = f" ({error.part})" if error.part else ""
        what = f"Your d_loss_by_d_model did not pass the gradient test{part}."
        detail = str(error)
    elif isinstance(error, NotImplementedError):
        what = "d_loss_by_d_model is not written yet."
        detail = "It still raises NotImplementedError. Write your code in place of that line."
        where = "Then run the <code>d_loss_by_d_model</code> cell and click again."
    elif isinstance(error, NameError) and not line:
        # Raised in the lambda given to the widget: the d_loss_by_d_model cell has not run.
        what = "Something is not defined yet."
        detail = f"{name}: {error}. Run the cells above this one first (or Run All)."
        where = ""
    elif isinstance(error, DataError):
        what = "The data could not be loaded."
        detail = str(error)
        where = ""
    else:
        what = f"Your d_loss_by_d_model raised {name}."
        detail = (f"{name}: {error}" + (f" (at {line})" if line else "")
                  + hint_for_other_versions(name, str(error)))
    # Shortened before escaping, so that no HTML entity is cut; a learner's message could
    # contain markup, which is shown as text.
    detail = html.escape(_shorten(detail), quote=False)
    return (
        '<div style="border-left: 4px solid #d9534f; background: #fdf2f2; padding: 0.5em 0.8em;'
        ' line-height: 1.4">'
        f"<b>{html.escape(what)}</b> Nothing was trained.<br>{detail}"
        f"{'<br>' + where if where else ''}</div>"
    )


def _shorten(text, limit=600):
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Table cells: JupyterLab's style gives them no padding.
LEFT = 'style="padding: 0.1em 0.8em 0.1em 0; text-align: left"'
RIGHT = 'style="padding: 0.1em 0 0.1em 1.5em; text-align: right"'


def summary_table(result, diverged=False):
    """The run's settings and an HTML table of the final loss, classification loss and error
    rate of each split.

    ``diverged``: the run ended above the initial loss (see ``run_diverged``); a note says so.
    """
    rows = []
    for split, name in (("train", "training"), ("val", "validation"), ("test", "test")):
        metrics = result.metrics[split]
        rows.append(
            f"<tr><td {LEFT}>{name}</td><td {RIGHT}>{metrics['loss']:.6g}</td>"
            f"<td {RIGHT}>{metrics['classification_loss']:.6g}</td>"
            f"<td {RIGHT}>{metrics['error_rate']:.2%}</td></tr>"
        )
    note = ""
    if result.best_iteration is not None:
        note = f"<br>Early stopping kept the model of iteration {result.best_iteration}."
    if result.diverged:
        note += "<br>The loss became infinite or NaN: the learning rate is too large."
    elif diverged:
        note += ("<br>The training loss ended higher than it started: the steps are too large. "
                 "Try a smaller learning rate or less momentum.")
    return (
        f"Last run: {describe_settings(result.settings)}."
        f'<table style="border-collapse: collapse"><tr><th {LEFT}>split</th>'
        f"<th {RIGHT}>loss</th><th {RIGHT}>classification loss</th><th {RIGHT}>error rate</th></tr>"
        + "".join(rows) + "</table>" + note
    )


def describe_settings(settings):
    """The settings of a run in a few words, as shown above the summary table."""
    return (f"learning rate {settings['learning_rate']:g}, momentum {settings['momentum_multiplier']:g}, "
            f"mini-batch {settings['mini_batch_size']}, {settings['n_hid']} hidden units, "
            f"{settings['n_iters']} iterations, weight decay {settings['wd_coefficient']:g}"
            + (", early stopping" if settings["do_early_stopping"] else ""))


# --------------------------------------------------------------------------- drawing


#: Marks the loss curves among an Axes' lines (the early-stopping marker is a line too).
LOSS_GID = "loss-curve"


def draw_loss_curves(ax, earlier_runs, result, n_iters=None):
    """Training and validation loss per iteration; earlier runs faint, the last one bold.

    Parameters
    ----------
    ax : matplotlib Axes
    earlier_runs : list of TrainingResult
    result : TrainingResult or None, the last finished run
    n_iters : int, optional, the iterations axis' length when there is no run yet
    """
    _draw_background(ax, earlier_runs, result.settings["n_iters"] if result else n_iters)
    if result is not None:
        _draw_run(ax, result.training_losses, result.validation_losses, alpha=1.0, labelled=True)
        if result.best_iteration is not None:
            ax.axvline(result.best_iteration, color="gray", linestyle=":", label="kept (early stopping)")
        # Loss curves start near 2.3 and fall: the lower left corner stays free.
        ax.legend(loc="lower left", fontsize=8)
        _fit_loss_scale(ax)


def start_live_curves(ax, earlier_runs, result, n_iters):
    """Prepare ``ax`` for a run in progress: earlier runs (and ``result``) faint, two empty
    lines for the new run. Returns the lines for ``update_live_curves``.

    Updating two lines takes about two thirds of the time of clearing and drawing the axes anew.
    """
    ax.clear()
    _draw_background(ax, earlier_runs + ([result] if result is not None else []), n_iters)
    lines = _draw_run(ax, [], [], alpha=1.0, labelled=True)
    ax.legend(loc="lower left", fontsize=8)
    return lines


def update_live_curves(ax, lines, training_losses, validation_losses):
    """Show the losses so far on the lines from ``start_live_curves``."""
    iterations = np.arange(1, len(training_losses) + 1)
    lines[0].set_data(iterations, training_losses)
    lines[1].set_data(iterations, validation_losses)
    _fit_loss_scale(ax)


def _draw_background(ax, earlier_runs, n_iters):
    for old in earlier_runs:
        _draw_run(ax, old.training_losses, old.validation_losses, alpha=0.25, labelled=False)
    longest = max([n_iters or 0] + [len(old.training_losses) for old in earlier_runs])
    ax.set_xlim(0, max(longest, 1) + 0.5)
    ax.set_ylim(0, 2.6)  # before any run; the curves set it (_fit_loss_scale)
    _fit_loss_scale(ax)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.set_title("Loss per iteration" + (" (earlier runs faint)" if earlier_runs else ""), fontsize=10)
    ax.grid(alpha=0.3)


def _fit_loss_scale(ax):
    """Fit the y range to every loss curve on ``ax`` (earlier runs too), with a margin.

    A fixed range from 0 would show the default run (2.3026 down to 2.3019) as a flat
    line; fitted, the learner sees it move. At most 10 on top, so that one exploding run
    does not flatten every other curve. Without any values the range stays as it is.
    """
    values = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines() if line.get_gid() == LOSS_GID]
    finite = np.concatenate(values + [np.empty(0)])
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return
    high = min(finite.max(), 10.0)
    low = min(finite.min(), high)
    # A run that has not moved yet still gets a readable range around its value.
    span = max(high - low, 1e-3 * max(abs(high), 1.0))
    ax.set_ylim(max(low - 0.08 * span, 0.0), high + 0.08 * span)


def _draw_run(ax, training_losses, validation_losses, alpha, labelled):
    """Plot one run's two curves; returns the (training, validation) lines."""
    iterations = np.arange(1, len(training_losses) + 1)
    (training_line,) = ax.plot(iterations, training_losses, color=TRAINING_COLOR, alpha=alpha,
                               label="training" if labelled else None)
    (validation_line,) = ax.plot(iterations, validation_losses, color=VALIDATION_COLOR, alpha=alpha,
                                 linestyle="--", label="validation" if labelled else None)
    for line in (training_line, validation_line):
        line.set_gid(LOSS_GID)
    return training_line, validation_line


def draw_sweep(ax, learning_rates, momentum_multipliers, results, diverged, initial_loss):
    """Heat map of the final training loss per (momentum, learning rate); diverged runs hatched.

    Parameters
    ----------
    ax : matplotlib Axes
    learning_rates, momentum_multipliers : tuples of float, the columns and the rows
    results : dict, ``results[learning_rate, momentum_multiplier]`` is a TrainingResult
        (settings not run yet are left empty)
    diverged : set of (learning_rate, momentum_multiplier)
    initial_loss : float or None, the top of the colour scale
    """
    finals = np.full((len(momentum_multipliers), len(learning_rates)), np.nan)
    for (learning_rate, momentum_multiplier), result in results.items():
        row = momentum_multipliers.index(momentum_multiplier)
        column = learning_rates.index(learning_rate)
        if (learning_rate, momentum_multiplier) not in diverged:
            finals[row, column] = _final_loss(result)
    upper = initial_loss if initial_loss is not None else 2.5
    lower = min(np.nanmin(finals, initial=upper) - 0.1, upper - 0.5)
    image = ax.imshow(finals, cmap="viridis", vmin=lower, vmax=upper, aspect="auto")
    for row, momentum_multiplier in enumerate(momentum_multipliers):
        for column, learning_rate in enumerate(learning_rates):
            setting = (learning_rate, momentum_multiplier)
            if setting in diverged:
                ax.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, facecolor="lightgray",
                                       edgecolor="dimgray", hatch="xx", linewidth=0))
                ax.text(column, row, "diverged", ha="center", va="center", fontsize=8,
                        color="black", fontweight="bold")
            elif setting in results:
                value = finals[row, column]
                ax.text(column, row, f"{value:.3f}", ha="center", va="center", fontsize=9,
                        color="white" if value < (lower + upper) / 2 else "black")
    ax.set_xticks(range(len(learning_rates)), [f"{rate:g}" for rate in learning_rates])
    ax.set_yticks(range(len(momentum_multipliers)), [f"{mu:g}" for mu in momentum_multipliers])
    ax.set_xlabel("learning rate")
    ax.set_ylabel("momentum")
    ax.set_title("Final training loss (lower is better)", fontsize=10)
    ax.figure.colorbar(image, ax=ax, label="training loss")


def _new_figure(width, height):
    # A fixed layout: constrained layout would double the drawing time of each update.
    figure = Figure(figsize=(width, height), dpi=90)
    figure.subplots_adjust(left=0.1, right=0.97, bottom=0.15, top=0.86)
    FigureCanvasAgg(figure)
    figure.add_subplot()
    return figure


def figure_png(figure):
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
