"""Figures, tables and checks of the training page, built without Streamlit so they can be tested and reused."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from emotion.labels import EMOTIONS
from emotion.registry import SHIPPED_MODEL, ModelEntry

CLEARLY_WORSE = 0.02  # val accuracy this far below the active model's asks for a confirmation before activating


def learning_curves(history: pd.DataFrame) -> go.Figure:
    """Loss and accuracy per epoch, training against validation."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for column, (metric, color) in enumerate((("loss", "#1f77b4"), ("accuracy", "#2ca02c")), start=1):
        for prefix, dash in (("", "solid"), ("val_", "dot")):
            fig.add_trace(go.Scatter(x=history["epoch"], y=history[prefix + metric], mode="lines+markers",
                                     name=("validation " if prefix else "training ") + metric,
                                     line={"color": color, "dash": dash}), row=1, col=column)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(height=320, margin={"t": 40, "b": 10}, legend={"orientation": "h", "y": -0.3})
    return fig


def confusion_heatmap(report: dict) -> go.Figure:
    """Rows: true emotion; columns: predicted; colour = share of the row, text = image counts."""
    matrix = pd.DataFrame(report["confusion_matrix"], index=report["labels"], columns=report["labels"])
    shares = matrix.div(matrix.sum(axis=1).where(lambda s: s > 0), axis=0).fillna(0)
    fig = go.Figure(go.Heatmap(z=shares.values, x=list(matrix.columns), y=list(matrix.index), text=matrix.values,
                               texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
                               hovertemplate="true %{y}, predicted %{x}: %{text} (%{z:.0%} of the row)<extra></extra>",
                               colorbar={"title": "share", "tickformat": ".0%"}))
    fig.update_layout(xaxis_title="predicted", yaxis_title="true", yaxis={"autorange": "reversed"}, height=420,
                      margin={"t": 20, "b": 10})
    return fig


def per_class_frame(report: dict) -> pd.DataFrame:
    frame = pd.DataFrame(report["per_class"]).T.reindex(list(EMOTIONS))
    frame.index.name = "emotion"
    return frame.astype({"support": int})


def model_summary(entry: ModelEntry, active: bool = False) -> dict:
    """One registered model in a table row: what it is, what it was trained on, how, and how well."""
    meta, data, settings = entry.metadata, entry.metadata.get("data", {}), entry.metadata.get("settings", {})
    return {
        "model": entry.name, "active": "✓" if active else "",
        "val accuracy": meta.get("val_accuracy"), "macro F1": meta.get("validation", {}).get("macro_f1"),
        "created": meta.get("created", ""), "run": meta.get("run", meta.get("name", "")),
        "architecture": meta.get("architecture", ""), "input px": meta.get("input_size"), "epoch": meta.get("epoch"),
        "data": data.get("path", ""), "train images": data.get("train_images"), "val images": data.get("val_images"),
        "val data fingerprint": data.get("val_fingerprint", ""),
        "optimizer": settings.get("optimizer", ""), "learning rate": settings.get("lr"),
        "batch size": settings.get("batch_size"), "augment": settings.get("augment"),
        "balance": settings.get("balance", ""), "start": settings.get("init", ""), "size MB": round(entry.size_mb, 1),
    }


def models_table(entries: list[ModelEntry], active: Path) -> pd.DataFrame:
    return pd.DataFrame([model_summary(e, same_file(e.path, active)) for e in entries]).set_index("model")


def same_file(first: Path, second: Path) -> bool:
    return Path(first).resolve() == Path(second).resolve()


def active_entry(entries: list[ModelEntry], active: Path) -> ModelEntry | None:
    return next((entry for entry in entries if same_file(entry.path, active)), None)


def activation_warning(chosen: ModelEntry, active: ModelEntry | None) -> str | None:
    """Why activating `chosen` deserves a second thought: its val accuracy is clearly below the active model's,
    or unknown. None when it is not (or there is no active model to lose)."""
    if active is None or same_file(chosen.path, active.path):
        return None
    if chosen.val_accuracy is None:
        return f"{chosen.name} records no val accuracy, so nobody knows how well it does"
    if active.val_accuracy is not None and chosen.val_accuracy < active.val_accuracy - CLEARLY_WORSE:
        note = data_difference(chosen, active)
        return (f"{chosen.name} reached {chosen.val_accuracy:.1%} on val, the active {active.name} "
                f"{active.val_accuracy:.1%}" + (f" ({note})" if note else ""))
    return None


def deletion_refusal(entry: ModelEntry, active: Path) -> str | None:
    """Why `entry` cannot be deleted (emotion.registry.delete_model refuses the same), else None."""
    if same_file(entry.path, SHIPPED_MODEL):
        return f"{entry.name} is the shipped default and cannot be deleted"
    if same_file(entry.path, active):
        return f"{entry.name} is the active model; activate another one before deleting it"
    return None


def data_difference(first: ModelEntry, second: ModelEntry) -> str | None:
    """Whether two models' val accuracies were measured on different data (their metadata's data fingerprints)."""
    prints = [entry.metadata.get("data", {}).get("val_fingerprint") for entry in (first, second)]
    if None in prints:
        unknown = [entry.name for entry, value in zip((first, second), prints) if value is None]
        verb = "do not record their" if len(unknown) == 2 else "does not record its"
        return f"{' and '.join(unknown)} {verb} validation data, so the accuracies may not compare"
    if prints[0] != prints[1]:
        return "measured on different validation data (the data fingerprints differ), so the accuracies do not compare"
    return None


def compare_table(first: ModelEntry, second: ModelEntry) -> pd.DataFrame:
    """Two models side by side, one row per property, per-class F1 at the end."""
    columns = {}
    for entry in (first, second):
        row = model_summary(entry)
        per_class = entry.metadata.get("validation", {}).get("per_class", {})
        row.update({f"F1 {emotion}": per_class.get(emotion, {}).get("f1") for emotion in EMOTIONS})
        columns[row.pop("model")] = {key: ("" if value is None else str(value)) for key, value in row.items()
                                     if key != "active"}
    return pd.DataFrame(columns)


def compare_f1(first: ModelEntry, second: ModelEntry) -> go.Figure:
    fig = go.Figure([go.Bar(name=entry.name, x=list(EMOTIONS),
                            y=[entry.metadata.get("validation", {}).get("per_class", {}).get(e, {}).get("f1")
                               for e in EMOTIONS]) for entry in (first, second)])
    fig.update_layout(barmode="group", title="F1 per emotion (validation)", yaxis={"range": [0, 1]}, height=320,
                      margin={"t": 40, "b": 10}, legend={"orientation": "h", "y": -0.2})
    return fig
