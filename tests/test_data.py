"""Finding, verifying and loading data.mat."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.io

from course_utils import DataError, data, load_data

pytestmark = pytest.mark.fast  # no nbgrader run, no browser


def test_splits_have_the_documented_shapes_and_types(datas):
    sizes = {"train": 1000, "val": 1000, "test": 9000}
    assert set(datas) == set(sizes)
    for split, n in sizes.items():
        assert datas[split]["inputs"].shape == (256, n)
        assert datas[split]["target"].shape == (10, n)
        assert datas[split]["inputs"].dtype == np.float64
        assert datas[split]["target"].dtype == np.float64
        # One-hot targets, balanced classes.
        np.testing.assert_array_equal(datas[split]["target"].sum(axis=0), 1)
        np.testing.assert_array_equal(datas[split]["target"].sum(axis=1), n // 10)


def test_values_are_exactly_those_in_the_file(datas):
    raw = scipy.io.loadmat(data.find_data_file())["data"][0, 0]
    for split, field in data.SPLITS.items():
        np.testing.assert_array_equal(datas[split]["inputs"], raw[field]["inputs"][0, 0])
        np.testing.assert_array_equal(datas[split]["target"], raw[field]["targets"][0, 0])


@pytest.fixture
def isolated_lookup(tmp_path, monkeypatch):
    """Point every place of the lookup chain into tmp_path; returns the four folders in order."""
    folders = [tmp_path / "env", tmp_path / "course" / "data", tmp_path / "shared" / "data", tmp_path / "hub"]
    for folder in folders:
        folder.mkdir(parents=True)
    monkeypatch.setenv("COURSE_DATA_DIR", str(folders[0]))
    monkeypatch.setattr(data, "PROJECT_DIR", tmp_path / "course")
    monkeypatch.setattr(data, "JUPYTERHUB_DATA_DIR", folders[3])
    return folders


def test_candidate_paths_follow_the_documented_order(isolated_lookup):
    assert data.candidate_paths() == [folder / "data.mat" for folder in isolated_lookup]


def test_the_first_existing_candidate_wins(isolated_lookup):
    for folder in reversed(isolated_lookup):
        (folder / "data.mat").write_bytes(b"x")
        assert data.find_data_file() == folder / "data.mat"


def test_missing_file_names_every_place_searched(isolated_lookup):
    with pytest.raises(DataError) as error:
        load_data()
    message = str(error.value)
    for place in data.candidate_paths():
        assert str(place) in message
    assert "COURSE_DATA_DIR" in message and data.EXPECTED_SHA256 in message


def test_truncated_file_is_reported_as_truncated(tmp_path):
    real = data.find_data_file()
    truncated = tmp_path / "data.mat"
    truncated.write_bytes(real.read_bytes()[:1_000_000])
    with pytest.raises(DataError, match="truncated") as error:
        load_data(truncated)
    assert str(truncated) in str(error.value)


def test_wrong_checksum_is_reported(tmp_path):
    real = data.find_data_file()
    altered = bytearray(real.read_bytes())
    altered[-1] ^= 0xFF  # same size, one byte different
    path = tmp_path / "data.mat"
    path.write_bytes(bytes(altered))
    with pytest.raises(DataError, match="sha256") as error:
        load_data(path)
    assert "Copy it again" in str(error.value)


def test_unreadable_file_is_reported(tmp_path):
    path = tmp_path / "data.mat"
    path.write_bytes(b"this is not a MATLAB file")
    with pytest.raises(DataError, match="could not be read"):
        load_data(path, sha256=None)


@pytest.mark.parametrize(
    "content, problem",
    [
        ({"other": np.zeros(3)}, "no variable 'data'"),
        ({"data": {"training": {"inputs": np.zeros((256, 4)), "targets": np.zeros((10, 4))}}},
         "no field 'validation'"),
        ({"data": {split: {"inputs": np.zeros((255, 4)), "targets": np.zeros((10, 4))}
                   for split in ("training", "validation", "test")}},
         "'training.inputs' has shape (255, 4)"),
        ({"data": {split: {"inputs": np.zeros((256, 4)), "labels": np.zeros((10, 4))}
                   for split in ("training", "validation", "test")}},
         "lacks 'inputs' or 'targets'"),
    ],
)
def test_wrong_structure_is_reported(tmp_path, content, problem):
    path = tmp_path / "data.mat"
    scipy.io.savemat(path, content)
    with pytest.raises(DataError) as error:
        load_data(path, sha256=None)
    assert problem in str(error.value)
    assert "expected structure" in str(error.value)


def test_a_small_file_with_the_right_structure_loads(tmp_path):
    path = tmp_path / "small.mat"
    splits = {split: {"inputs": np.full((256, 3), 0.5), "targets": np.eye(10)[:, :3]}
              for split in ("training", "validation", "test")}
    scipy.io.savemat(path, {"data": splits})
    loaded = load_data(path, sha256=None)
    np.testing.assert_array_equal(loaded["val"]["target"], np.eye(10)[:, :3])


def test_checksum_is_computed_once_per_process(monkeypatch):
    path = data.find_data_file()
    load_data(path)  # verified at least once in this process
    hashed = []
    real_sha256 = data.hashlib.sha256
    monkeypatch.setattr(data.hashlib, "sha256", lambda *a: hashed.append(1) or real_sha256(*a))
    load_data(path)
    assert hashed == []
    data._verified_files.clear()
    load_data(path)
    assert hashed == [1]


def test_command_line_check_reports_the_file_and_is_silent_on_stderr():
    # `make data` runs this; nothing may reach stderr when the data set is fine.
    completed = subprocess.run([sys.executable, "-m", "course_utils"], capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.startswith("Data set found and verified: ")
    assert completed.stderr == ""


def test_data_file_found_and_loaded_through_a_symbolic_link(linked_data_dir):
    assert data.find_data_file() == linked_data_dir / "data.mat"
    datas = load_data()
    assert datas["train"]["inputs"].shape == (256, 1000)


def test_data_file_found_as_a_plain_file(tmp_path, monkeypatch):
    folder = tmp_path / "coursedata"
    folder.mkdir()
    monkeypatch.setenv("COURSE_DATA_DIR", str(folder))
    (folder / "data.mat").write_bytes(b"x")
    assert data.find_data_file() == folder / "data.mat"


def test_a_dangling_link_is_reported_as_such(tmp_path, monkeypatch):
    folder = tmp_path / "coursedata"
    folder.mkdir()
    (folder / "data.mat").symlink_to(tmp_path / "gone.mat")
    monkeypatch.setenv("COURSE_DATA_DIR", str(folder))
    with pytest.raises(DataError, match="symbolic link to .*gone.mat"):
        data.find_data_file()


