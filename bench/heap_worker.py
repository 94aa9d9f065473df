"""`vigie worker` under tracemalloc, for bench/pipeline.py --heap FILE.

The bench creates FILE.start once the worker is warm (the hold begins) and FILE.end when
the hold ends; this wrapper takes a heap snapshot at each and writes to FILE what grew in
between, by the line that allocated it (and the callers of the largest growths). Tracing
slows the worker's allocations, so the rate it sustains under it is not a throughput figure.
"""

from __future__ import annotations

import sys
import threading
import time
import tracemalloc
from pathlib import Path

# Run as a script, bench/ is first on the path and its pipeline.py would shadow the package.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__)
               .resolve().parent]

FRAMES = 6
TOP = 30


def report(first: tracemalloc.Snapshot, second: tracemalloc.Snapshot, seconds: float) -> str:
    lines = [f"heap growth over {seconds:.0f} s (tracemalloc, {FRAMES} frames)"]
    total = sum(stat.size_diff for stat in second.compare_to(first, "filename"))
    lines.append(f"total traced growth: {total / 1e6:.1f} MB")
    lines.append("\nby line:")
    for stat in second.compare_to(first, "lineno")[:TOP]:
        frame = stat.traceback[0]
        lines.append(f"{stat.size_diff / 1e6:8.2f} MB {stat.count_diff:+9d} blocks  "
                     f"{frame.filename}:{frame.lineno}")
    lines.append("\nlargest growths with their callers:")
    for stat in second.compare_to(first, "traceback")[:8]:
        lines.append(f"{stat.size_diff / 1e6:8.2f} MB {stat.count_diff:+9d} blocks")
        lines += [f"    {frame.filename}:{frame.lineno}" for frame in stat.traceback]
    return "\n".join(lines) + "\n"


def watch(out: Path) -> None:
    start, end = Path(f"{out}.start"), Path(f"{out}.end")
    while not start.exists():
        time.sleep(0.5)
    first, started = tracemalloc.take_snapshot(), time.monotonic()
    while not end.exists():
        time.sleep(0.5)
    second = tracemalloc.take_snapshot()
    out.write_text(report(first, second, time.monotonic() - started))


def main() -> None:
    out = Path(sys.argv[1])
    tracemalloc.start(FRAMES)
    threading.Thread(target=watch, args=(out,), daemon=True).start()
    from pipeline.cli import main as vigie

    sys.argv = ["vigie", "worker"]
    vigie()


if __name__ == "__main__":
    main()
