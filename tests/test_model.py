"""OmniModel at a tiny random size: training mechanics, save/load, attention, quantization."""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from nextomni.model import AUDIO, IMAGE, TEXT, OmniConfig, OmniModel
from nextomni.model.modeling import from_pretrained, save_pretrained
from nextomni.model.objective import dfm_objective
from nextomni.model.sequence import SequenceBuilder, collate, response_blocks, variable_spaces

TINY = OmniConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                  intermediate_size=128, text_vocab_size=40, image_groups=2,
                  image_codebook_size=16, image_code_dim=8, image_grid=4, video_grid=2,
                  audio_groups=3, audio_codebook_size=8, audio_code_dim=4, block_size=4,
                  text_metric_dim=8, audio_silence=(7, 7, 7))


def sample_sequence(seed: int, config=TINY, target_block: int = 2):
    """A user turn with an image, then a reply of text and speech blocks."""
    g = torch.Generator().manual_seed(seed)
    b = SequenceBuilder(config).turn_start([20, 21]).text(torch.randint(12, 40, (3,), generator=g))
    b.image(torch.randint(16, (16, 2), generator=g)).turn_end([22]).turn_start([23, 21])
    blocks = response_blocks(config, "audio", torch.randint(8, (6, 3), generator=g))
    for i in range(target_block + 1):
        b.block(blocks[i], target=i == target_block)
    return b.build()


def test_sequence_layout():
    s = sample_sequence(0)
    assert s.ids.shape == (len(s), 3) and s.kind.shape == (len(s),)
    assert int((s.kind == IMAGE).sum()) == 16 and int((s.kind == AUDIO).sum()) == 8
    assert int(s.target.sum()) == TINY.block_size
    assert s.segment.tolist() == sorted(s.segment.tolist())  # segments only grow
    assert len(set(s.segment[s.target].tolist())) == 1       # the target is one block
    space = variable_spaces(TINY, s.kind[None])[0]
    assert (space[s.kind == TEXT][:, 1:] == -1).all()
    assert (space[s.kind == IMAGE][:, 2] == -1).all()
    assert set(space[s.kind == AUDIO].reshape(-1).tolist()) == {3, 4, 5}
    with pytest.raises(ValueError):
        SequenceBuilder(TINY).image(torch.zeros(5, 2, dtype=torch.long))


def test_response_blocks():
    from nextomni.tokenizers.special import AUDIO_START, EOS, IMAGE_START, PAD

    text = response_blocks(TINY, "text", list(range(10, 16)))
    assert [len(b) for b in text] == [1, 4, 4] and text[0].ids[0][0] == 10
    flat = [row[0] for b in text[1:] for row in b.ids]
    assert flat == [11, 12, 13, 14, 15, EOS, PAD, PAD]
    image = response_blocks(TINY, "image", torch.zeros(16, 2, dtype=torch.long))
    assert image[0].ids[0][0] == IMAGE_START and len(image[1]) == 16 and image[2].fixed
    audio = response_blocks(TINY, "audio", torch.ones(5, 3, dtype=torch.long))
    assert audio[0].ids[0][0] == AUDIO_START and [len(b) for b in audio[1:-1]] == [4, 4, 4]
    silence = list(TINY.audio_silence)
    assert all(row[:3] == silence for row in audio[-2].ids)  # one whole silent block


def test_an_opening_block_holds_the_start_of_the_text():
    from nextomni.tokenizers.special import AUDIO_START, EOS, IMAGE_START, PAD

    wide = replace(TINY, opening_block=TINY.block_size)
    short = response_blocks(wide, "text", [10])  # one word: the whole reply in one block
    assert [[r[0] for r in b.ids] for b in short] == [[10, EOS, PAD, PAD]]
    text = response_blocks(wide, "text", list(range(10, 16)))
    assert [[r[0] for r in b.ids] for b in text] == [[10, 11, 12, 13], [14, 15, EOS, PAD]]
    for kind, value, marker in (("image", torch.zeros(16, 2, dtype=torch.long), IMAGE_START),
                                ("audio", torch.ones(5, 3, dtype=torch.long), AUDIO_START)):
        first = response_blocks(wide, kind, value)[0]
        assert [r[0] for r in first.ids] == [marker, PAD, PAD, PAD] and not first.fixed


def test_tiny_model_trains_and_loss_drops():
    torch.manual_seed(0)
    model = OmniModel(TINY)
    batch = collate([sample_sequence(i) for i in range(8)])
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    paths = model.paths()
    t = torch.full((8,), 0.3)
    losses = []
    for step in range(40):
        loss = dfm_objective(model, batch, paths, torch.Generator().manual_seed(step), t=t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def states_after_changing(config, position: int):
    """Hidden states of sample_sequence(1) before and after changing one token."""
    torch.manual_seed(0)
    model = OmniModel(config).eval()
    s = collate([sample_sequence(1)])
    changed = s.ids.clone()
    changed[0, position, 0] = (changed[0, position, 0] + 1) % 8  # valid in every vocabulary
    with torch.no_grad():
        a = model(s.ids, s.kind, s.mpos, s.attention_mask, segment=s.segment).last_hidden_state
        b = model(changed, s.kind, s.mpos, s.attention_mask,
                  segment=s.segment).last_hidden_state
    return s, a[0], b[0]


def test_attention_is_bidirectional_within_blocks_and_causal_between():
    s, a, b = states_after_changing(TINY, 4)   # a token inside the first (user) turn
    same_turn = s.segment[0] == s.segment[0, 4]
    first = int(same_turn.nonzero()[0])
    assert first < 4 and not torch.equal(a[first], b[first])  # an earlier position saw it
    later = s.segment[0] > s.segment[0, 4]
    assert not torch.equal(a[later], b[later])                # later blocks see it
    s, a, b = states_after_changing(TINY, len(s.kind[0]) - 1)  # a token of the last block
    earlier = s.segment[0] < s.segment[0, -1]
    assert torch.equal(a[earlier], b[earlier])                # earlier blocks never do
    from dataclasses import replace

    s, a, b = states_after_changing(replace(TINY, causal=True), 4)  # the AR baseline
    assert torch.equal(a[:4], b[:4])


def test_padding_is_masked():
    torch.manual_seed(0)
    model = OmniModel(TINY).eval()
    short, long = sample_sequence(2), sample_sequence(3)
    short = sample_sequence(2, target_block=1)
    batch = collate([short, long])
    alone = collate([short])
    with torch.no_grad():
        a = model(batch.ids, batch.kind, batch.mpos, batch.attention_mask,
                  segment=batch.segment).last_hidden_state
        b = model(alone.ids, alone.kind, alone.mpos, alone.attention_mask,
                  segment=alone.segment).last_hidden_state
    assert torch.allclose(a[0, : len(short)], b[0], atol=1e-5)


def test_inference_runs_the_backbone_directly_and_exactly(monkeypatch):
    """The inference path (`fast_backbone`) gives the library forward's states bit for bit,
    with and without a cache, and training (gradients on) keeps the library's path."""
    from transformers import DynamicCache

    from nextomni.model import fast_backbone

    torch.manual_seed(0)
    model = OmniModel(TINY).eval()
    batch = collate([sample_sequence(2, target_block=1), sample_sequence(3)])
    s = batch.segment
    cut = int((s[1] == s[1, -1]).nonzero()[0])  # the last block comes after a cached prefix

    def states(fast: bool):
        monkeypatch.setattr(fast_backbone, "can_run", lambda *a: fast)
        cache = DynamicCache()
        with torch.no_grad():
            whole = model(batch.ids, batch.kind, batch.mpos, batch.attention_mask,
                          segment=s).last_hidden_state
            model(batch.ids[1:, :cut], batch.kind[1:, :cut], batch.mpos[1:, :cut],
                  segment=s[1:, :cut], past_key_values=cache, use_cache=True)
            last = model(batch.ids[1:, cut:], batch.kind[1:, cut:], batch.mpos[1:, cut:],
                         segment=s[1:, cut:], past_key_values=cache, past_segment=s[1:, :cut],
                         use_cache=True).last_hidden_state
        return whole, last

    monkeypatch.undo()
    mask = torch.ones(1, 1, 2, 2, dtype=torch.bool)
    assert fast_backbone.can_run(model.backbone, mask) is False  # gradients are on here
    with torch.no_grad():
        assert fast_backbone.can_run(model.backbone, mask)
    (a, a_last), (b, b_last) = states(True), states(False)
    assert torch.equal(a, b) and torch.equal(a_last, b_last)


def test_save_load_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    model = OmniModel(TINY).eval()
    model.save_pretrained(tmp_path)
    loaded = OmniModel.from_pretrained(tmp_path)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    s = collate([sample_sequence(4)])
    with torch.no_grad():
        assert torch.equal(model(s.ids, s.kind, s.mpos).last_hidden_state,
                           loaded(s.ids, s.kind, s.mpos).last_hidden_state)
    with pytest.raises(FileNotFoundError):
        from_pretrained(tmp_path / "missing")
    with pytest.raises(ValueError, match="quantization"):
        from_pretrained(tmp_path, quantization="3bit")


def test_save_pretrained_with_tokenizers_writes_a_folder_the_app_opens(tmp_path):
    from nextomni.model.loading import load_checkpoint, load_tokenizers

    nano = Path(__file__).resolve().parents[1] / "checkpoints" / "nano"
    model = OmniModel.from_pretrained(nano)
    model.save_pretrained(tmp_path / "bare")
    with pytest.raises(FileNotFoundError):  # weights alone: no tokenizers to feed them
        load_checkpoint(tmp_path / "bare")
    model.save_pretrained(tmp_path / "whole", tokenizers=load_tokenizers(nano))
    again, fmt = load_checkpoint(tmp_path / "whole")
    assert fmt.tok.text.encode("a red circle") == load_tokenizers(nano).text.encode("a red circle")
    a, b = model.state_dict(), again.state_dict()
    assert all(torch.equal(a[k], b[k].to(a[k].dtype)) for k in a)


@pytest.mark.parametrize("mode", ["4bit", "8bit"])
def test_quantized_load_runs(tmp_path, mode):
    torch.manual_seed(0)
    model = OmniModel(TINY).eval()
    save_pretrained(model, tmp_path)
    q = from_pretrained(tmp_path, quantization=mode)
    import bitsandbytes as bnb

    layer = q.backbone.layers[0].self_attn.q_proj
    assert isinstance(layer, bnb.nn.Linear4bit if mode == "4bit" else bnb.nn.Linear8bitLt)
    s = collate([sample_sequence(5)])
    with torch.no_grad():
        ref = model(s.ids, s.kind, s.mpos).last_hidden_state
        out = q(s.ids, s.kind, s.mpos).last_hidden_state
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert torch.nn.functional.cosine_similarity(out.flatten(), ref.flatten(), dim=0) > 0.9


def test_formatter_lays_out_every_task():
    from nextomni.data.corpus import text_corpus
    from nextomni.data.media import as_media
    from nextomni.data.tasks import TASKS, make_example
    from nextomni.model.formatting import ChatFormatter, Tokenizers
    from nextomni.tokenizers import (
        AudioTokenizer, AudioTokenizerConfig, ImageTokenizer, ImageTokenizerConfig,
        TextTokenizer,
    )
    from nextomni.tokenizers.special import IM_START

    text_tok = TextTokenizer.train(text_corpus(range(200)))
    torch.manual_seed(0)
    image_tok = ImageTokenizer(ImageTokenizerConfig(width=16, enc_blocks=1, dec_blocks=1,
                                                    codebook_size=16, code_dim=8)).eval()
    audio_tok = AudioTokenizer(AudioTokenizerConfig(channels=16, codebook_size=8,
                                                    code_dim=4)).eval()
    config = OmniConfig.for_tokenizers(text_tok, image_tok, audio_tok, silence=(1, 2, 3, 0))
    assert (config.image_groups, config.image_code_dim, config.audio_codebook_size) == (4, 8, 8)
    fmt = ChatFormatter(config, Tokenizers(text_tok, image_tok, audio_tok))
    rng = __import__("numpy").random.default_rng(0)
    for task in sorted(TASKS):
        turns = as_media(make_example(task, 0).turns)
        s = fmt.encode(turns, rng)
        n = int(s.target.sum())
        assert n >= 1 and len(set(s.segment[s.target].tolist())) == 1, task
        start = int(s.target.nonzero()[0])
        assert s.target[start:].all()  # the target block is last; later blocks are cut
        full = fmt.encode(turns)       # without rng: the last trainable block
        if task in ("t2i", "a2i", "edit"):
            assert int((full.kind[full.target] == IMAGE).sum()) == config.image_positions
        if task in ("tts", "i2s"):
            assert (full.kind[full.target] == AUDIO).all()
            assert n % config.block_size == 0 or n == 1
        header = s.segment == s.segment[start] - 1
        assert s.ids[header][0, 0] == IM_START or int(s.segment[start]) > 0
    with pytest.raises(ValueError, match="assistant"):
        fmt.encode(as_media(make_example("vqa", 0).turns[:1]))
    with pytest.raises(ValueError, match="silence"):
        OmniConfig.for_tokenizers(text_tok, image_tok, audio_tok, silence=(1, 2))


def all_blocks_sequence(config=TINY):
    b = SequenceBuilder(config).turn_start([20, 21]).text([12, 13, 14]).turn_end([22])
    b.turn_start([23, 21])
    for blk in response_blocks(config, "text", list(range(30, 30 + 2 * config.block_size))):
        b.block(blk, target=not blk.fixed)
    return b.noisy_copies().build()


def test_noisy_copies_mask_and_positions():
    from nextomni.model.sequence import block_mask

    seq = all_blocks_sequence()
    n_clean = int((~seq.noisy).sum())
    assert seq.target.sum() == seq.noisy.sum() and not seq.target[:n_clean].any()
    mask = block_mask(seq.segment[None], seq.segment[None], None, seq.noisy[None])[0, 0]
    for q in range(len(seq)):
        for k in range(len(seq)):
            sq, sk, nq, nk = seq.segment[q], seq.segment[k], seq.noisy[q], seq.noisy[k]
            want = (not nk and (sk < sq or (sk == sq and not nq))) or (nk and nq and sk == sq)
            assert bool(mask[q, k]) == bool(want), (q, k)
    # every copy sits at its clean block's positions
    for s in seq.segment[seq.noisy].unique():
        clean = (seq.segment == s) & ~seq.noisy
        assert torch.equal(seq.pos[(seq.segment == s) & seq.noisy], seq.pos[clean])


def test_noisy_copy_sees_what_decoding_sees():
    """A noised copy's states equal those of the same block decoded after the clean blocks
    before it: training on all blocks at once matches block-by-block decoding."""
    torch.manual_seed(0)
    model = OmniModel(TINY).eval()
    seq = all_blocks_sequence()
    noise = torch.randint(0, TINY.text_vocab_size, (int(seq.noisy.sum()),))
    ids = seq.ids.clone()
    ids[seq.noisy, 0] = noise
    b = collate([seq])
    with torch.no_grad():
        h = model(ids[None], b.kind, b.mpos, b.attention_mask, segment=b.segment,
                  noisy=b.noisy, position_ids=b.pos).last_hidden_state[0]
    n_clean = int((~seq.noisy).sum())
    for s in seq.segment[seq.noisy].unique():
        clean_before = (seq.segment < s) & ~seq.noisy
        copy = (seq.segment == s) & seq.noisy
        one = torch.cat([ids[clean_before], ids[copy]])[None]
        kind = torch.cat([seq.kind[clean_before], seq.kind[copy]])[None]
        mpos = torch.cat([seq.mpos[clean_before], seq.mpos[copy]])[None]
        segment = torch.cat([seq.segment[clean_before], seq.segment[copy]])[None]
        with torch.no_grad():
            ref = model(one, kind, mpos, segment=segment).last_hidden_state[0, -int(copy.sum()):]
        assert torch.allclose(h[copy], ref, atol=1e-5), int(s)
    assert n_clean < len(seq)


def test_all_blocks_objective_trains():
    from nextomni.model.sequence import collate as collate_

    torch.manual_seed(0)
    model = OmniModel(TINY)
    batch = collate_([all_blocks_sequence(), sample_sequence(1)])
    loss = dfm_objective(model, batch, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and model.lm_head.weight.grad.abs().sum() > 0


def test_code_time_power_moves_only_code_blocks_towards_noise(monkeypatch):
    """--code-time-power p: image / audio reply blocks are drawn at t = u^p, text blocks at u;
    same draws otherwise."""
    import nextomni.model.objective as objective

    seen = []
    real = objective.dfm_loss
    monkeypatch.setattr(objective, "dfm_loss",
                        lambda *a, **k: seen.append(k["t"].clone()) or real(*a, **k))
    torch.manual_seed(0)
    model = OmniModel(TINY)
    batch = collate([sample_sequence(i, target_block=b) for i, b in enumerate((0, 2, 1, 2))])
    for p in (1.0, 3.0):
        dfm_objective(model, batch, generator=torch.Generator().manual_seed(0),
                      code_time_power=p)
    g = TINY.max_groups
    code = (batch.kind != TEXT).repeat_interleave(g, dim=1)
    target = batch.target.repeat_interleave(g, dim=1)
    assert (code & target).any() and (~code & target).any()
    assert torch.allclose(seen[1][code], seen[0][code] ** 3)
    assert torch.equal(seen[1][~code], seen[0][~code])
    assert seen[1][code & target].mean() < seen[0][code & target].mean()
