"""The seven FER2013 emotions, in the one order every model output uses."""

EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")

# Kaggle's fer2013.csv numbers the classes differently from the alphabetical folder names.
FER2013_CSV_INDEX: dict[int, str] = {
    0: "angry", 1: "disgust", 2: "fear", 3: "happy", 4: "sad", 5: "surprise", 6: "neutral",
}

# The emotions whose share drives the teacher's attention alert.
NEGATIVE_EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "sad")


def emotion_index(name: str) -> int:
    """Position of an emotion in the model output; accepts any letter case."""
    key = name.strip().lower()
    if key not in EMOTIONS:
        raise ValueError(f"unknown emotion {name!r}; expected one of {', '.join(EMOTIONS)}")
    return EMOTIONS.index(key)
