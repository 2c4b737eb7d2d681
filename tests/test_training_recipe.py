"""The training recipe's pieces (crop-based training, test-time views, mixup, an SGD stage on resume) and the
one home of a run's configuration (training/config.py), round-tripped through flags, stored config and page."""
from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from emotion.classifier import EmotionClassifier
from emotion.model_io import read_metadata, write_metadata
from emotion.preprocess import VIEW_SETS, crop_at, prepare_faces
from tests.conftest import run_module
from training.config import KNOBS, TrainConfig, to_argv
from training.pipeline import make_augmenter, mixup, random_crops


def test_random_crops_are_exact_windows_of_each_face():
    faces = np.random.default_rng(0).integers(0, 255, (16, 48, 48, 1)).astype(np.float32)
    crops = random_crops(tf.constant(faces), 40).numpy()
    assert crops.shape == (16, 40, 40, 1)
    offsets = set()
    for face, crop in zip(faces, crops):
        found = [(top, left) for top in range(9) for left in range(9)
                 if np.allclose(face[top:top + 40, left:left + 40], crop, atol=1e-2)]
        assert len(found) == 1  # a whole-pixel window (to float rounding), not a resampled one
        offsets.add(found[0])
    assert len(offsets) > 4  # different faces, different places


def test_mixup_blends_images_labels_and_weights_alike():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (32, 8, 8, 3)).astype(np.float32)
    w = rng.uniform(0.5, 2, 32).astype(np.float32)
    y = np.eye(32, dtype=np.float32)  # one label per example, so each blend shows its partner
    mx, my, mw = (t.numpy() for t in mixup(tf.constant(x), tf.constant(y), tf.constant(w), alpha=1.0))
    np.testing.assert_allclose(my.sum(axis=1), 1, atol=1e-6)
    blended = 0
    for i in range(32):
        lam = my[i, i]
        partner = int(np.argmax(np.where(np.arange(32) == i, -1, my[i]))) if lam < 1 - 1e-6 else i
        np.testing.assert_allclose(mx[i], lam * x[i] + (1 - lam) * x[partner], atol=1e-5)
        np.testing.assert_allclose(mw[i], lam * w[i] + (1 - lam) * w[partner], rtol=1e-5)
        blended += 0.05 < lam < 0.95
    assert blended > 16  # Beta(1, 1): most weights are far from 0 and 1


def test_augmentation_strength_scales_the_changes_and_zero_leaves_flips_only():
    import cv2

    rng = np.random.default_rng(3)  # smooth random faces, so a change's size follows the augmentation's
    smooth = np.stack([cv2.GaussianBlur(rng.uniform(0, 255, (48, 48)).astype(np.float32), (0, 0), 4)
                       for _ in range(64)])
    smooth = (smooth - smooth.min(axis=(1, 2), keepdims=True)) / np.ptp(smooth, axis=(1, 2), keepdims=True) * 255
    faces = tf.constant(smooth[..., None].astype(np.float32))

    def distance_from_face_or_mirror(strength):
        out = make_augmenter(seed=5, strength=strength)(faces, training=True).numpy()
        plain, mirrored = faces.numpy(), faces.numpy()[:, :, ::-1]
        return np.minimum(np.abs(out - plain).mean(axis=(1, 2, 3)), np.abs(out - mirrored).mean(axis=(1, 2, 3)))

    assert distance_from_face_or_mirror(0.0).max() < 1e-4  # every face is itself or its mirror image
    light, full = distance_from_face_or_mirror(0.5).mean(), distance_from_face_or_mirror(1.0).mean()
    assert 5 < light < 0.7 * full  # turned, shifted, zoomed and relit, about half as much at half strength


def test_views_keep_shapes_and_face_order():
    rng = np.random.default_rng(2)
    faces = rng.integers(0, 255, (5, 48, 48), dtype=np.uint8)
    batch = prepare_faces(faces, 75, crop_size=44, views="ten")
    assert batch.shape == (50, 75, 75, 3)
    single = prepare_faces(faces[3:4], 75, crop_size=44, views="ten")
    np.testing.assert_array_equal(batch[30:40], single)  # face 3's ten views, in order
    np.testing.assert_array_equal(batch[35], batch[30][:, ::-1])  # the mirrored centre view
    assert crop_at(faces[0], 44, "bottom-right").shape == (44, 44)
    np.testing.assert_array_equal(crop_at(faces[0], 44, "bottom-right"), faces[0][4:, 4:])
    with pytest.raises(ValueError, match="only a model trained on crops"):
        prepare_faces(faces, 75, views="five")


def test_crop_averaged_inference_gives_one_row_per_face_in_order(stand_in_model, tmp_path):
    model = tmp_path / "cropped.keras"
    model.write_bytes(stand_in_model.read_bytes())
    metadata = read_metadata(stand_in_model)
    write_metadata(model, {**metadata, "preprocessing": {**metadata["preprocessing"], "crop_size": 44}})
    faces = list(np.random.default_rng(3).integers(0, 255, (9, 60, 60), dtype=np.uint8))
    for views in VIEW_SETS:
        classifier = EmotionClassifier.load(model, backend="tensorflow", views=views)
        together = classifier.predict(faces, batch_size=4)
        alone = np.concatenate([classifier.predict([face]) for face in faces])
        assert together.shape == (9, 7)
        np.testing.assert_allclose(together, alone, atol=1e-5)
        np.testing.assert_allclose(together.sum(axis=1), 1, atol=1e-5)
    centre = EmotionClassifier.load(model, backend="tensorflow").predict(faces)
    assert not np.allclose(centre, together)  # ten views average to something else than the centre crop


def test_config_round_trips_through_flags_and_stored_config():
    config = TrainConfig.from_argv(["--data", "/data/fer", "--epochs", "7", "--optimizer", "sgd", "--lr", "0.01",
                                    "--no-augment", "--crop-size", "40", "--mixup", "0.4", "--skip-unreadable"])
    assert (config.epochs, config.optimizer, config.augment, config.crop_size, config.skip_unreadable) == \
        (7, "sgd", False, 40, True)
    assert TrainConfig.from_argv(config.to_argv()) == config
    stored = json.loads(json.dumps(config.stored()))
    assert TrainConfig.from_stored(stored) == config
    assert TrainConfig.from_stored({k: v for k, v in stored.items() if k != "mixup"}).mixup == 0.0  # older runs
    assert "--no-augment" in to_argv({"augment": False}) and to_argv({"augment": True}) == []
    help_texts = {a.dest: a.help for a in TrainConfig.parser()._actions}
    assert all(help_texts[name] == knob.help for name, knob in KNOBS.items())


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "--epochs must be between 1 and 1000"),
    (["--optimizer", "lion"], "invalid choice: 'lion'"),
    (["--crop-size", "60"], "--crop-size must be between 0 and 48"),
])
def test_trainer_refuses_bad_settings_and_warns_about_contradictions(synthetic_data, tmp_path, flags, message):
    result = run_module("training.train", "--data", synthetic_data, "--out", tmp_path / "run", *flags, check=False)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    config = TrainConfig(data="x", epochs=1)
    assert config.contradictions() == [
        "the anneal covers the last 18 epochs of a run of 1; make it at most the number of epochs",
        "the warmup (2 epochs) is longer than the run (1)"]


def test_an_sgd_stage_switches_the_optimizer_when_a_run_is_resumed(synthetic_data, tmp_path):
    import keras

    run = tmp_path / "run"
    common = ["--data", synthetic_data, "--out", run, "--arch", "small", "--batch-size", "16", "--crop-size", "44",
              "--mixup", "0.2", "--recalibrate-images", "0", "--epoch-recalibrate-images", "64", "--warmup-epochs",
              "0", "--anneal-epochs", "1"]
    run_module("training.train", *common, "--epochs", "1")
    assert type(keras.models.load_model(run / "last.keras").optimizer).__name__ == "AdamW"
    resumed = run_module("training.train", *common, "--epochs", "2", "--optimizer", "sgd", "--lr", "0.01")
    assert "switching the optimizer from AdamW to sgd at lr 0.01" in resumed.stdout
    assert type(keras.models.load_model(run / "last.keras").optimizer).__name__ == "SGD"
    state = json.loads((run / "state.json").read_text())
    assert state["epoch"] == 2 and state["status"] == "finished"
    assert read_metadata(run / "best.keras")["preprocessing"]["crop_size"] == 44
    changed = run_module("training.train", *common[:-4], "--crop-size", "40", "--epochs", "3", check=False)
    assert changed.returncode == 2 and "different crop_size" in changed.stderr


def test_distillation_targets_blend_each_face_s_label_with_its_teacher_row(synthetic_data, tmp_path):
    from training.data import load_split
    from training.pipeline import training_batches
    from training.teacher import load_targets, save_targets

    train = load_split(synthetic_data, "train")
    # a teacher that always believes the next emotion: each target shows whether it was matched to its own face
    believes = np.eye(7)[(train.labels + 1) % 7]
    save_targets(tmp_path / "teacher.npz", train.images[::-1], believes[::-1])  # stored in another order
    subset = train.subset(100, seed=4)
    teacher = load_targets(tmp_path / "teacher.npz", subset.images)
    np.testing.assert_array_equal(teacher, np.eye(7)[(subset.labels + 1) % 7])
    batches = training_batches(subset, input_size=48, batch_size=20, epoch=0, seed=1, sample_weights=np.ones(7),
                               augment=False, erase_probability=0, teacher=teacher, distill=0.3)
    targets = np.concatenate([y.numpy() for _, y, _ in batches])
    assert targets.shape == (100, 7)
    label = targets.argmax(axis=1)
    np.testing.assert_allclose(targets[np.arange(100), label], 0.7, atol=1e-6)
    np.testing.assert_allclose(targets[np.arange(100), (label + 1) % 7], 0.3, atol=1e-6)
    np.testing.assert_allclose(targets.sum(axis=1), 1, atol=1e-6)
    with pytest.raises(ValueError, match="no teacher probabilities for 20 of the 120"):
        load_targets(tmp_path / "teacher.npz", np.concatenate([subset.images[:100], 255 - subset.images[:20]]))


def test_a_run_distils_from_a_teacher_made_by_the_cli(synthetic_data, stand_in_model, tmp_path):
    made = run_module("training.teacher", stand_in_model, stand_in_model, "--data", synthetic_data,
                      "--out", tmp_path / "teacher.npz")
    assert "ensemble of 2:" in made.stdout and "teacher probabilities of 280 training faces" in made.stdout
    stored = np.load(tmp_path / "teacher.npz")
    assert stored["probabilities"].shape == (280, 7) and 0 <= float(stored["val_accuracy"]) <= 1
    common = ["--data", synthetic_data, "--arch", "small", "--batch-size", "16", "--epochs", "1", "--warmup-epochs",
              "0", "--anneal-epochs", "1", "--recalibrate-images", "0", "--epoch-recalibrate-images", "0"]
    run = run_module("training.train", *common, "--out", tmp_path / "run", "--teacher", tmp_path / "teacher.npz",
                     "--distill", "0.4")
    assert "targets 0.6 label + 0.4 teacher" in run.stdout and (tmp_path / "run" / "best.keras").is_file()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["distill"] == 0.4
    wrong = run_module("training.train", *common, "--out", tmp_path / "wrong", "--teacher", tmp_path / "run" /
                       "config.json", check=False)
    assert wrong.returncode == 2 and "is not a teacher file" in wrong.stderr and "Traceback" not in wrong.stderr


def test_the_weight_average_is_the_mean_of_the_epochs_added_and_survives_a_restart(tmp_path):
    import keras

    from training.averaging import WeightAverage
    from training.model import build_small_cnn

    models = [build_small_cnn(48) for _ in range(3)]
    average = WeightAverage(tmp_path / "average.npz")
    for epoch, model in enumerate(models[:2], start=1):
        assert average.add(model, epoch=epoch)
    resumed = WeightAverage(tmp_path / "average.npz")  # a run killed and started again
    assert not resumed.add(models[1], epoch=2)  # an epoch re-run after a kill is not counted twice
    assert resumed.add(models[2], epoch=3) and resumed.epochs == [1, 2, 3]
    target = build_small_cnn(48)
    resumed.copy_into(target)
    for got, *each in zip(target.get_weights(), *(m.get_weights() for m in models)):
        np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="another architecture"):
        resumed.add(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), epoch=4)


def test_a_run_averages_its_weights_from_the_epoch_asked_and_resumes_the_average(synthetic_data, tmp_path):
    run = tmp_path / "run"
    common = ["--data", synthetic_data, "--out", run, "--arch", "small", "--batch-size", "16", "--warmup-epochs",
              "0", "--anneal-epochs", "0", "--recalibrate-images", "0", "--epoch-recalibrate-images", "64",
              "--average-from", "2"]
    first = run_module("training.train", *common, "--epochs", "2")
    assert "weight average of epochs 2-2" in first.stdout
    resumed = run_module("training.train", *common, "--epochs", "4")
    assert "weight average of epochs 2-3" in resumed.stdout and "weight average of epochs 2-4" in resumed.stdout
    state = json.loads((run / "state.json").read_text())
    assert sorted(state["average_val_accuracy"]) == ["2", "3", "4"]
    best = read_metadata(run / "best.keras")
    assert best["val_accuracy"] == state["best_val_accuracy"]
    assert best.get("weight_average", {"epochs": [2, 3, 4]})["epochs"][0] == 2
    # validated as the product classifies: each face with its mirror image, the same accuracy training.evaluate
    # measures through the classifier (float16 storage may move a near-tie)
    assert best["preprocessing"]["views"] == "flip"
    evaluated = json.loads(run_module("training.evaluate", synthetic_data, "--split", "val", "--weights",
                                      run / "best.keras", "--json").stdout)
    assert evaluated["views"] == "flip" and abs(evaluated["accuracy"] - best["val_accuracy"]) <= 2 / 280


def test_a_vgg_teacher_trains_at_the_crop_s_size_teaches_beside_another_model_and_is_never_shipped(
        synthetic_data, stand_in_model, tmp_path, monkeypatch, capsys):
    import emotion.registry
    from training import ship

    run = tmp_path / "vgg"
    run_module("training.train", "--data", synthetic_data, "--out", run, "--arch", "vgg", "--image-size", "40",
               "--crop-size", "40", "--batch-size", "16", "--epochs", "1", "--warmup-epochs", "0", "--anneal-epochs",
               "1", "--recalibrate-images", "0", "--epoch-recalibrate-images", "320")
    meta = read_metadata(run / "best.keras")
    assert (meta["architecture"], meta["input_size"], meta["preprocessing"]["crop_size"]) == ("vgg_fer2013", 40, 40)

    made = run_module("training.teacher", stand_in_model, run / "best.keras", "--data", synthetic_data,
                      "--out", tmp_path / "teacher.npz")  # members of two input sizes (75 and 40 px)
    assert "ensemble of 2:" in made.stdout and np.load(tmp_path / "teacher.npz")["probabilities"].shape == (280, 7)
    report = run_module("training.teacher", stand_in_model, run / "best.keras", "--data", synthetic_data)
    assert "all members agree on" in report.stdout and "at least one is right on" in report.stdout
    assert "ensemble of 2:" in report.stdout and "teacher probabilities" not in report.stdout

    student = run_module("training.train", "--data", synthetic_data, "--out", tmp_path / "student", "--arch", "small",
                         "--crop-size", "44", "--batch-size", "16", "--epochs", "1", "--max-batches", "4",
                         "--recalibrate-images", "0", "--epoch-recalibrate-images", "0",
                         "--teacher", f"{stand_in_model},{run / 'best.keras'}", "--distill", "0.7")
    assert "distilling from 2 model(s) online: targets 0.3 label + 0.7 teacher" in student.stdout
    assert (tmp_path / "student" / "best.keras").is_file()

    monkeypatch.setattr(emotion.registry, "SHIPPED_MODEL", tmp_path / "shipped.keras")
    assert ship.main([str(run), "--data", str(synthetic_data)]) == 2
    assert "is a vgg_fer2013 model; the shipped default is one InceptionV3" in capsys.readouterr().err
    assert not (tmp_path / "shipped.keras").exists()


def test_online_teachers_see_the_student_s_view_framed_as_they_were_trained(stand_in_model, tmp_path):
    from emotion.model_io import load_keras_model, save_model
    from training.model import build_vgg
    from training.teacher import OnlineTeachers, model_files

    vgg_file = tmp_path / "vgg.keras"
    save_model(build_vgg(40), vgg_file, {"preprocessing": {"crop_size": 40}})
    x = tf.random.uniform((6, 75, 75, 3), -1, 1, seed=1)  # a student batch: 44 px crops at 75 px
    y = np.eye(7, dtype=np.float32)[[0, 1, 2, 3, 4, 5]]

    same = OnlineTeachers([str(stand_in_model)], student_crop=0)  # trained on whole faces, as the student
    np.testing.assert_allclose(same.probabilities(x), load_keras_model(stand_in_model).predict_on_batch(x), atol=1e-6)
    framed = OnlineTeachers([str(vgg_file)], student_crop=44)  # the centre 40/44 of the view, at 40 px
    expected = load_keras_model(vgg_file).predict_on_batch(tf.image.resize(tf.image.central_crop(x, 40 / 44), (40, 40)))
    np.testing.assert_allclose(framed.probabilities(x), expected, atol=1e-6)

    both = OnlineTeachers([str(stand_in_model), str(vgg_file)], student_crop=44)
    blended = both.blend(x, y, 0.25)
    assert blended.shape == (6, 7) and np.allclose(blended.sum(axis=1), 1, atol=1e-5)
    assert np.all(blended[np.arange(6), np.arange(6)] >= 0.75)  # the label keeps its share
    assert model_files(f"{stand_in_model}, {vgg_file}") == [str(stand_in_model), str(vgg_file)]
    assert model_files("teacher.npz") == [] and model_files("a.keras,teacher.npz") == []


def test_a_sharpness_aware_step_at_radius_zero_is_the_plain_step_and_otherwise_steps_elsewhere():
    from training.model import build_small_cnn
    from training.sharpness import SharpnessAwareStep
    from training.train import compile_model

    cfg = TrainConfig.from_argv(["--data", "d", "--optimizer", "sgd", "--lr", "0.1"])
    models = [build_small_cnn(32, dropout=0.0) for _ in range(3)]
    for model in models:
        model.set_weights(models[0].get_weights())
        compile_model(model, cfg)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (16, 32, 32, 3)).astype(np.float32)
    y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, 16)]
    w = rng.uniform(0.5, 2, 16).astype(np.float32)
    plain = models[0].train_on_batch(x, y, sample_weight=w, return_dict=True)
    flat = SharpnessAwareStep(models[1], rho=0.0)(x, y, w)
    sharp = SharpnessAwareStep(models[2], rho=0.5)(x, y, w)
    assert flat["loss"] == pytest.approx(plain["loss"], rel=1e-4) == sharp["loss"]  # both at the weights before
    assert flat["accuracy"] == pytest.approx(plain["accuracy"]) == sharp["accuracy"]
    trained = [[v.numpy() for v in m.trainable_variables] for m in models]
    for a, b in zip(trained[0], trained[1]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert max(np.abs(a - c).max() for a, c in zip(trained[0], trained[2])) > 1e-3


def test_a_resumed_run_switches_to_sharpness_aware_steps(synthetic_data, tmp_path):
    run = tmp_path / "run"
    common = ["--data", synthetic_data, "--out", run, "--arch", "small", "--batch-size", "16", "--warmup-epochs",
              "0", "--anneal-epochs", "1", "--recalibrate-images", "0", "--max-batches", "4"]
    run_module("training.train", *common, "--epochs", "1")
    resumed = run_module("training.train", *common, "--epochs", "2", "--sam", "0.05")
    assert "sharpness-aware steps, rho 0.05" in resumed.stdout
    state = json.loads((run / "state.json").read_text())
    assert state["status"] == "finished" and state["epoch"] == 2
    assert json.loads((run / "config.json").read_text())["sam"] == 0.05
