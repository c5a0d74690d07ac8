"""Finding, verifying and loading the digits data set (``data.mat``).

The file is not part of the course repository. ``find_data_file`` looks for it in
a fixed list of places (see ``candidate_paths``), ``load_data`` checks that it is
the exact file the reference numbers were computed on and returns the three splits.
"""

import hashlib
import os
from pathlib import Path

import numpy as np
import scipy.io

FILE_NAME = "data.mat"
EXPECTED_SHA256 = "30f3ff16f68d726747a312865582c971100ba3c4328621d58b896fd47ba006d1"
EXPECTED_SIZE = 23_409_008
# Folder that JupyterHub deployments customarily mount read-only for course data.
JUPYTERHUB_DATA_DIR = Path("/coursedata")
PROJECT_DIR = Path(__file__).resolve().parent.parent

# Names of the splits in the file and in ``datas``.
SPLITS = {"train": "training", "val": "validation", "test": "test"}

HOW_TO_GET_IT = (
    "The file is the data of the 'Optimization and generalization' backpropagation "
    "assignment (University of Toronto CSC321 / Coursera 'Neural Networks for Machine "
    "Learning', programming assignment 3). Ask your instructor for it, or copy it "
    f"into the project's data/ folder, or set COURSE_DATA_DIR to the folder that holds "
    f"it. Expected: {EXPECTED_SIZE} bytes, sha256 {EXPECTED_SHA256}."
)

_verified_files = set()


class DataError(Exception):
    """The data file is missing, damaged or not the expected data set."""


def candidate_paths():
    """The places searched for ``data.mat``, in order.

    1. ``$COURSE_DATA_DIR/data.mat`` when the environment variable is set;
    2. the project's ``data/`` folder;
    3. ``../shared/data/`` beside the project;
    4. the JupyterHub course-data folder ``/coursedata``.
    """
    places = []
    env_dir = os.environ.get("COURSE_DATA_DIR")
    if env_dir:
        places.append(Path(env_dir).expanduser() / FILE_NAME)
    places.append(PROJECT_DIR / "data" / FILE_NAME)
    places.append(PROJECT_DIR.parent / "shared" / "data" / FILE_NAME)
    places.append(JUPYTERHUB_DATA_DIR / FILE_NAME)
    return places


def find_data_file():
    """Return the path of the first ``data.mat`` found in ``candidate_paths()``.

    Raises
    ------
    DataError
        If no candidate exists; the message lists every place searched.
    """
    places = candidate_paths()
    for path in places:
        if path.is_file():  # a symbolic link to the file counts (e.g. /coursedata/data.mat)
            return path
        if path.is_symlink():
            raise DataError(f"{path} is a symbolic link to {os.readlink(path)}, which does not "
                            f"exist or is not a file. Fix the link or copy the file there.\n{HOW_TO_GET_IT}")
    searched = "\n".join(f"  - {path}" for path in places)
    raise DataError(f"Could not find {FILE_NAME}. Looked in:\n{searched}\n{HOW_TO_GET_IT}")


def verify_file(path, sha256=EXPECTED_SHA256):
    """Check the size and sha256 of ``path``; each file is hashed once per process."""
    path = Path(path)
    key = (str(path.resolve()), sha256)
    if key in _verified_files:
        return
    size = path.stat().st_size
    if sha256 == EXPECTED_SHA256 and size != EXPECTED_SIZE:
        # A size mismatch is almost always an interrupted download or copy.
        raise DataError(
            f"{path} has {size} bytes but the data set has {EXPECTED_SIZE}: the file is "
            f"truncated or not the right file. Copy it again.\n{HOW_TO_GET_IT}"
        )
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != sha256:
        raise DataError(
            f"{path} has sha256 {digest.hexdigest()}, expected {sha256}: the file is "
            f"damaged or a different version. Copy it again.\n{HOW_TO_GET_IT}"
        )
    _verified_files.add(key)


def load_data(path=None, *, sha256=EXPECTED_SHA256):
    """Load the training, validation and test splits.

    Parameters
    ----------
    path : str or Path, optional
        The ``.mat`` file; by default the first one ``find_data_file`` finds.
    sha256 : str or None
        Expected checksum; ``None`` skips the check (for files other than the
        course data set).

    Returns
    -------
    datas : dict
        ``datas[split]`` for split in ``'train'``, ``'val'``, ``'test'`` is a dict
        with ``'inputs'``, an array of shape (256, N), and ``'target'``, a one-hot
        array of shape (10, N), both float64 exactly as stored in the file.
        N is 1000, 1000 and 9000 for the course data set.
    """
    path = Path(path) if path is not None else find_data_file()
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file.\n{HOW_TO_GET_IT}")
    if sha256 is not None:
        verify_file(path, sha256)
    try:
        content = scipy.io.loadmat(path)
    except Exception as error:  # scipy raises several types for unreadable files
        raise DataError(
            f"{path} could not be read as a MATLAB file ({error}). Copy it again.\n{HOW_TO_GET_IT}"
        ) from None
    return _splits_from_mat(content, path)


def _splits_from_mat(content, path):
    def fail(problem):
        raise DataError(
            f"{path} does not have the expected structure: {problem}. Expected a struct "
            "'data' with fields training, validation and test, each with 'inputs' "
            f"(256 x N) and 'targets' (10 x N).\n{HOW_TO_GET_IT}"
        )

    if "data" not in content:
        fail(f"no variable 'data' (found: {sorted(k for k in content if not k.startswith('__'))})")
    data = content["data"]
    if data.dtype.names is None or data.size != 1:
        fail("'data' is not a struct")
    datas = {}
    for split, field in SPLITS.items():
        if field not in data.dtype.names:
            fail(f"no field '{field}'")
        part = data[field].flat[0]
        if part.dtype.names is None or not {"inputs", "targets"} <= set(part.dtype.names):
            fail(f"'{field}' lacks 'inputs' or 'targets'")
        inputs = np.asarray(part["inputs"].flat[0], dtype=np.float64)
        target = np.asarray(part["targets"].flat[0], dtype=np.float64)
        if inputs.ndim != 2 or inputs.shape[0] != 256:
            fail(f"'{field}.inputs' has shape {inputs.shape}")
        if target.shape != (10, inputs.shape[1]):
            fail(f"'{field}.targets' has shape {target.shape}, inputs {inputs.shape}")
        datas[split] = {"inputs": inputs, "target": target}
    return datas


def main():
    """``python -m course_utils``: say where the data set is and whether it is intact."""
    import sys

    try:
        path = find_data_file()
        verify_file(path)
    except DataError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"Data set found and verified: {path}")
    return 0

