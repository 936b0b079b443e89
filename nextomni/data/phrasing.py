"""How people word what they ask: wrappers, synonyms, spelling and typing habits.

The task templates (`data/text.py`) give one plain wording of every request. People write
"Can you tell me what colour the circle is?", "draw a big red square in the middle please",
"WHERE IS THE STAR". `phrase` turns a template's text into such a wording, drawn from one of
two disjoint families of wrappers:

- "train": what training examples use;
- "heldout": wrappers no training example ever holds, so the eval can measure how well the
  model reads a wording it has never seen (reported beside the train-family score).

Synonyms, British / American spelling and typing habits (capitals, punctuation, a "thanks")
are words and habits rather than phrasings, and both families draw on them: a held-out
wording is a new sentence around words the model knows.
"""

from __future__ import annotations

import re

import numpy as np

FAMILIES = ("train", "heldout")
KINDS = ("question", "request", "ask")  # a question about an item, a thing to do, a bare ask

# "{q}": the question as written; "{e}": embedded ("what colour the circle is")
QUESTION_WRAPPERS: dict[str, tuple[str, ...]] = {
    "train": ("{q}", "{q}", "{q}", "can you tell me {e}?", "tell me {e}.",
              "could you tell me {e}?", "please tell me {e}.", "i want to know {e}.",
              "do you know {e}?", "hey, {q}", "so, {q}", "question: {q}", "{q0}, please?"),
    "heldout": ("i wonder {e}.", "any idea {e}?", "could you let me know {e}?",
                "i'd like to know {e}.", "quick question, {q}", "mind telling me {e}?"),
}
REQUEST_WRAPPERS: dict[str, tuple[str, ...]] = {
    "train": ("{r}", "{r}", "{r}", "please {r0}.", "{r0} please.", "could you {r0}?",
              "can you {r0}?", "i want you to {r0}.", "now {r0}.", "go ahead and {r0}.",
              "would you {r0}?", "ok, {r0}."),
    "heldout": ("kindly {r0}.", "i'd like you to {r0}.", "i need you to {r0}.",
                "how about you {r0}?", "be so kind as to {r0}."),
}
ASK_WRAPPERS = {"train": ("{r}", "{r}", "please, {r0}.", "{r0}, please.", "hi! {r}"),
                "heldout": ("kindly {r0}.", "i'd like you to {r0}.")}

# word -> alternatives a person may use instead (both families); the first is the template's
SYNONYMS: dict[str, tuple[str, ...]] = {
    "center": ("center", "middle", "centre"),
    "color": ("color", "colour"),
    "colors": ("colors", "colours"),
    "gray": ("gray", "grey"),
    "large": ("large", "big"),
    "top left": ("top left", "upper left"),
    "top right": ("top right", "upper right"),
    "bottom left": ("bottom left", "lower left"),
    "bottom right": ("bottom right", "lower right"),
    "image": ("image", "picture"),
    "picture": ("picture", "image"),
}
_SYNONYM_RE = re.compile(r"\b(" + "|".join(sorted(SYNONYMS, key=len, reverse=True)) + r")\b")


def phrase(text: str, rng: np.random.Generator, kind: str, family: str = "train",
           spoken: bool = False) -> str:
    """`text` (a template's wording) as a person might write it, from `family`'s wrappers.
    Spoken text (`spoken`) gets no capitals, punctuation or typing slips."""
    if family not in FAMILIES:
        raise ValueError(f"unknown phrasing family {family!r}; expected one of {FAMILIES}")
    if kind not in KINDS:
        raise ValueError(f"unknown phrasing kind {kind!r}; expected one of {KINDS}")
    out = wrap(synonyms(text, rng), rng, kind, family)
    return out.rstrip(".?!,") if spoken else typed(out, rng)


def wrap(text: str, rng: np.random.Generator, kind: str, family: str) -> str:
    bare = text.rstrip(".?! ")
    for polite in ("can you ", "could you "):  # "can you draw ...?" wrapped as "draw ..."
        bare = bare.removeprefix(polite)
    if kind == "question":
        frame = _pick(rng, QUESTION_WRAPPERS[family])
        emb = embedded(text)
        if emb is None and "{e}" in frame:  # no embedded form: a wrapper that quotes it
            frame = _pick(rng, [f for f in QUESTION_WRAPPERS[family] if "{e}" not in f])
        return frame.format(q=text, q0=bare, e=emb)
    frame = _pick(rng, (REQUEST_WRAPPERS if kind == "request" else ASK_WRAPPERS)[family])
    return frame.format(r=text, r0=bare)


def synonyms(text: str, rng: np.random.Generator, p: float = 0.5) -> str:
    """Each template word of `SYNONYMS` swapped, with probability `p`, for an alternative."""
    def swap(m: re.Match) -> str:
        options = SYNONYMS[m.group(1)]
        return m.group(1) if rng.random() >= p else _pick(rng, options)
    return _SYNONYM_RE.sub(swap, text)


def typed(text: str, rng: np.random.Generator) -> str:
    """Typing habits: a capital first letter, now and then all capitals, a dropped or
    doubled final mark, a "thanks"."""
    u = rng.random(4)
    if u[0] < 0.5:
        text = text[:1].upper() + text[1:]
    elif u[0] < 0.53:
        text = text.upper()
    if u[1] < 0.25:
        text = text.rstrip(".?!")
    elif u[1] < 0.3 and text.endswith("?"):
        text += "?"
    if u[2] < 0.08:
        text = f"{text} {_pick(rng, ('thanks', 'thank you!', 'thx'))}"
    return text


# "what colour is the circle?" -> "what colour the circle is": the question a clause of a
# longer sentence ("tell me what colour the circle is")
_YES_NO = re.compile(r"^(is|are) (there|it|they) (.*)$")
_CHOICE = re.compile(r"^(is|are) (.*) (small or large|moving slow or fast)$")
_DO = re.compile(r"^(.*?) do (the shapes|they|the shape|it) (.*)$")
_BE = re.compile(r"^(.*?) (is|are) (.*)$")


def embedded(question: str) -> str | None:
    """The question as a clause, or None when no rule knows its shape."""
    q = question.strip().rstrip("?").strip()
    if q.startswith("do you see "):
        return "if you see " + q.removeprefix("do you see ")
    if m := _YES_NO.match(q):
        return f"whether {m.group(2)} {m.group(1)} {m.group(3)}"
    if m := _CHOICE.match(q):
        return f"whether {m.group(2)} {m.group(1)} {m.group(3)}"
    if m := _DO.match(q):
        return f"{m.group(1)} {m.group(2)} {m.group(3)}"
    if m := _BE.match(q):
        wh, verb, rest = m.groups()
        if rest.startswith(("in ", "on ", "at ")):
            return f"{wh} {verb} {rest}"
        words = rest.split()
        if words and words[-1].endswith("ing"):  # "which way the shape is moving"
            return f"{wh} {' '.join(words[:-1])} {verb} {words[-1]}"
        return f"{wh} {rest} {verb}"
    return None


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]
