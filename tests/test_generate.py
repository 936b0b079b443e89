"""Block-by-block generation at a tiny random size: cache exactness, layouts, determinism."""

import copy
import json
import time
from dataclasses import replace

import pytest
import torch

from nextomni.model import OmniModel
from nextomni.model.decoding import DecodeOptions
from nextomni.model.generate import generate, iter_generate
from nextomni.model.graphs import StaticCache
from nextomni.model.layout import NOT_A_WORD, decide_layout, trim_silence
from nextomni.model.sequence import SequenceBuilder
from nextomni.tokenizers.special import AUDIO_START, EOS, IMAGE_START, PAD, SPECIAL_TOKENS
from tests.test_model import TINY


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return OmniModel(TINY).eval()


def prompt():
    b = SequenceBuilder(TINY).turn_start([20, 21]).text([12, 13, 14])
    b.image(torch.randint(16, (16, 2), generator=torch.Generator().manual_seed(0)))
    return b.turn_end([22]).turn_start([23, 21])


def run(model, seed=0, **kw):
    layout = kw.pop("layout", None)
    return generate(model, prompt(), DecodeOptions(**kw), torch.Generator().manual_seed(seed),
                    layout=layout)


def assert_same_reply(a, b):
    assert a.text_ids == b.text_ids
    for x, y in ((a.image_codes, b.image_codes), (a.audio_codes, b.audio_codes)):
        assert (x is None and y is None) or torch.equal(x, y)


@pytest.mark.parametrize("layout", ["text", "image", "audio"])
def test_cache_on_and_off_agree(model, layout):
    kw = dict(steps=4, temperature=1.0, confidence=1.0, layout=layout, dynamic=False,
              fixed_blocks=2)
    on, off = run(model, cache=True, **kw), run(model, cache=False, **kw)
    assert_same_reply(on, off)
    assert on.stats.cache_hits > 0 == off.stats.cache_hits
    assert on.stats.positions_computed < off.stats.positions_computed


def test_layouts_and_shapes(model):
    image = run(model, layout="image", steps=2)
    assert image.layout == "image" and image.image_codes.shape == (16, 2)
    audio = run(model, layout="audio", steps=2, dynamic=False, fixed_blocks=3)
    assert audio.layout == "audio" and audio.audio_codes.shape[1] == 3
    assert 1 <= len(audio.audio_codes) <= 3 * TINY.block_size
    text = run(model, layout="text", steps=2, dynamic=False, fixed_blocks=2)
    assert len(text.text_ids) <= 1 + 2 * TINY.block_size
    decided = run(model, steps=2)
    assert decided.layout in ("text", "image", "audio")


def test_same_seed_same_reply(model):
    a, b, c = (run(model, seed=s, temperature=1.0, layout="text", dynamic=False)
               for s in (3, 3, 4))
    assert a.text_ids == b.text_ids
    assert a.text_ids != c.text_ids


def test_confident_blocks_stop_early(model):
    slow = run(model, layout="image", steps=8, confidence=1.0)
    fast = run(model, layout="image", steps=8, confidence=0.0)
    assert fast.stats.steps < slow.stats.steps


def test_trim_silence():
    codes = torch.tensor([[1, 2], [7, 7], [3, 4], [7, 7], [7, 7]])
    assert torch.equal(trim_silence(codes, (7, 7)), codes[:3])
    assert len(trim_silence(torch.tensor([[7, 7]]), (7, 7))) == 1


def test_steps_stream_in_order_and_match_generate(model):
    opts = DecodeOptions(steps=3, temperature=1.0, confidence=1.0, dynamic=False, fixed_blocks=2)
    gen = iter_generate(model, prompt(), opts, torch.Generator().manual_seed(1), layout="text")
    events = []
    while True:
        try:
            events.append(next(gen))
        except StopIteration as stop:
            streamed = stop.value
            break
    order = [(e.block, e.step) for e in events]
    assert order == sorted(order) and order[-1] == (2, 3)
    assert all(e.step <= e.total for e in events)
    assert streamed.text_ids == run(model, seed=1, layout="text", steps=3, temperature=1.0,
                                    confidence=1.0, dynamic=False, fixed_blocks=2).text_ids


def second_turn():
    b = prompt()
    b.text([30, 31]).turn_end([22])  # the assistant's earlier reply, now history
    return b.turn_start([20, 21]).text([15, 16]).turn_end([22]).turn_start([23, 21])


def test_next_turn_reuses_earlier_turns_exactly(model):
    opts = DecodeOptions(steps=3, temperature=1.0, confidence=1.0, dynamic=False, fixed_blocks=2)
    first = generate(model, prompt(), opts, torch.Generator().manual_seed(0), layout="text")
    fresh = generate(model, second_turn(), opts, torch.Generator().manual_seed(5), layout="text")
    reused = generate(model, second_turn(), opts, torch.Generator().manual_seed(5),
                      layout="text", reuse=first.state)
    seq = prompt().build()
    opening = int((seq.segment == seq.segment[-1]).sum())  # rewritten in the second prompt
    assert reused.stats.prompt_reused == len(seq) - opening > 0
    assert fresh.stats.prompt_reused == 0
    assert reused.text_ids == fresh.text_ids
    assert reused.stats.positions_computed < fresh.stats.positions_computed


def test_guidance_changes_codes_and_keeps_cache_exact(model):
    model = copy.deepcopy(model)  # sharpen the random heads so that states matter
    with torch.no_grad():
        for layer in model.image_head.out:
            layer[-1].weight.mul_(200)
    uncond = SequenceBuilder(TINY).turn_start([20, 21]).text([5]).turn_end([22]).turn_start([23, 21])

    def image(g, cache=True, graphs=False):
        return generate(model, prompt(), DecodeOptions(steps=3, guidance=g, cache=cache,
                                                       confidence=1.0, graphs=graphs),
                        torch.Generator().manual_seed(0), layout="image", uncond_prompt=uncond)

    plain, guided, guided_nocache = image(0.0), image(20.0), image(20.0, cache=False)
    assert plain.stats.guidance_forward_passes == 0
    assert guided.stats.guidance_forward_passes > 0
    assert not torch.equal(plain.image_codes, guided.image_codes)
    assert torch.equal(guided.image_codes, guided_nocache.image_codes)
    assert torch.equal(guided.image_codes, image(20.0, graphs=True).image_codes)


def test_guided_code_head_follows_the_guidance_formula(model):
    head = model.image_head
    torch.manual_seed(0)
    h, h_u = torch.randn(5, TINY.hidden_size), torch.randn(5, TINY.hidden_size)
    seen = []

    def choose(logits):
        seen.append(logits)
        return logits.argmax(-1)

    codes = head.sample(h, choose, h_u, 2.0)
    expected = 3.0 * head.out[0](h) - 2.0 * head.out[0](h_u)
    assert torch.allclose(seen[0], expected, atol=1e-5)
    assert torch.equal(codes[:, 0], expected.argmax(-1))


@pytest.mark.parametrize("layout", ["text", "image", "audio"])
def test_static_cache_matches_the_dynamic_one(model, layout):
    """The preallocated cache (the CUDA-graph path, run eagerly here) changes no token."""
    kw = dict(steps=3, temperature=1.0, confidence=1.0, layout=layout, dynamic=False,
              fixed_blocks=2)
    static, dynamic = run(model, graphs=True, **kw), run(model, graphs=False, **kw)
    assert_same_reply(static, dynamic)
    assert isinstance(static.state.cache, StaticCache)
    assert static.stats.forward_passes == dynamic.stats.forward_passes
    if layout == "text":  # every text step was one whole step: the fused commits too
        n = model.config.block_size
        assert {k[:3] for k in static.state.steps} == {
            (n, 1, False),   # the layout token cached with the first block's first step
            (n, n, False),   # the first block cached with the second block's first step
            (n, 0, False), (n, 0, True)}


def test_static_cache_is_reused_across_turns_and_recycled(model):
    opts = DecodeOptions(steps=3, temperature=1.0, confidence=1.0, dynamic=False,
                         fixed_blocks=2, graphs=True)
    first = generate(model, prompt(), opts, torch.Generator().manual_seed(0), layout="text")
    fresh = generate(model, second_turn(), opts, torch.Generator().manual_seed(5), layout="text")
    reused = generate(model, second_turn(), opts, torch.Generator().manual_seed(5),
                      layout="text", reuse=first.state)
    assert reused.state.cache is first.state.cache  # the same buffers, the same steps
    assert reused.stats.prompt_reused > 0
    assert reused.text_ids == fresh.text_ids
    again = generate(model, second_turn(), opts, torch.Generator().manual_seed(5),
                     layout="text", reuse=reused.state.recycled())
    assert again.stats.prompt_reused == 0
    assert again.state.cache is first.state.cache
    assert again.text_ids == fresh.text_ids
    # a reply that does not fit gets buffers of its own; the dynamic mode never takes them
    longer = generate(model, second_turn(), DecodeOptions(
        steps=1, dynamic=False, fixed_blocks=260, graphs=True), layout="text",
        reuse=again.state.recycled())
    assert longer.state.cache is not first.state.cache
    plain = generate(model, second_turn(), DecodeOptions(steps=1), layout="text",
                     reuse=first.state)
    assert not isinstance(plain.state.cache, StaticCache)


def test_static_cache_keeps_the_dynamic_contract():
    cache = StaticCache(TINY.backbone_config(), capacity=8, device="cpu", dtype=torch.float32)
    cache.begin(5)
    assert cache.get_seq_length() == 5 and cache.slots(5).tolist() == [0, 1, 2, 3, 4]
    cache.crop(-2)
    cache.begin(2)
    assert cache.slots(2).tolist() == [3, 4]
    assert cache.visible(2)[0, 0, 0].tolist() == [True] * 5 + [False] * 3
    with pytest.raises(ValueError, match="capacity"):
        cache.begin(4)


def preferring(model, token, causal=False):
    """A copy of `model` whose LM head all but always chooses `token` (a causal copy: the
    same weights read as the autoregressive baseline)."""
    m = copy.deepcopy(model) if not causal else OmniModel(replace(TINY, causal=True)).eval()
    if causal:
        m.load_state_dict(model.state_dict())
    head = torch.nn.Linear(TINY.hidden_size, TINY.text_vocab_size)
    with torch.no_grad():
        head.weight.copy_(m.lm_head.weight)
        head.bias.zero_()
        head.bias[token] = 1e4
    m.lm_head = head
    return m


@pytest.mark.parametrize("causal", [False, True])
def test_a_chosen_layout_overrides_the_models_choice(model, causal):
    opts = DecodeOptions(steps=2, max_text_blocks=2, max_audio_blocks=2, block_size=1 if causal
                         else None)
    drawer = preferring(model, IMAGE_START, causal)

    def reply(layout):
        return generate(drawer, prompt(), opts, torch.Generator().manual_seed(0), layout=layout)

    assert reply(None).layout == "image"  # left alone, it draws
    text = reply("text")
    assert text.layout == "text" and text.text_ids[0] >= len(SPECIAL_TOKENS)  # a word
    assert text.image_codes is None and text.audio_codes is None
    speech = reply("audio")
    assert speech.layout == "audio" and speech.audio_codes.shape[1] == TINY.audio_groups
    # a model that would speak draws when asked to
    image = generate(preferring(model, AUDIO_START, causal), prompt(), opts, layout="image")
    assert image.layout == "image" and image.image_codes.shape == (16, 2)


def test_decide_layout_samples_only_what_is_left_to_the_model():
    asked = []

    def opening(banned):
        asked.append(banned)
        yield "a step"
        return [AUDIO_START, 30, 31]

    def decide(layout):
        gen = decide_layout(layout, opening, 3)
        events = []
        while True:
            try:
                events.append(next(gen))
            except StopIteration as stop:
                return stop.value, events

    # a marker opens its block with <pad> beside it, as training wrote it
    assert decide(None) == (("audio", [AUDIO_START, PAD, PAD]), ["a step"])
    assert asked.pop() == ()
    assert decide("text") == (("text", [AUDIO_START, 30, 31]), ["a step"])
    assert asked.pop() == NOT_A_WORD
    assert decide("image") == (("image", [IMAGE_START, PAD, PAD]), []) and not asked
    with pytest.raises(ValueError, match="unknown layout 'video'"):
        decide("video")


def test_a_short_answer_ends_in_the_opening_block(model):
    """With an opening block of a whole block, a one-word answer is decoded in one forward
    pass (the prompt with it); with the layout token alone it takes two."""
    ends = preferring(model, EOS)  # <eos> everywhere; banned at position 0 of a text reply
    opts = DecodeOptions(steps=4, confidence=0.0)  # every block stops after its first step

    def reply(config):
        m = copy.deepcopy(ends)
        m.config = config
        return generate(m, prompt(), opts, torch.Generator().manual_seed(0), layout="text")

    alone, opened = reply(TINY), reply(replace(TINY, opening_block=TINY.block_size))
    assert len(alone.text_ids) == len(opened.text_ids) == 1
    assert alone.text_ids[0] >= len(SPECIAL_TOKENS)  # a word, never a marker
    assert (alone.stats.forward_passes, opened.stats.forward_passes) == (2, 1)
    assert opened.stats.response_positions == TINY.block_size


def test_stats_record_what_the_reply_cost(model):
    g = torch.Generator().manual_seed(11)
    gen = iter_generate(model, prompt(), DecodeOptions(steps=2), g, layout="text")
    started, pause, paused = time.perf_counter(), 0.02, 0.0
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            out = stop.value
            break
        time.sleep(pause)  # a slow consumer: not the decoder's time
        paused += pause
    wall = time.perf_counter() - started
    s = out.stats
    assert 0 < s.latency_s <= wall - paused
    assert 0 < s.cpu_s <= s.latency_s + 0.01  # one thread: its CPU time within its wall time
    assert (s.mode, s.layout, s.seed, s.device) == ("dfm", "text", 11, "cpu")
    assert s.tokens == len(out.text_ids) and s.response_positions >= s.tokens
    assert s.prompt_positions == len(prompt().build()) and s.steps >= s.blocks > 0
    stored = json.loads(json.dumps(s.to_dict()))
    assert stored["cache_hits"] == s.cache_hits > 0 and stored["tokens_per_s"] > 0


def test_a_settled_block_stops_and_images_take_their_own_steps(model):
    """With `settle` a block ends once its prediction repeats (a head that always chooses one
    token settles at step 2), taking that prediction; `image_steps` sets an image's steps."""
    steady = preferring(model, 30)
    opts = dict(steps=8, confidence=2.0, dynamic=False, fixed_blocks=2)  # never sure enough

    def text(settle):
        events = []
        out = generate(steady, prompt(), DecodeOptions(settle=settle, **opts),
                       torch.Generator().manual_seed(0), layout="text", on_step=events.append)
        return out, [e for e in events if e.block > 0]

    (settled, fast), (full, slow) = text(True), text(False)
    assert [e.step for e in fast if e.final] == [2, 2] and len(slow) == 16
    assert all(e.final == (e.step == 8) for e in slow)
    assert settled.text_ids == full.text_ids == [30] * (1 + 2 * TINY.block_size)
    image = run(model, layout="image", steps=8, image_steps=3, confidence=1.0)
    assert image.stats.steps == 3


@torch.no_grad()
def test_whole_text_steps_cache_only_text_of_one_segment(model):
    """What waits to be cached rides on a whole step only if it is one segment of text: the
    step lets those positions attend to each other, which is right for a block, wrong for a
    turn and the next turn's header."""
    from nextomni.model.block_decoder import BlockDecoder
    from nextomni.model.sequence import text_block

    opts = DecodeOptions(steps=2, confidence=1.0, dynamic=False, fixed_blocks=2, graphs=True)
    n = TINY.block_size
    dec = BlockDecoder(model, prompt().build(), opts, torch.Generator().manual_seed(0))
    block = dec.tensors(text_block(TINY, [PAD] * n))
    assert not dec._graphable(block, ())  # the prompt waits: it has turns of its own
    list(dec.steps_of(text_block(TINY, [PAD]), "text", 0))  # caches the prompt, writes one
    assert dec._graphable(block, ())
    assert not dec._graphable(block, (EOS,))  # a banned id: the eager step
    one = dec.tensors(text_block(TINY, [5] * n))
    two = {**one, "segment": one["segment"] + (torch.arange(n) >= n // 2)}
    dec._commit(two)  # n positions in two segments, not yet cached
    assert not dec._graphable(block, ())
