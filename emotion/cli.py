"""Command line: `python -m emotion analyze VIDEO --csv OUT.csv [--markers lesson.csv]`,
`python -m emotion sessions (list|export|summary|markers|report|import|purge) ...` and
`python -m emotion users hash-password`."""
from __future__ import annotations

import argparse
import getpass
import math
import sys
import time
from pathlib import Path

from emotion.aggregate import METHODS
from emotion.alerts import AlertRule
from emotion.session import SessionSettings
from emotion.session_csv import (SESSION_COLUMNS, SESSION_INTERVAL_COLUMNS, STUDENT_COLUMNS, minute_rows, student_rows,
                                 to_csv_bytes)


def _store():
    from emotion.settings import database_url
    from emotion.store import SessionStore

    return SessionStore(database_url())


def _class_only(args) -> bool:
    """--class-only, or the school's CLASS_MOOD_CLASS_ONLY setting."""
    from emotion.settings import class_only

    return getattr(args, "class_only", False) or class_only()


INTERVALS_HELP = "add <emotion>_low / <emotion>_high columns after the usual ones: each share's 90 %% interval"


def _write_minutes_csv(args, rows: list[dict]) -> None:
    """The session CSV: its contract's columns, with --intervals each share's 90 % interval after them."""
    Path(args.csv).write_bytes(to_csv_bytes(rows, SESSION_INTERVAL_COLUMNS if args.intervals else SESSION_COLUMNS))


def cmd_analyze(args) -> int:
    from emotion.analyze import analyze_video
    from emotion.classifier import EmotionClassifier
    from emotion.detect import DetectorSettings
    from emotion.markers import parse_markers_csv

    class_only = _class_only(args)
    if class_only and args.students:
        raise ValueError("class-only mode stores and exports no per-student rows; leave out --students")
    markers = []
    if args.markers:  # checked before the long analysis starts
        path = Path(args.markers)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        markers = parse_markers_csv(path.read_bytes(), path.name)
    settings = SessionSettings(analysis_fps=args.fps, every=args.every, detect_every=args.detect_every,
                               minute_seconds=args.minute_seconds, aggregation=args.aggregation,
                               coast_seconds=args.coast_seconds, detector=DetectorSettings(min_face_size=args.min_face),
                               class_only=class_only)
    classifier = EmotionClassifier.load(args.weights)
    store = None if args.no_store else _store()
    print(f"analysing {args.video} with {classifier.name} "
          f"(val accuracy {classifier.val_accuracy or 'unknown'})", file=sys.stderr)
    shown = {"at": -10.0}

    def progress(seconds: float, duration: float | None) -> None:
        if seconds - shown["at"] >= 10:
            shown["at"] = seconds
            total = f"/{duration:.0f}" if duration else ""
            print(f"  {seconds:.0f}{total} s of video", file=sys.stderr, flush=True)

    clock = time.monotonic()
    def add_markers(session) -> None:  # stored with the session from its first write on
        for marker in markers:
            session.add_marker(marker.label, marker.text, marker.seconds)

    analysis = analyze_video(args.video, classifier, settings, store=store, title=args.title or "",
                             owner=args.owner, progress=progress, on_session=add_markers)
    elapsed = time.monotonic() - clock
    session, pipeline = analysis.session, analysis.session.pipeline
    minutes = session.aggregator.minutes()
    session_id = session.session_id or "unsaved"
    _write_minutes_csv(args, minute_rows(session_id, session.started_at, minutes, settings.minute_seconds,
                                         intervals=args.intervals))
    if args.students:
        Path(args.students).write_bytes(
            to_csv_bytes(student_rows(session_id, session.aggregator.student_minutes()), STUDENT_COLUMNS))
    timer = pipeline.timer
    stages = ", ".join(f"{k} {v:.0f} ms" for k, v in timer.per_frame_ms().items())
    print(f"{timer.frames} frames, {timer.faces} faces, {len(minutes)} minute(s) in {elapsed:.1f} s "
          f"({timer.frames / max(elapsed, 1e-9):.1f} frames/s; per frame: {stages})", file=sys.stderr)
    if timer.faces == 0:
        print("warning: no faces were found in this video", file=sys.stderr)
    if analysis.ended_early:
        print(f"warning: {analysis.ended_early}", file=sys.stderr)
    late = [m for m in markers if m.seconds > analysis.decoded_seconds]
    if late:
        print(f"warning: {len(late)} marker(s) lie after the last analysed frame ({analysis.decoded_seconds:.0f} s), "
              f"e.g. {late[0].label} at {late[0].seconds:.0f} s", file=sys.stderr)
    if markers:
        print(f"{len(markers)} lesson marker(s) " + ("stored with the session" if store else "read (not stored)"),
              file=sys.stderr)
    if analysis.stopped:
        print(f"error: {analysis.stopped}; {args.csv} and session {session_id} hold the part before it",
              file=sys.stderr)
        return 2
    if store is not None and not analysis.stored:
        print(f"warning: the database stayed busy; session {session_id} may lack its last rows "
              f"({session.storage_problem})", file=sys.stderr)
    print(f"session {session_id}: wrote {args.csv}", file=sys.stderr)
    return 0


def cmd_sessions_list(args) -> int:
    sessions = _store().list_sessions()
    if not sessions:
        print("no sessions stored yet")
        return 0
    print(f"{'id':12}  {'started (UTC)':19}  {'status':11}  {'source':8}  title")
    for s in sessions:
        print(f"{s.id:12}  {s.started_at:%Y-%m-%d %H:%M:%S}  {s.status:11}  {s.source_kind:8}  {s.title}")
    return 0


def _chosen_session(store, args):
    """The session named on the command line: an id, or --latest."""
    return store.latest() if args.latest else store.get(args.session_id)


def cmd_sessions_export(args) -> int:
    store = _store()
    info = _chosen_session(store, args)
    if args.students and (info.class_only or _class_only(args)):
        raise ValueError(f"session {info.id} is class-only: no per-student rows are stored or exported"
                         if info.class_only else "class-only mode (CLASS_MOOD_CLASS_ONLY) exports no per-student rows")
    rows = minute_rows(info.id, info.started_at, store.minutes(info.id), info.minute_seconds, intervals=args.intervals)
    _write_minutes_csv(args, rows)
    if args.students:
        Path(args.students).write_bytes(to_csv_bytes(student_rows(info.id, store.student_minutes(info.id)),
                                                     STUDENT_COLUMNS))
    print(f"session {info.id} ({info.title}): {len(rows)} minute(s) written to {args.csv}", file=sys.stderr)
    return 0


def cmd_sessions_summary(args) -> int:
    from emotion.session_numbers import format_duration, mood_changes, session_distribution, summarize

    store = _store()
    info = _chosen_session(store, args)
    minutes = store.minutes(info.id)
    summary = summarize(minutes, args.threshold, info.minute_seconds)
    print(f"session {info.id} ({info.title}), {info.status}, started {info.started_at:%Y-%m-%d %H:%M} UTC")
    print(f"  {summary.minutes} minute(s) of {info.minute_seconds:g} s, "
          f"{format_duration(summary.duration_seconds)} long")
    if summary.mean_faces_per_frame is not None:
        print(f"  {summary.mean_faces_per_frame:.2f} faces per frame on average")
    if summary.share_above_threshold is not None:
        print(f"  negative share above {args.threshold:.0%} in {summary.minutes_above_threshold} of "
              f"{summary.minutes_with_faces} minute(s) with faces ({summary.share_above_threshold:.0%})")
    mix = session_distribution(minutes)
    if mix:
        print("  whole session: " + ", ".join(f"{e} {share:.0%}" for e, share in mix.items()))
    for change in mood_changes(minutes):
        print(f"  mood change minute {change.previous + 1} -> {change.minute + 1}: {change.distance:.0%}")
    return 0


def cmd_sessions_markers(args) -> int:
    from emotion.markers import MARKER_COLUMNS, format_time, marker_rows

    store = _store()
    info = _chosen_session(store, args)
    markers = store.markers(info.id)
    if args.csv:
        Path(args.csv).write_bytes(to_csv_bytes(marker_rows(info.id, markers, info.minute_seconds), MARKER_COLUMNS))
        print(f"session {info.id} ({info.title}): {len(markers)} marker(s) written to {args.csv}", file=sys.stderr)
        return 0
    print(f"session {info.id} ({info.title}): {len(markers)} lesson marker(s)")
    for m in markers:
        print(f"  {format_time(m.seconds):>8}  minute {m.minute(info.minute_seconds) + 1:<4}  {m.label}"
              + (f" — {m.text}" if m.text else ""))
    return 0


def cmd_sessions_report(args) -> int:
    from emotion.report import REPORT_SUFFIXES, load_report, write_report

    out = Path(args.out)
    if out.suffix.lower() not in REPORT_SUFFIXES:
        raise ValueError(f"--out must end in {' or '.join(REPORT_SUFFIXES)}, not {out.name!r}")
    store = _store()
    info = _chosen_session(store, args)
    report = load_report(store, info.id, threshold=args.threshold, class_only=_class_only(args))
    for problem in write_report(report, out):
        print(f"warning: {problem}", file=sys.stderr)
    print(f"session {info.id} ({info.title}): report written to {out}", file=sys.stderr)
    return 0


def cmd_sessions_import(args) -> int:
    from emotion.session_csv import parse_session_csv

    path = Path(args.file)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    imported = parse_session_csv(path.read_bytes(), path.name)
    session_id = _store().import_session(imported, title=args.title or path.stem, source_name=path.name)
    print(f"imported {len(imported.minutes)} minute(s) as session {session_id}")
    return 0


def cmd_sessions_purge(args) -> int:
    deleted = _store().delete_older_than(args.older_than)
    print(f"deleted {deleted} session(s) that started more than {args.older_than} day(s) ago")
    return 0


def cmd_users_hash_password(args) -> int:
    from emotion.accounts import hash_password

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Same password again: ") != password:
            raise ValueError("the two passwords differ")
    else:  # piped in: the first line
        password = sys.stdin.readline().rstrip("\r\n")
    print(hash_password(password))
    return 0


def _add_session_choice(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("session_id", nargs="?")
    target.add_argument("--latest", action="store_true", help="the most recent session")


def _number(text: str, kind=float) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _non_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _whole(minimum: int):
    def parse(text: str) -> int:
        value = _number(text, int)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number of at least {minimum}, not {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emotion", description="Class Mood from the command line")
    commands = parser.add_subparsers(dest="command", required=True)

    analyze = commands.add_parser("analyze", help="analyse a recorded class video into a per-minute session CSV")
    analyze.add_argument("video", help="mp4, webm, mkv or mov file")
    analyze.add_argument("--csv", required=True, help="where to write the per-minute session CSV")
    analyze.add_argument("--students", help="also write the per-student-per-minute CSV here")
    analyze.add_argument("--intervals", action="store_true", help=INTERVALS_HELP)
    analyze.add_argument("--weights", help="model file (default: the active model, see weights/)")
    defaults = SessionSettings()
    analyze.add_argument("--every", type=_whole(0), default=0, help="analyse every Nth frame (overrides --fps)")
    analyze.add_argument("--fps", type=_positive, default=defaults.analysis_fps,
                         help="frames per second of video to analyse")
    analyze.add_argument("--detect-every", type=_whole(1), default=defaults.detect_every,
                         help="run the face detector on every Nth analysed frame (boxes are reused in between)")
    analyze.add_argument("--min-face", type=_whole(1), default=defaults.detector.min_face_size,
                         help="smallest face side in px to detect")
    analyze.add_argument("--coast-seconds", type=_non_negative, default=defaults.coast_seconds,
                         help="a student the detector misses keeps counting this long (0 = off)")
    analyze.add_argument("--minute-seconds", type=_positive, default=defaults.minute_seconds,
                         help="length of a 'minute' in seconds (5 to 3600)")
    analyze.add_argument("--aggregation", choices=METHODS, default=defaults.aggregation,
                         help="how a minute's shares are computed (see emotion/aggregate.py)")
    analyze.add_argument("--owner", default="", help="the user the stored session belongs to (default: none, "
                                                     "so only analysts and developers see it)")
    analyze.add_argument("--title", help="session title (default: the file name)")
    analyze.add_argument("--no-store", action="store_true", help="do not store the session in the database")
    analyze.add_argument("--markers", metavar="FILE", help="lesson markers to store with the session: a CSV of "
                                                           "time,label[,text], time in seconds or m:ss of the video")
    analyze.add_argument("--class-only", action="store_true",
                         help="store the class's minutes only, no per-student rows (always on with "
                              "CLASS_MOOD_CLASS_ONLY=1)")
    analyze.set_defaults(run=cmd_analyze)

    sessions = commands.add_parser("sessions", help="stored sessions").add_subparsers(dest="action", required=True)
    sessions.add_parser("list", help="list stored sessions").set_defaults(run=cmd_sessions_list)
    export = sessions.add_parser("export", help="write a session's CSV")
    _add_session_choice(export)
    export.add_argument("--csv", required=True)
    export.add_argument("--students", help="also write the per-student CSV here")
    export.add_argument("--intervals", action="store_true", help=INTERVALS_HELP)
    export.set_defaults(run=cmd_sessions_export)
    summary = sessions.add_parser("summary", help="a session's duration, faces, negative minutes and mood changes")
    _add_session_choice(summary)
    summary.add_argument("--threshold", type=float, default=AlertRule().negative_threshold,
                         help="negative share (angry+disgust+fear+sad) counted as high")
    summary.set_defaults(run=cmd_sessions_summary)
    markers = sessions.add_parser("markers", help="a session's lesson markers, listed or written as CSV")
    _add_session_choice(markers)
    markers.add_argument("--csv", help="write them to this CSV instead of listing them")
    markers.set_defaults(run=cmd_sessions_markers)
    report = sessions.add_parser("report", help="a report to hand on: PDF or HTML")
    _add_session_choice(report)
    report.add_argument("--out", required=True, help="FILE.pdf or FILE.html")
    report.add_argument("--threshold", type=float, help="negative share counted as high "
                                                        "(default: the one the session ran with)")
    report.add_argument("--class-only", action="store_true", help="leave out the per-student parts")
    report.set_defaults(run=cmd_sessions_report)
    importer = sessions.add_parser("import", help="validate and store a session CSV")
    importer.add_argument("file")
    importer.add_argument("--title")
    importer.set_defaults(run=cmd_sessions_import)
    purge = sessions.add_parser("purge", help="delete old sessions with all their rows (the retention period)")
    purge.add_argument("--older-than", type=int, required=True, metavar="DAYS",
                       help="delete the sessions that started more than DAYS days ago")
    purge.set_defaults(run=cmd_sessions_purge)

    users = commands.add_parser("users", help="sign-in users").add_subparsers(dest="action", required=True)
    users.add_parser("hash-password", help="read a password (prompt or stdin) and print its hash for the "
                                           "users file or secrets.toml").set_defaults(run=cmd_users_hash_password)
    return parser


def main(argv=None) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from emotion.model_io import ModelFileError
    from emotion.session_csv import SessionCsvError
    from emotion.settings import SettingsError
    from emotion.store import SessionNotFound
    from emotion.video import VideoError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted: what was analysed so far is stored (listed as interrupted)", file=sys.stderr)
        return 130
    except SessionNotFound as exc:
        if getattr(args, "latest", False):
            print("error: no sessions stored yet", file=sys.stderr)
        else:
            print(f"error: no stored session {exc.args[0]!r}; see `python -m emotion sessions list`", file=sys.stderr)
    except (ModelFileError, VideoError, SessionCsvError, SettingsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
    except SQLAlchemyError as exc:
        print(f"error: the session database cannot be used: {exc}", file=sys.stderr)
    except RuntimeError as exc:  # a database that is not Class Mood's, or from a newer version
        print(f"error: {exc}", file=sys.stderr)
    return 2
