"""OmniModel at a tiny random size: training mechanics, save/load, attention, quantization."""

import torch
import pytest

from nextomni.model import AUDIO, IMAGE, TEXT, OmniConfig, OmniModel
from nextomni.model.modeling import from_pretrained, save_pretrained
from nextomni.model.objective import dfm_objective
from nextomni.model.sequence import SequenceBuilder, collate, variable_spaces

TINY = OmniConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                  intermediate_size=128, text_vocab_size=40, image_groups=2,
                  image_codebook_size=16, image_code_dim=8, image_grid=4, video_grid=2,
                  audio_groups=3, audio_codebook_size=8, audio_code_dim=4, block_size=4,
                  text_metric_dim=8)


def sample_sequence(seed: int, config=TINY):
    g = torch.Generator().manual_seed(seed)
    b = SequenceBuilder(config).turn_start([20, 21]).text(torch.randint(12, 40, (3,), generator=g))
    b.image(torch.randint(16, (16, 2), generator=g)).turn_end([22]).turn_start([23, 21])
    b.text([30 + seed % 5], target=True)
    b.audio(torch.randint(8, (3, 3), generator=g), target=True)
    return b.end_response().build()


def test_sequence_layout():
    s = sample_sequence(0)
    assert s.ids.shape == (len(s), 3) and s.kind.shape == (len(s),)
    assert int((s.kind == IMAGE).sum()) == 16 and int((s.kind == AUDIO).sum()) == 3
    n_target = int(s.target.sum())
    assert n_target % TINY.block_size == 0
    space = variable_spaces(TINY, s.kind[None])[0]
    assert (space[s.kind == TEXT][:, 1:] == -1).all()
    assert (space[s.kind == IMAGE][:, 2] == -1).all()
    assert set(space[s.kind == AUDIO].reshape(-1).tolist()) == {3, 4, 5}
    with pytest.raises(ValueError):
        SequenceBuilder(TINY).image(torch.zeros(5, 2, dtype=torch.long))


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


def first_position_states(config):
    torch.manual_seed(0)
    model = OmniModel(config).eval()
    s = collate([sample_sequence(1)])
    later = s.ids.clone()
    later[0, -1, 0] = (later[0, -1, 0] + 1) % TINY.text_vocab_size  # change the last token
    with torch.no_grad():
        a = model(s.ids, s.kind, s.mpos, s.attention_mask).last_hidden_state
        b = model(later, s.kind, s.mpos, s.attention_mask).last_hidden_state
    return a[0, 0], b[0, 0]


def test_attention_is_bidirectional():
    a, b = first_position_states(TINY)
    assert not torch.equal(a, b)  # the first position saw the last one
    from dataclasses import replace

    a, b = first_position_states(replace(TINY, causal=True))  # the AR baseline's mask
    assert torch.equal(a, b)


def test_padding_is_masked():
    torch.manual_seed(0)
    model = OmniModel(TINY).eval()
    short, long = sample_sequence(2), sample_sequence(3)
    batch = collate([short, long])
    alone = collate([short])
    with torch.no_grad():
        a = model(batch.ids, batch.kind, batch.mpos, batch.attention_mask).last_hidden_state
        b = model(alone.ids, alone.kind, alone.mpos, alone.attention_mask).last_hidden_state
    assert torch.allclose(a[0, : len(short)], b[0], atol=1e-5)


def test_save_load_round_trip_is_bit_exact(tmp_path):
    torch.manual_seed(0)
    model = OmniModel(TINY).eval()
    save_pretrained(model, tmp_path)
    loaded = from_pretrained(tmp_path)
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
    from nextomni.data.tasks import TASKS, make_example
    from nextomni.model.formatting import ChatFormatter, Tokenizers
    from nextomni.tokenizers import (
        AudioTokenizer, AudioTokenizerConfig, ImageTokenizer, ImageTokenizerConfig,
        TextTokenizer,
    )
    from nextomni.tokenizers.special import EOS, IM_START, PAD

    text_tok = TextTokenizer.train(text_corpus(range(200)))
    torch.manual_seed(0)
    image_tok = ImageTokenizer(ImageTokenizerConfig(width=16, enc_blocks=1, dec_blocks=1,
                                                    codebook_size=16, code_dim=8)).eval()
    audio_tok = AudioTokenizer(AudioTokenizerConfig(channels=16, codebook_size=8,
                                                    code_dim=4)).eval()
    config = OmniConfig.for_tokenizers(text_tok, image_tok, audio_tok, silence=(1, 2, 3, 0))
    assert (config.image_groups, config.image_code_dim, config.audio_codebook_size) == (4, 8, 8)
    fmt = ChatFormatter(config, Tokenizers(text_tok, image_tok, audio_tok))
    for task in sorted(TASKS):
        s = fmt.encode(make_example(task, 0).turns)
        n = int(s.target.sum())
        assert n % config.block_size == 0, task
        first = int(s.target.nonzero()[0])
        assert s.ids[first - 3, 0] == IM_START  # "<|im_start|>assistant\n" opens the reply
        tail = s.ids[s.target][:, 0][s.kind[s.target] == TEXT].tolist()
        assert EOS in tail and all(t == PAD for t in tail[tail.index(EOS) + 1:]), task
        if task in ("t2i", "a2i", "edit"):
            assert int((s.kind[s.target] == IMAGE).sum()) == config.image_positions
        if task in ("tts", "i2s"):
            audio_rows = s.ids[s.target & (s.kind == AUDIO)]
            assert len(audio_rows) % config.block_size == 0
    with pytest.raises(ValueError, match="assistant"):
        fmt.encode(make_example("vqa", 0).turns[:1])
    with pytest.raises(ValueError, match="silence"):
        OmniConfig.for_tokenizers(text_tok, image_tok, audio_tok, silence=(1, 2))
