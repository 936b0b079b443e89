"""The omni training pipeline end to end at a tiny size: tokenizers folder -> a few steps of
every stage -> exported checkpoint -> loaded -> evaluated by the real eval code."""

import json
from dataclasses import replace

import pytest
import torch

from nextomni.data.corpus import text_corpus
from nextomni.data.tasks import Turn
from nextomni.data.tasks import text as text_part
from nextomni.data.text import canonical_caption
from nextomni.eval.omni import evaluate
from nextomni.model.loading import load_checkpoint
from nextomni.model.sequence import collate
from nextomni.tokenizers import (
    AudioTokenizer, AudioTokenizerConfig, ImageTokenizer, ImageTokenizerConfig, TextTokenizer,
)
from nextomni.train.config import OmniTrainConfig
from nextomni.train.inputs import stage_of
from nextomni.train.omni import lr_at, train


def tiny_tokenizers(folder):
    text = TextTokenizer.train(text_corpus(range(200)))
    text.save_pretrained(folder)
    torch.manual_seed(0)
    ImageTokenizer(ImageTokenizerConfig(width=16, enc_blocks=1, dec_blocks=1, pixel_channels=4,
                                        codebook_size=16, code_dim=8,
                                        text_vocab_size=text.vocab_size)).save_pretrained(
        folder / "image_tokenizer")
    AudioTokenizer(AudioTokenizerConfig(channels=16, codebook_size=8, code_dim=4,
                                        text_vocab_size=text.vocab_size)).save_pretrained(
        folder / "audio_tokenizer")


def test_schedule_helpers():
    cfg = replace(OmniTrainConfig(), pt_steps=10, cpt_steps=20, sft_steps=5)
    assert [stage_of(s, cfg) for s in (0, 9, 10, 29, 30, 34)] == \
        ["pt", "pt", "cpt", "cpt", "sft", "sft"]
    assert lr_at(0, 100, 1.0, 10) == 0.1 and abs(lr_at(100, 100, 1.0, 10) - 0.1) < 1e-9


def test_command_line_reaches_the_config():
    from nextomni.train.omni import parse_args

    cfg = parse_args(["--retrieval-pairs", "12", "--all-blocks", "--per-example-loss",
                      "--batch-tokens", "4096", "--sft-steps", "7", "--threads", "1",
                      "--code-time-power", "3", "--mix", "t2i=3,caption", "--one-modality"])
    assert (cfg.retrieval_pairs, cfg.all_blocks, cfg.per_example_loss, cfg.batch_tokens,
            cfg.sft_steps, cfg.threads, cfg.code_time_power) == (12, True, True, 4096, 7, 1, 3)
    assert cfg.one_modality and not OmniTrainConfig().one_modality
    assert cfg.mix == {"t2i": 3.0, "caption": 1.0}
    for bad in (["--threads", "0"], ["--code-time-power", "0"], ["--mix", "draw=1"],
                ["--mix", "t2i=x"], ["--mix", "t2i=0"], ["--mix", "t2i=-1,caption=2"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
    assert parse_args([]) == OmniTrainConfig()
    # every setting is a flag, generated from the config's fields
    cfg = parse_args(["--minutes", "20", "--bank", "runs/b", "--text-path", "masked",
                      "--precision", "fp32", "--curriculum", "--stages", "sft", "--speech-augment", "0"])
    assert (cfg.minutes, str(cfg.bank), cfg.text_path, cfg.precision, cfg.curriculum,
            cfg.stages, cfg.speech_augment) == (20.0, "runs/b", "masked", "fp32", True,
                                                ("sft",), 0.0)
    from nextomni.train.config import uses_bf16

    assert not uses_bf16(OmniTrainConfig(), "cpu") and uses_bf16(OmniTrainConfig(), "cuda")
    assert uses_bf16(replace(OmniTrainConfig(), precision="bf16"), "cpu")
    for bad in (["--text-path", "wavy"], ["--minutes", "0"], ["--stages", "pt,xx"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_help_lists_every_flag(capsys):
    """--help formats every help string (argparse reads % in them as a format)."""
    from nextomni.train.omni import parse_args

    with pytest.raises(SystemExit) as done:
        parse_args(["--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert "cosine to 10%)" in shown
    for name in OmniTrainConfig.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in shown


@pytest.mark.slow
def test_tiny_pipeline_trains_exports_and_evaluates(tmp_path, monkeypatch):
    out = tmp_path / "ckpt"
    tiny_tokenizers(out)
    cfg = replace(OmniTrainConfig(), out=out, work=tmp_path / "work", hidden_size=32,
                  num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
                  pt_steps=2, cpt_steps=2, sft_steps=2, batch=3, retrieval_pairs=2,
                  save_every=3, max_len=2000, opening_block=16)
    train(cfg)
    assert (out / "config.json").exists() and (out / "backbone" / "config.json").exists()
    log = (cfg.work / "log.jsonl").read_text().splitlines()
    assert len(log) >= 1
    # resuming a finished run is a no-op that still exports
    train(cfg)
    model, fmt = load_checkpoint(out)
    assert model.config.hidden_size == 32 and model.config.image_codebook_size == 16
    assert model.config.opening_block == 16  # replies open with a whole block, as trained
    result = evaluate(model, fmt, n=1, steps=2, tasks=["caption", "vqa", "t2i", "tts"])
    assert set(result) >= {"caption_acc", "vqa_acc", "t2i_acc", "tts_wer", "tts_wer_probe",
                           "retrieval_r1"}
    assert all(0 <= result[k] for k in ("vqa_acc", "t2i_acc", "retrieval_r1"))
    assert 0 <= result["t2i_attr"] <= 1 and "caption_attr" not in result
    assert set(result["t2i_attr_by"]) == {"background", "placed", "kind", "color", "size", "empty"}
    assert all(0 <= v <= 1 for v in result["t2i_attr_by"].values())
    assert all(0 <= result[f"{t}_kind"] <= 1 for t in ("caption", "vqa", "t2i", "tts"))
    # --workers: the tasks shared by processes give the same numbers, keys in the same order
    from nextomni.eval.parallel import evaluate_parallel

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' thread count, so that rounding is the same too
    try:
        one = evaluate(model, fmt, n=2, steps=2, tasks=["caption", "t2i", "tts"])
    finally:
        torch.set_num_threads(threads)
    shared = evaluate_parallel(out, 2, n=2, steps=2, tasks=["caption", "t2i", "tts"])
    assert list(shared) == list(one) and shared == one
    # --guidance: replies are decoded against the <|null|> prompt too (it changes the codes)
    import nextomni.eval.omni as eval_omni
    from nextomni.data.tasks import make_example
    from nextomni.model.generate import DecodeOptions, generate

    seen = []
    monkeypatch.setattr(eval_omni, "generate", lambda *a, **k: seen.append(k) or generate(*a, **k))
    turns = make_example("t2i", 7).turns[:-1]
    for w in (0.0, 3.0):
        eval_omni.Evaluator(model, fmt, DecodeOptions(steps=2, guidance=w)).respond(turns, 0)
    assert seen[0]["uncond_prompt"] is None
    null = fmt.prompt([Turn("user", [text_part("<|null|>")])])
    assert seen[1]["uncond_prompt"].ids == null.ids
    g = torch.Generator().manual_seed(0)
    plain, guided = (generate(model, fmt.prompt(turns), DecodeOptions(steps=2, guidance=w), g,
                              layout="image", uncond_prompt=seen[1]["uncond_prompt"])
                     for w in (0.0, 3.0))
    assert not torch.equal(plain.image_codes, guided.image_codes)


def test_warm_start_begins_from_the_checkpoint_weights(tmp_path):
    """--init-from: training goes on from the checkpoint's weights (and shape, whatever the
    command line says), reading its tokenizers; a DFM checkpoint refuses --causal."""
    from nextomni.train.objective import build_objective, warm_start
    from nextomni.train.omni import parse_args

    first = tmp_path / "first"
    tiny_tokenizers(first)
    base = replace(OmniTrainConfig(), work=tmp_path / "w1", hidden_size=32, num_layers=1,
                   num_heads=2, num_kv_heads=1, intermediate_size=64, batch=3,
                   retrieval_pairs=2, max_len=2000, stages=("sft",), pt_steps=0, cpt_steps=0)
    train(replace(base, out=first, sft_steps=3))
    trained, _ = load_checkpoint(first)
    # a different shape on the command line does not matter: the checkpoint's is used
    cfg = replace(base, out=tmp_path / "second", work=tmp_path / "w2", init_from=first,
                  hidden_size=64, sft_steps=1)
    model = warm_start(cfg)
    assert model.config.hidden_size == 32
    for (name, a), b in zip(model.state_dict().items(), trained.state_dict().values()):
        assert torch.equal(a.float(), b.float()), name
    objective, _, _ = build_objective(cfg, load_checkpoint(first)[1].tok)
    assert torch.equal(objective.model.lm_head.weight, model.lm_head.weight)
    train(cfg)  # one step on: the exported model is the first one moved a little
    after, _ = load_checkpoint(cfg.out)
    fresh = build_objective(replace(cfg, init_from=None, hidden_size=32),
                            load_checkpoint(first)[1].tok)[0].model

    def dist(m):
        return sum(float((a.float() - b.float()).norm()) for a, b in
                   zip(m.state_dict().values(), trained.state_dict().values()))
    assert 0 < dist(after) < 0.1 * dist(fresh)
    assert (cfg.out / "image_tokenizer").is_dir()  # tokenizers read from --init-from
    with pytest.raises(ValueError, match="--causal"):
        warm_start(replace(cfg, causal=True))
    assert parse_args(["--init-from", str(first), "--warmup", "5"]).init_from == first


def test_warm_start_takes_new_image_codes_from_the_run_tokenizers(tmp_path):
    """--init-from with --tokenizers naming another image tokenizer (e.g. local codes): the
    model reads that tokenizer's codebook from the first step, keeps its own text metric,
    and a codebook of another shape is refused."""
    import shutil

    from nextomni.model.formatting import Tokenizers
    from nextomni.train.objective import warm_start

    first = tmp_path / "first"
    tiny_tokenizers(first)
    base = replace(OmniTrainConfig(), work=tmp_path / "w1", hidden_size=32, num_layers=1,
                   num_heads=2, num_kv_heads=1, intermediate_size=64, batch=3,
                   retrieval_pairs=2, max_len=2000, stages=("sft",), pt_steps=0, cpt_steps=0,
                   sft_steps=1)
    train(replace(base, out=first))
    trained, fmt = load_checkpoint(first)
    torch.manual_seed(1)
    other = ImageTokenizer(replace(fmt.tok.image.config, local_encoder=True))
    model = warm_start(replace(base, init_from=first),
                       Tokenizers(fmt.tok.text, other, fmt.tok.audio))
    assert torch.equal(model.image_codebook, other.vq.codebook)
    assert not torch.allclose(model.image_codebook, trained.image_codebook.float(), atol=1e-2)
    assert torch.equal(model.audio_codebook, fmt.tok.audio.vq.codebook)
    assert torch.equal(model.text_metric, trained.text_metric.float())
    # the whole run: trained on the new codes and exported with that tokenizer
    mixed = tmp_path / "mixed"
    shutil.copytree(first / "audio_tokenizer", mixed / "audio_tokenizer")
    shutil.copy(first / "tokenizer.json", mixed)
    other.save_pretrained(mixed / "image_tokenizer")
    cfg = replace(base, out=tmp_path / "second", work=tmp_path / "w2", init_from=first,
                  tokenizers=mixed)
    train(cfg)
    after, fmt2 = load_checkpoint(cfg.out)
    assert fmt2.tok.image.config.local_encoder
    assert torch.allclose(after.image_codebook.float(), other.vq.codebook, atol=1e-2)
    small = ImageTokenizer(replace(fmt.tok.image.config, codebook_size=8))
    with pytest.raises(ValueError, match="codebook"):
        warm_start(replace(base, init_from=first), Tokenizers(fmt.tok.text, small, fmt.tok.audio))


def test_causal_baseline_trains_links_tokenizers_and_decodes(tmp_path):
    from nextomni.engine import Message, OmniEngine, Settings

    toks = tmp_path / "dfm"
    tiny_tokenizers(toks)
    out = tmp_path / "ar"
    cfg = replace(OmniTrainConfig(), out=out, work=tmp_path / "work", hidden_size=32,
                  num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
                  pt_steps=2, cpt_steps=0, sft_steps=2, batch=3, retrieval_pairs=2,
                  save_every=10, max_len=2000, causal=True, tokenizers=toks,
                  opening_block=16)
    before = (toks / "image_tokenizer" / "model.safetensors").read_bytes() \
        if (toks / "image_tokenizer" / "model.safetensors").exists() else None
    train(cfg)
    assert (out / "image_tokenizer").is_symlink() and (out / "tokenizer.json").is_symlink()
    if before is not None:
        assert (toks / "image_tokenizer" / "model.safetensors").read_bytes() == before
    model, fmt = load_checkpoint(out)
    assert model.config.causal and model.config.opening_block == 1  # token by token anyway
    engine = OmniEngine(model, fmt, baseline=(model, fmt))
    events = list(engine.chat([Message("user", ["say 'yes'"])],
                              Settings(mode="ar", max_tokens=8)))
    assert events[-1].stats.mode == "ar"
    # the eval and the benches decode through `generate`: a causal checkpoint gets next-token
    # decoding there too (one forward for the prompt, the marker, then each position)
    from nextomni.model.autoregressive import iter_generate_ar
    from nextomni.model.decoding import drain
    from nextomni.model.generate import DecodeOptions, generate

    prompt = fmt.prompt([Turn("user", [text_part("draw a red circle")])])
    opts = DecodeOptions(steps=1, block_size=1)
    out = generate(model, prompt, opts, torch.Generator().manual_seed(0), layout="image")
    ref = drain(iter_generate_ar(model, prompt, opts, torch.Generator().manual_seed(0),
                                  layout="image"))
    assert out.stats.forward_passes == 2 + model.config.image_positions
    assert torch.equal(out.image_codes, ref.image_codes)


def test_ar_objective_learns_next_tokens():
    """A tiny causal model fits a handful of replies by next-token loss."""
    from nextomni.model import OmniConfig, OmniModel
    from nextomni.model.objective import ar_objective
    from nextomni.model.sequence import SequenceBuilder, response_blocks

    c = OmniConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1,
                   intermediate_size=64, text_vocab_size=40, image_groups=2,
                   image_codebook_size=8, image_code_dim=4, image_grid=2, audio_groups=2,
                   audio_codebook_size=8, audio_code_dim=4, block_size=4, causal=True)
    seqs = []
    for k in range(4):
        b = SequenceBuilder(c).turn_start([20, 21]).text([10 + k]).turn_end([22]) \
            .turn_start([23, 21])
        for blk in response_blocks(c, "text", [30 + k, 31, 32 + k]):
            b.block(blk, target=not blk.fixed)
        seqs.append(b.build())
    batch = collate(seqs)
    torch.manual_seed(0)
    model = OmniModel(c)
    opt = torch.optim.AdamW(model.parameters(), 1e-2)
    first = None
    for _ in range(200):
        loss = ar_objective(model, batch)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.01 * first
    # decoding reads the model the way training taught it, with or without the cache
    from nextomni.model.autoregressive import iter_generate_ar
    from nextomni.model.decoding import DecodeOptions, drain

    model.eval()
    for k in range(4):
        prompt = SequenceBuilder(c).turn_start([20, 21]).text([10 + k]).turn_end([22]) \
            .turn_start([23, 21])
        for cache in (True, False):
            out = drain(iter_generate_ar(model, prompt, DecodeOptions(cache=cache)))
            assert out.layout == "text" and out.text_ids == [30 + k, 31, 32 + k]


def test_ar_objective_per_example_is_the_mean_of_example_means():
    from nextomni.model import OmniConfig, OmniModel
    from nextomni.model.objective import ar_objective
    from nextomni.model.sequence import SequenceBuilder, response_blocks

    c = OmniConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                   intermediate_size=64, text_vocab_size=40, image_groups=2,
                   image_codebook_size=8, image_code_dim=4, image_grid=2, audio_groups=2,
                   audio_codebook_size=8, audio_code_dim=4, block_size=4, causal=True)

    def example(text, image):
        b = SequenceBuilder(c).turn_start([20, 21]).text(text).turn_end([22]).turn_start([23])
        reply = response_blocks(c, "image", image) if image is not None else \
            response_blocks(c, "text", [30, 31])
        for blk in reply:
            b.block(blk, target=not blk.fixed)
        return b.build()

    torch.manual_seed(0)
    model = OmniModel(c)
    seqs = [example([10], torch.randint(8, (4, 2))), example([11, 12], None)]
    each = torch.stack([ar_objective(model, collate([s])) for s in seqs])
    both = collate(seqs)
    assert torch.allclose(ar_objective(model, both, per_example=True), each.mean(), atol=1e-5)
    assert torch.allclose(ar_objective(model, collate(seqs[:1]), per_example=True), each[0],
                          atol=1e-5)
    # by variable, the image reply (4 positions x 2 sub-codes) outweighs the text one
    assert not torch.allclose(ar_objective(model, both), each.mean(), atol=1e-3)


def test_max_minutes_stops_with_the_state_saved_and_a_rerun_finishes(tmp_path):
    """...and a run reading its tokenizers from another folder exports a complete one."""
    out = tmp_path / "ckpt"
    tiny_tokenizers(tmp_path / "tok")
    cfg = replace(OmniTrainConfig(), out=out, tokenizers=tmp_path / "tok",
                  work=tmp_path / "work", hidden_size=32,
                  num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
                  pt_steps=2, cpt_steps=1, sft_steps=1, batch=2, retrieval_pairs=2,
                  save_every=100, max_len=2000, data_workers=0, max_minutes=0.0,
                  per_example_loss=True, threads=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train(cfg)
        assert torch.get_num_threads() == 1  # --threads
    finally:
        torch.set_num_threads(threads)
    state = json.loads((cfg.work / "state" / "step.json").read_text())
    assert state["step"] == 1 and not (out / "config.json").exists()
    record = json.loads((cfg.work / "log.jsonl").read_text().splitlines()[0])
    assert record["data_s"] >= 0 and record["compute_s"] > 0
    train(replace(cfg, max_minutes=None))
    assert json.loads((cfg.work / "state" / "step.json").read_text())["step"] == 4
    model, fmt = load_checkpoint(out)
    assert not (out / "tokenizer.json").is_symlink() and fmt.tok.text.vocab_size > 0


def test_speech_cache_keeps_the_most_recent():
    from nextomni.data.media import SpeechCache

    cache, made = SpeechCache(size=2), []
    make = lambda k: (lambda: made.append(k) or k)  # noqa: E731
    for k in ("a", "b", "a", "c", "a", "b"):
        assert cache.get_or_make(k, make(k)) == k
    assert made == ["a", "b", "c", "b"] and list(cache) == ["a", "b"]


def test_data_workers_run_every_library_on_one_thread():
    import cv2
    from threadpoolctl import threadpool_info, threadpool_limits

    from nextomni.threads import one_thread

    threads, pools = torch.get_num_threads(), threadpool_info()
    try:
        one_thread()
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    finally:  # this process runs other tests next
        torch.set_num_threads(threads)
        cv2.setNumThreads(-1)
        threadpool_limits({p["prefix"]: p["num_threads"] for p in pools})


def batch_of(fmt, cfg, seed: int):
    """One training batch of the SFT mixture (or cfg.mix), made live."""
    import numpy as np

    from nextomni.train.inputs import LiveSource, dfm_batch, step_mix

    rng = np.random.default_rng(seed)
    return dfm_batch(fmt, LiveSource(), step_mix("sft", 0, cfg, rng), rng, cfg)


def test_all_blocks_batches_hold_noised_copies(tmp_path):
    import numpy as np

    from nextomni.model.formatting import ChatFormatter
    from nextomni.model.loading import load_tokenizers
    from nextomni.train.objective import build_model

    tiny_tokenizers(tmp_path)
    tok = load_tokenizers(tmp_path)
    cfg = replace(OmniTrainConfig(), hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                  intermediate_size=64, batch=4, all_blocks=True, max_len=4000)
    model = build_model(cfg, tok)
    fmt = ChatFormatter(model.config, tok)
    batch = batch_of(fmt, cfg, 0)
    assert batch.noisy is not None and batch.noisy.any()
    assert torch.equal(batch.target & batch.attention_mask.bool(), batch.noisy)
    from nextomni.model.objective import dfm_objective

    loss = dfm_objective(model, batch)
    assert torch.isfinite(loss)


def test_one_modality_batches_reply_in_one_modality_and_keep_the_task_shares(tmp_path):
    import numpy as np

    from nextomni.data.mixture import one_modality
    from nextomni.data.tasks import REPLY_MODALITY, TASKS
    from nextomni.model.config import AUDIO, IMAGE, TEXT
    from nextomni.model.formatting import ChatFormatter
    from nextomni.model.loading import load_tokenizers
    from nextomni.train.objective import build_model

    assert set(REPLY_MODALITY) == set(TASKS)
    rng = np.random.default_rng(0)
    weights = {"t2i": 6, "edit": 3, "tts": 3, "caption": 2, "vqa": 0}
    draws = [one_modality(weights, rng) for _ in range(3000)]
    assert all(len({REPLY_MODALITY[t] for t in d}) == 1 and "vqa" not in d for d in draws)
    image = sum("t2i" in d for d in draws) / len(draws)
    assert abs(image - 9 / 14) < 0.03  # the image tasks' share of the weight, of batches

    tiny_tokenizers(tmp_path)
    tok = load_tokenizers(tmp_path)
    cfg = replace(OmniTrainConfig(), hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                  intermediate_size=64, batch=6, max_len=4000, batch_tokens=100_000,
                  all_blocks=True)  # every reply block a target: its kind shows
    fmt = ChatFormatter(build_model(cfg, tok).config, tok)

    def reply_kinds(c, seed):
        """Each example's reply modality (an image or speech reply ends in text tokens)."""
        b = batch_of(fmt, c, seed)
        return {max({int(k) for k in row_kind[row_target.bool()]} - {TEXT}, default=TEXT)
                for row_kind, row_target in zip(b.kind, b.target)}

    mixed = [reply_kinds(cfg, s) for s in range(6)]
    assert any(len(k) > 1 for k in mixed)  # the default: replies of every kind together
    one = [reply_kinds(replace(cfg, one_modality=True), s) for s in range(6)]
    assert all(len(k) == 1 for k in one) and set().union(*one) <= {TEXT, IMAGE, AUDIO}


def test_one_generation_example_in_ten_is_trained_without_its_prompt(tmp_path):
    """Condition dropout: the null prompt guidance needs, on generation tasks only."""
    import numpy as np

    from nextomni.model.config import TEXT
    from nextomni.model.formatting import ChatFormatter
    from nextomni.model.loading import load_tokenizers
    from nextomni.tokenizers.special import NULL
    from nextomni.train.objective import build_model

    tiny_tokenizers(tmp_path)
    tok = load_tokenizers(tmp_path)
    cfg = replace(OmniTrainConfig(), hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                  intermediate_size=64, batch=25, max_len=4000, batch_tokens=10**6)
    fmt = ChatFormatter(build_model(cfg, tok).config, tok)

    def dropped(c, seed) -> list[bool]:
        b = batch_of(fmt, c, seed)
        return [bool(((ids[:, 0] == NULL) & (kind == TEXT)).any())
                for ids, kind in zip(b.ids, b.kind)]

    t2i = [d for s in range(16) for d in dropped(replace(cfg, mix={"t2i": 1}), s)]
    assert len(t2i) == 400 and 0.06 < sum(t2i) / len(t2i) < 0.14
    assert not any(dropped(replace(cfg, mix={"caption": 1}), 0))  # reading tasks keep theirs
    assert all(dropped(replace(cfg, mix={"tts": 1}, cond_dropout=1.0), 0))
    causal = replace(cfg, mix={"t2i": 1}, causal=True)
    assert not any(d for s in range(4) for d in dropped(causal, s))  # no guidance to learn


def test_mix_replaces_the_stage_mixture():
    import numpy as np

    from nextomni.data.mixture import sample_tasks

    rng = np.random.default_rng(0)
    assert {e.task for e in sample_tasks("pt", rng, 40, {"edit": 1.0})} == {"edit"}
    tasks = [e.task for e in sample_tasks("sft", rng, 200, {"t2i": 3.0, "vqa": 1.0,
                                                             "caption": 0.0})]
    assert set(tasks) == {"t2i", "vqa"} and tasks.count("t2i") > 2 * tasks.count("vqa")
    assert {e.task for e in sample_tasks("pt", rng, 60)} <= {"caption", "vqa", "t2i", "asr",
                                                            "tts"}


def test_data_workers_share_the_steps_in_order(monkeypatch):
    """With several workers each makes every W-th step; the loader hands them back in order,
    none twice, none missing (what the loop's step counter relies on)."""
    from nextomni.train import inputs

    monkeypatch.setattr(inputs, "prepare_inputs",
                        lambda fmt, stage, rng, cfg, source, step: (stage, float(rng.random())))
    cfg = OmniTrainConfig(pt_steps=5, cpt_steps=4, sft_steps=4)
    stream = inputs.InputStream(None, cfg, start=3, total=13, process=0)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=3)
    got = list(loader)
    assert [step for step, _ in got] == list(range(3, 13))
    assert [stage for _, (stage, _) in got] == [stage_of(s, cfg) for s in range(3, 13)]
    draws = [x for _, (_, x) in got]
    assert len(set(draws)) == len(draws)  # the workers' random streams differ
    single = list(torch.utils.data.DataLoader(stream, batch_size=None, num_workers=0))
    assert [step for step, _ in single] == list(range(3, 13))


def test_rnn_weights_packed_in_one_buffer_are_unshared_for_saving(tmp_path):
    """A GPU packs an RNN's weights into one cuDNN buffer; safetensors cannot save or load a
    state of tensors sharing storage, so training gives each weight its own copy."""
    import safetensors.torch as st
    from torch import nn

    from nextomni.train.objective import unshare_rnn_weights

    torch.manual_seed(0)
    rnn = nn.GRU(4, 3, bidirectional=True)
    params = list(rnn.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params])  # what cuDNN's packing does
    start = 0
    for p in params:
        p.data = flat[start: start + p.numel()].view_as(p)
        start += p.numel()
    before = {k: v.clone() for k, v in rnn.state_dict().items()}
    with pytest.raises(RuntimeError):
        st.save_model(rnn, tmp_path / "packed.safetensors")
    unshare_rnn_weights(rnn)
    assert len({p.untyped_storage().data_ptr() for p in rnn.parameters()}) == len(params)
    st.save_model(rnn, tmp_path / "rnn.safetensors")
    back = nn.GRU(4, 3, bidirectional=True)
    st.load_model(back, tmp_path / "rnn.safetensors")
    assert all(torch.equal(before[k], v) for k, v in back.state_dict().items())


def test_retrieval_pairs_hold_hard_negatives():
    """A third of the groups are sibling images one edit apart: scenes that differ in one
    attribute or shape, as the held-out gallery's near neighbours do."""
    import numpy as np

    from nextomni.data.mixture import sample_retrieval_pairs as retrieval_pairs

    pairs = retrieval_pairs(np.random.default_rng(3), 6)
    assert len(pairs) == 6
    for a, b in (pairs[0:2], pairs[2:4]):
        assert a[0].kind == b[0].kind == "image" and a[0].value != b[0].value
        sa, sb = a[0].value, b[0].value
        assert a[1].value == canonical_caption(sa) and b[1].value == canonical_caption(sb)
        changed = (set(sa.shapes) ^ set(sb.shapes)) or sa.background != sb.background
        assert changed and len(set(sa.shapes) ^ set(sb.shapes)) <= 2  # one shape edited
    assert len(retrieval_pairs(np.random.default_rng(3), 2)) == 2
