"""The ``stream`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import orjson

from stream.core.criteria import Criteria, criteria_summary, load_criteria_text
from stream.core.errors import ConfigError, CriteriaError, StreamError
from stream.gc_tuning import tune_gc
from stream.settings import Settings, load_settings


def _settings_with_broker() -> Settings:
    settings = load_settings()
    if not settings.broker_url:
        raise ConfigError("STREAM_BROKER_URL is not set: point it at Kafka, or start one with `stream broker`")
    return settings


def cmd_worker(_args: argparse.Namespace) -> int:
    from stream.worker.run import run_worker

    run_worker(_settings_with_broker())
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    import signal
    import threading

    from stream.broker import EmbeddedBroker
    from stream.kafka_admin import ensure_topics

    broker = EmbeddedBroker(port=args.port).start()
    try:
        settings = load_settings().with_broker(broker.url)
        ensure_topics(settings)
        print(f"embedded broker listening: {broker.url}", flush=True)
        print(f"  export STREAM_BROKER_URL={broker.url}", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(1.0):
                if broker.process is None or broker.process.poll() is not None:
                    print("broker exited", file=sys.stderr)
                    return 1
        except KeyboardInterrupt:
            pass
    finally:
        broker.stop()
    return 0


def message_key(doc: object) -> bytes | None:
    """Producers' convention: the account id when the call names one, else the user id."""
    if not isinstance(doc, dict):
        return None
    first = doc["batch"][0] if isinstance(doc.get("batch"), list) and doc["batch"] else doc
    if not isinstance(first, dict):
        return None
    context = first.get("context") if isinstance(first.get("context"), dict) else {}
    key = first.get("groupId") or context.get("groupId") or first.get("userId")
    return key.encode() if isinstance(key, str) else None


def read_lines(stream: BinaryIO) -> Iterator[tuple[bytes | None, bytes]]:
    for line in stream:
        line = line.strip()
        if not line:
            continue
        try:
            key = message_key(orjson.loads(line))
        except orjson.JSONDecodeError:
            key = None  # published as is: the worker sends it to the DLQ
        yield key, line


def cmd_produce(args: argparse.Namespace) -> int:
    from stream.kafka_admin import ensure_topics, produce_all

    settings = _settings_with_broker()
    ensure_topics(settings)
    topic = args.topic or settings.topics.events
    if args.file == "-":
        count = produce_all(settings, topic, read_lines(sys.stdin.buffer))
    else:
        with open(args.file, "rb") as fh:
            count = produce_all(settings, topic, read_lines(fh))
    print(f"published {count} messages to {topic}")
    return 0


def read_criteria_file(name: str) -> Criteria:
    path = Path(name)
    try:
        text = path.read_text()
    except OSError as exc:
        raise CriteriaError(str(path), f"cannot read: {exc.strerror}") from None
    try:
        return load_criteria_text(text, str(path))
    except CriteriaError as exc:
        raise CriteriaError(f"{path}: {exc.field}", exc.message) from None


def cmd_criteria_check(args: argparse.Namespace) -> int:
    path = Path(args.file)
    criteria = read_criteria_file(args.file)
    summary = criteria_summary(criteria)
    print(f"{path}: ok, version {summary['version']}, threshold {summary['activation_threshold']}")
    print(f"  user milestones:    {', '.join(summary['user_milestones'])}")
    print(f"  account milestones: {', '.join(summary['account_milestones'])}")
    return 0


def cmd_criteria_publish(args: argparse.Namespace) -> int:
    from stream.kafka_admin import ensure_topics
    from stream.worker.run import publish_criteria

    settings = _settings_with_broker()
    criteria = read_criteria_file(args.file)
    ensure_topics(settings)
    publish_criteria(settings, criteria)
    print(f"published criteria v{criteria.version} to {settings.topics.criteria}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from stream.verify import print_report, verify
    from stream.worker.run import published_criteria

    settings = _settings_with_broker()
    criteria = read_criteria_file(args.criteria) if args.criteria else published_criteria(settings)
    if criteria is None:
        criteria = read_criteria_file(str(settings.criteria_path))
    url = args.url or f"http://127.0.0.1:{settings.web_port}"
    report = verify(settings, criteria, url)
    print_report(report)
    return 0 if report.ok else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from stream.demo import run_demo

    return run_demo(
        load_settings(), accounts=args.accounts, days=args.days, rate=args.rate, exit_when_done=args.exit_when_done
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stream", description="Activation and engagement processor")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a Faust worker (needs STREAM_BROKER_URL)").set_defaults(func=cmd_worker)
    p = sub.add_parser("broker", help="run the embedded broker in the foreground and print its address")
    p.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    p.set_defaults(func=cmd_broker)
    p = sub.add_parser("produce", help="publish JSON lines (Segment calls or batches) to the input topic")
    p.add_argument("file", help="a file of JSON lines, or - for standard input")
    p.add_argument("--topic", default=None, help="topic (default: STREAM_TOPIC_EVENTS)")
    p.set_defaults(func=cmd_produce)
    p = sub.add_parser("demo", help="embedded broker + worker + synthetic SaaS stream, shown live")
    p.add_argument("--accounts", type=int, default=40)
    p.add_argument("--days", type=int, default=21)
    p.add_argument("--rate", type=float, default=400.0, help="events per second to publish")
    p.add_argument("--exit-when-done", action="store_true", help="stop once every event is processed")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("verify", help="compare live state with an offline run of the input topic; lists differences")
    p.add_argument("--url", default=None, help="a worker's HTTP address (default: http://127.0.0.1:STREAM_WEB_PORT)")
    p.add_argument("--criteria", default=None, help="criteria file (default: the newest published version)")
    p.set_defaults(func=cmd_verify)
    crit = sub.add_parser("criteria", help="activation criteria files")
    csub = crit.add_subparsers(dest="criteria_command", required=True)
    p = csub.add_parser("check", help="validate a criteria file, naming the offending field")
    p.add_argument("file")
    p.set_defaults(func=cmd_criteria_check)
    p = csub.add_parser("publish", help="publish a criteria file to the criteria topic (every account is re-evaluated)")
    p.add_argument("file")
    p.set_defaults(func=cmd_criteria_publish)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_gc()  # a worker, and the replay behind `verify`, hold many objects
    try:
        return int(args.func(args))
    except CriteriaError as exc:
        print(f"invalid criteria: {exc}", file=sys.stderr)
        return 1
    except StreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
