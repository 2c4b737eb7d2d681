"""FER2013 loaders: both forms, label mapping, and every bad input with a clear message (on the Training page too)."""
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from emotion.labels import EMOTIONS, FER2013_CSV_INDEX
from tests.conftest import REPO
from tests.synthetic import write_csv_dataset, write_folder_dataset
from training import inspect_data
from training.data import DatasetError, class_weights, load_split, training_prior
from training.inspect_data import inspect_dataset

PIXELS = " ".join(["1"] * 2304)


def test_csv_and_folder_forms_give_the_same_labels(tmp_path):
    folders = write_folder_dataset(tmp_path / "fer", 3, seed=1)
    csv_path = write_csv_dataset(tmp_path / "fer2013.csv", 3, seed=1)
    from_folders = load_split(folders, "train")
    from_csv = load_split(csv_path, "Training")
    assert from_folders.class_counts() == from_csv.class_counts() == dict.fromkeys(EMOTIONS, 3)
    assert load_split(csv_path, "val").class_counts() == dict.fromkeys(EMOTIONS, 3)
    assert from_csv.images.shape == (21, 48, 48) and from_csv.images.dtype == np.uint8


def test_csv_class_numbers_follow_kaggle_not_alphabet(tmp_path):
    path = tmp_path / "fer2013.csv"
    pixels = " ".join(["128"] * 2304)
    path.write_text("emotion,pixels,Usage\n" + "".join(f"{code},{pixels},Training\n" for code in range(7)))
    faces = load_split(path, "train")
    assert [EMOTIONS[i] for i in faces.labels] == [FER2013_CSV_INDEX[c] for c in range(7)]
    assert EMOTIONS[faces.labels[4]] == "sad" and EMOTIONS[faces.labels[6]] == "neutral"


def test_bare_emotion_folders_are_one_split(tmp_path):
    root = write_folder_dataset(tmp_path / "fer", 2, splits=("val",)) / "val"
    assert len(load_split(root, "val")) == 14
    assert len(load_split(root)) == 14


def test_missing_dataset(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        load_split(tmp_path / "nope", "train")


def test_missing_split(tmp_path):
    root = write_folder_dataset(tmp_path / "fer", 1, splits=("train",))
    with pytest.raises(DatasetError, match="no 'val' split.*found: train"):
        load_split(root, "val")


def test_unknown_label_folder(tmp_path):
    root = write_folder_dataset(tmp_path / "fer", 1, splits=("train",))
    (root / "train" / "bored").mkdir()
    with pytest.raises(DatasetError, match="unknown label folder.*bored"):
        load_split(root, "train")


def test_unreadable_image_is_named_and_can_be_skipped(tmp_path):
    root = write_folder_dataset(tmp_path / "fer", 2, splits=("train",))
    (root / "train" / "happy" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match="1 unreadable image.*broken.jpg"):
        load_split(root, "train")
    faces = load_split(root, "train", skip_unreadable=True)
    assert len(faces) == 14 and faces.skipped[0].endswith("broken.jpg")


@pytest.mark.parametrize("content, message", [
    ("label,image\n1,2\n", "expected emotion,pixels"),
    ("emotion,pixels,Usage\n3,1 2 3,Training\n", "row 2, column pixels: 3 values, expected 2304"),
    ("emotion,pixels,Usage\n9," + " ".join(["1"] * 2304) + ",Training\n", "row 2, column emotion"),
    ("emotion,pixels,Usage\n3," + " ".join(["x"] * 2304) + ",Training\n", "not a list of whole numbers"),
    ("emotion,pixels,Usage\n3," + " ".join(["1"] * 2304) + ",PublicTest\n", "no rows with Usage=Training"),
])
def test_bad_csv(tmp_path, content, message):
    path = tmp_path / "fer2013.csv"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_split(path, "train")


BROKEN_CSVS = [
    ("emotion,pixels,Usage\n3," + " ".join(["1"] * 2303 + ["1" * 23]) + ",Training\n",
     "row 2, column pixels: values must lie in 0-255"),  # too big even for a 64-bit number
    ("emotion,pixels,Usage\n", "has a header but no rows of faces"),
    ("emotion,pixels\n", "has a header but no rows of faces"),
    (f"emotion,pixels,Usage\n3,{PIXELS},Practice\n",
     "no rows with Usage Training, PublicTest or PrivateTest (found: Practice)"),
]


@pytest.mark.parametrize("content, message", BROKEN_CSVS)
def test_broken_csv_is_a_dataset_error_for_the_inspection_too(tmp_path, content, message):
    path = tmp_path / "fer2013.csv"
    path.write_text(content)
    with pytest.raises(DatasetError, match=re.escape(message)):
        inspect_dataset(path)


@pytest.mark.parametrize("content, message", BROKEN_CSVS[:2])
def test_the_training_page_says_what_is_wrong_once_and_does_not_read_it_again(runs_root, model_dir, tmp_path,
                                                                             monkeypatch, content, message):
    path = tmp_path / "fer2013.csv"
    path.write_text(content)
    reads, inspect = [], inspect_data.inspect_dataset
    monkeypatch.setattr(inspect_data, "inspect_dataset", lambda where: reads.append(where) or inspect(where))
    at = AppTest.from_file(str(REPO / "pages/3_Training.py"), default_timeout=60).run()
    at.text_input(key="data_path").input(str(path)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(message in e.value for e in at.error)
    at.run()
    next(t for t in at.text_input if t.label == "Run name").input("next").run()  # any widget reruns the page
    assert reads == [str(path)] and any(message in e.value for e in at.error)
    path.write_text(content + "\n")  # a changed file is read again
    at.run()
    assert reads == [str(path)] * 2


def test_sqrt_class_weights_lift_rare_classes_and_average_one():
    labels = np.array([0] * 100 + [1] * 4 + [3] * 400)
    weights = class_weights(labels, "sqrt")
    assert weights[1] > weights[0] > weights[3]
    assert np.isclose(weights[labels].mean(), 1.0, atol=1e-5)
    assert weights[2] == 0  # absent class


def test_the_training_prior_is_counts_times_class_weights_and_the_aggregator_prefers_it():
    from emotion.aggregate import MoodAggregator

    labels = np.array([0] * 100 + [1] * 4 + [3] * 400 + [4] * 100 + [5] * 100 + [6] * 100 + [2] * 196)
    counts = np.bincount(labels, minlength=7)
    np.testing.assert_allclose(training_prior(labels, "sqrt"), np.sqrt(counts) / np.sqrt(counts).sum(), atol=1e-5)
    np.testing.assert_allclose(training_prior(labels, "none"), counts / counts.sum(), atol=1e-5)
    np.testing.assert_allclose(training_prior(labels, "inverse"), np.full(7, 1 / 7), atol=1e-5)
    implied = [0.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2]
    trained = training_prior(labels, "sqrt")
    both = {"calibration": {"prior": implied}, "training_prior": trained}
    np.testing.assert_allclose(MoodAggregator.for_model(both).prior, trained, atol=1e-4)
    np.testing.assert_allclose(MoodAggregator.for_model({"calibration": {"prior": implied}}).prior, implied)  # older
