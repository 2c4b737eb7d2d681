"""Class Mood: the teacher's live dashboard. Run with `streamlit run dashboard.py`."""
from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import streamlit as st

import ui  # noqa: F401  (first: import order with TensorFlow, see ui/__init__.py)

st.set_page_config(page_title="Class Mood", page_icon="🙂", layout="wide")

from emotion.alerts import AlertRule  # noqa: E402
from emotion.aggregate import METHODS  # noqa: E402
from emotion.session_numbers import session_distribution  # noqa: E402
from emotion.detect import EQUALIZATIONS, DetectorSettings  # noqa: E402
from emotion.jobs import VideoJob  # noqa: E402
from emotion.live import LiveSession  # noqa: E402
from emotion.session import SessionSettings  # noqa: E402
from emotion.settings import SettingsError, ice_servers  # noqa: E402
from emotion.store import TITLE_LENGTH  # noqa: E402
from emotion.video import VIDEO_SUFFIXES, VideoError, probe  # noqa: E402
from ui.auth import keep_alive, require_role  # noqa: E402
from ui.common import (get_classifier, get_store, plain, privacy_note, privacy_notice_acknowledged,  # noqa: E402
                       remember, upload_limit_mb)
from ui.jobs import describe, video_jobs  # noqa: E402
from ui.common import school_class_only  # noqa: E402
from ui.markers import marker_bar  # noqa: E402
from ui.mood_view import download_csv, show_alerts, show_mood  # noqa: E402

user = require_role("teacher", "developer")

NO_FACE_WARNING_SECONDS = 15
NO_FRAMES_WARNING_SECONDS = 5
SLOW_SHARE = 0.85  # an achieved analysis rate below this share of the setting is reported as not keeping up
SOURCES = ("Camera", "Recorded video", "Call window (this computer)")
DEFAULTS = SessionSettings()
METHODS_HELP = ("em (default): the mix that best explains the faces' calibrated probabilities, measured closest to "
                "the true mix; top: share of faces by their most likely emotion; mean: average probabilities; "
                "corrected: top shares with the model's known confusions undone.")

st.title("Class Mood")
school_only = school_class_only()

# ---- sidebar: settings
with st.sidebar:
    st.header("Settings")
    # every setting keeps its value for this browser session while the teacher looks at other pages
    title = st.text_input("Class name", key=remember("class-name", "My class"), max_chars=TITLE_LENGTH,
                          help="Stored with the session; editable later.")
    class_only = st.checkbox("Class only: no per-student numbers", value=school_only, disabled=school_only,
                             help="Only the class's mix per minute is stored and shown; nothing per student."
                                  + (" Your school has turned this on for every session." if school_only else ""))
    source = st.radio("Video source", SOURCES, key=remember("source", SOURCES[0]),
                      help="Camera: your webcam or a virtual camera (e.g. OBS window capture of the call gallery).")
    with st.expander("Analysis", expanded=True):
        analysis_fps = st.slider("Frames analysed per second", 0.5, 8.0, step=0.5,
                                 key=remember("analysis-fps", DEFAULTS.analysis_fps),
                                 help="More frames follow faces more closely; fewer leave the computer more room.")
        minute_seconds = st.number_input("Minute length (seconds)", 10, 600, step=10,
                                         key=remember("minute-seconds", int(DEFAULTS.minute_seconds)),
                                         help="Charts and the session CSV count mood per 'minute' of this length.")
        aggregation = st.selectbox("Minute mood from", METHODS, key=remember("aggregation", DEFAULTS.aggregation),
                                   help=METHODS_HELP)
        blur = st.checkbox("Blur faces in the displayed video", key=remember("blur", DEFAULTS.blur_faces))
    with st.expander("Face detector"):
        tiles = st.checkbox("Find the call's gallery tiles", key=remember("tiles", DEFAULTS.detector.tiles),
                            help="Search each participant's tile at a scale that suits its size, and keep a student's "
                                 "box between searches. Off: search the whole frame (one classroom camera works "
                                 "either way).")
        scale_factor = st.slider("Scale factor", 1.05, 1.5, step=0.05,
                                 key=remember("scale-factor", DEFAULTS.detector.scale_factor),
                                 help="Smaller finds more faces, slower.")
        min_neighbors = st.slider("Min neighbours", 1, 10,
                                  key=remember("min-neighbors", DEFAULTS.detector.min_neighbors),
                                  help="Higher gives fewer false faces but misses more real ones.")
        min_face = st.slider("Smallest face (px)", 20, 200, step=5,
                             key=remember("min-face", DEFAULTS.detector.min_face_size))
        max_width = st.select_slider("Shrink frames wider than (px)", [0, 640, 960, 1280, 1920],
                                     key=remember("max-width", DEFAULTS.detector.max_width),
                                     help="A frame that is not a call gallery (one classroom camera) is searched on a "
                                          "smaller copy: much faster. 0 = never.")
        equalization = st.selectbox("Contrast equalisation", EQUALIZATIONS,
                                    key=remember("equalization", DEFAULTS.detector.equalization),
                                    help="clahe (local) found the most faces in gallery views; global suits dim "
                                         "single-camera images.")
    with st.expander("Attention alert"):
        threshold = st.slider("Negative emotions above", 0.1, 0.9, step=0.05,
                              key=remember("threshold", DEFAULTS.alert_rule.negative_threshold),
                              help="Share of angry + disgust + fear + sad in a minute.")
        consecutive = st.number_input("for this many minutes in a row", 1, 10,
                                      key=remember("consecutive", DEFAULTS.alert_rule.consecutive_minutes))
        face_drop = st.slider("or visible faces drop by", 0.1, 0.9, step=0.05,
                              key=remember("face-drop", DEFAULTS.alert_rule.face_drop))
st.caption(privacy_note(class_only))

classifier = get_classifier()
store = get_store()
with st.sidebar:
    if classifier:
        accuracy = f"{classifier.val_accuracy:.1%}" if classifier.val_accuracy is not None else "unknown"
        st.caption(f"Model: **{plain(classifier.name)}** — validation accuracy {accuracy}")
if classifier is None:
    st.info("Choose or train a model on the Training page, or restore the shipped default there.")
    st.stop()

detector = DetectorSettings(scale_factor=scale_factor, min_neighbors=min_neighbors, min_face_size=min_face,
                            max_width=max_width, equalization=equalization, tiles=tiles)
alert_rule = AlertRule(negative_threshold=threshold, consecutive_minutes=int(consecutive), face_drop=face_drop)
session_settings = SessionSettings(analysis_fps=analysis_fps, minute_seconds=float(minute_seconds),
                                   aggregation=aggregation, blur_faces=blur, detector=detector, alert_rule=alert_rule,
                                   class_only=class_only)


def new_live_session(kind: str, name: str = "") -> LiveSession:
    return LiveSession(classifier, store, session_settings, title=title, source_kind=kind, source_name=name,
                       owner=user.name)


def live_panel(live: LiveSession, key: str) -> None:
    """Status, messages, alerts and charts of a running live session."""
    keep_alive()
    status = live.status()
    if not status.frames_received and status.waiting > NO_FRAMES_WARNING_SECONDS:
        st.warning("No video is arriving. Allow camera access for this page (the camera icon in the browser's "
                   "address bar), check that no other program uses the camera, or pick another device.")
    elif (status.frames_received and status.last_frame_age is not None
          and status.last_frame_age > NO_FRAMES_WARNING_SECONDS):
        st.warning(f"No video has arrived for {status.last_frame_age:.0f} s: the camera may have stopped.")
    elif status.frames_analysed and (status.last_face_seconds is None or
                                     status.seconds - status.last_face_seconds > NO_FACE_WARNING_SECONDS):
        st.warning("No faces found for a while: check that students are visible and lit, "
                   "or lower 'Smallest face' in the detector settings.")
    if status.storage_problem:
        st.warning(f"The analysis goes on, but {status.storage_problem}; the rows are kept and written as soon "
                   "as it accepts them again.")
    if status.analysed_fps is not None and status.analysed_fps < SLOW_SHARE * session_settings.analysis_fps:
        st.warning(f"This computer cannot keep up: it analyses {status.analysed_fps:.1f} frames per second of the "
                   f"{session_settings.analysis_fps:g} set. Lower 'Frames analysed per second' or raise 'Smallest "
                   "face (px)'; the mood stays right, it is only updated less often.")
    show_alerts(live.alerts())
    rate = f"{status.analysed_fps:.1f}" if status.analysed_fps is not None else "–"
    st.caption(f"Analysing {rate} of {session_settings.analysis_fps:g} frames/s set · {status.frames_analysed} "
               f"frames analysed of {status.frames_received} received in {status.seconds:.0f} s"
               + (f" · each face classified every {status.classify_seconds:.0f} s (the server is busy)"
                  if status.classify_slowed else "")
               + (f" · session {status.session_id}" if status.session_id else ""))
    if live.session:
        download_csv(live.session_id or "unsaved", live.session.started_at, live.minutes(),
                     session_settings.minute_seconds, key=f"dl-live-{key}", label="Download the minutes so far (CSV)")
    if live.session and not status.ended:
        marker_bar(live.session.add_marker, key=key)
    show_live_mood(live, key)


def show_live_mood(live: LiveSession, key: str) -> None:
    show_mood(live.minutes(), live.student_minutes(), key=key, markers=live.session.markers if live.session else [],
              minute_seconds=live.settings.minute_seconds, class_only=live.settings.class_only,
              threshold=live.settings.alert_rule.negative_threshold)


def earlier_sessions() -> None:
    """What a teacher would open the Sessions page for during a class, on this page: leaving it ends the
    camera's stream (the browser closes its connection with the page)."""
    if not store:
        return
    earlier = [s for s in store.list_sessions(owner=user.session_owner) if s.title == title.strip()][:10]
    with st.expander(f"Earlier sessions of {plain(title.strip())} ({len(earlier)})"):
        if not earlier:
            st.caption("None stored yet.")
        for info in earlier:
            minutes = store.minutes(info.id)
            mix = session_distribution(minutes)
            main = f", mostly {max(mix, key=mix.get)} ({max(mix.values()):.0%})" if mix else ""
            st.text(f"{info.started_at:%Y-%m-%d %H:%M} UTC · {len(minutes)} minute(s) · {info.status}{main}")
        st.markdown("[Open the Sessions page in a new tab](Sessions) — this class keeps running here.")


# ---- source 1: the browser camera
def camera_source() -> None:
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    holder = st.session_state.setdefault("camera", {"live": None})

    def on_frame(frame):  # runs in streamlit-webrtc's worker thread: no st.* here
        import av

        live = holder["live"]
        if live is None:
            return frame
        return av.VideoFrame.from_ndarray(live.process(frame.to_ndarray(format="bgr24")), format="bgr24")

    try:
        servers = ice_servers()
    except SettingsError as exc:
        st.error(str(exc))
        return
    st.write("Press **START** and allow the camera. To watch a call's gallery, pick a virtual camera "
             "(e.g. OBS Virtual Camera showing the Zoom/Meet window) in *SELECT DEVICE*.")
    ctx = webrtc_streamer(
        key="class-camera", mode=WebRtcMode.SENDRECV, rtc_configuration={"iceServers": servers},
        media_stream_constraints={"video": {"frameRate": {"ideal": 10, "max": 15},
                                            "width": {"ideal": 1280}, "height": {"ideal": 720}}, "audio": False},
        video_frame_callback=on_frame, async_processing=True)
    live: LiveSession | None = holder["live"]
    if ctx.state.playing:
        if live is None or live.status().ended:
            holder["live"] = live = new_live_session("camera", "browser camera")
    elif live is not None and not live.status().ended:
        live.finish()
    if live is None:
        st.info("The camera is off. Press START to begin a session.")
        return
    if live.status().ended:
        st.info("The camera stopped; the session is saved. Press START for a new session.")
        show_live_mood(live, "camera-ended")
        offer_download(live)
        return

    @st.fragment(run_every=2)
    def refresh() -> None:
        if not ctx.state.playing:
            return
        live_panel(live, "camera")
    refresh()


def offer_download(live: LiveSession) -> None:
    if store and live.session_id:
        info = store.get(live.session_id)
        download_csv(info.id, info.started_at, store.minutes(info.id), info.minute_seconds, key=f"dl-{info.id}")


# ---- source 2: a recorded class video, analysed as a background job of the server process
VIDEO_JOB = "video-job"  # session-state key: the id of this browser session's latest video job


def video_source() -> None:
    try:
        limit = upload_limit_mb()
    except SettingsError as exc:
        st.error(str(exc))
        return
    upload = st.file_uploader("Recorded class video", type=[s.lstrip(".") for s in VIDEO_SUFFIXES],
                              max_upload_size=limit,
                              help=f"Up to {limit} MB. Analysed here and then deleted; only the numbers are kept.")
    every = st.number_input("Analyse every Nth frame (0 = use 'Frames analysed per second')", 0, 100, 0)
    jobs = video_jobs()
    if upload is not None:
        try:
            st.caption(f"{plain(upload.name)}: {probe(upload).describe()}")
        except VideoError as exc:
            st.error(f"This video cannot be analysed: {plain(exc)}")
            upload = None
    busy = any(job.running for job in jobs.of(user.name))
    if upload is not None and st.button("Analyse video", type="primary", disabled=busy,
                                        help="Runs in the background: you may change page or settings meanwhile."
                                        + (" Wait for the running analysis first." if busy else "")):
        handle, name = tempfile.mkstemp(prefix="class-mood-upload-", suffix=Path(upload.name).suffix)
        with open(handle, "wb") as f:
            f.write(upload.getbuffer())
        job = jobs.start(Path(name), classifier, replace(session_settings, every=int(every)), store=store,
                         title=title, owner=user.name, file_name=upload.name, blur_faces=blur)
        st.session_state[VIDEO_JOB] = job.id
    job = jobs.get(st.session_state.get(VIDEO_JOB)) or next(iter(jobs.of(user.name)), None)
    if job is not None:
        video_job_panel(job)


def video_job_panel(job: VideoJob) -> None:
    """Progress while the job runs (refreshed), then its result: what was stored, alerts, charts, CSV."""
    if job.running:
        @st.fragment(run_every=1)
        def running() -> None:
            if not job.running:
                st.rerun()
            st.progress(job.fraction or 0.0, text=describe(job))
            st.button("Cancel analysis", key=f"cancel-{job.id}", on_click=job.cancel,
                      help="Stops after the current frame; the part analysed so far is kept.")
            if job.session:
                marker_bar(job.session.add_marker, key=f"job-{job.id}")
            if job.preview is not None:
                st.image(job.preview, channels="BGR", width="stretch")
        running()
        return
    analysis = job.analysis
    if job.status == "done":
        st.success(describe(job))
    if job.message:
        (st.warning if job.status in ("done", "cancelled") else st.error)(plain(job.message))
    if analysis is None:
        return
    session, timer = analysis.session, analysis.session.pipeline.timer
    if timer.faces == 0:
        st.warning("No faces were found in this video. Faces must look roughly at the camera and be at least "
                   f"{session.settings.detector.min_face_size} px tall; try a lower 'Smallest face' or a higher "
                   "resolution video.")
    minutes = session.aggregator.minutes()
    show_alerts(session.alerts)
    if session.session_id and store:
        stored = "Saved" if analysis.stored else "Partly saved (the database was busy)"
        st.caption(f"{stored} as session {session.session_id}: {len(minutes)} minute(s), {timer.faces} faces.")
        download_csv(session.session_id, session.started_at, minutes, session.settings.minute_seconds,
                     key=f"dl-{job.id}")
    show_mood(minutes, session.aggregator.student_minutes(), key=f"video-{job.id}", markers=session.markers,
              minute_seconds=session.settings.minute_seconds, class_only=session.settings.class_only,
              threshold=session.settings.alert_rule.negative_threshold)


# ---- source 3: the call window on this computer
def screen_source() -> None:
    from emotion.screen import Region, ScreenCapture, ScreenError, list_monitors

    try:
        monitors = list_monitors()
    except ScreenError as exc:
        st.error(f"Screen capture is not available: {exc}. Use the Camera source with a virtual camera instead.")
        return
    state = st.session_state.setdefault("screen", {"capture": None, "live": None})
    names = [f"Monitor {i + 1} ({m['width']}×{m['height']})" for i, m in enumerate(monitors)]
    monitor = st.selectbox("Monitor", range(len(names)), format_func=names.__getitem__) + 1
    cols = st.columns(4)
    region = Region(monitor, cols[0].number_input("Left", 0, 10000, 0), cols[1].number_input("Top", 0, 10000, 0),
                    cols[2].number_input("Width (0 = all)", 0, 10000, 0),
                    cols[3].number_input("Height (0 = all)", 0, 10000, 0))
    capture: ScreenCapture | None = state["capture"]
    start, stop = st.columns(2)
    if start.button("Start watching the screen", disabled=bool(capture and capture.running), type="primary"):
        live = new_live_session("window", names[monitor - 1])
        state.update(live=live, capture=ScreenCapture(region, analysis_fps, live.process).start())
        capture = state["capture"]
    if stop.button("Stop", disabled=not (capture and capture.running)):
        capture.stop()
        state["live"].finish()
    live: LiveSession | None = state["live"]
    if live is None:
        st.info("Choose the monitor (and region) that shows the call's gallery, then start.")
        return

    @st.fragment(run_every=2)
    def refresh() -> None:
        if capture.error:
            st.error(capture.error)
        if capture.latest is not None:
            st.image(capture.latest, channels="BGR", width="stretch")
        live_panel(live, "screen")
    refresh()
    if live.status().ended:
        offer_download(live)


earlier_sessions()
if privacy_notice_acknowledged(class_only):
    {"Camera": camera_source, "Recorded video": video_source}.get(source, screen_source)()
