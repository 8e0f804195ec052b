"""Readers: each format read from small files written here, round trips, and bad rows skipped,
counted and named."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import replace

import pytest
from video_fixtures import write_cfr_mp4

from vo3rl.data.chat import ChatTurn, SFTExample, VideoUse, read_examples, write_examples
from vo3rl.data.convert import convert_file, seeker_to_verl, verl_to_seeker, write_rows
from vo3rl.data.paths import resolve_video_path
from vo3rl.data.readers import read_mcq, read_samples, read_seeker, read_sft, read_stgr, read_verl, read_vstar
from vo3rl.data.sample_json import sample_to_dict
from vo3rl.data.schema import DataType, KeyFrame, Sample, SampleError, Task
from vo3rl.data.seeker import sample_to_seeker_row
from vo3rl.data.skips import SkipLog
from vo3rl.data.validate import check_sample_video
from vo3rl.video.types import VideoRef


def write_jsonl(path, rows, extra_lines=()):
    with open(path, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
        for line in extra_lines:
            fh.write(line + "\n")
    return str(path)


def seeker_row(doc_id, **changes):
    row = {
        "doc_id": doc_id,
        "data_source": "clue_single_w_tool",
        "video": "videos/a.mp4",
        "frame_fps": None,
        "question": "What colour flashes?",
        "options": ["A. red", "B. green", "C. blue"],
        "solution": {"answer": "B", "clue": [{"timestamp": [3.0, 4.5], "text": "a green flash"}]},
    }
    row.update(changes)
    return row


# --- Seeker RL rows -------------------------------------------------------------------------------


def test_seeker_rows_and_bad_rows(tmp_path):
    rows = [
        seeker_row("ok1"),
        seeker_row("ok2", data_source="clue_multi_wo_tool", solution={"answer": "C. blue", "clue": [
            {"timestamp": [1, 2], "text": ""}, {"timestamp": [5, 6], "text": ""}]}),
        seeker_row("tg", data_source="temporal_grounding", options=[], solution={"answer": [2, 7.25], "clue": []}),
        seeker_row("badtype", data_source="mystery"),
        seeker_row("badanswer", solution={"answer": "E", "clue": []}),
        seeker_row("reversed", solution={"answer": "A", "clue": [{"timestamp": [5, 1]}]}),
        seeker_row("escape", video="../../etc/passwd"),
        seeker_row("nosolution", solution=None),
        ["not", "an", "object"],
    ]
    path = write_jsonl(tmp_path / "rl.jsonl", rows, extra_lines=["{not json"])
    skips = SkipLog(stage="test")
    samples = list(read_seeker(path, data_root=str(tmp_path), skips=skips))

    assert [s.id for s in samples] == ["ok1", "ok2", "tg"]
    ok1, ok2, tg = samples
    assert ok1.answer == "B" and ok1.task is Task.MCQ and ok1.data_type is DataType.SINGLE_CLUE_TOOL
    assert ok1.video.path == os.path.join(str(tmp_path), "videos", "a.mp4")
    assert ok1.clues == [(3.0, 4.5)] and ok1.extra["clue_texts"] == ["a green flash"]
    assert ok2.answer == "C" and ok2.data_type is DataType.MULTI_CLUE_NO_TOOL and ok2.clues == [(1.0, 2.0), (5.0, 6.0)]
    assert tg.task is Task.TEMPORAL_GROUNDING and tg.answer == "[2, 7.25]" and tg.clues == [(2.0, 7.25)]

    assert skips.total == 7
    assert skips.counts == {"bad_field": 3, "bad_answer": 1, "escapes_root": 1, "bad_row": 1, "bad_json": 1}
    named = {sample_id for sample_id, _, _ in skips.examples}
    assert {"badtype", "badanswer", "reversed", "escape"} <= named


def test_seeker_row_round_trip():
    sample = Sample(
        id="s1", question="Which shape?", answer="A", video=VideoRef("v/s1.mp4"), data_type=DataType.MULTI_CLUE_TOOL,
        options=["A. circle", "B. square"], duration_s=30.0, clues=[(1.0, 2.0), (10.0, 11.5)],
        key_frames=[KeyFrame(1.5, {"circle": [(0.1, 0.2, 0.6, 0.7)]})], source="clue_multi_w_tool",
        extra={"clue_texts": ["one", "two"]},
    )
    path_row = sample_to_seeker_row(sample)
    from vo3rl.data.seeker import seeker_row_to_sample

    assert seeker_row_to_sample(json.loads(json.dumps(path_row)), "x") == sample


# --- Seeker SFT chats ------------------------------------------------------------------------------


def test_seeker_sft_chat(tmp_path):
    row = {
        "doc_id": "chat1",
        "data_source": "clue_single_w_tool",
        "messages": [
            {"role": "system", "content": "Be careful."},
            {"role": "user", "content": "<video>\nWhat colour flashes?\nA. red\nB. green"},
            {"role": "assistant", "content": '<think>look closer</think>\n<grounding>{"temporal_segment": [3, 5], "sampling_strategy": "fine"}</grounding>\n'},
            {"role": "user", "content": "<video>\nCrop at 2 fps, 4 frames, 3 s to 5 s."},
            {"role": "assistant", "content": "<think>green it is</think>\n<answer>B</answer>\n"},
        ],
        "videos": [{"url": "v.mp4", "crop": [-1, -1]}, {"url": "v.mp4", "crop": [3, 5], "sample": "fine"}],
    }
    bad = dict(row, doc_id="chat2", videos=row["videos"][:1])
    path = write_jsonl(tmp_path / "sft.jsonl", [row, bad])
    skips = SkipLog()
    examples = list(read_sft(path, "seeker_sft", data_root=str(tmp_path), skips=skips))
    assert len(examples) == 1 and skips.counts == {"bad_turn": 1} and skips.examples[0][0] == "chat2"
    ex = examples[0]
    assert ex.protocol == "video_o3" and ex.sample.answer == "B" and ex.sample.options == ["A. red", "B. green"]
    assert ex.sample.question.startswith("What colour flashes?")
    assert ex.sample.extra["system_prompt"] == "Be careful."
    assert [t.role for t in ex.turns] == ["user", "assistant", "user", "assistant"]
    assert ex.turns[0].video == VideoUse("global") and ex.turns[2].video == VideoUse("fine", 3.0, 5.0)
    assert ex.turns[0].text.startswith("<video>")  # released chats keep their literal text
    assert ex.sample.video.path == os.path.join(str(tmp_path), "v.mp4")


# --- STGR ------------------------------------------------------------------------------------------


def test_stgr_rows(tmp_path):
    base = {"source": "stgr", "video_path": "clips/x.mp4", "key_frames": [{"idx": 7, "time": 3.5, "path": "f7.jpg"}, {"idx": 2, "time": 1.0, "path": "f2.jpg"}]}
    rows = [
        dict(base, id="mcq", task="General video QA MCQ", question="Who waves?\nA. the man\nB. the dog", answer="B",
             key_items={"7": {"dog": [[0.1, 0.2, 0.5, 0.6]]}, "2": {"man": [[0.0, 0.0, 0.5, 0.5]]}}),
        dict(base, id="tg", task="temporal QA", question="When does it jump?", answer="[4.0, 9.5]", key_items={}),
        dict(base, id="tgmcq", task="temporal QA (MCQ)", question="When?\nA. early\nB. late", answer="B\n[6, 8]", key_items={}),
        dict(base, id="pix", task="General video QA Free-form", question="Describe.", answer="a dog", image_size=[200, 100],
             key_items={"7": {"dog": [[20, 10, 100, 50]]}}),
        {"id": "img", "task": "visual QA", "question": "?", "answer": "x", "image_path": "a.jpg"},
        dict(base, id="badkey", task="General video QA Free-form", question="?", answer="x", key_items={"99": {"a": [[0, 0, 1, 1]]}}),
        dict(base, id="oddtask", task="karaoke", question="?", answer="x"),
    ]
    skips = SkipLog()
    samples = {s.id: s for s in read_stgr(write_jsonl(tmp_path / "stgr.jsonl", rows), skips=skips)}
    assert set(samples) == {"mcq", "tg", "tgmcq", "pix"}
    assert skips.counts == {"unsupported": 1, "bad_field": 2}
    mcq = samples["mcq"]
    assert mcq.task is Task.MCQ and mcq.options == ["A. the man", "B. the dog"] and mcq.answer == "B"
    assert [kf.time_s for kf in mcq.key_frames] == [1.0, 3.5]  # time order
    assert mcq.key_frames[1].boxes == {"dog": [(0.1, 0.2, 0.5, 0.6)]}
    assert samples["tg"].task is Task.TEMPORAL_GROUNDING and samples["tg"].answer == "[4, 9.5]" and samples["tg"].clues == [(4.0, 9.5)]
    assert samples["tg"].data_type is DataType.TEMPORAL_GROUNDING
    assert samples["tgmcq"].answer == "B\n[6, 8]" and samples["tgmcq"].clues == [(6.0, 8.0)]
    # Pixels / (200, 100): (20/200, 10/100, 100/200, 50/100).
    assert samples["pix"].key_frames[1].boxes == {"dog": [(0.1, 0.1, 0.5, 0.5)]}


def test_stgr_sft_example(tmp_path):
    row = {"id": "r1", "task": "General video QA MCQ", "question": "Q?\nA. a\nB. b", "answer": "A", "video_path": "x.mp4",
           "reasoning_process": "The <obj>cup</obj><box>[1,2,3,4]</box>at<t>2.0</t>s is red.", "key_frames": [], "key_items": {}}
    (ex,) = read_sft(write_jsonl(tmp_path / "s.jsonl", [row]), "stgr_sft")
    assert ex.protocol == "open_o3" and ex.turns[0] == ChatTurn("user", None, VideoUse("open_o3"))
    assert ex.turns[1].text == "<think>The <obj>cup</obj><box>[1,2,3,4]</box>at<t>2.0</t>s is red.</think><answer>A</answer>"


# --- verl rows and conversion ----------------------------------------------------------------------


def test_seeker_verl_parquet_round_trip(tmp_path):
    rows = [seeker_row("a"), seeker_row("b", data_source="clue_multi_w_tool", frame_fps=2.0, video="frames/b"),
            seeker_row("c", data_source="temporal_grounding", options=[], solution={"answer": "[1, 2]", "clue": [{"timestamp": [1, 2], "text": "x"}]}),
            seeker_row("bad", solution={"answer": "Z", "clue": []})]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    report = seeker_to_verl(src, str(tmp_path / "rl.parquet"))
    assert report.written == 3 and report.skips.counts == {"bad_answer": 1}
    verl = list(read_verl(str(tmp_path / "rl.parquet")))
    assert [s.id for s in verl] == ["a", "b", "c"] and verl[1].video == VideoRef("frames/b", 2.0)
    back = verl_to_seeker(str(tmp_path / "rl.parquet"), str(tmp_path / "back.jsonl"))
    assert back.written == 3
    assert list(read_seeker(str(tmp_path / "back.jsonl"))) == list(read_seeker(src, skips=SkipLog()))


def test_foreign_verl_row_is_rebuilt(tmp_path):
    row = {"data_source": "clue_single_wo_tool", "prompt": [{"role": "user", "content": "<video>\nPick one.\nA. up\nB. down"}],
           "videos": [{"video": "file://v.mp4"}], "ability": "mcq", "reward_model": {"style": "rule", "ground_truth": "down"},
           "extra_info": {"index": 0, "id": "f1"}}
    write_rows(str(tmp_path / "f.parquet"), [row])
    (sample,) = read_verl(str(tmp_path / "f.parquet"), data_root=str(tmp_path))
    assert sample.id == "f1" and sample.question == "Pick one.\nA. up\nB. down" and sample.answer == "B"
    assert sample.options == ["A. up", "B. down"] and sample.data_type is DataType.SINGLE_CLUE_NO_TOOL
    assert sample.video.path == os.path.join(str(tmp_path), "v.mp4")


def test_project_samples_round_trip(tmp_path):
    sample = Sample(id="p", question="q", answer="[1, 2]", video=VideoRef("a.mp4", 3.0), task=Task.TEMPORAL_GROUNDING,
                    data_type=DataType.TEMPORAL_GROUNDING, clues=[(1.0, 2.0)], key_frames=[KeyFrame(1.5, {"x": [(0, 0, 1, 1)]})])
    path = write_jsonl(tmp_path / "s.jsonl", [sample_to_dict(sample)])
    assert list(read_samples(path, "samples")) == [sample]
    report = convert_file(path, "samples", str(tmp_path / "s.seeker.jsonl"), "seeker")
    assert report.written == 1
    assert list(read_seeker(str(tmp_path / "s.seeker.jsonl"))) == [replace(sample, source="temporal_grounding")]


# --- benchmarks --------------------------------------------------------------------------------------


def test_mcq_benchmark_styles(tmp_path):
    rows = [
        # VideoMME style: lettered options, letter answer, videoID without suffix, non-numeric duration.
        {"question_id": "mme-1", "videoID": "abc", "duration": "short", "task_type": "Counting",
         "question": "How many?", "options": ["A. 1", "B. 2", "C. 3", "D. 4"], "answer": "C"},
        # MLVU style: candidates as plain texts, answer as text, numeric duration.
        {"video": "mlvu_1.mp4", "duration": 123.5, "question": "Where?", "candidates": ["park", "home"], "answer": "home"},
        # Video-Holmes style: options as a dict.
        {"Question ID": 9, "video ID": "h9", "Question": "Why?", "Options": {"B": "rain", "A": "sun"}, "Answer": "(A)"},
        {"question_id": "broken", "video": "x.mp4", "question": "?", "options": ["A. a"], "answer": "Q"},
    ]
    skips = SkipLog()
    samples = list(read_mcq(write_jsonl(tmp_path / "b.jsonl", rows), data_root=str(tmp_path / "vids"), skips=skips, source="bench"))
    assert [s.id for s in samples] == ["mme-1", "b.jsonl:2", "9"]
    mme, mlvu, holmes = samples
    assert mme.answer == "C" and mme.duration_s is None and mme.extra == {"task_type": "Counting", "duration": "short"}
    assert mme.video.path == os.path.join(str(tmp_path), "vids", "abc.mp4")
    assert mlvu.options == ["A. park", "B. home"] and mlvu.answer == "B" and mlvu.duration_s == 123.5
    assert holmes.options == ["A. sun", "B. rain"] and holmes.answer == "A" and holmes.source == "bench"
    assert skips.counts == {"bad_answer": 1}


def test_lvbench_file_one_sample_per_question(tmp_path):
    """LVBench's video_info.meta.jsonl: a video per line, its questions inside, options as lines."""
    lines = [{"key": "sxWc", "type": "entertainment", "qa": [
                 {"uid": "u1", "question": "What year appears first?\n(A) 1636\n(B) 1366\n(C) 1363\n(D) 1633",
                  "answer": "B", "question_type": ["key information retrieval", "entity recognition"],
                  "time_reference": "00:15-00:19"},
                 {"uid": "u2", "question": "No options here?", "answer": "A", "question_type": ["reasoning"]}]},
             {"key": "k2", "qa": [{"uid": "u3", "question": "Who?\n(A) me\n(B) you", "answer": "(A)",
                                   "question_type": ["entity recognition"]}]},
             {"key": "k3"}]
    skips = SkipLog()
    samples = list(read_samples(write_jsonl(tmp_path / "video_info.meta.jsonl", lines), "lvbench", str(tmp_path), skips))
    assert [(s.id, s.answer, s.video.path) for s in samples] == [
        ("u1", "B", str(tmp_path / "sxWc.mp4")), ("u3", "A", str(tmp_path / "k2.mp4"))]
    first = samples[0]
    assert first.question == "What year appears first?" and first.options == ["A. 1636", "B. 1366", "C. 1363", "D. 1633"]
    assert first.extra["question_type"] == "key information retrieval" and first.source == "lvbench"
    assert skips.counts == {"bad_field": 1, "bad_row": 1}  # u2 has no options; k3 no qa list


def test_longvideobench_mmvu_and_videommmu_rows(tmp_path):
    rows = [  # LongVideoBench: candidates and the right one's index
        {"id": "lvb1", "video_path": "86CxyhFV9MI.mp4", "question": "What is in the box?", "candidates": ["a cat", "a hat"],
         "correct_choice": 1, "question_category": "E2O", "duration_group": 600},
        # MMVU: choices as a dict, the video as its download URL
        {"id": "mmvu1", "video": "https://huggingface.co/datasets/x/resolve/main/videos/Art/3.mp4?download=1",
         "question": "Which style?", "choices": {"A": "baroque", "B": "gothic"}, "answer": "B",
         "question_type": "multiple-choice"},
        {"id": "mmvu2", "video": "https://h/v/4.mp4", "question": "Explain.", "answer": "because",
         "question_type": "open-ended"},
        # VideoMMMU: no video field, the file is named by the id
        {"id": "Art_Theory_1", "question": "Which period?", "options": ["early", "late"], "answer": "A",
         "question_type": "multiple-choice"}]
    skips = SkipLog()
    lvb, mmvu, mmmu = read_mcq(write_jsonl(tmp_path / "rows.jsonl", rows), data_root=str(tmp_path), skips=skips)
    assert (lvb.answer, lvb.options, lvb.extra) == ("B", ["A. a cat", "B. a hat"], {"question_category": "E2O", "duration_group": 600})
    assert mmvu.answer == "B" and mmvu.video.path == str(tmp_path / "3.mp4")
    assert mmmu.video.path == str(tmp_path / "Art_Theory_1.mp4") and mmmu.answer == "A"
    assert skips.counts == {"bad_field": 1}  # the open-ended MMVU row has no options


def test_vstar_row(tmp_path):
    row = {"vid": "v42", "domain": "sports", "fps": 25, "width": 200, "height": 100, "frame_count": 500,
           "question": "What does the player hold?", "chain": "<think>..</think>", "object": "ball", "answer": "a ball",
           "temporal_question": "When?", "timestamps": [4.0, 6.0], "spatial_question": "Where?",
           "bboxes": [{"5.0_125": {"xmin": 50, "ymin": 25, "xmax": 100, "ymax": 75}}, {"4.0_100": {"xmin": 0, "ymin": 0, "xmax": 20, "ymax": 10}}]}
    (sample,) = read_vstar(write_jsonl(tmp_path / "vstar.jsonl", [row]))
    assert sample.task is Task.FREE_FORM and sample.video.path == "v42.mp4" and sample.duration_s == 20.0
    assert sample.clues == [(4.0, 6.0)]
    assert [(kf.time_s, kf.boxes) for kf in sample.key_frames] == [
        (4.0, {"ball": [(0.0, 0.0, 0.1, 0.1)]}), (5.0, {"ball": [(0.25, 0.25, 0.5, 0.75)]})]
    assert sample.extra["temporal_question"] == "When?"


# --- chat JSONL, paths, skips, validation ----------------------------------------------------------


def test_chat_jsonl_round_trip(tmp_path):
    sample = Sample(id="c", question="q", answer="A", video=VideoRef("videos/c.mp4"), options=["A. x", "B. y"], clues=[(1.0, 2.0)])
    example = SFTExample(sample, [ChatTurn("user", None, VideoUse("global")), ChatTurn("assistant", "<think>t</think>\n<grounding>{}</grounding>\n"),
                                  ChatTurn("user", None, VideoUse("medium", 1.0, 2.0)), ChatTurn("assistant", "<think>t</think>\n<answer>A</answer>\n")])
    path = str(tmp_path / "c.jsonl")
    assert write_examples(path, [example]) == 1
    assert list(read_examples(path)) == [example]
    (resolved,) = read_sft(path, "chat", data_root=str(tmp_path))
    assert resolved.sample.video.path == os.path.join(str(tmp_path), "videos", "c.mp4")


def test_resolve_video_path(tmp_path):
    root = str(tmp_path)
    assert resolve_video_path("a/b.mp4", root, "s") == os.path.join(root, "a", "b.mp4")
    assert resolve_video_path("file://a.mp4", None, "s") == "a.mp4"
    assert resolve_video_path(os.path.join(root, "x.mp4"), root, "s") == os.path.join(root, "x.mp4")
    for bad in ("../x.mp4", "a/../../x.mp4", "/etc/x.mp4"):
        with pytest.raises(SampleError) as info:
            resolve_video_path(bad, root, "s7")
        assert info.value.reason.startswith("escapes_root") and info.value.sample_id == "s7"
    with pytest.raises(SampleError):
        resolve_video_path("", root, "s")


def test_skip_log_counts_names_and_warns(caplog):
    skips = SkipLog(stage="unit", max_examples=2, max_warnings=2)
    with caplog.at_level(logging.WARNING):
        for i in range(4):
            skips.add_error(SampleError(f"id{i}", "bad_answer: nope"))
    assert skips.counts == {"bad_answer": 4} and skips.total == 4
    assert skips.examples == [("id0", "bad_answer", "nope"), ("id1", "bad_answer", "nope")]
    assert "id0" in caplog.text and "id3" not in caplog.text  # warnings stop after max_warnings
    assert skips.summary() == "unit: skipped 4 (bad_answer=4)"


def test_check_sample_video(tmp_path):
    path = write_cfr_mp4(str(tmp_path / "v.mp4"), n_frames=40, fps=4)  # 10 s
    good = Sample(id="g", question="q", answer="A", video=VideoRef(path), duration_s=10.4, clues=[(2.0, 3.0)])
    assert check_sample_video(good).duration_s == pytest.approx(10.0)
    cases = {
        "bad_metadata": Sample(id="d", question="q", answer="A", video=VideoRef(path), duration_s=60.0),
        "bad_field": Sample(id="c", question="q", answer="A", video=VideoRef(path), clues=[(30.0, 31.0)]),
        "missing": Sample(id="m", question="q", answer="A", video=VideoRef(str(tmp_path / "gone.mp4"))),
    }
    for reason, sample in cases.items():
        with pytest.raises(SampleError) as info:
            check_sample_video(sample)
        assert info.value.reason.startswith(reason) and info.value.sample_id == sample.id
