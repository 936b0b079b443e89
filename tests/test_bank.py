"""The example bank: written once (resumably), read back as the same media, epoch by epoch."""

from __future__ import annotations

import numpy as np
import pytest

from nextomni.chat import Turn
from nextomni.data import bank
from nextomni.data.bank import ExampleBank, Shard, decode_record, record_turns, write_bank


def same_turns(a: list[Turn], b: list[Turn]) -> bool:
    if [(t.role, [p.kind for p in t.parts]) for t in a] != \
            [(t.role, [p.kind for p in t.parts]) for t in b]:
        return False
    for ta, tb in zip(a, b):
        for pa, pb in zip(ta.parts, tb.parts):
            if pa.kind == "text" and pa.value != pb.value:
                return False
            if pa.kind == "image" and not np.array_equal(pa.value, pb.value):
                return False
            if pa.kind == "audio" and np.abs(pa.value - pb.value).max() > 1e-4:
                return False
            if pa.kind == "video" and not np.array_equal(pa.value.frames, pb.value.frames):
                return False
    return True


def test_records_round_trip_as_the_same_media():
    for task, seed in (("spoken_vqa", 3), ("video", 4), ("edit", 5), ("siblings", 6),
                       ("utterance", 7)):
        turns = record_turns(task, seed)
        assert same_turns(decode_record(bank.make_record(task, seed)), turns), task


def test_bank_is_written_resumably_and_read_in_shuffled_epochs(tmp_path, monkeypatch):
    shards = [Shard("caption", 0, 4), Shard("caption", 1, 4), Shard("tts", 0, 3)]
    write_bank(tmp_path, shards[:1])
    first = sorted(p.name for p in tmp_path.iterdir())
    stamp = (tmp_path / "caption-00000").stat().st_mtime_ns
    made = []
    real = bank.make_record
    monkeypatch.setattr(bank, "make_record", lambda t, s: made.append(t) or real(t, s))
    write_bank(tmp_path, shards)  # the finished shard is kept, only the rest made
    assert first == ["caption-00000"] and made == ["caption"] * 4 + ["tts"] * 3
    assert (tmp_path / "caption-00000").stat().st_mtime_ns == stamp
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp")]

    b = ExampleBank(tmp_path)
    assert len(b) == 11 and b.count("caption") == 8 and b.count("tts") == 3
    rng = np.random.default_rng(0)
    epoch1 = [b.draw("caption", rng)[1].parts[0].value for _ in range(8)]
    epoch2 = [b.draw("caption", rng)[1].parts[0].value for _ in range(8)]
    assert sorted(epoch1) == sorted(epoch2) and len(set(epoch1)) == 8  # each once an epoch
    assert b.epochs["caption"] == 1
    assert Shard("caption", 0, 4).seeds(0) != Shard("caption", 1, 4).seeds(0)


def test_training_reads_the_bank(tmp_path):
    """A tiny run's inputs made from a bank: sequences, retrieval pairs, reconstruction."""
    from dataclasses import replace

    from nextomni.model.formatting import ChatFormatter
    from nextomni.model.loading import load_tokenizers
    from nextomni.train.config import OmniTrainConfig
    from nextomni.train.inputs import prepare_inputs
    from nextomni.train.objective import build_model
    from tests.test_train_omni import tiny_tokenizers

    write_bank(tmp_path / "bank", [Shard(t, 0, 3) for t in ("caption", "t2i", "pair",
                                                            "siblings", "utterance")])
    tiny_tokenizers(tmp_path / "tok")
    tok = load_tokenizers(tmp_path / "tok")
    cfg = replace(OmniTrainConfig(), hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                  intermediate_size=64, batch=4, max_len=4000, mix={"caption": 1, "t2i": 1},
                  bank=tmp_path / "bank")
    fmt = ChatFormatter(build_model(cfg, tok).config, tok)
    x = prepare_inputs(fmt, "sft", np.random.default_rng(0), cfg, ExampleBank(cfg.bank))
    assert x.dfm.ids.shape[0] == 4 and x.pairs.ids.shape[0] == 2 * cfg.retrieval_pairs
    assert x.images.shape[0] == 8 and x.mels.shape[0] == 2


@pytest.mark.slow
def test_learning_speed_harness_trains_a_budget_from_the_bank_and_scores_it(tmp_path):
    import json

    from bench import learning_speed, learning_speed_table
    from tests.test_train_omni import tiny_tokenizers

    write_bank(tmp_path / "bank", [Shard(t, 0, 3) for t in ("caption", "vqa", "pair",
                                                            "siblings", "utterance")])
    tiny_tokenizers(tmp_path / "tok")
    results = tmp_path / "rows.jsonl"
    row = learning_speed.main([
        "--variant", "tiny", "--minutes", "0.05", "--n", "2", "--tasks", "caption,vqa:heldout",
        "--bank", str(tmp_path / "bank"), "--tokenizers", str(tmp_path / "tok"),
        "--runs", str(tmp_path / "runs"), "--results", str(results), "--",
        "--stages", "sft", "--mix", "caption=1,vqa=1", "--hidden-size", "32", "--num-layers",
        "1", "--num-heads", "2", "--num-kv-heads", "1", "--intermediate-size", "64",
        "--batch", "2", "--retrieval-pairs", "3", "--warmup", "2"])
    assert row["variant"] == "tiny" and row["bank"] and row["steps"] >= 1
    assert row["flags"][:2] == ["--stages", "sft"] and row["minutes"] == 0.05
    assert row["tokenizers"] == str(tmp_path / "tok")  # which codes the run learned on
    assert {"caption_acc", "vqa_heldout_acc", "vqa_heldout_kind", "retrieval_r1"} <= \
        set(row["metrics"])
    assert json.loads(results.read_text().splitlines()[-1]) == row
    assert "| tiny |" in learning_speed_table.main([str(results)])
    assert f"`{tmp_path / 'tok'}`" in learning_speed_table.main([str(results)])
