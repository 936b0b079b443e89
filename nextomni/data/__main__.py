"""`python -m nextomni.data preview --seed S --n N --out DIR`: look at OmniWorld."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m nextomni.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("preview", help="write a contact sheet, texts, speech and a video")
    p.add_argument("--seed", type=int, default=0, help="first scene seed")
    p.add_argument("--n", type=int, default=16, help="number of scenes")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args(argv)
    if args.command == "preview":
        from nextomni.data.preview import write_preview

        if args.n < 1:
            parser.error(f"--n must be at least 1, got {args.n}")
        for path in write_preview(args.seed, args.n, args.out):
            print(path)


if __name__ == "__main__":
    main()
