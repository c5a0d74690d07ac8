"""Printing and plotting on top of ``train``: the notebook's ``a2`` report."""


from .data import SPLITS
from .gradient_check import PASS_MESSAGE
from .training import train


def format_report(result):
    """The original assignment's report of a training run, as text."""
    lines = []
    if result.diverged:
        lines.append(
            f"Training diverged: the loss became NaN or infinite after "
            f"{len(result.training_losses)} iterations. Try a smaller learning rate."
        )
    if result.best_iteration is not None:
        lines.append(
            f"Early stopping: validation loss was lowest after {result.best_iteration} "
            "iterations. We chose the model that we had then."
        )
    wd_coefficient = result.settings["wd_coefficient"]
    for split, name in SPLITS.items():
        metrics = result.metrics[split]
        lines.append("")
        lines.append(f"The loss on the {name} data is {metrics['loss']}")
        if wd_coefficient != 0:
            lines.append(
                "The classification loss (i.e. without weight decay) on the "
                f"{name} data is {metrics['classification_loss']}"
            )
        lines.append(f"The classification error rate on the {name} data is {metrics['error_rate']}")
    return "\n".join(lines)


def plot_losses(result, ax=None, **plot_options):
    """Plot the training and validation loss per iteration.

    Parameters
    ----------
    result : TrainingResult
    ax : matplotlib Axes, optional; a new figure is made when omitted
    plot_options : passed on to ``ax.plot`` (e.g. ``alpha``)

    Returns
    -------
    matplotlib Axes
    """
    if ax is None:
        import matplotlib.pyplot as plt  # here: pyplot takes half a second to import

        ax = plt.figure().add_subplot()
    iterations = range(1, len(result.training_losses) + 1)
    ax.plot(iterations, result.training_losses, "b", label="training", **plot_options)
    ax.plot(iterations, result.validation_losses, "r", label="validation", **plot_options)
    if result.best_iteration is not None:
        ax.axvline(result.best_iteration, color="gray", linestyle=":", label="early stopping")
    ax.legend()
    ax.set_xlabel("iteration number")
    ax.set_ylabel("loss")
    return ax


def a2(
    gradient_fn,
    wd_coefficient,
    n_hid,
    n_iters,
    learning_rate,
    momentum_multiplier,
    do_early_stopping,
    mini_batch_size,
    *,
    datas=None,
    progress=True,
):
    """Train (see ``train``), print the report and plot the loss curves in a new figure.

    A progress bar of the iterations is shown unless ``progress`` is False (and never
    while nbgrader grades).

    Returns
    -------
    TrainingResult
    """
    result = train(
        gradient_fn,
        wd_coefficient,
        n_hid,
        n_iters,
        learning_rate,
        momentum_multiplier,
        do_early_stopping,
        mini_batch_size,
        datas=datas,
        progress=progress,
    )
    for _ in result.gradient_checks:
        print(PASS_MESSAGE)
    if result.training_losses:
        plot_losses(result)
        import matplotlib.pyplot as plt

        plt.show()
    print(format_report(result))
    return result
