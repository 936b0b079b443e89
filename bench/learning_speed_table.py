"""The learning-speed rows as a markdown table (docs/recipe.md):

    python -m bench.learning_speed_table [bench/results/learning-speed/runs.jsonl]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.learning_speed import RESULTS, TOKENIZERS

COLUMNS = [("caption_acc", "caption"), ("caption_heldout_acc", "caption held-out"),
           ("vqa_acc", "VQA"), ("vqa_heldout_acc", "VQA held-out"),
           ("vqa_kind", "VQA in text"), ("t2i_attr", "t2i attributes"), ("t2i_acc", "t2i exact"),
           ("retrieval_r1", "R@1")]


def table(rows: list[dict]) -> str:
    head = ["variant", "flags", "tokenizers", "CPU min", "steps", "examples", "params"]
    head += [c for _, c in COLUMNS]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        m = r["metrics"]
        cells = [r["variant"], "`" + " ".join(r["flags"]) + "`" if r["flags"] else "",
                 f"`{r.get('tokenizers', TOKENIZERS)}`", f"{r['minutes']:g}", str(r["steps"]),
                 str(r["examples"]), f"{r['parameters'] / 1e6:.1f}M"]
        cells += [f"{100 * m[k]:.0f}%" if k in m else "" for k, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> str:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else RESULTS
    out = table([json.loads(line) for line in path.read_text().splitlines() if line.strip()])
    print(out)
    return out


if __name__ == "__main__":
    main()
