"""OmniEngine through a tiny untrained checkpoint: the event stream, determinism, cache
agreement, cross-turn reuse, settings and message errors, retrieval."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

from nextomni.data.world import random_scene, render
from nextomni.engine import (
    AudioSegment, Finished, ImageSegment, Message, MessageError, OmniEngine, Progress, Settings,
    SettingsError, TextSegment,
)
from nextomni.media import MediaError
from tests.engine_fixtures import tiny_checkpoint


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    return OmniEngine.load(tiny_checkpoint(tmp_path_factory.mktemp("tiny")), device="cpu")


def ask(engine, text="what colour is the shape?", image=True, settings=None, session=None,
        history=()):
    parts = [text] + ([{"kind": "image", "value": render(random_scene(3))}] if image else [])
    return list(engine.chat([*history, Message("user", parts)],
                            settings or Settings(steps=3, max_tokens=32), session=session))


def reply(events):
    return [e for e in events if not isinstance(e, (Progress, Finished))]


def same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, TextSegment):
        return a.text == b.text
    return np.array_equal(a.image if isinstance(a, ImageSegment) else a.audio,
                          b.image if isinstance(b, ImageSegment) else b.audio)


def test_events_stream_in_order(engine):
    events = ask(engine)
    kinds = [type(e).__name__ for e in events]
    assert kinds[-1] == "Finished" and kinds.count("Finished") == 1
    first_segment = next(i for i, e in enumerate(events) if not isinstance(e, Progress))
    assert all(isinstance(e, Progress) for e in events[:first_segment]) and first_segment > 0
    assert len(reply(events)) == 1
    progress = [(e.block, e.step) for e in events if isinstance(e, Progress)]
    assert progress == sorted(progress)
    stats = events[-1].stats
    assert stats.steps == len(progress) and stats.seed == 0
    assert stats.tokens >= 0 and stats.latency_s > 0 and stats.cache_hits > 0
    seg = reply(events)[0]
    if isinstance(seg, ImageSegment):
        assert seg.image.shape == (64, 64, 3) and seg.image.dtype == np.uint8
        assert any(e.image is not None for e in events if isinstance(e, Progress))
    elif isinstance(seg, AudioSegment):
        assert seg.audio.dtype == np.float32 and seg.sample_rate == 16000
    else:
        texts = [e.text for e in events if isinstance(e, Progress) and e.layout == "text"]
        assert texts and isinstance(seg.text, str)


def test_same_seed_same_reply_and_cache_agrees(engine):
    s = Settings(steps=3, max_tokens=32, temperature=1.0, seed=7)
    a, b = reply(ask(engine, settings=s)), reply(ask(engine, settings=s))
    assert same(a[0], b[0])
    off = reply(ask(engine, settings=Settings(**{**s.to_dict(), "cache": False})))
    assert same(a[0], off[0])
    others = [reply(ask(engine, settings=Settings(**{**s.to_dict(), "seed": k})))[0]
              for k in range(8, 12)]
    assert not all(same(a[0], o) for o in others)


def test_next_turn_reuses_the_session_cache_exactly(engine):
    s = Settings(steps=2, max_tokens=16)
    first = ask(engine, settings=s, session="abc")
    history = [Message("user", ["what colour is the shape?",
                                {"kind": "image", "value": render(random_scene(3))}]),
               Message("assistant", ["it is red."])]
    warm = ask(engine, "and its shape?", image=False, settings=s, session="abc", history=history)
    cold = ask(engine, "and its shape?", image=False, settings=s, history=history)
    assert first[-1].stats.prompt_reused == 0
    assert warm[-1].stats.prompt_reused > 0 == cold[-1].stats.prompt_reused
    assert same(reply(warm)[0], reply(cold)[0])
    engine.forget("abc")
    again = ask(engine, "and its shape?", image=False, settings=s, session="abc", history=history)
    assert again[-1].stats.prompt_reused == 0


def test_fixed_length_fills_the_canvas_and_guidance_leaves_text_alone(engine):
    s = Settings(steps=2, max_tokens=48, guidance=0.0, dynamic=False)
    plain = ask(engine, settings=s)
    guided = ask(engine, settings=Settings(**{**s.to_dict(), "guidance": 2.0}))
    size = engine.model.config.block_size
    blocks = [e.block for e in plain if isinstance(e, Progress)]
    # the layout position's block, then exactly max_tokens / block_size text blocks
    assert sorted(set(blocks)) == list(range(1 + 48 // size))
    assert isinstance(reply(plain)[0], TextSegment)
    # guidance is for image and speech codes: a text reply is the same, step for step
    assert same(reply(plain)[0], reply(guided)[0])
    assert [(e.block, e.step) for e in guided if isinstance(e, Progress)] == \
        [(e.block, e.step) for e in plain if isinstance(e, Progress)]


def test_max_tokens_counts_the_text_of_the_opening_block(engine):
    """The longest text reply is `max_tokens`: the opening block's text, then whole blocks
    (the baseline counts every token, its first included)."""
    from dataclasses import replace as with_

    c = engine.model.config
    blocks = {k: engine.options(Settings(max_tokens=48), with_(c, opening_block=k)).max_text_blocks
              for k in (1, c.block_size)}
    assert blocks == {1: 3, c.block_size: 2}  # 1 + 2 * 16 < 48 <= 1 + 3 * 16; 16 + 2 * 16 = 48
    assert engine.options(Settings(max_tokens=48, mode="ar"), c).max_text_blocks == 48


@pytest.mark.parametrize("bad, name", [
    (dict(steps=-1), "steps"), (dict(steps=0), "steps"), (dict(max_tokens=10**7), "max_tokens"),
    (dict(guidance=-2), "guidance"), (dict(mode="beam"), "mode"), (dict(block_size=0), "block_size"),
    (dict(seed=-1), "seed"), (dict(temperature=-0.5), "temperature"), (dict(steps=2.5), "steps")])
def test_bad_settings_are_named(bad, name):
    with pytest.raises(SettingsError, match=name):
        Settings(**bad)


def test_settings_round_trip_and_unknown_keys():
    s = Settings(seed=3, guidance=1.5, cache=False)
    assert Settings.from_dict(s.to_dict()) == s
    with pytest.raises(SettingsError, match="unknown setting"):
        Settings.from_dict({"steps": 4, "beam": 2})


def test_settings_too_much_for_the_canvas(engine):
    with pytest.raises(SettingsError, match="max_tokens=4096 .* positions"):
        ask(engine, settings=Settings(block_size=1, max_tokens=4096))


def test_reply_longer_than_the_model_is_refused(engine):
    with pytest.raises(SettingsError, match="positions"):
        ask(engine, settings=Settings(max_tokens=4096))


def test_ar_mode_needs_a_baseline(engine):
    with pytest.raises(SettingsError, match="baseline"):
        ask(engine, settings=Settings(mode="ar"))


def test_ar_baseline_decodes_one_token_per_step(tmp_path):
    eng = OmniEngine.load(tiny_checkpoint(tmp_path / "dfm"), device="cpu",
                          baseline=str(tiny_checkpoint(tmp_path / "ar", causal=True)))
    events = ask(eng, settings=Settings(mode="ar", max_tokens=8))
    stats = events[-1].stats
    assert stats.mode == "ar" and stats.steps == stats.blocks
    with pytest.raises(ValueError, match="causal"):
        OmniEngine.load(tmp_path / "dfm", device="cpu", baseline=str(tmp_path / "dfm"))


@pytest.mark.parametrize("messages, match", [
    ([], "no message"),
    ([Message("user", ["   "])], "empty"),
    ([Message("user", ["hi"]), Message("assistant", ["hello"])], "last message"),
    ([Message("robot", ["hi"])], "unknown role"),
    ([Message("user", [{"kind": "smell", "value": "x"}])], "unknown part kind"),
    ([Message("user", ["x" * 100_000])], "too long"),
])
def test_bad_messages_are_refused_plainly(engine, messages, match):
    with pytest.raises(MessageError, match=match):
        list(engine.chat(messages, Settings(steps=2)))


def test_unreadable_upload_is_a_media_error(engine, tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_text("not a picture")
    with pytest.raises(MediaError):
        list(engine.chat([Message("user", ["what is this?", {"kind": "image", "path": str(fake)}])]))


def test_uploads_of_any_size_and_paths_load(engine, tmp_path):
    other = engine.embed({"kind": "image", "value": render(random_scene(6))})
    for name, size in (("big.jpg", (300, 200)), ("small.png", (20, 30))):
        path = tmp_path / name
        Image.fromarray(render(random_scene(5))).resize(size).save(path)
        events = list(engine.chat([Message("user", ["describe it", {"kind": "image",
                                                                    "path": str(path)}])],
                                  Settings(steps=2, max_tokens=16)))
        assert len(reply(events)) == 1 and isinstance(events[-1], Finished), name
        # the file reaches the model as its pixels (an untrained model's reply ignores them,
        # its representation does not)
        from_path = engine.embed({"kind": "image", "path": str(path)})
        pixels = np.asarray(Image.open(path).convert("RGB"))
        assert np.array_equal(from_path, engine.embed({"kind": "image", "value": pixels})), name
        assert not np.array_equal(from_path, other), name


def test_embed_and_search(engine):
    scenes = [random_scene(s) for s in range(6)]
    gallery = [{"kind": "image", "value": render(s)} for s in scenes]
    v = engine.embed(gallery[2])
    assert v.shape == (engine.model.config.hidden_size,)
    assert abs(float(np.linalg.norm(v)) - 1) < 1e-4
    hits = engine.search(gallery[2], gallery)
    assert sorted(h.index for h in hits) == list(range(6))
    score = {h.index: h.score for h in hits}  # an untrained model: ties are possible
    assert abs(score[2] - 1) < 1e-4 and score[2] >= max(score.values()) - 1e-6
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert engine.search("a red circle", []) == []


def test_guidance_is_not_spent_on_text_replies(engine):
    from nextomni.data.tasks import Part, Turn
    from nextomni.model.generate import DecodeOptions, generate

    fmt = engine.fmt
    turns = [Turn("user", [Part("text", "hi")])]
    uncond = fmt.prompt([Turn("user", [Part("text", "<|null|>")])])
    out = generate(engine.model, fmt.prompt(turns), DecodeOptions(steps=2, guidance=2.0),
                   layout="text", uncond_prompt=uncond)
    assert out.stats.guidance_forward_passes == 0
    img = generate(engine.model, fmt.prompt(turns), DecodeOptions(steps=2, guidance=2.0),
                   layout="image", uncond_prompt=uncond)
    assert img.stats.guidance_forward_passes > 0


def test_speech_has_its_own_guidance_scale(engine, monkeypatch):
    from nextomni.data.tasks import Part, Turn
    from nextomni.model.generate import DecodeOptions, generate
    from nextomni.model.modeling import CodeHead

    fmt = engine.fmt
    prompt = fmt.prompt([Turn("user", [Part("text", "say: a red circle")])])
    uncond = fmt.prompt([Turn("user", [Part("text", "<|null|>")])])
    scales = []  # the scale each code head samples with (None: unguided)
    sample = CodeHead.sample

    def spy(self, h, choose, h_uncond=None, scale=0.0):
        scales.append(scale if h_uncond is not None else None)
        return sample(self, h, choose, h_uncond, scale)

    monkeypatch.setattr(CodeHead, "sample", spy)

    def guided(layout, **guidance):
        scales.clear()
        out = generate(engine.model, prompt, DecodeOptions(steps=2, max_audio_blocks=2,
                                                           **guidance),
                       layout=layout, uncond_prompt=uncond)
        assert (out.stats.guidance_forward_passes > 0) == (scales[0] is not None)
        return set(scales)

    assert guided("audio", guidance=2.0) == {2.0}  # by default speech takes `guidance`
    assert guided("audio", guidance=2.0, speech_guidance=0.0) == {None}
    assert guided("audio", guidance=0.5, speech_guidance=1.5) == {1.5}
    assert guided("image", guidance=2.5, speech_guidance=0.0) == {2.5}
    opts = DecodeOptions(guidance=3.0, speech_guidance=1.0)
    assert [opts.guidance_for(x) for x in ("text", "image", "audio")] == [0.0, 3.0, 1.0]

    # through the engine: the app's default guides pictures and leaves speech unguided
    assert Settings().guidance > 0 and Settings().speech_guidance == 0
    opts = engine.options(Settings(guidance=2.5, speech_guidance=1.5), engine.model.config)
    assert (opts.guidance_for("image"), opts.guidance_for("audio")) == (2.5, 1.5)
    # a turn stored before speech had its own scale replays as it was made
    assert Settings.from_dict({"guidance": 2}).speech_guidance == 2
    assert Settings.from_dict({}).speech_guidance == 0
    assert Settings.from_dict({"guidance": 2, "speech_guidance": 0}).speech_guidance == 0


@pytest.mark.parametrize("bad, name", [(dict(guidance="1"), "guidance"),
                                       (dict(speech_guidance=-1), "speech_guidance"),
                                       (dict(temperature=None), "temperature"),
                                       (dict(cache="false"), "cache"),
                                       (dict(dynamic=1), "dynamic")])
def test_setting_types_are_checked(bad, name):
    with pytest.raises(SettingsError, match=name):
        Settings(**bad)


def test_settings_from_any_dict_in_one_place():
    s = Settings(seed=5, steps=4, reply="text")
    assert Settings.from_dict(s) is s and Settings.from_dict(None) == Settings()
    # the page's controls and JSON clients: whole floats are whole numbers, empty is default
    page = {"seed": 5.0, "steps": 4.0, "max_tokens": None, "block_size": None, "reply": "text"}
    assert Settings.from_dict(page) == s
    with pytest.raises(SettingsError, match="steps"):
        Settings.from_dict({"steps": 2.5})
    with pytest.raises(SettingsError, match="reply"):
        Settings.from_dict({"reply": "video"})
    # a turn stored before the reply kind existed let the model choose
    old = {k: v for k, v in Settings(seed=2).to_dict().items() if k != "reply"}
    assert Settings.from_dict(old).reply == "auto" and Settings.from_dict(old).layout is None
    assert [Settings(reply=r).layout for r in ("text", "image", "speech")] == \
        ["text", "image", "audio"]


def test_finished_passes_the_decoders_record_through(engine):
    import json

    events = ask(engine, settings=Settings(steps=2, max_tokens=16, seed=9, reply="image"))
    done = events[-1]
    assert type(done.stats).__name__ == "DecodeStats" and done.media_s > 0
    assert (done.stats.layout, done.stats.seed, done.stats.tokens) == \
        ("image", 9, engine.model.config.image_positions)
    stored = json.loads(json.dumps(done.metrics()))
    # the names turns were always stored under, and nothing of the record left out
    assert {"layout", "mode", "seed", "steps", "blocks", "tokens", "latency_s", "tokens_per_s",
            "forward_passes", "positions_computed", "cache_hits", "prompt_positions",
            "prompt_reused", "device", "response_positions", "guidance_forward_passes",
            "media_s"} <= set(stored)
    assert stored["latency_s"] == round(done.stats.latency_s, 4) > 0
    assert stored["guidance_forward_passes"] == done.stats.guidance_forward_passes > 0


def chunks_of(events):
    return [e.audio for e in events if isinstance(e, Progress) and e.audio is not None]


def test_speech_streams_block_by_block_as_each_block_is_final(tmp_path):
    eng = OmniEngine.load(tiny_checkpoint(tmp_path / "dfm"), device="cpu",
                          baseline=str(tiny_checkpoint(tmp_path / "ar", causal=True)))
    c, tok = eng.model.config, eng.fmt.tok.audio.config
    samples = c.block_size * tok.frames_per_position * tok.hop_length  # one block's audio
    for mode in ("dfm", "ar"):
        events = ask(eng, settings=Settings(mode=mode, reply="speech", dynamic=False,
                                            max_tokens=32, steps=2))
        chunks = chunks_of(events)
        assert chunks and [k.index for k in chunks] == list(range(len(chunks))), mode
        assert all(len(k.audio) == samples and k.audio.dtype == np.float32 for k in chunks)
        # every chunk comes on the last step of its block, before the whole speech segment
        at = [i for i, e in enumerate(events) if isinstance(e, Progress) and e.audio]
        whole = next(i for i, e in enumerate(events) if isinstance(e, AudioSegment))
        assert at[-1] < whole and all(events[i].layout == "audio" for i in at)
        assert len(events[whole].audio) <= len(chunks) * samples, mode
    text = ask(eng, settings=Settings(reply="text", steps=2, max_tokens=16))
    assert not chunks_of(text)


def test_a_silent_block_streams_nothing_and_chunks_join_up(engine):
    from nextomni.engine.streams import AudioStream
    from nextomni.model.decoding import StepEvent

    c = engine.model.config
    stream = AudioStream(engine.fmt)
    silent = torch.tensor(c.audio_silence).expand(c.block_size, -1)
    sound = torch.randint(0, c.audio_codebook_size, (c.block_size, c.audio_groups),
                          generator=torch.Generator().manual_seed(0))

    def final(codes, step=2, done=True):
        return stream.update(StepEvent("audio", 1, step, 2, codes, codes, final=done))

    assert final(sound, step=1, done=False) is None  # not final yet
    first, second = final(sound), final(sound)
    assert (first.index, second.index) == (0, 1)
    assert final(silent) is None and stream.chunks == 2
    whole = engine.fmt.tok.audio.decode(torch.cat([sound, sound]))
    assert len(first.audio) + len(second.audio) >= len(whole)


def test_image_previews_come_every_few_steps_not_every_step(engine):
    from nextomni.engine.streams import PREVIEW_EVERY

    events = ask(engine, settings=Settings(image_steps=2 * PREVIEW_EVERY + 1, reply="image",
                                           confidence=1.0))
    steps = [e.step for e in events if isinstance(e, Progress) and e.layout == "image"]
    shown = [e.step for e in events if isinstance(e, Progress) and e.image is not None]
    assert len(steps) == 2 * PREVIEW_EVERY + 1
    assert shown == [PREVIEW_EVERY, 2 * PREVIEW_EVERY]


def test_the_model_leaves_a_core_to_the_server_and_warms_its_decoders(engine):
    from nextomni.engine.engine import cpu_threads

    assert cpu_threads(1) == 1 and cpu_threads(2) == 1
    assert 1 <= cpu_threads(8) <= min(7, torch.get_num_threads())
    engine.warm_up()  # the decoders' first-time work, done before any reply
    assert torch.get_num_threads() <= max(1, (os.cpu_count() or 1) - 1)  # set by the load


def test_settling_and_image_steps_are_settings_and_old_turns_replay_without_them(engine):
    new = Settings()
    assert new.settle is True and new.image_steps < new.steps
    opts = engine.options(Settings(image_steps=5, settle=False), engine.model.config)
    assert (opts.image_steps, opts.settle) == (5, False)
    # a turn stored before these settings existed decodes as it did then
    old = {k: v for k, v in Settings(steps=12).to_dict().items()
           if k not in ("settle", "image_steps", "reply", "speech_guidance")}
    assert (Settings.from_dict(old).settle, Settings.from_dict(old).image_steps) == (False, 12)
    # a client naming only some settings gets today's defaults for the rest
    assert Settings.from_dict({"steps": 12}).settle is True
    assert Settings.from_dict(Settings(steps=12).to_dict()) == Settings(steps=12)
    for bad in (dict(image_steps=0), dict(settle="yes")):
        with pytest.raises(SettingsError, match=next(iter(bad))):
            Settings(**bad)
