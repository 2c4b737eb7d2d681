"""training.train / training.evaluate on drawn faces: save, reload, resume, stop, evaluate, bad weights."""
import csv
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from emotion.classifier import EmotionClassifier
from emotion.labels import EMOTIONS
from emotion.model_io import ModelFileError, load_keras_model, read_metadata
from tests.conftest import REPO, run_module
from tests.synthetic import face_set, write_csv_dataset


def test_one_epoch_inceptionv3_saves_and_reloads_the_same_probabilities(synthetic_data, tmp_path):
    run = tmp_path / "run"
    run_module("training.train", "--data", synthetic_data, "--out", run, "--epochs", "1", "--limit", "48",
               "--val-limit", "21", "--batch-size", "16", "--image-size", "75")
    model_file = run / "best.keras"
    meta = read_metadata(model_file)
    assert meta["labels"] == list(EMOTIONS) and meta["input_size"] == 75
    assert meta["architecture"] == "inceptionv3_fer2013" and 0 <= meta["val_accuracy"] <= 1
    assert len(meta["validation"]["confusion_matrix"]) == 7 and meta["data"]["train_images"] == 48
    assert len(meta["training_prior"]) == 7 and abs(sum(meta["training_prior"]) - 1) < 1e-3  # what EM divides out
    assert model_file.stat().st_size < 50e6  # float16 storage of 22 M weights

    faces, _ = face_set(2, seed=9)
    first = EmotionClassifier.load(model_file).predict(list(faces))
    again = EmotionClassifier.load(model_file).predict(list(faces))
    assert first.shape == (14, 7) and np.allclose(first.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(first, again, atol=1e-6)


def test_float16_storage_keeps_predictions(tmp_path):
    import keras

    from emotion.model_io import save_model
    from training.model import build_small_cnn

    keras.utils.set_random_seed(0)  # an untrained net's near-ties must not flip from run to run
    model = build_small_cnn(75)
    x = np.random.default_rng(0).uniform(-1, 1, (8, 75, 75, 3)).astype(np.float32)
    full, half = tmp_path / "full.keras", tmp_path / "half.keras"
    save_model(model, full, {}, half=False)
    save_model(model, half, {})
    a, b = load_keras_model(full).predict_on_batch(x), load_keras_model(half).predict_on_batch(x)
    assert load_keras_model(half).weights[0].dtype == "float32"
    np.testing.assert_allclose(a, b, atol=2e-3)
    assert (a.argmax(1) == b.argmax(1)).all()


def _log_epochs(run):
    with open(run / "log.csv") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def test_killed_run_resumes_mid_epoch(synthetic_data, tmp_path):
    run = tmp_path / "run"
    args = ["-m", "training.train", "--data", str(synthetic_data), "--out", str(run), "--arch", "small",
            "--epochs", "2", "--batch-size", "8", "--checkpoint-every", "5", "--print-every", "1"]
    process = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "state.json").exists():
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # no chance to save anything more
    process.wait()
    state = json.loads((run / "state.json").read_text())
    epoch, batch = state["epoch"], state["batch"]
    assert state["status"] == "running" and batch % 5 == 0 and 0 < batch < 35  # a mid-epoch checkpoint

    result = run_module(*args[1:])
    assert f"resuming {run} at epoch {epoch + 1} batch {batch}" in result.stdout
    assert f"epoch {epoch + 1}/2 batch {batch + 1}/35" in result.stdout
    assert f"epoch {epoch + 1}/2 batch {batch}/35" not in result.stdout  # done batches are not repeated
    assert _log_epochs(run) == [1, 2]
    assert json.loads((run / "state.json").read_text())["status"] == "finished"
    assert (run / "best.keras").exists()


def test_stop_file_stops_cleanly_and_the_run_resumes(synthetic_data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    args = ["training.train", "--data", synthetic_data, "--out", run, "--arch", "small", "--epochs", "3",
            "--batch-size", "8", "--print-every", "1"]
    process = subprocess.Popen([sys.executable, "-m", *map(str, args)], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "progress.json").exists():
        time.sleep(0.1)
    (run / "STOP").touch()
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 0 and "stopped at epoch 1" in output
    assert json.loads((run / "progress.json").read_text())["status"] == "stopped"
    result = run_module(*args)
    assert "resuming" in result.stdout and _log_epochs(run) == [1, 2, 3]


def test_resume_refuses_changed_settings(synthetic_data, tmp_path):
    run = tmp_path / "run"
    base = ["training.train", "--data", synthetic_data, "--out", run, "--arch", "small", "--epochs", "1",
            "--batch-size", "8"]
    run_module(*base)
    assert "already finished" in run_module(*base).stdout
    changed = run_module(*base[:-1], "16", check=False)
    assert changed.returncode == 2 and "different batch_size" in changed.stderr


def test_evaluate_json_and_tta(stand_in_model, synthetic_data, tmp_path):
    result = run_module("training.evaluate", synthetic_data, "--split", "val", "--weights", stand_in_model, "--json")
    report = json.loads(result.stdout)
    assert 0.8 <= report["accuracy"] <= 1 and report["images"] == 280
    assert sum(map(sum, report["confusion_matrix"])) == 280
    assert set(report["per_class"]) == set(EMOTIONS)
    csv_path = write_csv_dataset(tmp_path / "fer2013.csv", 5, seed=4)
    text = run_module("training.evaluate", csv_path, "--split", "PublicTest", "--weights", stand_in_model,
                      "--tta").stdout
    assert "35 images" in text and "test-time flip averaging" in text and "confusion" in text


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "model file not found"),
    (lambda p: p.write_bytes(b"garbage"), "corrupt or not a Keras model"),
])
def test_bad_weights_give_clear_errors(tmp_path, make, message):
    path = tmp_path / "model.keras"
    make(path)
    with pytest.raises(ModelFileError, match=message) as error:
        EmotionClassifier.load(path)
    assert str(path) in str(error.value)
    result = run_module("emotion", "analyze", "x.mp4", "--csv", tmp_path / "o.csv", "--weights", path, check=False)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_model_with_wrong_outputs_is_refused(tmp_path):
    import keras

    inputs = keras.Input((75, 75, 3))
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(inputs)))
    model.save(tmp_path / "three.keras")
    with pytest.raises(ModelFileError, match="expected 7 emotion probabilities"):
        load_keras_model(tmp_path / "three.keras")


def test_legacy_h5_model_loads(stand_in_model, tmp_path):
    legacy = tmp_path / "model.h5"
    load_keras_model(stand_in_model).save(legacy)
    faces, _ = face_set(1)
    probabilities = EmotionClassifier.load(legacy).predict(list(faces))  # no metadata beside it: the raw outputs
    np.testing.assert_allclose(probabilities, EmotionClassifier.load(stand_in_model, calibrated=False,
                                                                     views="centre").predict(list(faces)), atol=1e-5)


def test_training_under_a_mirrored_strategy_with_one_replica(synthetic_data, tmp_path):
    run = tmp_path / "run"
    result = run_module("training.train", "--data", synthetic_data, "--out", run, "--arch", "small", "--epochs", "1",
                        "--batch-size", "16", "--strategy", "mirrored")
    assert "MirroredStrategy with 1 replica(s)" in result.stdout and (run / "best.keras").exists()


def test_onnx_runtime_backend_matches_tensorflow(stand_in_model):
    faces, _ = face_set(2, seed=5)
    onnx = EmotionClassifier.load(stand_in_model)
    tensorflow = EmotionClassifier.load(stand_in_model, backend="tensorflow")
    assert onnx.backend == "onnx" and tensorflow.backend == "tensorflow"
    np.testing.assert_allclose(onnx.predict(list(faces)), tensorflow.predict(list(faces)), atol=1e-5)


def test_the_last_epochs_anneal_the_lr_down_to_the_minimum(synthetic_data, tmp_path):
    run = tmp_path / "run"
    run_module("training.train", "--data", synthetic_data, "--out", run, "--arch", "small", "--epochs", "4",
               "--anneal-epochs", "2", "--lr", "1e-3", "--min-lr", "1e-5", "--warmup-epochs", "0",
               "--max-batches", "4", "--batch-size", "16")
    with open(run / "log.csv") as f:
        lrs = [float(row["lr"]) for row in csv.DictReader(f)]  # each epoch's LR at its last batch
    cosine = [1e-5 + (1e-3 - 1e-5) * (1 + np.cos(np.pi * done)) / 2 for done in (3 / 8, 7 / 8)]
    np.testing.assert_allclose(lrs, [1e-3, 1e-3, *cosine], rtol=1e-4)


def _stopped_mid_anneal(epochs: int, anneal: int, lr: float = 1e-3) -> dict:
    return {"lr": lr, "status": "stopped", "cosine": {"from": lr, "start": epochs - anneal, "end": epochs,
                                                       "epochs": epochs, "anneal_epochs": anneal}}


def test_a_stopped_run_resumed_with_a_shorter_anneal_goes_on_from_the_lr_it_reached():
    from training.config import TrainConfig
    from training.train import cosine_lr, replan_cosine

    state = _stopped_mid_anneal(80, 70)
    reached = cosine_lr(state["cosine"], 40.5, 1e-5)
    assert 5e-4 < reached < 7e-4  # 40 % of the way down the old cosine
    shorter = TrainConfig.from_argv(["--data", "d", "--epochs", "56", "--anneal-epochs", "16", "--min-lr", "1e-5"])
    replan_cosine(state, 40.5, shorter)
    plan = state["cosine"]
    assert cosine_lr(plan, 40.5, 1e-5) == pytest.approx(reached)  # no jump back to the old start (1e-3)
    assert cosine_lr(plan, 56, 1e-5) == pytest.approx(1e-5)
    lrs = [cosine_lr(plan, e, 1e-5) for e in np.linspace(40.5, 56, 20)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    replan_cosine(state, 41.0, shorter)  # resumed again with the same flags: the new plan stands
    assert state["cosine"] == plan


def test_a_resume_that_moves_the_anneal_later_holds_the_lr_reached_until_it_starts():
    from training.config import TrainConfig
    from training.train import cosine_lr, replan_cosine

    state = _stopped_mid_anneal(30, 24)
    reached = cosine_lr(state["cosine"], 10, 1e-5)
    replan_cosine(state, 10, TrainConfig.from_argv(["--data", "d", "--epochs", "60", "--anneal-epochs", "40", "--min-lr", "1e-5"]))
    assert "cosine" not in state and state["lr"] == pytest.approx(reached)


def test_a_finished_run_given_more_epochs_anneals_again_from_its_lr(synthetic_data, tmp_path):
    run = tmp_path / "run"
    common = ["--data", synthetic_data, "--out", run, "--arch", "small", "--lr", "1e-3", "--min-lr", "1e-5",
              "--warmup-epochs", "0", "--max-batches", "4", "--batch-size", "16", "--anneal-epochs", "2"]
    run_module("training.train", *common, "--epochs", "2")
    run_module("training.train", *common, "--epochs", "4")
    with open(run / "log.csv") as f:
        lrs = [float(row["lr"]) for row in csv.DictReader(f)]  # each epoch's LR at its last batch
    cosine = [1e-5 + (1e-3 - 1e-5) * (1 + np.cos(np.pi * done)) / 2 for done in (3 / 8, 7 / 8)]
    np.testing.assert_allclose(lrs, [*cosine, *cosine], rtol=1e-4)


def test_a_model_is_rebuilt_at_another_input_size_with_its_weights():
    from training.model import at_input_size, batchnorm_layers, build_model

    model = build_model(75)
    resized = at_input_size(model, 96)
    assert resized.input_shape == (None, 96, 96, 3) and resized.name == model.name
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), resized.get_weights(), strict=True))
    assert {layer.momentum for layer in batchnorm_layers(resized)} == {0.9}


def test_fine_tuning_at_a_larger_input_size(stand_in_model, synthetic_data, tmp_path):
    run = tmp_path / "run"
    result = run_module("training.train", "--data", synthetic_data, "--out", run, "--init", stand_in_model,
                        "--image-size", "96", "--epochs", "1", "--max-batches", "3", "--batch-size", "16")
    assert "at 96 px" in result.stdout
    assert EmotionClassifier.load(run / "best.keras").input_size == 96


def _pooled_features_in_both_modes(model, x):
    """The pooled features (before dropout) of `x` with BatchNorm's moving statistics and with the batch's own."""
    import keras

    features = keras.Model(model.input, model.get_layer(index=-3).output)
    return features(x, training=False), features(x, training=True)


def test_recalibrated_batchnorm_statistics_are_those_of_the_faces():
    import keras

    from emotion.preprocess import prepare_faces
    from training.model import batchnorm_layers, build_small_cnn, recalibrate_batchnorm

    keras.utils.set_random_seed(0)
    model = build_small_cnn(75)
    for layer in batchnorm_layers(model):
        layer.moving_mean.assign(layer.moving_mean + 3.0)
    faces, _ = face_set(3, seed=4)
    x = prepare_faces(faces, 75)
    assert not np.allclose(*_pooled_features_in_both_modes(model, x), atol=1e-3)

    # every batch holds all 21 faces, so the average of three batches' statistics is theirs exactly
    assert recalibrate_batchnorm(model, faces, images=63, batch_size=64) == 63
    np.testing.assert_allclose(*_pooled_features_in_both_modes(model, x), atol=1e-3)
    assert {layer.momentum for layer in batchnorm_layers(model)} == {0.9}


def test_recalibrate_keeps_a_run_model_only_when_val_improves(stand_in_model, tmp_path):
    from emotion.model_io import save_model
    from training.model import batchnorm_layers

    run = tmp_path / "run"
    model = load_keras_model(stand_in_model)
    for layer in batchnorm_layers(model):  # statistics gone astray, as after noisy augmented batches
        layer.moving_variance.assign(layer.moving_variance * 50.0)
    save_model(model, run / "best.keras", read_metadata(stand_in_model))

    result = run_module("training.recalibrate", run, "--batch-size", "64")
    meta = read_metadata(run / "best.keras")
    before = meta["batchnorm_recalibration"]["val_accuracy_before"]
    assert "kept" in result.stdout and meta["val_accuracy"] > before
    assert "val accuracy (flip views)" in result.stdout and meta["batchnorm_recalibration"]["views"] == "flip"
    assert read_metadata(run / "best.before-recalibration.keras")["val_accuracy"] == \
        read_metadata(stand_in_model)["val_accuracy"]
    assert sorted(p.name for p in run.iterdir()) == ["best.before-recalibration.json",
                                                     "best.before-recalibration.keras", "best.json", "best.keras"]

    empty = run_module("training.recalibrate", tmp_path / "nothing", check=False)
    assert empty.returncode == 2 and "has no best model yet" in empty.stderr


@pytest.mark.parametrize("faces", [48, 0])
def test_each_validation_sees_batchnorm_statistics_of_clean_training_faces(synthetic_data, tmp_path, faces):
    from emotion.preprocess import prepare_faces
    from training.data import load_split

    run = tmp_path / "run"
    run_module("training.train", "--data", synthetic_data, "--out", run, "--arch", "small", "--epochs", "1",
               "--limit", "48", "--batch-size", "16", "--epoch-recalibrate-images", faces,
               "--recalibrate-images", "0")
    model = load_keras_model(run / "best.keras")
    x = prepare_faces(load_split(synthetic_data, "train").subset(48, seed=1).images, 75)
    # one batch of all 48 training faces: the saved statistics are exactly theirs (up to float16 storage)
    inference, training = _pooled_features_in_both_modes(model, x)
    gap = float(np.abs(inference - training).max())
    assert gap < 0.02 if faces else gap > 0.1
