"""Attention alerts: one per episode, with its start, length and what to do; threshold on the mood chart."""
from emotion.aggregate import MinuteMood
from emotion.alerts import AlertRule, attention_alerts
from emotion.session_numbers import mood_changes
from emotion.charts import mood_over_time
from emotion.labels import EMOTIONS


def minute(index: int, negative: float, faces: int = 80) -> MinuteMood:
    shares = dict.fromkeys(EMOTIONS, 0.0)
    shares.update(sad=negative, happy=1 - negative)
    return MinuteMood(index, 10, faces, 8, shares)


def test_one_alert_per_episode_with_its_start_length_and_a_suggestion():
    minutes = [minute(i, n) for i, n in enumerate([0.1, 0.4, 0.5, 0.6, 0.45, 0.35, 0.1, 0.5, 0.5, 0.2])]
    alerts = attention_alerts(minutes, AlertRule(negative_threshold=0.3, consecutive_minutes=2))
    assert [(a.minute, a.minutes, a.kind) for a in alerts] == [(1, 5, "negative"), (7, 2, "negative")]
    assert alerts[0].message.startswith("Negative emotions above 30% from minute 2 for 5 minutes (up to 60%).")
    assert "ask the class a question" in alerts[0].message
    assert attention_alerts(minutes[:3], AlertRule(negative_threshold=0.3))[0].key == alerts[0].key  # same episode


def test_faces_dropping_is_one_episode_and_says_what_to_check():
    minutes = [minute(i, 0.1, faces) for i, faces in enumerate([80, 80, 80, 30, 30, 80])]
    (alert,) = attention_alerts(minutes, AlertRule())
    assert (alert.kind, alert.minute, alert.minutes) == ("faces_drop", 3, 2)
    assert "from 8.0 to 3.0 per frame from minute 4 for 2 minutes" in alert.message and "cameras off" in alert.message


def test_the_threshold_is_drawn_and_no_change_of_zero_is_listed():
    minutes = [minute(i, 0.2) for i in range(4)]
    figure = mood_over_time(minutes, threshold=0.5, minute_seconds=10)
    assert [shape.y0 for shape in figure.layout.shapes] == [0.5]
    assert "alert: negative above 50%" in [a.text for a in figure.layout.annotations]
    assert figure.layout.xaxis.title.text == "minute (a minute here is 10 s)"
    assert mood_changes(minutes) == []
    assert len(mood_over_time(minutes[:1]).data[0].x) == 2  # the first minute alone is drawn as a step
