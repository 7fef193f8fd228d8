"""Chat files in each layout, written here, read back as conversations; bad rows are named."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from vloom.chat.conversation import Conversation
from vloom.chat.readers import chat_files, detect_layout, read_chat_file
from vloom.doc import Rejected


def png(colour=(200, 30, 30), size=16) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, format="PNG")
    return buf.getvalue()


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def summary(c: Conversation) -> list[tuple[str, list]]:
    return [(t.role, ["<img>" if isinstance(p, bytes) else p for p in t.parts]) for t in c.turns]


def test_llava_jsonl_paths_relative_to_the_file(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(png())
    f = write_jsonl(
        tmp_path / "llava.jsonl",
        [
            {
                "id": "x1",
                "image": "imgs/a.png",
                "conversations": [
                    {"from": "human", "value": "<image>\nWhat colour is it?"},
                    {"from": "gpt", "value": "Red."},
                    {"from": "human", "value": "Sure?"},
                    {"from": "gpt", "value": "Yes."},
                ],
            }
        ],
    )
    [c] = list(read_chat_file(f))
    assert isinstance(c, Conversation) and c.id == "x1"
    assert summary(c) == [
        ("user", ["<img>", "What colour is it?"]),
        ("assistant", ["Red."]),
        ("user", ["Sure?"]),
        ("assistant", ["Yes."]),
    ]
    assert c.images == [png()]


def test_llava_parquet_with_image_bytes_structs(tmp_path):
    rows = [
        {
            "images": [{"bytes": png(), "path": None}, {"bytes": png((0, 0, 200)), "path": None}],
            "conversations": [
                {"from": "human", "value": "<image> and <image>: which is blue?"},
                {"from": "gpt", "value": "The second."},
            ],
        }
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "l.parquet")
    [c] = list(read_chat_file(tmp_path / "l.parquet"))
    assert summary(c)[0] == ("user", ["<img>", "and", "<img>", ": which is blue?"])
    assert c.images[1] == png((0, 0, 200))


def test_cauldron_parquet_images_open_the_first_user_turn(tmp_path):
    rows = [
        {
            "images": [{"bytes": png(), "path": None}],
            "texts": [
                {"user": "Colour?", "assistant": "Red.", "source": "s"},
                {"user": "Shape?", "assistant": "Square.", "source": "s"},
            ],
        }
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")
    [c] = list(read_chat_file(tmp_path / "c.parquet", source="cauldron"))
    assert summary(c) == [
        ("user", ["<img>", "Colour?"]),
        ("assistant", ["Red."]),
        ("user", ["Shape?"]),
        ("assistant", ["Square."]),
    ]
    assert c.source == "cauldron"


def test_openai_messages_parts_data_urls_and_row_images(tmp_path):
    url = "data:image/png;base64," + base64.b64encode(png((0, 200, 0))).decode()
    rows = [
        {
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": url}},
                        {"type": "text", "text": "Colour?"},
                    ],
                },
                {"role": "assistant", "content": [{"type": "text", "text": "Green."}]},
            ]
        },
        {  # HF style: placeholders in string content, images in the row
            "messages": [
                {"role": "user", "content": "<image>What is it?"},
                {"role": "assistant", "content": "A square."},
            ],
            "images": [base64.b64encode(png()).decode()],  # not a data URL: a path -> missing
        },
    ]
    f = write_jsonl(tmp_path / "o.jsonl", rows)
    got = list(read_chat_file(f))
    assert summary(got[0]) == [
        ("system", ["Be brief."]),
        ("user", ["<img>", "Colour?"]),
        ("assistant", ["Green."]),
    ]
    assert got[0].images == [png((0, 200, 0))]
    assert isinstance(got[1], Rejected) and got[1].reason == "image_not_found"


def test_layout_detection():
    assert detect_layout({"conversations", "image"}) == "llava"
    assert detect_layout(["images", "texts"]) == "cauldron"
    assert detect_layout({"messages"}) == "openai"
    assert detect_layout({"text"}) is None


BAD = [
    # (row, reason, field named in the message)
    ({"conversations": [{"from": "human", "value": "Hi"}]}, "no_assistant_turn", "turns"),
    (
        {"conversations": [{"from": "robot", "value": "Hi"}, {"from": "gpt", "value": "x"}]},
        "unknown_role",
        "conversations[0].from",
    ),
    (
        {"conversations": [{"from": "human", "value": "<image> x"}, {"from": "gpt", "value": "y"}]},
        "placeholder_without_image",
        "conversations[0]",
    ),
    (
        {
            "image": "a.png",
            "conversations": [{"from": "human", "value": "x"}, {"from": "gpt", "value": "y"}],
        },
        "image_without_placeholder",
        "conversations",
    ),
    (
        {
            "image": "broken.png",
            "conversations": [
                {"from": "human", "value": "<image>x"},
                {"from": "gpt", "value": "y"},
            ],
        },
        "undecodable_image",
        "turns[0] image 0",
    ),
    (
        {
            "image": "../outside.png",
            "conversations": [
                {"from": "human", "value": "<image>x"},
                {"from": "gpt", "value": "y"},
            ],
        },
        "image_outside_root",
        "image",
    ),
    ({"texts": [{"user": "q"}], "images": []}, "incomplete_turn", "texts[0].assistant"),
    (
        {"messages": [{"role": "user", "content": [{"type": "audio"}]}]},
        "malformed_part",
        "messages[0].content[0].type",
    ),
    ({"foo": 1}, "unknown_layout", "keys"),
    ("{not json", "bad_json", "not JSON"),
]


@pytest.mark.parametrize("row,reason,field", BAD, ids=[b[1] for b in BAD])
def test_bad_rows_are_rejected_with_file_row_and_field(tmp_path, row, reason, field):
    d = tmp_path / "data"
    d.mkdir()
    (d / "a.png").write_bytes(png())
    (d / "broken.png").write_bytes(png()[:40])
    (tmp_path / "outside.png").write_bytes(png())
    f = write_jsonl(d / "bad.jsonl", [row] if isinstance(row, str) else [row])
    [r] = list(read_chat_file(f, layout="auto"))
    assert isinstance(r, Rejected), r
    assert r.reason == reason
    assert str(f) in r.error and "row 0" in r.error and field in r.error
    assert "\n" not in r.error


def test_a_bad_row_does_not_stop_the_file(tmp_path):
    good = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    f = write_jsonl(tmp_path / "m.jsonl", [good, "{oops", {"conversations": []}, good])
    got = list(read_chat_file(f))
    assert [type(g).__name__ for g in got] == [
        "Conversation",
        "Rejected",
        "Rejected",
        "Conversation",
    ]
    assert "row 3" not in got[1].error and "row 1" in got[1].error


def test_chat_files_walks_directories_and_names_missing_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    write_jsonl(tmp_path / "sub" / "b.jsonl", [])
    pq.write_table(pa.table({"messages": [[]]}), tmp_path / "a.parquet")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "state.json").write_text("{}")
    assert [p.name for p in chat_files([tmp_path])] == ["a.parquet", "b.jsonl"]
    assert chat_files([tmp_path / "state.json"]) == [tmp_path / "state.json"]
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        chat_files([tmp_path / "nope.jsonl"])


def test_a_corrupt_file_is_one_named_rejection(tmp_path):
    f = tmp_path / "broken.parquet"
    f.write_bytes(b"PAR1" + b"\0" * 64)
    [r] = list(read_chat_file(f))
    assert isinstance(r, Rejected) and r.reason == "unreadable_file" and str(f) in r.error


def test_llava_instruct_json_array(tmp_path):
    (tmp_path / "a.png").write_bytes(png())
    rows = [
        {
            "id": "000",
            "image": "a.png",
            "conversations": [
                {"from": "human", "value": "What is this?\n<image>"},
                {"from": "gpt", "value": "A red square."},
            ],
        },
        "not a row",
    ]
    (tmp_path / "llava_instruct.json").write_text(json.dumps(rows))
    got = list(read_chat_file(tmp_path / "llava_instruct.json"))
    assert summary(got[0]) == [
        ("user", ["What is this?", "<img>"]),
        ("assistant", ["A red square."]),
    ]
    assert isinstance(got[1], Rejected) and got[1].reason == "bad_json"
    (tmp_path / "obj.json").write_text("{}")
    [r] = list(read_chat_file(tmp_path / "obj.json"))
    assert r.reason == "unreadable_file" and "JSON array" in r.error
