"""The task mixture: chat examples built from OmniWorld, before any tokenization.

An `Example` is a list of chat turns (`nextomni.chat`) whose parts hold world objects (a
`Scene`, a `Speech`, a `Motion`) until `nextomni.data.media.as_media` makes them media. The
last turn is the assistant response the model learns to produce; `answer` is what evaluation
compares a generated response to (a string, a `Scene`, or a transcript).
Every example is a pure function of (task, seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextomni.chat import Part, Turn
from nextomni.data.phrasing import FAMILIES, phrase, typed, wrap
from nextomni.data.speech import Voice, random_voice
from nextomni.data.splits import HELDOUT_SEEDS
from nextomni.data.text import (
    QA_KINDS, canonical_caption, edit, edit_chain, generation_instruction, pick, question,
    speech_request, spoken_style,
)
from nextomni.data.video import Motion, motion_question, random_motion
from nextomni.data.world import Scene, random_scene

# The one voice the model answers in: a fixed voice makes text-to-speech learnable.
ASSISTANT_VOICE = Voice("en-us", 160, 50)


@dataclass(frozen=True)
class Speech:
    text: str
    voice: Voice = ASSISTANT_VOICE


@dataclass
class Example:
    task: str
    turns: list[Turn]
    answer: object  # expected response content, for scoring

    @property
    def response(self) -> Turn:
        return self.turns[-1]


def text(s: str) -> Part:
    return Part("text", s)


def image(scene: Scene) -> Part:
    return Part("image", scene)


def audio(s: str, voice: Voice = ASSISTANT_VOICE) -> Part:
    return Part("audio", Speech(s, voice))


def video(m: Motion) -> Part:
    return Part("video", m)


def user(*parts: Part) -> Turn:
    return Turn("user", list(parts))


def assistant(*parts: Part) -> Turn:
    return Turn("assistant", list(parts))


# --------------------------------------------------------------------------- tasks
# Every task takes (seed, rng, family): the phrasing family of its user text
# (`data/phrasing.py`; "heldout" wordings never appear in training). Held-out seeds speak
# with held-out voices (`speech.HELDOUT_VOICES`).

CAPTION_ASKS = {
    "train": ("describe the image.", "what is in this picture?", "caption this image.",
              "what do you see?", "describe this picture.", "what's in the image?",
              "what is shown here?", "can you describe the image?", "give me a caption.",
              "describe what you see.", "what does the image show?"),
    "heldout": ("write a caption for this.", "what's going on in this picture?",
                "explain what this image contains.", "sum up this picture."),
}
ASR_ASKS = {
    "train": ("transcribe this.", "what did I say?", "write down what you hear.",
              "type what you hear.", "what was said?", "transcribe the audio.",
              "write it down."),
    "heldout": ("put this recording into words.", "note down the words you hear."),
}
I2S_ASKS = {  # every one says the reply is to be spoken
    "train": ("describe the image out loud.", "tell me what you see, in speech.",
              "say what is in the picture.", "describe the picture aloud.",
              "answer with your voice: what do you see?", "read out what the image shows."),
    "heldout": ("narrate this picture out loud.", "describe it with your voice."),
}


def voice(seed: int, rng: np.random.Generator) -> Voice:
    return random_voice(rng, heldout=seed in HELDOUT_SEEDS)


def caption_task(seed: int, rng: np.random.Generator, family: str = "train") -> Example:
    scene = random_scene(seed)
    ask = phrase(pick(rng, CAPTION_ASKS[family]), rng, "ask", family)
    answer = canonical_caption(scene)
    return Example("caption", [user(image(scene), text(ask)), assistant(text(answer))], answer)


def vqa_task(seed: int, rng: np.random.Generator, family: str = "train") -> Example:
    scene = random_scene(seed)
    qa = question(scene, rng, pick(rng, QA_KINDS))
    ask = phrase(qa.question, rng, "question", family)
    return Example("vqa", [user(image(scene), text(ask)), assistant(text(qa.answer))],
                   qa.answer)


def t2i_task(seed: int, rng: np.random.Generator, family: str = "train") -> Example:
    scene = random_scene(seed)
    ask = phrase(generation_instruction(scene, rng), rng, "request", family)
    return Example("t2i", [user(text(ask)), assistant(image(scene))], scene)


def asr_task(seed: int, rng: np.random.Generator, family: str = "train") -> Example:
    scene = random_scene(seed)
    sentence = pick(rng, (canonical_caption(scene).rstrip("."),
                          question(scene, rng).question.rstrip("?"),
                          generation_instruction(scene, rng).rstrip(".?")))
    ask = phrase(pick(rng, ASR_ASKS[family]), rng, "ask", family)
    return Example("asr", [user(audio(sentence, voice(seed, rng)), text(ask)),
                           assistant(text(sentence))], sentence)


def spoken_vqa_task(seed: int, rng: np.random.Generator, family: str = "train") -> Example:
    scene = random_scene(seed)
    qa = question(scene, rng, pick(rng, QA_KINDS))
    spoken = spoken_style(phrase(qa.question, rng, "question", family, spoken=True), rng)
    return Example("spoken_vqa", [user(image(scene), audio(spoken, voice(seed, rng))),
                                  assistant(text(qa.answer))], qa.answer)


def tts_task(seed: int, rng: np.random.Generator, family: str = "train") -> Example:
    """The sentence to say is kept word for word (no synonyms): the reply must say it."""
    scene = random_scene(seed)
    sentence = pick(rng, (canonical_caption(scene).rstrip("."), question(scene, rng).answer,
                          question(scene, rng).question.rstrip("?")))
    ask = typed(wrap(speech_request(sentence, rng), rng, "request", family), rng)
    return Example("tts", [user(text(ask)), assistant(audio(sentence))], sentence)


def video_task(seed: int, rng: np.random.Generator, family: str = "train") -> Example:
    motion = random_motion(seed)
    qa = motion_question(motion, rng)
    ask = phrase(qa.question, rng, "question", family)
    return Example("video", [user(video(motion), text(ask)), assistant(text(qa.answer))],
                   qa.answer)


def audio_to_image_task(seed: int, rng: np.random.Generator, family: str = "train") -> Example:
    scene = random_scene(seed)
    spoken = phrase(generation_instruction(scene, rng), rng, "request", family, spoken=True)
    return Example("a2i", [user(audio(spoken, voice(seed, rng))), assistant(image(scene))],
                   scene)


def image_to_speech_task(seed: int, rng: np.random.Generator, family: str = "train") -> Example:
    scene = random_scene(seed)
    ask = phrase(pick(rng, I2S_ASKS[family]), rng, "ask", family)
    sentence = canonical_caption(scene).rstrip(".")
    return Example("i2s", [user(image(scene), text(ask)), assistant(audio(sentence))], sentence)


def edit_task(seed: int, rng: np.random.Generator, family: str = "train") -> Example:
    """A drawing, then 1-2 edits; the response is the last edited picture."""
    scene = random_scene(seed)
    turns = [user(text(phrase(generation_instruction(scene, rng), rng, "request", family))),
             assistant(image(scene))]
    edits = edit_chain(scene, rng, int(rng.integers(1, 3)))
    for e in edits:
        turns += [user(text(phrase(e.instruction, rng, "request", family))),
                  assistant(image(e.after))]
    return Example("edit", turns, edits[-1].after)


TASKS = {
    "caption": caption_task, "vqa": vqa_task, "t2i": t2i_task, "asr": asr_task,
    "spoken_vqa": spoken_vqa_task, "tts": tts_task, "video": video_task,
    "a2i": audio_to_image_task, "i2s": image_to_speech_task, "edit": edit_task,
}


# what each task replies with (the eval's order): its layout, and `mixture.one_modality`'s
# groups
REPLY_MODALITY: dict[str, str] = {
    "caption": "text", "vqa": "text", "asr": "text", "spoken_vqa": "text", "video": "text",
    "t2i": "image", "a2i": "image", "edit": "image", "tts": "audio", "i2s": "audio",
}


def make_example(task: str, seed: int, family: str = "train") -> Example:
    """The example of `task` for `seed` (wording drawn from a generator seeded by both), its
    user text worded from the phrasing `family`."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    if family not in FAMILIES:
        raise ValueError(f"unknown phrasing family {family!r}; expected one of {FAMILIES}")
    rng = np.random.default_rng([seed, sorted(TASKS).index(task), 11])
    return TASKS[task](seed, rng, family)


def retrieval_siblings(seed: int) -> list[tuple[Part, Part]]:
    """Two images one edit apart (a colour, a size, a place, a shape more or less), each with
    its description: hard negatives for each other. A gallery of random scenes holds many
    that differ in one attribute, while a few random pairs almost never do, and against
    those the contrastive loss drops to ~0 and stops teaching."""
    rng = np.random.default_rng([seed, 13])
    scene = random_scene(seed)
    other = edit(scene, rng).after
    return [(image(s), text(canonical_caption(s))) for s in (scene, other)]


def retrieval_pair(seed: int) -> tuple[Part, Part]:
    """Two views of one thing for the contrastive loss: an image, speech or video and its
    description."""
    rng = np.random.default_rng([seed, 12])
    kind = pick(rng, ("image", "image", "audio", "video"))
    if kind == "video":
        m = random_motion(seed)
        return video(m), text(f"{canonical_caption(m.scene).rstrip('.')} moving {m.direction}")
    scene = random_scene(seed)
    if kind == "audio":
        return (audio(canonical_caption(scene).rstrip("."), random_voice(rng)),
                text(canonical_caption(scene)))
    return image(scene), text(canonical_caption(scene))
