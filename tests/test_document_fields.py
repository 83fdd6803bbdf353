"""The reader of a document's JSON objects: each way to read a field, and the path its errors name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from view_docs import document, frame, group

from heapdiff.document import decode_value, document_json
from heapdiff.document.fields import Obj, as_int, as_str, list_of
from heapdiff.errors import DocumentError

GROUP = {"n": 3, "s": "x", "null": None, "items": [1, "two"]}


@pytest.mark.parametrize(("read", "want"), [
    (lambda o: o.req("n", as_int), 3),
    (lambda o: o.nullable("null", as_int), None),
    (lambda o: o.nullable("n", as_int), 3),
    (lambda o: o.opt("absent", as_int), None),
    (lambda o: o.opt("null", as_int), None),
    (lambda o: o.opt("s", as_str), "x"),
    (lambda o: o.get("absent", as_str, None), None),  # the default as it is, not converted
    (lambda o: o.get("n", as_int, 7), 3),
    (lambda o: o.where_of("n"), "groups[3].n"),
    (lambda o: "null" in o and "absent" not in o, True),
])
def test_reads(read: Callable[[Obj], Any], want: Any) -> None:
    assert read(Obj(GROUP, "groups[3]")) == want


@pytest.mark.parametrize(("read", "message"), [
    (lambda o: o.req("absent", as_int), "groups[3].absent: missing"),
    (lambda o: o.nullable("absent", as_int), "groups[3].absent: missing"),
    (lambda o: o.req("null", as_int), "groups[3].null: expected an integer, got None"),
    (lambda o: o.get("null", as_int, 7), "groups[3].null: expected an integer, got None"),  # only absence defaults
    (lambda o: o.opt("s", as_int), "groups[3].s: expected an integer, got 'x'"),
    (lambda o: o.req("items", list_of(as_int)), "groups[3].items[1]: expected an integer, got 'two'"),
    (lambda o: o.req("n", Obj).req("x", as_int), "groups[3].n: expected an object, got 3"),
])
def test_errors_name_the_field(read: Callable[[Obj], Any], message: str) -> None:
    with pytest.raises(DocumentError) as e:
        read(Obj(GROUP, "groups[3]"))
    assert str(e.value) == message


def test_the_documents_own_fields_have_bare_paths() -> None:
    doc = Obj({"top": "many"}, "document", root=True)
    with pytest.raises(DocumentError) as e:
        doc.req("top", as_int)
    assert str(e.value) == "top: expected an integer, got 'many'"
    with pytest.raises(DocumentError) as e:
        doc.req("mode", as_str)
    assert str(e.value) == "document.mode: missing"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("text", ["app.exe+0x10"], "groups[1].frames[0].text: expected a string, got ['app.exe+0x10']"),
    ("file", {}, "groups[1].frames[0].file: expected a string, got {}"),
])
def test_a_frame_that_cannot_be_remembered_is_named(field: str, value: Any, message: str) -> None:
    """Frames are decoded once per distinct frame, remembered by their values: a list or an object where a value
    belongs cannot be a key, and is named like any other bad value."""
    good = {"text": "app.exe+0x10", "module": "app.exe", "rva": "0x10", "kernel": True, "line": 1}
    doc = document_json(document([group([frame("app.exe+0x10")], None, (1, 10))] * 2, diff=False, traces=True))
    doc["groups"][0]["frames"] = [good]
    doc["groups"][1]["frames"] = [dict(good, **{field: value})]
    with pytest.raises(DocumentError) as e:
        decode_value(doc)
    assert str(e.value) == message
