"""``python -m chaos``: run the fault scenarios and print one table.

python -m chaos                       # every scenario, full size (>= 200k calls, 1k accounts)
python -m chaos --scale short         # the sizes the tests use
python -m chaos --only "broker freeze" --seed 3
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from chaos.scenarios import SCALES, SCENARIOS, Result, run_scenario
from stream.broker import EmbeddedBroker
from stream.verify import print_report

COLUMNS = (
    ("scenario", 22),
    ("messages_in", 11),
    ("track_calls", 11),
    ("dlq", 6),
    ("lost", 5),
    ("double_counted", 14),
    ("duplicate_outputs", 17),
    ("recovery_s", 10),
    ("converge_s", 10),
    ("ok", 4),
)


def table(results: list[Result]) -> str:
    head = " | ".join(name.replace("_", " ").ljust(width) for name, width in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in results:
        row = r.row()
        cells = []
        for name, width in COLUMNS:
            value = row[name]
            text = "-" if value is None else ("yes" if value is True else "NO" if value is False else str(value))
            cells.append(text.ljust(width) if name == "scenario" else text.rjust(width))
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument(
        "--only", action="append", choices=sorted(SCENARIOS), help="run just this scenario (repeatable)"
    )
    parser.add_argument("--seed", type=int, default=1, help="where faults hit and the workload's seed")
    parser.add_argument("--json", default="chaos-results.json", help="where to write the results")
    args = parser.parse_args(argv)
    scale = SCALES[args.scale]
    names = args.only or list(SCENARIOS)
    results: list[Result] = []
    with (
        tempfile.TemporaryDirectory(prefix="chaos-") as tmp,
        EmbeddedBroker(log_path=Path(tmp) / "broker.log") as broker,
    ):
        for name in names:
            print(f"--- {name} ({scale.name})", flush=True)
            try:
                result = run_scenario(name, broker, Path(tmp), scale, args.seed)
            except Exception as exc:  # a scenario that could not run to the end
                result = Result(name, notes=[f"aborted: {exc}"])
            results.append(result)
            if result.report is not None and not result.ok:
                print_report(result.report)
            print(table([result]).splitlines()[-1], *result.notes, sep="\n  ", flush=True)
    print()
    print(f"chaos, {scale.name} scale, seed {args.seed}, {datetime.now(UTC):%Y-%m-%d}, {platform.machine()}")
    print(table(results))
    for r in results:
        for note in r.notes:
            print(f"  {r.scenario}: {note}")
    Path(args.json).write_text(
        json.dumps({"scale": scale.name, "seed": args.seed, "results": [r.row() for r in results]}, indent=2)
    )
    return 0 if all(r.ok and r.lost == 0 and r.double_counted == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
