"""The names of the mistakes that the checks recognize in a learner's answer.

A failed check says in words what looks wrong; it also names each mistake with a member of
:class:`Mistake`, so that the grader can keep them per learner and cell and an instructor
can count them over the class. The value of each member is its stable name (it is written
to the verdict files beside the autograded notebooks); ``label`` is what a report shows.
"""

import enum


class Mistake(enum.Enum):
    """One recognizable mistake; ``Mistake("sign_flipped").label == "sign flipped"``."""

    # The function as a whole
    NOT_IMPLEMENTED = "not_implemented"
    RAISED = "raised"
    NEVER_RETURNED = "never_returned"
    WRONG_KEYS_OR_SHAPE = "wrong_keys_or_shape"
    NOT_FINITE = "not_finite"
    # The cross-entropy part of a layer's gradient
    SIGN_FLIPPED = "sign_flipped"
    TRANSPOSED = "transposed"
    MISSING_ONE_OVER_M = "missing_one_over_m"
    DIVIDED_BY_M_TWICE = "divided_by_m_twice"
    SCALED = "scaled"
    MISSING_CROSS_ENTROPY = "missing_cross_entropy"
    MISSING_LOGISTIC_DERIVATIVE = "missing_logistic_derivative"
    LOGISTIC_DERIVATIVE_TWICE = "logistic_derivative_twice"
    # The weight decay part
    MISSING_WEIGHT_DECAY = "missing_weight_decay"
    DOUBLED_WEIGHT_DECAY = "doubled_weight_decay"
    WRONG_WEIGHT_DECAY = "wrong_weight_decay"
    WEIGHT_DECAY_WITHOUT_COEFFICIENT = "weight_decay_without_coefficient"
    # Wrong, but not in a usual way
    UNUSUAL = "unusual"
    # How the gradient is computed
    FINITE_DIFFERENCES = "finite_differences"
    RIGHT_ONLY_ON_TESTED_INPUTS = "right_only_on_tested_inputs"
    # Answers given as values (learning rates, iterations, sizes, the reported loss)
    NOT_ANSWERED = "not_answered"
    WRONG_VALUE = "wrong_value"

    @property
    def label(self):
        """The name in plain words, for reports: 'missing 1/m'."""
        return _LABELS.get(self, self.value.replace("_", " "))


_LABELS = {
    Mistake.MISSING_ONE_OVER_M: "missing 1/m (sum instead of mean)",
    Mistake.DIVIDED_BY_M_TWICE: "divided by m twice",
    Mistake.WRONG_KEYS_OR_SHAPE: "wrong keys or shape",
    Mistake.NOT_FINITE: "NaN or infinite values",
    Mistake.RAISED: "raised an exception",
    Mistake.NEVER_RETURNED: "never returned (time limit)",
    Mistake.SCALED: "scaled by a constant",
    Mistake.WEIGHT_DECAY_WITHOUT_COEFFICIENT: "weight decay even when wd_coefficient is 0",
    Mistake.UNUSUAL: "wrong in an unusual way",
    Mistake.FINITE_DIFFERENCES: "finite differences, not backpropagation",
    Mistake.RIGHT_ONLY_ON_TESTED_INPUTS: "right only on the tested inputs",
    Mistake.WRONG_VALUE: "wrong value",
}
