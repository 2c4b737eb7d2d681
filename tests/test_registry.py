"""Which model is active: active.txt names a model file in the models folder and nothing else (emotion/registry.py),
and the pages say so when it does not."""
import pytest
from streamlit.testing.v1 import AppTest

from emotion.model_io import ModelFileError
from emotion.registry import ACTIVE_FILE, SHIPPED_MODEL, activate, active_model_path
from tests.conftest import REPO


@pytest.mark.parametrize("pointer", ["/etc/passwd", "../outside.keras", "sub/model.keras", "..", "."])
def test_active_txt_pointing_outside_the_models_folder_is_refused(model_dir, tmp_path, pointer):
    (tmp_path / "outside.keras").write_bytes(b"not here")
    (model_dir / "sub").mkdir()
    (model_dir / "sub" / "model.keras").write_bytes(b"nor here")
    (model_dir / ACTIVE_FILE).write_text(pointer)
    with pytest.raises(ModelFileError, match=f"names '{pointer}', which is not the name of a model file in "):
        active_model_path()


def test_active_txt_naming_a_model_in_the_folder(model_dir):
    (model_dir / "mine.keras").write_bytes(b"x")
    activate(model_dir / "mine.keras")
    assert active_model_path() == model_dir / "mine.keras"
    for pointer in ["gone.keras", ""]:  # a model deleted meanwhile, or no choice: the shipped default
        (model_dir / ACTIVE_FILE).write_text(pointer)
        assert active_model_path() == SHIPPED_MODEL


def test_the_pages_say_what_is_wrong_and_the_default_can_be_restored(model_dir, runs_root, camera):
    (model_dir / ACTIVE_FILE).write_text("/etc/passwd")
    dashboard = AppTest.from_file(str(REPO / "dashboard.py"), default_timeout=60).run()
    assert not dashboard.exception, [e.value for e in dashboard.exception]
    assert "The emotion model cannot be used:" in dashboard.error[0].value
    training = AppTest.from_file(str(REPO / "pages/3_Training.py"), default_timeout=60).run()
    assert not training.exception, [e.value for e in training.exception]
    assert any("which is not the name of a model file" in e.value for e in training.error)
    next(b for b in training.button if b.label == "Restore the shipped default").click().run()
    assert not (model_dir / ACTIVE_FILE).exists() and not training.exception
