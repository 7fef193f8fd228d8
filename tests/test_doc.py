import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vloom.doc import (
    Document,
    Rejected,
    SchemaError,
    list_shards,
    read_documents,
    read_shard,
    write_documents,
    write_shard,
)


def _doc(i: int) -> Document:
    return Document.from_items(
        f"d{i}",
        ["intro text", b"\x89PNG fake bytes", "after the image"],
        source="test",
        url=f"u{i}",
        metadata={"k": i},
    )


def test_round_trip_keeps_items_and_metadata(tmp_path):
    docs = [_doc(i) for i in range(5)]
    write_shard(tmp_path / "a.parquet", docs)
    back = list(read_documents(tmp_path))
    assert back == docs
    assert back[0].texts == ["intro text", None, "after the image"]
    assert back[0].images[1] == b"\x89PNG fake bytes"
    assert back[0].n_images == 1 and back[0].text == "intro text\n\nafter the image"


def test_shard_is_readable_as_plain_obelics_parquet(tmp_path):
    write_shard(tmp_path / "a.parquet", [_doc(0)])
    t = pq.read_table(tmp_path / "a.parquet")
    assert t.schema.field("texts").type == pa.list_(pa.string())
    assert t.schema.field("images").type == pa.list_(pa.binary())
    row = t.to_pylist()[0]
    for text, image in zip(row["texts"], row["images"], strict=True):
        assert (text is None) != (image is None)


def test_write_documents_shards_by_size(tmp_path):
    paths = write_documents(tmp_path, [_doc(i) for i in range(7)], shard_size=3)
    assert [p.name for p in paths] == [
        "shard-00000.parquet",
        "shard-00001.parquet",
        "shard-00002.parquet",
    ]
    assert len(list(read_documents(tmp_path))) == 7


def test_misaligned_document_is_refused_on_write(tmp_path):
    bad = Document(id="x", texts=["a", None], images=[None])
    with pytest.raises(SchemaError, match="texts has 2 items"):
        write_shard(tmp_path / "a.parquet", [bad])
    both = Document(id="y", texts=["a"], images=[b"img"])
    with pytest.raises(SchemaError, match="position 0 holds both"):
        both.validate()


def test_wrong_schema_names_the_file(tmp_path):
    path = tmp_path / "wrong.parquet"
    pq.write_table(pa.table({"text": ["hello"]}), path)
    with pytest.raises(
        SchemaError,
        match=r"wrong\.parquet: not an OBELICS shard, missing column\(s\) texts, images",
    ):
        list(read_shard(path))
    path2 = tmp_path / "types.parquet"
    pq.write_table(pa.table({"texts": [["a"]], "images": [["not binary"]]}), path2)
    with pytest.raises(SchemaError, match="column 'images' has type"):
        list(read_shard(path2))


def test_bad_row_is_rejected_and_reading_goes_on(tmp_path):
    path = tmp_path / "rows.parquet"
    table = pa.table(
        {
            "id": ["ok", "bad", "ok2"],
            "texts": [["a"], ["a", "b"], [None, "c"]],
            "images": [[None], [None], [b"img", None]],
        }
    )
    pq.write_table(table, path)
    out = list(read_shard(path))
    assert isinstance(out[0], Document) and isinstance(out[2], Document)
    assert isinstance(out[1], Rejected) and out[1].reason == "misaligned_items"
    assert "rows.parquet: row 1" in out[1].error


def test_not_parquet_and_missing_paths(tmp_path):
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"this is not parquet")
    with pytest.raises(SchemaError, match="junk.parquet: not a readable Parquet file"):
        list(read_shard(junk))
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        list_shards(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no Parquet shards"):
        list_shards(tmp_path / "empty")
