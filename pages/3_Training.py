"""The developer's page: retrain, watch, evaluate, compare and activate emotion models from the browser.

Thin on purpose: runs are `python -m training.train` processes managed by training.runs (the same trainer
as the command line), datasets go through training.inspect_data and training.upload, evaluation through
training.evaluate, figures and tables come from training.views, and models from emotion.registry.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

import ui  # noqa: F401  (first: import order with TensorFlow, see ui/__init__.py)

st.set_page_config(page_title="Training · Class Mood", page_icon="🙂", layout="wide")

from emotion.model_io import ModelFileError, read_metadata  # noqa: E402
from emotion.registry import (ACTIVE_FILE, SHIPPED_MODEL, activate, active_model_path, delete_model,  # noqa: E402
                              list_models, models_dir, restore_default)
from training.data import EXPECTED_FORMS, DatasetError  # noqa: E402
from training.evaluate import evaluate_model  # noqa: E402
from training.inspect_data import DatasetReport, inspect_dataset  # noqa: E402
from training.runs import (RunError, RunStatus, active_run, estimate_new_run, list_runs, new_run_dir,  # noqa: E402
                           register_run, resume_run, run_status, runs_root, start_run, stop_run)
from training.config import KNOBS, TrainConfig  # noqa: E402
from training.estimates import describe, duration  # noqa: E402
from training.upload import MAX_UPLOAD_BYTES, datasets_root, save_upload  # noqa: E402
from training.views import (activation_warning, active_entry, compare_f1, compare_table, confusion_heatmap,  # noqa: E402
                            data_difference, deletion_refusal, learning_curves, models_table, per_class_frame,
                            same_file)
from ui.auth import require_role  # noqa: E402
from ui.common import plain  # noqa: E402

require_role("developer")

NOTICES = "training_notices"  # outcomes of button callbacks, shown at the top of the next run
PAGE_KNOBS = [name for name, knob in KNOBS.items() if knob.page]  # the trainer's settings the page offers
PROGRESS_SECONDS = 3  # how often a run reports progress, so the live view moves
KNOWN_ERRORS = (RunError, DatasetError, ModelFileError, ValueError, OSError)
STARTS = {
    "scratch": ("From scratch", "random weights; FER2013 needs some 30-60 epochs"),
    "finetune": ("Fine-tune the current model", "continue from the dashboard's model, at its image size; "
                                                "a lower learning rate (1e-4) suits"),
    "imagenet": ("ImageNet weights", "InceptionV3 pretrained on photos; needs an internet download "
                                     "(~90 MB) that is impossible offline"),
}


def notify(kind: str, text: str) -> None:
    st.session_state.setdefault(NOTICES, []).append((kind, text))


def attempt(action, done: str, not_done: str = "") -> None:
    """Button callback: run `action` and leave a notice of the outcome (a clear message, never a traceback)."""
    try:
        result = action()
    except KNOWN_ERRORS as exc:
        notify("error", str(exc))
    else:
        if result is False:
            notify("info", not_done)
        else:
            notify("success", done.format(result=result))


@st.cache_data(show_spinner="Reading the dataset (the full FER2013 takes about half a minute)…", max_entries=4)
def inspected(path: str, modified: float) -> DatasetReport | DatasetError:
    """The dataset's report, or why it is none: kept as well, so a bad dataset is not read again on every rerun."""
    try:
        return inspect_dataset(path)
    except DatasetError as exc:
        return exc


@st.cache_data(show_spinner="Evaluating the model on every validation face…", max_entries=8)
def evaluated(model: str, modified: float, data: str, split: str):
    return evaluate_model(model, data, split)


# ---- Data

def take_upload() -> None:
    upload = st.session_state.get("upload")
    if upload is None:
        return
    try:
        path = save_upload(upload.name, upload, in_use=[run.config["data"] for run in list_runs()
                                                        if run.active and run.config.get("data")])
    except DatasetError as exc:
        notify("error", str(exc))
    else:
        st.session_state["data_path"] = str(path)
        notify("success", f"{upload.name} is saved as {path}.")


def show_dataset(path: str) -> DatasetReport | None:
    if not path:
        st.info("Give the path of a FER2013 dataset on this machine, or upload one.")
        return None
    location = Path(path).expanduser()
    report = inspected(path, location.stat().st_mtime if location.exists() else 0.0)
    if isinstance(report, DatasetError):
        st.error(plain(report))
        return None
    st.markdown(f"**{'Kaggle CSV' if report.form == 'csv' else 'Emotion folders'}** at {plain(report.path)}")
    counts = report.counts.copy()
    counts.loc["total"] = counts.sum()
    st.dataframe(counts, width="content")
    for warning in report.warnings:
        st.warning(plain(warning))
    st.subheader("Samples")
    for emotion, faces in report.samples.items():
        label, images = st.columns([1, 8])
        label.markdown(f"**{emotion}**")
        if faces:
            images.image(faces, width=56)
        else:
            images.caption("no images")
    return report


def default_data_path() -> str:
    """The dataset of the latest run, so a revisit starts where the last run left off."""
    return next((run.config["data"] for run in list_runs() if run.config.get("data")), "")


# ---- Train

def knob_input(container, name: str, value=None, disabled: bool = False):
    """One trainer setting as training/config.py's KNOBS describes it: label, help, options or bounds, default."""
    knob = KNOBS[name]
    value = knob.default if value is None else value
    common = {"label": knob.page["label"], "help": knob.help, "disabled": disabled}
    options = list(knob.page.get("options") or knob.choices or [])
    if isinstance(knob.default, bool):
        return container.checkbox(value=value, **common)
    if options and knob.page.get("widget") == "slider":
        return container.select_slider(options=options, value=value, format_func=lambda v: f"{v:g}", **common)
    if options:
        return container.selectbox(options=options, index=options.index(value), **common)
    kind = type(knob.default)
    return container.number_input(min_value=kind(knob.low), max_value=kind(knob.high), value=value,
                                  step=knob.page.get("step", kind(1) if kind is int else 0.01), **common)


def settings_form(report: DatasetReport | None) -> tuple[TrainConfig | None, list[str]]:
    """The run's settings, built from KNOBS, with their time estimate; None until a dataset with both splits is
    chosen, and the sentences saying which settings contradict each other."""
    current = active_model_path()
    starts = [key for key in STARTS if key != "finetune" or current.is_file()]
    start = st.radio("Start from", starts, format_func=lambda key: STARTS[key][0],
                     captions=[STARTS[key][1] for key in starts], horizontal=True)
    if not current.is_file():
        st.caption(f"Fine-tuning needs the current model, and {current} is not there yet.")
    values, fixed = {}, {}
    if start == "finetune":
        model = read_metadata(current)
        fixed = {"arch": "small" if str(model.get("architecture", "")).startswith("small") else "inceptionv3",
                 "image_size": int(model.get("input_size", 75))}
        values.update(fixed, init=str(current))
    elif start == "imagenet":
        fixed = {"arch": "inceptionv3"}
        values.update(fixed, init="imagenet")
    main = [name for name in PAGE_KNOBS if "section" not in KNOBS[name].page]
    columns = st.columns(3)
    per_column = -(-len(main) // len(columns))
    if start == "finetune":
        columns[0].markdown(f"Architecture **{fixed['arch']}**, image size **{fixed['image_size']} px** "
                            f"(those of {plain(current.name)})")
    for index, name in enumerate(main):
        if start == "finetune" and name in fixed:
            continue
        preset = 1e-4 if start == "finetune" and name == "lr" else fixed.get(name)
        values[name] = knob_input(columns[index // per_column], name, preset, disabled=name in fixed)
    sections = {}
    for name in PAGE_KNOBS:
        if "section" in KNOBS[name].page:
            sections.setdefault(KNOBS[name].page["section"], []).append(name)
    for title, names in sections.items():
        with columns[-1].expander(title):
            values.update({name: knob_input(st, name) for name in names})

    config = TrainConfig(data=str(report.path) if report else "", skip_unreadable=bool(report and report.unreadable),
                         **values)
    problems = config.contradictions()
    for problem in problems:
        st.error(f"These settings contradict each other: {problem}.")
    if report is None or not report.images("train") or not report.images("val"):
        st.info("Choose a dataset with a train and a val split in the Data tab to start a run.")
        return None, problems
    estimate = estimate_new_run(config, report.images("train"), report.images("val"))
    st.info(describe(estimate, plain))
    config.print_every = max(1, round(PROGRESS_SECONDS * estimate.speeds.train / config.batch_size))
    return config, problems


def start(config: TrainConfig, name: str) -> str:
    run_dir = new_run_dir(name)
    start_run(run_dir, config.to_argv())
    st.session_state["run_choice"] = run_dir.name
    return run_dir.name


def show_progress(run_dir: Path, watching: bool) -> None:
    """The run as its folder tells it; while `watching`, a fragment redraws this every 2 s."""
    run = run_status(run_dir)
    if watching and not run.active:
        st.rerun()  # it ended: redraw the whole page (buttons, evaluation)
    st.progress(run.fraction, text=f"**{run.status}** · {run.position}")
    if run.active:
        st.progress(run.epoch_fraction, text=f"batch {run.batch} of {run.batches or '?'} in this epoch")
    elapsed, remaining, speed, best = st.columns(4)
    elapsed.metric("Elapsed", duration(run.elapsed))
    remaining.metric("Remaining", duration(run.remaining),
                     help="until the last epoch and the wrap-up, at the speed this run measures (blended with earlier "
                          "runs' until it has finished an epoch); early stopping may end sooner")
    speed.metric("Speed", f"{run.images_per_s:.0f} images/s" if run.images_per_s else "–")
    best.metric("Best val accuracy", f"{run.best_val_accuracy:.1%}" if run.best_val_accuracy else "–")
    if run.status in ("failed", "crashed"):
        st.error(f"{plain(run.name)} {run.status}: {plain(run.message or 'see train.log in its folder')}. "
                 "Resume continues from its last checkpoint.")
    elif run.status == "starting":
        st.caption("Loading the data and the model…")
    elif run.note:
        st.caption(plain(run.note))
    if len(run.history):
        st.plotly_chart(learning_curves(run.history))
    elif run.active:
        st.caption("The loss and accuracy curves appear after the first epoch.")


def show_report(report: dict) -> None:
    accuracy, macro_f1, images = st.columns(3)
    accuracy.metric("Accuracy", f"{report['accuracy']:.1%}")
    macro_f1.metric("Macro F1", f"{report['macro_f1']:.3f}")
    images.metric("Images", report["images"])
    table, heatmap = st.columns([2, 3])
    table.dataframe(per_class_frame(report))
    heatmap.plotly_chart(confusion_heatmap(report))


def show_mistakes(model: Path, data: str, split: str) -> None:
    """The validation faces the model was most sure about and still got wrong."""
    try:
        _, mistakes = evaluated(str(model), model.stat().st_mtime, data, split)
    except (DatasetError, ModelFileError) as exc:
        st.error(plain(exc))
        return
    if not mistakes:
        st.success("No validation face is misclassified.")
        return
    st.image([m.image for m in mistakes], width=96,
             caption=[f"{m.true}→{m.predicted} {m.confidence:.0%}" for m in mistakes])


def show_run_model(run: RunStatus) -> None:
    """The trainer's evaluation of the run's best epoch, its confident mistakes, and registering it."""
    try:
        meta = read_metadata(run.best_model)
    except ModelFileError as exc:
        st.error(plain(exc))
        return
    st.subheader(f"Best epoch ({meta.get('epoch')}) on the validation split")
    show_report(meta["validation"])
    data = meta.get("data", {})
    if st.toggle("Show the most confidently wrong validation faces", key=f"mistakes_{run.name}"):
        show_mistakes(run.best_model, data.get("path", ""), data.get("val_split", "val"))
    name_key = f"register_name_{run.name}"
    st.text_input("Model name", run.name, key=name_key, help=f"Registered models live in {models_dir()}")
    st.button("Register this model", key=f"register_{run.name}", on_click=attempt,
              args=(lambda: register_run(run.path, name=st.session_state[name_key]).name,
                    "Registered as {result}; activate it in the Models tab."))


def show_runs(going: RunStatus | None) -> None:
    runs = {run.name: run for run in list_runs()}
    if not runs:
        st.caption(f"No runs yet in {runs_root()}.")
        return
    if st.session_state.get("run_choice") not in runs:
        st.session_state["run_choice"] = next((name for name, run in runs.items() if run.active), next(iter(runs)))
    name = st.selectbox("Run", list(runs), key="run_choice", help=f"Run folders in {runs_root()}")
    run = runs[name]
    if run.active:
        st.fragment(show_progress, run_every=2)(run.path, watching=True)
    else:
        show_progress(run.path, watching=False)
    stop, resume, _ = st.columns([1, 1, 4])
    stop.button("Stop", disabled=not run.active, on_click=attempt,
                args=(lambda: stop_run(run.path), f"{name} stops after its current batch, keeping a checkpoint.",
                      f"{name} is not running."))
    why_not = ("it is training" if run.active else f"it has {run.status}" if run.status in ("finished", "new")
               else f"{going.name} is training; one run trains at a time" if going else "")
    resume.button("Resume", disabled=bool(why_not), help=f"Not now: {why_not}" if why_not else
                  "continue from its last checkpoint", on_click=attempt,
                  args=(lambda: resume_run(run.path), f"{name} resumes from its last checkpoint."))
    if run.best_model and not run.active:
        show_run_model(run)


# ---- Models

def show_models() -> None:
    folder, entries, active = models_dir(), list_models(), active_model_path()
    current = active_entry(entries, active)
    st.caption(f"Registered models are kept in {folder} (set CLASS_MOOD_MODELS to move them); the shipped default "
               f"stays in {SHIPPED_MODEL.parent}, which this page never writes to.")
    if not active.is_file():
        st.warning(f"The dashboard's model {active} is not there yet (the shipped model is still being trained); "
                   "activate a registered model to use one now.")
    elif same_file(active, SHIPPED_MODEL):
        st.info(f"The dashboard uses the shipped default {active}.")
    else:
        st.success(f"The dashboard uses **{plain(active.name)}**; its sessions started from now on pick up a change.")
    if not entries:
        st.info(f"No models in {folder} yet: register a run's best model in the Train tab.")
        return
    st.dataframe(models_table(entries, active))
    by_name = {entry.name: entry for entry in entries}
    chosen = st.selectbox("Model", list(by_name), key="model_choice")
    entry = by_name[chosen]
    activate_column, restore_column, delete_column = st.columns(3)
    risk = activation_warning(entry, current)
    sure = True
    if risk:
        activate_column.warning(plain(f"{risk}."))
        sure = activate_column.checkbox(f"Yes, activate {plain(chosen)} anyway", key=f"confirm_activate_{chosen}")
    activate_column.button("Activate", disabled=entry is current or not sure, on_click=attempt,
                           help="it is the active model" if entry is current else None,
                           args=(lambda: activate(entry.path), f"{chosen} is active: the dashboard uses it from its "
                                                               "next session."))
    with restore_column:
        restore_button()
    refusal = deletion_refusal(entry, active)
    if refusal:
        delete_column.button("Delete", disabled=True, help=f"Not possible: {refusal}", key="delete")
        delete_column.caption(plain(f"{refusal}."))
    else:
        sure = delete_column.checkbox(f"Yes, delete {plain(chosen)}", key=f"confirm_delete_{chosen}")
        delete_column.button("Delete", disabled=not sure, key="delete", on_click=attempt,
                             args=(lambda: delete_model(entry.path), f"Deleted {chosen}."))

    if len(entries) >= 2:
        st.subheader("Compare")
        first_column, second_column = st.columns(2)
        first = first_column.selectbox("First model", list(by_name), 0, key="compare_first")
        second = second_column.selectbox("Second model", list(by_name), 1, key="compare_second")
        if first == second:
            st.info("Choose two different models.")
        else:
            difference = data_difference(by_name[first], by_name[second])
            if difference:
                st.warning(plain(f"Their val accuracies were {difference}; evaluate both on one dataset in the "
                                 "Evaluate tab to compare them."))
            st.dataframe(compare_table(by_name[first], by_name[second]))
            st.plotly_chart(compare_f1(by_name[first], by_name[second]))


def restore_button() -> None:
    shipped_note = "" if SHIPPED_MODEL.is_file() else f" (note: {SHIPPED_MODEL.name} is not there yet)"
    st.button("Restore the shipped default", disabled=not (models_dir() / ACTIVE_FILE).is_file(), on_click=attempt,
              args=(restore_default, f"The dashboard is back to the shipped default model{shipped_note}."))


def show_evaluation() -> None:
    entries = {entry.name: entry for entry in list_models()}
    if not entries:
        st.info(f"No models in {models_dir()} to evaluate yet.")
        return
    chosen = st.selectbox("Model", list(entries), key="evaluate_choice")
    entry, data = entries[chosen], entries[chosen].metadata.get("data", {})
    trained_on = data.get("path", "")
    here = [path for path in (trained_on, st.session_state.get("data_path", "")) if path and Path(path).expanduser().exists()]
    if trained_on and trained_on not in here:
        st.caption(f"{plain(chosen)} was validated on {plain(trained_on)}, which is not on this machine.")
    path_column, split_column = st.columns([4, 1])
    dataset = path_column.text_input("Dataset", here[0] if here else "", key=f"evaluate_data_{chosen}",
                                     placeholder="the path of a FER2013 dataset on this machine",
                                     help=f"Expected: {EXPECTED_FORMS}").strip()
    split = split_column.text_input("Split", data.get("val_split", "val"), key=f"evaluate_split_{chosen}")
    request = (str(entry.path), dataset, split)
    if st.button("Evaluate", type="primary", disabled=not dataset, help=None if dataset else "give a dataset first"):
        st.session_state["evaluation"] = request
    if st.session_state.get("evaluation") != request:
        return
    try:
        report, _ = evaluated(str(entry.path), entry.path.stat().st_mtime, dataset, split)
    except (DatasetError, ModelFileError) as exc:
        st.error(plain(exc))
        return
    show_report(report)
    st.subheader("Most confidently wrong")
    show_mistakes(entry.path, dataset, split)


# ---- page

st.title("Training")
st.caption(f"Train emotion models with the same trainer as `python -m training.train` and choose the one the "
           f"dashboard uses. Runs: {runs_root()} · models: {models_dir()}")
notices = st.container()  # always there, so the tabs below keep their place (and the open tab) on reruns
for kind, text in st.session_state.pop(NOTICES, []):
    getattr(notices, kind)(plain(text))

data_tab, train_tab, evaluate_tab, models_tab = st.tabs(["Data", "Train", "Evaluate", "Models"], key="training_tab")
with data_tab:
    if "data_path" not in st.session_state:
        st.session_state["data_path"] = default_data_path()
    st.text_input("Dataset path", key="data_path", help=f"Expected: {EXPECTED_FORMS}")
    st.file_uploader("…or upload a zip of those folders or a fer2013.csv", type=["zip", "csv"], key="upload",
                     on_change=take_upload, max_upload_size=MAX_UPLOAD_BYTES >> 20,
                     help=f"Uploads are kept in {datasets_root()}")
    dataset = show_dataset(st.session_state["data_path"].strip())
with train_tab:
    going = active_run()
    try:
        config, problems = settings_form(dataset)
    except ModelFileError as exc:  # active.txt names no model of the folder: put right in the Models tab
        st.error(plain(exc))
        config, problems = None, []
    run_name = st.text_input("Run name", placeholder="empty: run-DATE-TIME", help=f"A folder in {runs_root()}")
    why_not = (f"{going.name} is training ({going.position}); one run trains at a time: stop it or let it end"
               if going else "the settings above contradict each other" if problems
               else "choose a dataset first" if config is None else "")
    st.button("Start training", type="primary", disabled=bool(why_not), help=why_not or None, on_click=attempt,
              args=(lambda: start(config, run_name), "Started {result}."))
    if going or problems:
        st.caption(plain(f"Start is off: {why_not}."))
    st.divider()
    show_runs(going)
with evaluate_tab:
    show_evaluation()
with models_tab:
    try:
        show_models()
    except ModelFileError as exc:
        st.error(plain(exc))
        restore_button()
