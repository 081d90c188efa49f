"""Credentials generated on the first start, so that a stack started with nothing configured
has no value anyone else knows: the secret key (cursors, admin sessions), the admin password
and a bootstrap API key with every scope.

`python -m shared.prestart` (the compose `migrate` one-shot, `make run`) fills CREDENTIALS_FILE
with whichever of the three the environment leaves unset and prints them once; every process
then reads them from there (shared.settings). `show-credentials` prints them again:

    docker compose run --rm migrate show-credentials
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

DEFAULT_FILE = "var/credentials.json"

# Settings field → how to make a value. The API key has the shape of shared.api_keys' keys.
GENERATORS: dict[str, Callable[[], str]] = {
    "secret_key": lambda: secrets.token_urlsafe(48),
    "admin_password": lambda: secrets.token_urlsafe(24),
    "api_bootstrap_key": lambda: "clk_" + secrets.token_urlsafe(32),
}


def load(path: str | os.PathLike[str]) -> dict[str, str]:
    """The stored credentials, or none when the file does not exist (yet)."""
    try:
        stored = json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}
    return {field: str(stored[field]) for field in GENERATORS if stored.get(field)}


def ensure(path: str | os.PathLike[str], given: Mapping[str, str | None]) -> dict[str, str]:
    """Generate and store each credential neither `given` (the environment) nor the file has.
    Returns only the ones generated now: the caller prints them, once."""
    stored = load(path)
    generated = {
        field: make()
        for field, make in GENERATORS.items()
        if not given.get(field) and field not in stored
    }
    if generated:
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_suffix(".tmp")
        # Readable by the services' user only; written whole, then renamed into place.
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            json.dump({**stored, **generated}, out, indent=2)
        temporary.replace(target)
    return generated


def describe(values: Mapping[str, str | None], admin_username: str) -> str:
    """The lines a person needs: the API key and the admin login (the secret key stays put)."""
    lines = []
    if values.get("api_bootstrap_key"):
        lines.append(f"  API key (every scope): {values['api_bootstrap_key']}")
    if values.get("admin_password"):
        lines.append(f"  Admin (/admin/):       {admin_username} / {values['admin_password']}")
    if values.get("secret_key"):
        lines.append("  SECRET_KEY:            generated (signs cursors and admin sessions)")
    return "\n".join(lines)


def announce(generated: Mapping[str, str], path: str, admin_username: str) -> None:
    """Print what the first start generated, once, where `docker compose logs migrate` shows it."""
    if not generated:
        return
    print(
        f"Generated credentials, kept in {path} (printed this once; "
        "`docker compose run --rm migrate show-credentials` prints them again):\n"
        + describe(generated, admin_username),
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """`show-credentials`: the API key and admin login in use, set or generated."""
    del argv
    path = os.environ.get("CREDENTIALS_FILE") or DEFAULT_FILE
    from_environment = {f: os.environ[f.upper()] for f in GENERATORS if os.environ.get(f.upper())}
    current = {**load(path), **from_environment}
    if not current:
        print(
            f"no credentials yet: {path} does not exist "
            "(the first `docker compose up`, or `make run`, makes it)",
            file=sys.stderr,
        )
        return 1
    print(describe(current, os.environ.get("ADMIN_USERNAME") or "admin"))
    if from_environment:
        print(
            f"  (set in the environment: {', '.join(sorted(f.upper() for f in from_environment))})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
