"""The developer's training page (pages/3_Training.py) under Streamlit's AppTest, with temporary runs,
models and datasets folders and real (tiny) trainer processes."""
import json
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from emotion.classifier import EmotionClassifier
from emotion.registry import SHIPPED_MODEL
from training.config import KNOBS
from tests.conftest import REPO, run_module, wait_until
from training.runs import run_status, wait_for_run

PAGE = "pages/3_Training.py"


@pytest.fixture(scope="module")
def tiny_model(synthetic_data, tmp_path_factory):
    """A one-epoch small CNN as training.train leaves it: best.keras with its metadata."""
    run = tmp_path_factory.mktemp("runs") / "tiny"
    run_module("training.train", "--data", synthetic_data, "--out", run, "--arch", "small", "--epochs", "1",
               "--batch-size", "16")
    return run / "best.keras"


def add_model(tiny_model, folder, name):
    shutil.copy(tiny_model, folder / f"{name}.keras")
    shutil.copy(tiny_model.with_suffix(".json"), folder / f"{name}.json")


def run_page() -> AppTest:
    at = AppTest.from_file(REPO / PAGE, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest, kind: str) -> str:
    return "\n".join(element.value for element in at.get(kind))


def widget(widgets, label):
    return next(w for w in widgets if w.label == label)


def click(at: AppTest, label: str) -> AppTest:
    widget(at.button, label).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_page_renders_with_nothing_there_yet(runs_root, model_dir):
    at = run_page()
    assert "Give the path of a FER2013 dataset" in texts(at, "info")
    assert list(at.dataframe[0].value.index) == ["inceptionv3_fer2013.keras"]  # the shipped default, always listed
    assert f"No runs yet in {runs_root}" in texts(at, "caption")
    assert widget(at.button, "Start training").disabled


def test_dataset_inspection_for_a_path(runs_root, model_dir, synthetic_data, tmp_path):
    at = run_page()
    at.text_input(key="data_path").input(str(synthetic_data)).run()
    counts = at.dataframe[0].value
    assert counts.loc["total", "train"] == 280 and counts.loc["disgust", "val"] == 40
    assert len(at.get("image")) == 7  # one row of samples per emotion
    assert "per epoch" in texts(at, "info") and not widget(at.button, "Start training").disabled

    (tmp_path / "photos" / "cats").mkdir(parents=True)
    at.text_input(key="data_path").input(str(tmp_path / "photos")).run()
    assert "expected a Kaggle fer2013.csv" in texts(at, "error") and not at.exception
    assert widget(at.button, "Start training").disabled


def test_registered_models_are_listed_compared_activated_and_deleted(tiny_model, model_dir, runs_root):
    for name in ("alpha", "beta"):
        add_model(tiny_model, model_dir, name)
    at = run_page()
    assert list(at.dataframe[0].value.index) == ["inceptionv3_fer2013.keras", "alpha.keras", "beta.keras"]
    at.selectbox(key="compare_first").select("alpha.keras").run()
    at.selectbox(key="compare_second").select("beta.keras").run()
    assert list(at.dataframe[1].value.columns) == ["alpha.keras", "beta.keras"]  # compared side by side

    at.selectbox(key="model_choice").select("beta.keras").run()
    # far below the shipped default's 66.6 %: one click is not enough
    assert "beta.keras reached" in texts(at, "warning") and widget(at.button, "Activate").disabled
    at.checkbox(key="confirm_activate_beta.keras").check().run()
    click(at, "Activate")
    assert (model_dir / "active.txt").read_text() == "beta.keras" and "beta.keras is active" in texts(at, "success")
    assert EmotionClassifier.load().path == model_dir / "beta.keras"

    # the active model and the shipped default cannot be deleted: the button says so before any click
    assert widget(at.button, "Delete").disabled and "beta.keras is the active model" in texts(at, "caption")
    at.selectbox(key="model_choice").select("inceptionv3_fer2013.keras").run()
    assert widget(at.button, "Delete").disabled and "is the shipped default" in texts(at, "caption")

    at.selectbox(key="model_choice").select("alpha.keras").run()
    assert widget(at.button, "Delete").disabled  # until confirmed
    at.checkbox(key="confirm_delete_alpha.keras").check().run()
    click(at, "Delete")
    assert not (model_dir / "alpha.keras").exists() and not (model_dir / "alpha.json").exists()

    click(at, "Restore the shipped default")
    assert not (model_dir / "active.txt").exists()


def test_evaluation_of_a_registered_model(tiny_model, model_dir, runs_root):
    add_model(tiny_model, model_dir, "alpha")
    at = run_page()
    at.selectbox(key="evaluate_choice").select("alpha.keras").run()
    click(at, "Evaluate")
    assert len(at.get("image")) == 1 and "Accuracy" in [m.label for m in at.metric]
    assert at.get("plotly_chart")  # the confusion matrix


def test_a_run_started_watched_and_stopped_from_the_page(synthetic_data, runs_root, model_dir):
    at = run_page()
    at.text_input(key="data_path").input(str(synthetic_data)).run()
    widget(at.selectbox, "Architecture").select("small").run()
    widget(at.selectbox, "Batch size").select(16).run()
    widget(at.number_input, "Epochs").set_value(40).run()
    widget(at.number_input, "Anneal the LR over the last N epochs").set_value(10).run()
    widget(at.text_input, "Run name").input("from page").run()
    click(at, "Start training")
    assert "Started from-page" in texts(at, "success")
    run_dir = runs_root / "from-page"
    assert at.selectbox(key="run_choice").value == "from-page" and run_status(run_dir).active

    start = widget(at.button, "Start training")  # one run at a time, said before a click
    assert start.disabled and "from-page is training" in start.help and "Start is off" in texts(at, "caption")

    wait_until(lambda: run_status(run_dir).status == "running")
    at.run()
    assert "**running** · epoch 1 of 40" in at.get("progress")[0].proto.text and not widget(at.button, "Stop").disabled
    click(at, "Stop")
    assert "from-page stops after its current batch" in texts(at, "success")
    stopped = wait_for_run(run_dir, 120)
    assert stopped.status == "stopped"
    at.run()
    assert not widget(at.button, "Resume").disabled and widget(at.button, "Stop").disabled
    shown = texts(at, "caption")  # the page's words, the same epoch numbers in the bar and the note
    assert "--out" not in shown and f"Resume continues at epoch {stopped.epoch + 1}" in shown
    assert f"Stopped {stopped.position}" in shown
    assert stopped.position in at.get("progress")[0].proto.text
    config = run_status(run_dir).config
    assert (config["arch"], config["epochs"], config["anneal_epochs"], config["batch_size"]) == ("small", 40, 10, 16)


def test_fine_tuning_offers_the_active_model_at_its_image_size(tiny_model, model_dir, runs_root, synthetic_data):
    add_model(tiny_model, model_dir, "alpha")
    (model_dir / "active.txt").write_text("alpha.keras")
    at = run_page()
    at.text_input(key="data_path").input(str(synthetic_data)).run()
    widget(at.radio, "Start from").set_value("finetune").run()
    assert "Architecture **small**, image size **75 px** (those of alpha.keras)" in texts(at, "markdown")
    assert widget(at.select_slider, "Learning rate").value == 1e-4
    assert not widget(at.button, "Start training").disabled and not at.exception


def test_the_settings_come_from_the_trainers_knobs_and_contradictions_stop_a_start(synthetic_data, runs_root,
                                                                                     model_dir):
    at = run_page()
    at.text_input(key="data_path").input(str(synthetic_data)).run()
    for name, knob in KNOBS.items():  # every knob marked for the page, with the trainer's label, help and bounds
        if knob.page:
            shown = next(w for w in at.main if getattr(w, "label", None) == knob.page["label"])
            assert shown.help == knob.help
            if knob.low is not None and "options" not in knob.page:
                assert (shown.proto.min, shown.proto.max) == (knob.low, knob.high)
    widget(at.number_input, "Epochs").set_value(1).run()
    assert "the anneal covers the last 18 epochs of a run of 1" in texts(at, "error")
    start = widget(at.button, "Start training")
    assert start.disabled and "contradict" in start.help

    widget(at.selectbox, "Architecture").select("small").run()
    widget(at.number_input, "Epochs").set_value(30).run()
    widget(at.number_input, KNOBS["crop_size"].page["label"]).set_value(44).run()
    widget(at.number_input, KNOBS["mixup"].page["label"]).set_value(0.2).run()
    assert not texts(at, "error") and not widget(at.button, "Start training").disabled
    assert "per epoch" in texts(at, "info") and "a guess" in texts(at, "info")  # no run here measured it yet
    widget(at.text_input, "Run name").input("knobs").run()
    click(at, "Start training")
    config = json.loads(wait_until(lambda: (runs_root / "knobs" / "config.json").is_file() and
                                   (runs_root / "knobs" / "config.json").read_text()))
    assert (config["crop_size"], config["mixup"], config["epochs"]) == (44, 0.2, 30)
    click(at, "Stop")
    wait_for_run(runs_root / "knobs", 120)


def test_comparison_says_when_accuracies_come_from_different_data(tiny_model, model_dir, runs_root, tmp_path):
    add_model(tiny_model, model_dir, "alpha")
    add_model(tiny_model, model_dir, "other")
    meta = json.loads((model_dir / "other.json").read_text())
    meta["data"].update(val_fingerprint="0000000000000000", path=str(tmp_path / "gone"))
    (model_dir / "other.json").write_text(json.dumps(meta))
    at = run_page()
    at.selectbox(key="compare_first").select("alpha.keras").run()
    at.selectbox(key="compare_second").select("other.keras").run()
    assert "measured on different validation data" in texts(at, "warning")
    at.selectbox(key="compare_second").select("inceptionv3_fer2013.keras").run()
    assert "measured on different validation data" in texts(at, "warning")  # drawn faces against FER2013

    at.selectbox(key="evaluate_choice").select("other.keras").run()  # trained on a dataset not on this machine
    assert at.text_input(key="evaluate_data_other.keras").value == ""
    assert "which is not on this machine" in texts(at, "caption") and widget(at.button, "Evaluate").disabled


def test_registering_and_activating_from_the_page_never_writes_into_weights(tiny_model, model_dir, runs_root):
    def weights_files():
        return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in SHIPPED_MODEL.parent.rglob("*")}

    before = weights_files()
    shutil.copytree(tiny_model.parent, runs_root / "tiny")
    at = run_page()
    assert f"Registered models are kept in {model_dir}" in texts(at, "caption")
    at.selectbox(key="run_choice").select("tiny").run()
    click(at, "Register this model")
    assert (model_dir / "tiny.keras").is_file()
    at.selectbox(key="model_choice").select("tiny.keras").run()
    at.checkbox(key="confirm_activate_tiny.keras").check().run()
    click(at, "Activate")
    click(at, "Restore the shipped default")
    assert weights_files() == before
    assert {p.name for p in model_dir.iterdir()} <= {"tiny.keras", "tiny.json", "active.txt"}
