"""Eval results of several models side by side against the quality floors (docs/recipe.md):

    python -m bench.eval_table NAME=FILE[+FILE...] [NAME=FILE ...] [--against NAME] [--json OUT]

Each FILE is the JSON of `python -m nextomni.eval --json`; several files joined by `+` make
one model's column (e.g. the full run and its held-out phrasings). Prints a markdown table,
one row per metric with its floor and whether each model meets it; `--json` also writes
{"models": [...], "rows": [{"key", "floor", "values", "meets"}]}. A metric a model was not
scored on is left empty and does not count as met.

`--against NAME` applies the shipping rule of docs/recipe.md to every other model: it replaces
NAME when it is better on more rows than it is worse and meets no fewer floors (rows either
model was not scored on are not compared); the verdicts go under "against" in the JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# (key, what it is, the floor, whether lower is better); the floors of the quality issue,
# held-out phrasings within 10 points of the template score, text questions answered in text
FLOORS = [
    ("caption_acc", "captioning, attributes", 0.90, False),
    ("caption_heldout_acc", "captioning, held-out phrasings", None, False),
    ("vqa_acc", "visual QA", 0.90, False),
    ("vqa_heldout_acc", "visual QA, held-out phrasings", None, False),
    ("vqa_heldout_kind", "held-out questions answered in text", 0.99, False),
    ("asr_wer", "speech recognition, WER", 0.10, True),
    ("asr_20db_wer", "speech recognition at 20 dB SNR, WER", None, True),
    ("video_acc", "video motion QA", 0.90, False),
    ("spoken_vqa_acc", "spoken questions about images", None, False),
    ("retrieval_r1", "text -> image retrieval, R@1 of 200", 0.95, False),
    ("t2i_acc", "text -> image, scene exact", 0.50, False),
    ("t2i_attr", "text -> image, attributes drawn right", None, False),
    ("edit_acc", "multi-turn edits, scene exact", 0.40, False),
    ("edit_attr", "multi-turn edits, attributes", None, False),
    ("tts_wer", "text -> speech, WER", 0.30, True),
    ("i2s_wer", "image -> spoken description, WER", None, True),
]
HELDOUT_GAP = {"caption_heldout_acc": "caption_acc", "vqa_heldout_acc": "vqa_acc"}
MAX_GAP = 0.10


def load(spec: str) -> tuple[str, dict]:
    """"NAME=A.json+B.json" -> (NAME, the union of their metrics). A key in several files
    (every eval run scores retrieval, and records its n) keeps the first file's value."""
    name, sep, files = spec.partition("=")
    if not sep or not name or not files:
        raise ValueError(f"expected NAME=FILE[+FILE...], got {spec!r}")
    metrics: dict = {}
    for f in files.split("+"):
        path = Path(f)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such eval result; write it with "
                                    "python -m nextomni.eval --json FILE")
        for k, v in json.loads(path.read_text()).items():
            metrics.setdefault(k, v)
    return name, metrics


def meets(key: str, floor, lower: bool, m: dict) -> bool | None:
    """Whether `m` meets the floor of `key`; None where the row has no floor."""
    if key in HELDOUT_GAP:
        base = HELDOUT_GAP[key]
        return key in m and base in m and m[base] - m[key] <= MAX_GAP
    if floor is None:
        return None
    if key not in m:
        return False
    return m[key] <= floor if lower else m[key] >= floor


def rows(models: list[tuple[str, dict]]) -> list[dict]:
    out = []
    for key, what, floor, lower in FLOORS:
        if not any(key in m for _, m in models):
            continue
        bound = (f"within {MAX_GAP:.0%} of {HELDOUT_GAP[key]}" if key in HELDOUT_GAP
                 else None if floor is None else f"{'<=' if lower else '>='} {floor:.0%}")
        out.append({"key": key, "what": what, "floor": bound,
                    "values": [m.get(key) for _, m in models],
                    "meets": [meets(key, floor, lower, m) for _, m in models]})
    return out


def against(models: list[tuple[str, dict]], body: list[dict], base: str) -> dict:
    """Per model other than `base`: rows better / worse than it, floors met by each, and
    whether the shipping rule says it replaces `base`."""
    names = [n for n, _ in models]
    if base not in names:
        raise ValueError(f"--against {base!r} is none of the models {names}")
    lower = {key: low for key, _, _, low in FLOORS}
    b = names.index(base)
    out = {}
    for i, name in enumerate(names):
        if i == b:
            continue
        better = worse = 0
        for r in body:
            new, old = r["values"][i], r["values"][b]
            if new is None or old is None or new == old:
                continue
            if (new < old) == lower[r["key"]]:
                better += 1
            else:
                worse += 1
        floors = sum(bool(r["meets"][i]) for r in body)
        base_floors = sum(bool(r["meets"][b]) for r in body)
        out[name] = {"better": better, "worse": worse, "floors": floors,
                     "base_floors": base_floors,
                     "replaces": better > worse and floors >= base_floors}
    return out


def verdicts(base: str, result: dict) -> str:
    return "\n".join(
        f"{name} against {base}: better on {v['better']} rows, worse on {v['worse']}; floors "
        f"met {v['floors']} against {v['base_floors']}: "
        f"{'replaces it' if v['replaces'] else 'does not replace it'}"
        for name, v in result.items())


def table(models: list[tuple[str, dict]], body: list[dict]) -> str:
    head = ["metric (key)", *(name for name, _ in models), "floor"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in body:
        cells = [f"{r['what']} (`{r['key']}`)"]
        for v, ok in zip(r["values"], r["meets"]):
            cells.append("" if v is None else f"{100 * v:.1f}%" + (" ✓" if ok else ""))
        cells.append(r["floor"] or "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> str:
    p = argparse.ArgumentParser(prog="python -m bench.eval_table", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="NAME=FILE[+FILE...]")
    p.add_argument("--against", metavar="NAME", default=None,
                   help="the shipped model: say which others the shipping rule prefers")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    try:
        models = [load(s) for s in a.models]
        body = rows(models)
        judged = against(models, body, a.against) if a.against else None
    except (ValueError, FileNotFoundError) as e:
        p.error(str(e))
    out = table(models, body)
    if judged is not None:
        out += "\n\n" + verdicts(a.against, judged)
    print(out)
    if a.json:
        result = {"models": [n for n, _ in models], "rows": body}
        if judged is not None:
            result["against"] = {"base": a.against, **judged}
        a.json.write_text(json.dumps(result, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
