"""`python -m bench --size small|large` (what `make bench SIZE=…` runs)."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from types import FrameType

from bench import runner, services
from bench.sizes import PUBLIC_SIZES, SIZES, Size

INSTALL_TOOLS = services.ROOT / "scripts" / "install-bench-tools.sh"


def size(name: str) -> Size:
    if name not in SIZES:  # `tiny` is accepted too, for developing the harness itself
        raise argparse.ArgumentTypeError(f"choose from {', '.join(PUBLIC_SIZES)}")
    return SIZES[name]


def group_names(text: str) -> frozenset[str]:
    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    unknown = names - set(runner.GROUP_NAMES)
    if unknown or not names:
        named = ", ".join(sorted(unknown)) or "nothing"
        raise argparse.ArgumentTypeError(f"{named}: choose from {', '.join(runner.GROUP_NAMES)}")
    return names


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return value


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Unwind like Ctrl-C does, so every child process is stopped on the way out.
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--size", type=size, default=SIZES["small"], help="small | large")
    parser.add_argument(
        "--duration", type=int, default=20, help="seconds of each wrk and pgbench run (20)"
    )
    parser.add_argument(
        "--only",
        type=group_names,
        metavar="NAME[,NAME]",
        help=f"run only these groups of figures: {', '.join(runner.GROUP_NAMES)} (default: all); "
        "the results then go to var/bench/results/, never over the committed ones",
    )
    parser.add_argument(
        "--soak-seconds",
        type=positive,
        help="length of the soak after its warm-up slice (180; 20 at size tiny)",
    )
    parser.add_argument(
        "--paced-seconds",
        type=positive,
        help="length of the paced (open-loop) run after its warm-up slice (300; 60 at size tiny)",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    subprocess.run([str(INSTALL_TOOLS)], check=True)
    try:
        results = runner.run(
            args.size, args.duration, args.only, args.soak_seconds, args.paced_seconds
        )
    except KeyboardInterrupt:
        print("interrupted: every process the bench started was stopped", file=sys.stderr)
        return 130
    markdown, data = results.write(runner.results_dir(args.size, args.only))
    print(results.markdown())
    print(f"written: {markdown}, {data}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
