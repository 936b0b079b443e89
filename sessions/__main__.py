"""python -m sessions replay DB [--session ID] [--rerun] [--model PATH] [--report FILE]

Exit status: 0 played back, or every re-run reply the same; 1 a re-run reply differs; 2 the
command cannot run, said in one sentence (see `sessions.replay`). The database is only read.
"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys

EPILOG = ("exit status: 0 played back, or every re-run reply is the same; 1 a re-run reply "
          "differs; 2 the command cannot run (the reason is printed). The database is opened "
          "read-only and never changed.")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sessions", epilog=EPILOG)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("replay", help="play a stored session back, or re-run and compare it",
                       epilog=EPILOG)
    r.add_argument("db", help="the session database")
    r.add_argument("--session", help="one session id (default: all)")
    r.add_argument("--rerun", action="store_true",
                   help="regenerate every reply with its stored settings and seed and compare")
    r.add_argument("--model", help="checkpoint to re-run with (default: the session's)")
    r.add_argument("--baseline", help="AR baseline checkpoint, for turns run in AR mode")
    r.add_argument("--device", default="auto")
    r.add_argument("--report", help="write the comparison as JSON here")
    a = p.parse_args(argv)  # a usage error exits 2 with its sentence, as argparse does
    logging.basicConfig(level=logging.WARNING)
    from sessions.replay import EXIT_CANNOT_RUN, ReplayError
    from sessions.replay import main as replay_main
    from sessions.store import NotFound, StoreError

    try:
        return replay_main(a)
    except (ReplayError, StoreError, NotFound) as e:
        why = str(e)
    except sqlite3.DatabaseError as e:
        why = f"{a.db} is damaged or not a session database ({e})"
    except OSError as e:
        why = f"{e.filename or a.db}: {e.strerror or e}"
    print(f"error: {why}", file=sys.stderr)
    return EXIT_CANNOT_RUN


if __name__ == "__main__":
    sys.exit(main())
