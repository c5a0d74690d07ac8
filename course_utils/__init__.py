"""Helpers for the backpropagation assignment.

The learner writes ``d_loss_by_d_model``; everything around it is here: the data,
the network's forward pass and loss, the gradient tester and the training driver.
"""

from .data import DataError, find_data_file, load_data
from .gradient_check import (
    GradientCheckError,
    GradientReport,
    check_gradient,
    finite_difference_gradient,
    test_gradient,
)
from .network import (
    classification_performance,
    cross_entropy,
    error_rate,
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
from .notebook_code import function_from_notebook, gradient_from_notebook
from .progress import progress
from .report import a2, format_report, plot_losses
from .training import TrainingResult, train

__all__ = [
    "DataError", "find_data_file", "load_data",
    "GradientCheckError", "GradientReport", "check_gradient", "finite_difference_gradient",
    "test_gradient",
    "classification_performance", "cross_entropy", "error_rate", "forward_pass",
    "initial_model", "log_softmax", "log_sum_exp_over_rows", "logistic", "loss",
    "model_to_theta", "theta_to_model", "weight_decay_loss",
    "progress",
    "function_from_notebook", "gradient_from_notebook",
    "a2", "format_report", "plot_losses",
    "TrainingResult", "train",
]
