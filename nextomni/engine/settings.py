"""Generation settings a user (or a stored session, or an API client) gives the engine: the one
place they are checked. The decoder trusts what the engine builds from them.

Stored with every turn as JSON, so `Settings.from_dict(s.to_dict()) == s`; a dict from any
source (the page's controls, the `/chat` API, a stored turn) becomes `Settings` through
`from_dict` alone. Unknown keys from a newer version are refused by name rather than silently
dropped; keys an older version did not know take the meaning that version had.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

MODES = ("dfm", "ar")
REPLIES = ("auto", "text", "image", "speech")  # auto: the model chooses
MAX_TOKENS = 4096


class SettingsError(ValueError):
    """A setting out of range; the message names it and says what is allowed."""


@dataclass(frozen=True)
class Settings:
    seed: int = 0
    steps: int = 16            # denoising steps per block, at most (DFM)
    block_size: int | None = None  # None: the block size the model was trained with
    # classifier-free guidance for image replies; 3 draws more of the asked scene (nano,
    # 200 held-out items: edits 58.5% -> 69.6% of attributes and 5% -> 12.5% exact,
    # text -> image 3% -> 6% exact) at twice the forward passes of those replies
    guidance: float = 3.0
    # the same for speech replies: off, as the nano model's speech gets a little worse with
    # guidance 3 (WER 71.8% -> 74.4%, its probe 65.6% -> 72.9%; see README); text replies
    # never pay for guidance
    speech_guidance: float = 0.0
    max_tokens: int = 128      # longest text reply; speech gets up to 2x this many positions
    temperature: float = 0.0   # 0: greedy
    confidence: float = 0.9    # a block stops early once every token is this sure
    cache: bool = True
    dynamic: bool = True       # grow the reply block by block until <eos>; else fixed length
    mode: str = "dfm"          # "dfm" or "ar" (the autoregressive baseline)
    reply: str = "auto"        # the reply's kind: auto (the model's choice), text, image, speech
    # an image block's steps: 8 draw as well as 16 in half the time (nano, 200 held-out
    # text-to-image items, guidance 3: attributes right 36.4% -> 37.1%, exact 3% -> 2%)
    image_steps: int = 8
    # a block also stops once its predicted tokens repeat from one step to the next: a text
    # block takes ~3 steps, not ~9 (nano, 50 held-out items: caption 24.0% -> 24.4% of
    # attributes, VQA 30% -> 30%)
    settle: bool = True

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        def bad(name: str, allowed: str):
            raise SettingsError(f"setting {name}={getattr(self, name)!r} is not allowed: {allowed}")

        for name in ("seed", "steps", "image_steps", "max_tokens"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int):
                bad(name, "it must be a whole number")
        for name in ("guidance", "speech_guidance", "temperature", "confidence"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                bad(name, "it must be a number")
        for name in ("cache", "dynamic", "settle"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "it must be true or false")
        if not 0 <= self.seed < 2**63:
            bad("seed", "use a number between 0 and 2^63 - 1")
        if not 1 <= self.steps <= 1024:
            bad("steps", "use 1 to 1024 steps per block")
        if not 1 <= self.image_steps <= 1024:
            bad("image_steps", "use 1 to 1024 steps for an image")
        if self.block_size is not None and (isinstance(self.block_size, bool)
                                            or not isinstance(self.block_size, int)
                                            or not 1 <= self.block_size <= 256):
            bad("block_size", "use 1 to 256, or leave it empty for the trained size")
        for name in ("guidance", "speech_guidance"):
            if not 0 <= getattr(self, name) <= 20:
                bad(name, "use a scale between 0 (off) and 20")
        if not 1 <= self.max_tokens <= MAX_TOKENS:
            bad("max_tokens", f"use 1 to {MAX_TOKENS} tokens")
        if not 0 <= self.temperature <= 10:
            bad("temperature", "use 0 (greedy) to 10")
        if not 0 <= self.confidence <= 1:
            bad("confidence", "use a probability between 0 and 1")
        if self.mode not in MODES:
            bad("mode", "use 'dfm' or 'ar'")
        if self.reply not in REPLIES:
            bad("reply", "use 'auto' (the model chooses), 'text', 'image' or 'speech'")

    @property
    def layout(self) -> str | None:
        """The decoder's layout for `reply`: None lets the model choose."""
        return {"auto": None, "text": "text", "image": "image", "speech": "audio"}[self.reply]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: "Settings | dict | None") -> "Settings":
        """Settings from a dict of any source (`Settings` as they are; None: the defaults).

        A missing key or a None value takes the default, so an empty control means "as
        usual"; a whole float where a whole number belongs (4.0: JSON clients, sliders) is
        that number. Turns stored before speech had a scale of its own replay as they were
        made: their `guidance` guided speech too. Turns stored before `reply` existed let the
        model choose, which is the default. Turns stored before `image_steps` and `settle`
        drew images in `steps` steps and ran every block to its confidence or its last step."""
        if isinstance(d, Settings):
            return d
        d = {k: v for k, v in dict(d or {}).items() if v is not None}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SettingsError(f"unknown setting(s) {unknown}; known: {sorted(known)}")
        for name in ("seed", "steps", "image_steps", "max_tokens", "block_size"):
            v = d.get(name)
            if isinstance(v, float) and v.is_integer():
                d[name] = int(v)
        if "guidance" in d and "speech_guidance" not in d:
            d["speech_guidance"] = d["guidance"]
        if _stored_before_settling(d):
            d.setdefault("settle", False)
            d.setdefault("image_steps", d.get("steps", cls.steps))
        return cls(**d)


# the settings every version stored (and never as None); `speech_guidance`, `reply`,
# `image_steps` and `settle` came later
FIRST_SETTINGS = frozenset({"seed", "steps", "guidance", "max_tokens", "temperature",
                            "confidence", "cache", "dynamic", "mode"})


def _stored_before_settling(d: dict) -> bool:
    """Settings written before `image_steps` and `settle` existed: every version stores its
    whole `Settings`, so a dict holding all the first ones and neither of these is one (a
    stored turn, or a client written for that version)."""
    return FIRST_SETTINGS <= set(d) and not {"image_steps", "settle"} & set(d)
