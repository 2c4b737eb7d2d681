"""The developer's training page (pages/3_Training.py) under Streamlit's AppTest, with temporary runs,
models and datasets folders and real (tiny) trainer processes."""
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from emotion.classifier import EmotionClassifier
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
    click(at, "Activate")
    assert (model_dir / "active.txt").read_text() == "beta.keras" and "beta.keras is active" in texts(at, "success")
    assert EmotionClassifier.load().path == model_dir / "beta.keras"

    at.checkbox(key="confirm_delete_beta.keras").check().run()
    click(at, "Delete")
    assert "beta.keras is the active model" in texts(at, "error") and (model_dir / "beta.keras").exists()

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

    widget(at.text_input, "Run name").input("second").run()
    click(at, "Start training")
    assert "already going: from-page" in texts(at, "error") and not (runs_root / "second").exists()

    wait_until(lambda: run_status(run_dir).status == "running")
    at.run()
    assert "running" in at.get("progress")[0].proto.text and not widget(at.button, "Stop").disabled
    click(at, "Stop")
    assert "from-page stops after its current batch" in texts(at, "success")
    assert wait_for_run(run_dir, 120).status == "stopped"
    at.run()
    assert not widget(at.button, "Resume").disabled and widget(at.button, "Stop").disabled
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
