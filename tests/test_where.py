"""The --where filter language: translation, refusals, and the output run by Milvus Lite."""

from __future__ import annotations

import pytest

from mmsearch.where import WhereError, translate


@pytest.mark.parametrize("text,expected", [
    ("price < 200000", 'fields["price"] < 200000'),
    ("price < 200000 and brand == 'Minuet'",
     'fields["price"] < 200000 and fields["brand"] == "Minuet"'),
    ("brand in ['Minuet', \"Kaki\"] OR NOT (size >= 42.5)",
     '(fields["brand"] == "Minuet" or fields["brand"] == "Kaki") '
     'or (fields["size"] < 42.5)'),
    ("sale == true and colour not in ['red']",
     'fields["sale"] == true and (fields["colour"] != "red")'),
    ("not (brand == 'a' or price < 3 and not sale == true)",
     '(fields["brand"] != "a" and (fields["price"] >= 3 or fields["sale"] == true))'),
    ("title == 'it\\'s \"quoted\"'", 'fields["title"] == "it\'s \\"quoted\\""'),
])
def test_translation(text, expected):
    """The exact text sent to Milvus. `not` never appears in it: Milvus Lite 2.5.1 runs no
    `not` node, so negations are pushed down to the comparisons (they were `not (...)` while
    mmsearch ran on Milvus Lite 3.x)."""
    assert translate(text) == expected


@pytest.mark.parametrize("text,words", [
    ("", "empty"),
    ("price <", "expected a number"),
    ("price = 3", "cannot read"),
    ("price = 3", "write ==: 'price == 3'"),
    ("price < 1.250.000", "write 1250000 without thousands separators"),
    ("price < 1,250,000", "write 1250000 without thousands separators"),
    ("price < 3 and", "expected a field name"),
    ('price < 3) or (1 == 1', "something extra"),
    ('brand == "x" or id > 0 or path like "%"', "expected ==, !="),
    ("price < 3; drop", "cannot read"),
    ("(price < 3", "expected )"),
    ("brand == Minuet", "expected a number"),
    ("3 < price", "expected a field name"),
])
def test_malformed_or_unsafe_expressions_are_one_line_errors(text, words):
    with pytest.raises(WhereError, match=words.replace("(", r"\(").replace(")", r"\)")) as err:
        translate(text)
    assert "\n" not in str(err.value)


def test_milvus_runs_the_translation(tmp_path):
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(str(tmp_path / "w.db"))
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("fields", DataType.JSON)
    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    params = client.prepare_index_params()
    params.add_index("v", index_type="FLAT", metric_type="L2")
    client.create_collection("items", schema=schema, index_params=params)
    client.insert("items", [
        {"id": 1, "fields": {"price": 150000, "brand": "Minuet"}, "v": [0, 1]},
        {"id": 2, "fields": {"price": 250000, "brand": "Minuet"}, "v": [1, 0]},
        {"id": 3, "fields": {"price": 90000, "brand": "Kaki"}, "v": [1, 1]},
    ])
    client.load_collection("items")

    def ids(where: str) -> list[int]:
        rows = client.query("items", filter=translate(where), output_fields=["id"])
        return sorted(r["id"] for r in rows)

    assert ids("price < 200000 and brand == 'Minuet'") == [1]
    assert ids("brand in ['Kaki'] or price > 200000") == [2, 3]
    assert ids("not (brand == 'Minuet')") == [3]
    assert ids("not (brand == 'Minuet' and price > 200000)") == [1, 3]
    assert ids("not (price < 100000 or brand in ['Kaki'])") == [1, 2]
    assert ids("brand not in ['Kaki', 'Other'] and price >= 250000") == [2]
    client.close()
