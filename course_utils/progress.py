"""Progress bars for long cells, shown to a learner working interactively.

``tqdm.auto`` draws a widget in Jupyter and text elsewhere; the text goes to stdout, never
to stderr, because nbgrader scores a test cell zero for any stderr output. While nbgrader
executes a notebook (autograde, validate: it sets ``NBGRADER_EXECUTION``) nothing is shown.
"""

import os
import sys

from tqdm.auto import tqdm


def showing_progress():
    """False while nbgrader executes the notebook (``NBGRADER_EXECUTION`` is set)."""
    return not os.environ.get("NBGRADER_EXECUTION")


def progress_bar(iterable, description=True, **options):
    """``iterable`` with a progress bar, or ``iterable`` itself when nothing is to be shown.

    Parameters
    ----------
    iterable : iterable, with a length when the bar is to show how far along it is
    description : bool or str
        False: no bar. True: a bar without label. A string: the bar's label.
    options : passed on to ``tqdm`` (e.g. ``unit="run"``)

    Returns
    -------
    iterable yielding the same items
    """
    if description is False or description is None or not showing_progress():
        return iterable
    label = description if isinstance(description, str) else None
    return tqdm(iterable, desc=label, file=sys.stdout, **options)


def progress(iterable, description=None):
    """Loop over ``iterable`` with a progress bar labelled ``description``, e.g.
    ``for wd in progress(wd_coefficients, 'weight decay runs'): ...``."""
    return progress_bar(iterable, description or True, unit="run")
