"""``emocircuits sev validate``: check SEV files."""

from __future__ import annotations

import argparse
import sys


def _sev_validate(args: argparse.Namespace) -> int:
    """Check every file; one ``OK`` line per good file (stdout), one ``INVALID`` line per bad one
    (stderr), followed by every problem of a malformed file, one per line. Exit status 2 (a user error, as for every command) when any file is bad, else 0."""
    from circuits.core.artifacts import InputError
    from circuits.core.sev import DEFAULT_TEST, DEFAULT_TRAIN, SEVFormatError, load_sev

    status = 0
    for path in args.files or [str(DEFAULT_TRAIN), str(DEFAULT_TEST)]:
        try:
            ds = load_sev(path)
        except SEVFormatError as err:
            print(f"INVALID {path}: {len(err.errors)} problem(s)", file=sys.stderr)
            for problem in err.errors:
                print(f"  {problem}", file=sys.stderr)
            status = 2
            continue
        except (InputError, OSError) as err:
            print(f"INVALID {path}: {err}" if str(path) not in str(err) else f"INVALID {err}", file=sys.stderr)
            status = 2
            continue
        print(f"OK {path}: {ds.summary()}")
    return status


def register(sub: argparse._SubParsersAction) -> None:
    sev = sub.add_parser("sev", help="SEV dataset tools").add_subparsers(dest="sev_command", required=True)
    val = sev.add_parser("validate", help="check SEV files and print a one-line summary or the errors")
    val.add_argument(
        "files", nargs="*", help="SEV JSONL (or JSON array) files (default: the shipped train and test splits)"
    )
    val.set_defaults(func=_sev_validate)
