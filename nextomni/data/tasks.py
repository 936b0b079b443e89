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
from nextomni.data.speech import Voice, random_voice
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

def caption_task(seed: int, rng: np.random.Generator) -> Example:
    scene = random_scene(seed)
    ask = pick(rng, ("describe the image.", "what is in this picture?", "caption this image.",
                     "what do you see?"))
    answer = canonical_caption(scene)
    return Example("caption", [user(image(scene), text(ask)), assistant(text(answer))], answer)


def vqa_task(seed: int, rng: np.random.Generator) -> Example:
    scene = random_scene(seed)
    qa = question(scene, rng, pick(rng, QA_KINDS))
    return Example("vqa", [user(image(scene), text(qa.question)), assistant(text(qa.answer))],
                   qa.answer)


def t2i_task(seed: int, rng: np.random.Generator) -> Example:
    scene = random_scene(seed)
    return Example("t2i", [user(text(generation_instruction(scene, rng))),
                           assistant(image(scene))], scene)


def asr_task(seed: int, rng: np.random.Generator) -> Example:
    scene = random_scene(seed)
    sentence = pick(rng, (canonical_caption(scene).rstrip("."),
                          question(scene, rng).question.rstrip("?"),
                          generation_instruction(scene, rng).rstrip(".?")))
    ask = pick(rng, ("transcribe this.", "what did I say?", "write down what you hear."))
    return Example("asr", [user(audio(sentence, random_voice(rng)), text(ask)),
                           assistant(text(sentence))], sentence)


def spoken_vqa_task(seed: int, rng: np.random.Generator) -> Example:
    scene = random_scene(seed)
    qa = question(scene, rng, pick(rng, QA_KINDS))
    spoken = spoken_style(qa.question, rng)
    return Example("spoken_vqa", [user(image(scene), audio(spoken, random_voice(rng))),
                                  assistant(text(qa.answer))], qa.answer)


def tts_task(seed: int, rng: np.random.Generator) -> Example:
    scene = random_scene(seed)
    sentence = pick(rng, (canonical_caption(scene).rstrip("."), question(scene, rng).answer,
                          question(scene, rng).question.rstrip("?")))
    return Example("tts", [user(text(speech_request(sentence, rng))),
                           assistant(audio(sentence))], sentence)


def video_task(seed: int, rng: np.random.Generator) -> Example:
    motion = random_motion(seed)
    qa = motion_question(motion, rng)
    return Example("video", [user(video(motion), text(qa.question)), assistant(text(qa.answer))],
                   qa.answer)


def audio_to_image_task(seed: int, rng: np.random.Generator) -> Example:
    scene = random_scene(seed)
    spoken = generation_instruction(scene, rng).rstrip(".?")
    return Example("a2i", [user(audio(spoken, random_voice(rng))), assistant(image(scene))],
                   scene)


def image_to_speech_task(seed: int, rng: np.random.Generator) -> Example:
    scene = random_scene(seed)
    ask = pick(rng, ("describe the image out loud.", "tell me what you see, in speech.",
                     "say what is in the picture."))
    sentence = canonical_caption(scene).rstrip(".")
    return Example("i2s", [user(image(scene), text(ask)), assistant(audio(sentence))], sentence)


def edit_task(seed: int, rng: np.random.Generator) -> Example:
    """A drawing, then 1-2 edits; the response is the last edited picture."""
    scene = random_scene(seed)
    turns = [user(text(generation_instruction(scene, rng))), assistant(image(scene))]
    edits = edit_chain(scene, rng, int(rng.integers(1, 3)))
    for e in edits:
        turns += [user(text(e.instruction)), assistant(image(e.after))]
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


def make_example(task: str, seed: int) -> Example:
    """The example of `task` for `seed` (wording drawn from a generator seeded by both)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {sorted(TASKS)}")
    rng = np.random.default_rng([seed, sorted(TASKS).index(task), 11])
    return TASKS[task](seed, rng)


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
        return audio(canonical_caption(scene).rstrip("."), random_voice(rng)), text(canonical_caption(scene))
    return image(scene), text(canonical_caption(scene))
