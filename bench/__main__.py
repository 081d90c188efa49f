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


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Unwind like Ctrl-C does, so every child process is stopped on the way out.
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--size", type=size, default=SIZES["small"], help="small | large")
    parser.add_argument(
        "--duration", type=int, default=20, help="seconds of each wrk and pgbench run (20)"
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    subprocess.run([str(INSTALL_TOOLS)], check=True)
    try:
        results = runner.run(args.size, args.duration)
    except KeyboardInterrupt:
        print("interrupted: every process the bench started was stopped", file=sys.stderr)
        return 130
    markdown, data = results.write(runner.results_dir(args.size))
    print(results.markdown())
    print(f"written: {markdown}, {data}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
