"""The benchmark scripts run end to end at a tiny size and print what they promise."""

import json

import pytest

from bench import dfm_vs_ar, scale
from tests.engine_fixtures import tiny_checkpoint

ROW_KEYS = {"mode", "cache", "dynamic", "task", "accuracy", "latency_p50_ms", "latency_p90_ms",
            "cpu_p50_ms", "n"}


@pytest.mark.slow
def test_scale_runs_tiny_on_cpu():
    r = scale.main(["--size", "tiny", "--new-tokens", "32", "--steps", "2,3",
                    "--blocks", "16,32"])
    # the layout token, then blocks x steps; the same steps with graphs
    assert r["dfm_steps@block16-steps2"] == 1 + 2 * 2
    assert r["dfm_steps@block32-steps3"] == 1 + 1 * 3
    assert r["dfm_graphs_steps@block16-steps3"] == r["dfm_steps@block16-steps3"]
    # a block's commit rides on the next block's first step: one pass a step, and one for
    # the prompt with the layout token
    assert r["dfm_graphs_forwards@block16-steps2"] == 1 + 2 * 2
    for k in ("hf_eager_tokens_per_s", "dfm_tokens_per_s@block16-steps2",
              "dfm_step_ms@block32-steps2", "forward_768_ms", "dfm_over_best_ar@block16-steps3",
              "dfm_graphs_tokens_per_s@block16-steps2", "dfm_graphs_over_best_ar@block32-steps3"):
        assert r[k] > 0


@pytest.mark.slow
def test_dfm_vs_ar_rows(tmp_path, capsys):
    dfm = tiny_checkpoint(tmp_path / "dfm")
    ar = tiny_checkpoint(tmp_path / "ar", causal=True)
    out = tmp_path / "rows.json"
    dfm_vs_ar.main(["--dfm", str(dfm), "--ar", str(ar), "--n", "2", "--steps", "2",
                    "--tasks", "vqa,t2i", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 4 * 2 and all(set(r) == ROW_KEYS for r in rows)
    assert {(r["mode"], r["cache"], r["dynamic"]) for r in rows} == set(dfm_vs_ar.VARIANTS)
    assert all(0 <= r["accuracy"] <= 1 and r["latency_p90_ms"] >= r["latency_p50_ms"] > 0
               and 0 < r["cpu_p50_ms"] for r in rows)
    assert "| mode | cache |" in capsys.readouterr().out


def test_dfm_vs_ar_without_a_baseline_says_so(tmp_path, capsys):
    dfm = tiny_checkpoint(tmp_path / "dfm")
    dfm_vs_ar.main(["--dfm", str(dfm), "--ar", str(tmp_path / "none"), "--n", "1",
                    "--steps", "1", "--tasks", "vqa"])
    printed = capsys.readouterr().out
    assert "AR rows left out" in printed and '"mode": "ar"' not in printed


def test_cache_agreement_runs(tmp_path):
    from bench import cache_agreement

    dfm = tiny_checkpoint(tmp_path / "dfm")
    r = cache_agreement.main(["--checkpoint", str(dfm), "--n", "2", "--steps", "2",
                              "--tasks", "vqa,t2i"])
    assert set(r) == {"vqa", "t2i", "all"} and 0.9 <= r["all"]["token_agreement"] <= 1
    assert cache_agreement.agreement([1, 2, 3], [1, 5]) == (1, 3)


def test_dfm_vs_ar_runs_the_variants_asked_for(tmp_path):
    dfm = tiny_checkpoint(tmp_path / "dfm")
    ar = tiny_checkpoint(tmp_path / "ar", causal=True)
    out = tmp_path / "rows.json"
    dfm_vs_ar.main(["--dfm", str(dfm), "--ar", str(ar), "--n", "1", "--steps", "1",
                    "--tasks", "vqa", "--variants", "dfm-nocache-dynamic,ar", "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    assert [(r["mode"], r["cache"], r["dynamic"]) for r in rows] == [
        ("dfm", False, True), ("ar", True, True)]
    with pytest.raises(SystemExit, match="unknown variant"):
        dfm_vs_ar.main(["--dfm", str(dfm), "--variants", "dfm-fast"])


def test_data_pipeline_reports_parts_and_loader_rates(tmp_path):
    from bench import data_pipeline

    out = tmp_path / "data.json"
    r = data_pipeline.main(["--steps", "2", "--workers", "0,1", "--batch", "4",
                            "--batch-tokens", "1200", "--json", str(out)])
    one = r["one_process"]
    assert set(one["parts"]) == {"speech", "image_encode", "audio_encode", "other"}
    assert all(v >= 0 for v in one["parts"].values())
    assert abs(sum(one["parts"].values()) - one["seconds_per_step"]) < 1e-3
    assert 1 <= one["examples_per_step"] <= 4
    assert [row["workers"] for row in r["loader"]] == [0, 1]
    assert all(row["steps_per_s"] > 0 and row["examples_per_s"] > 0 for row in r["loader"])
    assert json.loads(out.read_text()) == r


@pytest.mark.slow
@pytest.mark.parametrize("causal", [False, True])
def test_train_step_reports_its_parts_and_operator_count(tmp_path, causal):
    from bench import train_step

    out = tmp_path / "step.json"
    # float32: bf16 matrix products on a CPU without bf16 instructions take ~12x longer
    r = train_step.main(["--steps", "1", "--device", "cpu", "--batch", "2",
                         "--batch-tokens", "800", "--no-bf16", "--json", str(out)]
                        + (["--causal"] if causal else []))
    assert r["device"] == "cpu" and r["gpu_kernels_per_step"] is None and r["causal"] == causal
    assert r["compiled"] is False and r["compile_s"] is None
    assert 1 <= r["examples_per_step"] <= 2
    parts = r["synchronised_parts_s"]
    assert set(parts) == {"forward", "backward", "optimizer"}
    assert all(v > 0 for v in parts.values())
    assert r["seconds_per_step"] > 0 and r["examples_per_s"] > 0
    assert r["aten_ops_per_step"] > 1000  # two backbone passes and the heads, both ways
    assert json.loads(out.read_text()) == r


def test_train_step_keeps_significant_figures_of_slow_and_fast_parts():
    from bench.train_step import significant

    # 2 examples in a 45 s step, a 20 microsecond optimizer step: neither may read as 0
    assert significant(2 / 45) == 0.04444 and significant(2e-5) == 2e-5
    assert significant(1.83456) == 1.835 and significant(25503.0) == 25500.0


def test_data_pipeline_makes_the_baselines_batches_without_noised_copies():
    from bench import data_pipeline

    args = ["--steps", "3", "--workers", "", "--batch", "32", "--batch-tokens", "1200"]
    dfm = data_pipeline.main(args)
    ar = data_pipeline.main(args + ["--causal"])
    assert ar["causal"] and not dfm["causal"] and ar["loader"] == []
    # shorter without the noised copies: more examples fit the same positions
    assert ar["one_process"]["examples_per_step"] >= dfm["one_process"]["examples_per_step"]


def test_condition_use_compares_own_null_and_other_prompts(tmp_path):
    from bench import condition_use
    from nextomni.data.tasks import make_example

    dfm = tiny_checkpoint(tmp_path / "dfm")
    r = condition_use.main(["--checkpoint", str(dfm), "--n", "2", "--t", "0.3",
                            "--tasks", "caption,t2i"])
    assert set(r) == {"caption", "t2i", "n_per_task"}
    assert set(r["t2i"]) == {"t=0.3 own", "t=0.3 null", "t=0.3 other", "t=0.3 other/own"}
    assert all(v > 0 for v in r["caption"].values())
    # each reply keeps its answer and gets the next example's prompt
    exs = [make_example("caption", s) for s in (1, 2, 3)]
    other = condition_use.with_prompts(exs, "other")
    assert [o.turns[-1] for o in other] == [e.turns[-1] for e in exs]
    assert other[0].turns[:-1] == exs[1].turns[:-1] and other[2].turns[:-1] == exs[0].turns[:-1]
    assert condition_use.with_prompts(exs, "null")[0].turns[0].parts[0].value == "<|null|>"
    with pytest.raises(SystemExit):
        condition_use.main(["--checkpoint", str(dfm), "--n", "1"])


def test_attribute_use_changes_one_word_of_the_prompt_and_keeps_the_reply(tmp_path):
    from bench import attribute_use
    from nextomni.data.tasks import make_example
    from nextomni.data.world import Scene, Shape

    scene = Scene((Shape(0, 0, "star", "red", "small"), Shape(1, 1, "circle", "cyan", "large")),
                  "navy")
    changed = {w: attribute_use.changed_scene(scene, w) for w in attribute_use.CHANGES}
    assert changed["color"].shapes[0] == Shape(0, 0, "star", "green", "small")
    assert changed["kind"].shapes[0].kind == "diamond" and changed["size"].shapes[0].size == "large"
    assert changed["place"].shapes[0].cell == (0, 1) and changed["background"].background == "black"
    assert all(c.shapes[1:] == scene.shapes[1:] for w, c in changed.items() if w != "place")
    assert attribute_use.changed_scene(Scene((), "gray"), "color") is None

    ex = attribute_use.plain_prompt(make_example("t2i", 5))
    other = attribute_use.with_changed_prompt(ex, "color")
    assert other.turns[-1] == ex.turns[-1]
    before, after = ex.turns[0].parts[0].value.split(), other.turns[0].parts[0].value.split()
    assert len(before) == len(after) and sum(a != b for a, b in zip(before, after)) == 1

    r = attribute_use.main(["--checkpoint", str(tiny_checkpoint(tmp_path / "dfm")), "--n", "3",
                            "--t", "0.3"])
    assert r["n"] == 3 and set(r["t=0.3"]) == {"own"} | {
        k for w in attribute_use.CHANGES for k in (w, f"{w}/own")}
    assert all(v > 0 for v in r["t=0.3"].values())


def test_dfm_vs_ar_compares_speed_and_accuracy_per_task(tmp_path, capsys):
    dfm = tiny_checkpoint(tmp_path / "dfm")
    ar = tiny_checkpoint(tmp_path / "ar", causal=True)
    dfm_vs_ar.main(["--dfm", str(dfm), "--ar", str(ar), "--n", "1", "--steps", "2",
                    "--image-steps", "1", "--tasks", "vqa", "--variants",
                    "dfm-cache-dynamic,ar"])
    printed = capsys.readouterr().out
    result = json.loads(printed[printed.index("{"):])
    assert set(result["ar_over_dfm_p50"]) == set(result["dfm_minus_ar_accuracy"]) == {"vqa"}
    assert set(result["ar_over_dfm_cpu_p50"]) == {"vqa"} and result["ar_over_dfm_cpu_p50"]["vqa"] > 0
    assert result["dfm"] == {"steps": 2, "image_steps": 1, "settle": True}


def test_app_latency_times_what_a_person_waits_for(tmp_path):
    from bench import app_latency

    r = app_latency.main(["--checkpoint", str(tiny_checkpoint(tmp_path / "dfm")), "--n", "1"])
    assert set(r["seconds"]) == {"first_update_s", "text_one_word_s", "image_s",
                                 "speech_first_audio_s", "speech_s"}
    assert all(0 < t["p50"] <= t["p90"] for t in r["seconds"].values())
    assert set(r["met"]) == set(app_latency.TARGETS) and r["threads"] >= 1
    assert set(r["missed_by_s"]) == {k for k, ok in r["met"].items() if not ok}
    first, whole = r["seconds"]["speech_first_audio_s"], r["seconds"]["speech_s"]
    assert r["speech_chunks_p50"] >= 1 and first["p50"] <= whole["p50"]


def test_app_accuracy_compares_the_apps_decoding_with_the_exact_one(tmp_path):
    from bench import app_accuracy

    r = app_accuracy.main(["--checkpoint", str(tiny_checkpoint(tmp_path / "dfm")), "--n", "1",
                           "--tasks", "vqa,t2i"])
    assert {"vqa_acc", "t2i_attr", "vqa_reply_ms"} <= set(r["exact"]) & set(r["app"])
    assert r["app_minus_exact"]["vqa_acc"] == round(r["app"]["vqa_acc"] - r["exact"]["vqa_acc"], 4)
    assert r["app_options"]["settle"] is True and r["app_options"]["image_steps"] == 8


def test_reply_profile_splits_each_reply_by_kind_of_work(tmp_path):
    from bench import reply_profile

    r = reply_profile.main(["--checkpoint", str(tiny_checkpoint(tmp_path / "dfm")),
                            "--repeats", "1"])
    assert set(reply_profile.REPLIES) <= set(r)
    for name in reply_profile.REPLIES:
        assert r[name]["cpu_s_median"] > 0 and r[name]["forward_passes"] >= 1
        assert abs(sum(r[name]["shares"].values()) - 1) < 0.01
        assert "matrix products" in r[name]["shares"]
    assert reply_profile.group_of("~", "<built-in method torch._C._nn.linear>") == \
        "matrix products"


def test_eval_table_joins_files_and_checks_each_floor(tmp_path, capsys):
    from bench import eval_table

    full, held = tmp_path / "full.json", tmp_path / "held.json"
    full.write_text(json.dumps({"caption_acc": 0.95, "vqa_acc": 0.50, "asr_wer": 0.08,
                                "tts_wer": 0.40, "n": 200}))
    held.write_text(json.dumps({"caption_heldout_acc": 0.80, "vqa_heldout_acc": 0.45, "n": 2,
                                "vqa_heldout_kind": 1.0}))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"caption_acc": 0.10}))
    out = tmp_path / "table.json"
    text = eval_table.main([f"new={full}+{held}", f"old={other}", "--json", str(out)])
    got = {r["key"]: r for r in json.loads(out.read_text())["rows"]}
    assert got["caption_acc"]["meets"] == [True, False]
    assert got["vqa_acc"]["meets"] == [False, False]
    assert got["asr_wer"]["meets"] == [True, False]  # lower is better; unscored is not met
    assert got["tts_wer"]["meets"] == [False, False]
    # held out within 10 points of the template score: 15 points below misses, 5 meets
    assert got["caption_heldout_acc"]["meets"] == [False, False]
    assert got["vqa_heldout_acc"]["meets"] == [True, False]
    assert got["vqa_heldout_kind"]["values"] == [1.0, None]
    assert "t2i_acc" not in got  # scored by neither
    assert eval_table.load(f"new={full}+{held}")[1]["n"] == 200  # the first file's wins
    assert "| captioning, attributes (`caption_acc`) | 95.0% ✓ | 10.0% | >= 90% |" in text
    with pytest.raises(SystemExit):
        eval_table.main([f"new={tmp_path / 'missing.json'}"])
    assert "no such eval result" in capsys.readouterr().err


def test_eval_table_applies_the_shipping_rule(tmp_path, capsys):
    from bench import eval_table

    def result(name, **metrics):
        (tmp_path / name).write_text(json.dumps(metrics))
        return f"{name[:-5]}={tmp_path / name}"

    old = result("old.json", caption_acc=0.50, vqa_acc=0.50, asr_wer=0.30, tts_wer=0.70)
    # better on three rows (lower WER is better), worse on one, no floor lost
    up = result("up.json", caption_acc=0.60, vqa_acc=0.40, asr_wer=0.20, tts_wer=0.60)
    # better on three rows, worse on one, and two floors met where the old model met none
    trade = result("trade.json", caption_acc=0.95, vqa_acc=0.96, asr_wer=0.31, tts_wer=0.50)
    tie = result("tie.json", caption_acc=0.50, vqa_acc=0.60, asr_wer=0.40)  # 1 up, 1 down
    out = tmp_path / "t.json"
    eval_table.main([up, trade, tie, old.replace("old=", "base="), "--against", "base",
                     "--json", str(out)])
    got = json.loads(out.read_text())["against"]
    assert got["base"] == "base"
    assert got["up"] == {"better": 3, "worse": 1, "floors": 0, "base_floors": 0,
                         "replaces": True}
    assert (got["trade"]["better"], got["trade"]["worse"], got["trade"]["floors"]) == (3, 1, 2)
    assert got["trade"]["replaces"]
    assert got["tie"]["better"] == 1 and got["tie"]["worse"] == 1 and not got["tie"]["replaces"]
    assert "up against base: better on 3 rows, worse on 1" in capsys.readouterr().out
    floor = result("floor.json", caption_acc=0.91, vqa_acc=0.10, asr_wer=0.5, tts_wer=0.9)
    lost = result("lost.json", caption_acc=0.89, vqa_acc=0.2, asr_wer=0.4, tts_wer=0.8)
    eval_table.main([lost, floor, "--against", "floor", "--json", str(out)])
    got = json.loads(out.read_text())["against"]["lost"]
    assert got["better"] == 3 and got["floors"] == 0 < got["base_floors"] and not got["replaces"]
    with pytest.raises(SystemExit):
        eval_table.main([up, "--against", "nobody"])
    assert "none of the models" in capsys.readouterr().err
