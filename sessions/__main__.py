"""python -m sessions replay DB [--session ID] [--rerun] [--model PATH] [--report FILE]"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sessions")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("replay", help="play a stored session back, or re-run and compare it")
    r.add_argument("db", help="the session database")
    r.add_argument("--session", help="one session id (default: all)")
    r.add_argument("--rerun", action="store_true",
                   help="regenerate every reply with its stored settings and seed and compare")
    r.add_argument("--model", help="checkpoint to re-run with (default: the session's)")
    r.add_argument("--baseline", help="AR baseline checkpoint, for turns run in AR mode")
    r.add_argument("--device", default="auto")
    r.add_argument("--report", help="write the comparison as JSON here")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from pathlib import Path

    if not Path(a.db).exists():
        p.error(f"no database at {a.db}")
    from sessions.replay import main as replay_main
    from sessions.store import NotFound

    try:
        return replay_main(a)
    except NotFound as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
