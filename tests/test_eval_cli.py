"""`python -m nextomni.eval`: the command the README's eval table comes from."""

import json

import pytest

from nextomni.eval.__main__ import main
from nextomni.eval.metrics import wer
from nextomni.eval.omni import KEYS
from tests.engine_fixtures import tiny_checkpoint


def test_the_command_writes_one_number_per_task(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "ckpt")
    out = tmp_path / "eval.json"
    main(["--checkpoint", str(ckpt), "--n", "2", "--steps", "2", "--tasks",
          "caption,asr,t2i", "--json", str(out)])
    written = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == written  # printed and written alike
    assert written["n"] == 2 and written["steps"] == 2
    for key in ("caption_acc", "asr_wer", "t2i_acc", "retrieval_r1"):
        assert key in KEYS and written[key] >= 0
    for key in ("caption_acc", "t2i_acc", "retrieval_r1"):
        assert written[key] <= 1
    assert "vqa_acc" not in written  # only the tasks asked for (and retrieval, always)
    for bad in (["--n", "0"], ["--tasks", "draw"], ["--workers", "0"], ["--guidance", "-1"],
                ["--speech-guidance", "-1"]):
        with pytest.raises(SystemExit):
            main(["--checkpoint", str(ckpt), *bad])


def test_word_error_rate_counts_insertions_so_it_can_pass_one():
    """WER is edits over reference words: a reply that babbles scores above 100%, as the
    README's early text -> speech numbers do; it is not clipped to a fraction."""
    assert wer(["a red circle"], ["a red circle"]) == 0
    assert wer(["a red circle"], ["a blue circle"]) == pytest.approx(1 / 3)
    assert wer(["red"], ["a large red circle"]) == 3


def test_speech_guidance_alone_still_decodes_against_the_null_prompt(tmp_path):
    from nextomni.eval.omni import Evaluator
    from nextomni.model.generate import DecodeOptions
    from nextomni.model.loading import load_checkpoint

    model, fmt = load_checkpoint(tiny_checkpoint(tmp_path / "ckpt"))
    assert Evaluator(model, fmt, DecodeOptions()).uncond is None
    assert Evaluator(model, fmt, DecodeOptions(speech_guidance=2.0)).uncond is not None
    assert Evaluator(model, fmt, DecodeOptions(guidance=2.0, speech_guidance=0.0)).uncond \
        is not None


def test_task_specs_name_heldout_phrasings_and_noisy_speech():
    from nextomni.eval.omni import numbers_name, split_task

    assert split_task("vqa") == ("vqa", "train", None)
    assert split_task("caption:heldout") == ("caption", "heldout", None)
    assert split_task("asr@20") == ("asr", "train", 20.0)
    assert [numbers_name(s) for s in ("vqa:heldout", "asr@20", "asr:heldout@10")] == \
        ["vqa_heldout", "asr_20db", "asr_heldout_10db"]
    with pytest.raises(SystemExit):
        main(["--tasks", "vqa:someday"])
