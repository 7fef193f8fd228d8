"""PII masking: e-mail and IP addresses become tags; nothing else changes, nothing is dropped."""

import pytest

from vloom.config import StepConfig
from vloom.curate import CurateError, build_step, run_steps
from vloom.curate.filters.pii import PiiMask
from vloom.doc import Document

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108020000009077"
    "53de0000000c4944415408d763f8cfc000000301010018dd8db00000000049454e44ae426082"
)


def mask(text: str, **kw) -> str:
    return PiiMask(**kw).mask(text)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Write to jane.doe+news@mail.example.org today.", "Write to <EMAIL_ADDRESS> today."),
        ("Ping 8.8.8.8, then 1.1.1.1.", "Ping <IP_ADDRESS>, then <IP_ADDRESS>."),
        ("v6: 2001:4860:4860::8888 works", "v6: <IP_ADDRESS> works"),
        ("Served by [2606:4700:4700::1111]:443.", "Served by [<IP_ADDRESS>]:443."),
    ],
)
def test_addresses_are_masked(text, expected):
    assert mask(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Upgrade to version 1.2.3 or 10.4.22 before Friday.",  # versions are not addresses
        "Build 1.2.3.4.5 of the tool.",  # five dotted numbers: not an address
        "Home router at 192.168.1.1 and loopback 127.0.0.1.",  # private / local
        "Link-local fe80::1 and loopback ::1 stay.",
        "Use std::vector<int> and call a::b::c() at 12:30:45.",  # code and clock times
        "Scores 300.1.1.1 and 999.999.999.999 are out of range.",
        "Meet me @ noon, or mail me at home.",
    ],
)
def test_non_addresses_are_untouched(text):
    assert mask(text) == text


def test_private_ips_masked_on_request_and_tags_configurable():
    text = "Router 192.168.1.1, mail root@localhost.localdomain."
    assert mask(text, only_public_ips=False, ip_tag="[IP]", email_tag="[MAIL]") == (
        "Router [IP], mail [MAIL]."
    )
    assert mask("a@b.co at 8.8.4.4", emails=False) == "a@b.co at <IP_ADDRESS>"
    assert mask("a@b.co at 8.8.4.4", ips=False) == "<EMAIL_ADDRESS> at 8.8.4.4"


def test_step_masks_text_items_keeps_every_document_and_counts():
    docs = [
        Document.from_items("a", ["Contact bob@example.com.", PNG_1x1, "Server 8.8.8.8."]),
        Document.from_items("b", [PNG_1x1]),
        Document.from_items("c", ["Nothing private here, version 2.0.1."]),
        Document.from_items("d", ["Two: x@y.io and z@w.io"]),
    ]
    step = build_step(StepConfig(name="pii"))
    kept, led = run_steps(docs, [step])
    led.check()
    assert [d.id for d in kept] == ["a", "b", "c", "d"] and led.kept == 4
    assert kept[0].texts == ["Contact <EMAIL_ADDRESS>.", None, "Server <IP_ADDRESS>."]
    assert kept[0].images[1] == PNG_1x1
    assert kept[1].texts == [None] and kept[1].images == [PNG_1x1]
    assert kept[2].texts == ["Nothing private here, version 2.0.1."]
    assert led.extra["step_stats"]["pii"] == {"emails": 3, "ips": 1, "docs_masked": 2}


@pytest.mark.parametrize(
    "params, param",
    [({"emails": "sometimes"}, "emails"), ({"ip_tag": 3}, "ip_tag"), ({"phone": True}, "phone")],
)
def test_bad_parameters(params, param):
    with pytest.raises(CurateError) as e:
        build_step(StepConfig.model_validate({"name": "pii", **params}))
    assert "\n" not in str(e.value) and "'pii'" in str(e.value) and param in str(e.value)


def _mask_seconds(text: str) -> float:
    import time

    best = float("inf")
    for _ in range(2):
        t0 = time.perf_counter()
        PiiMask().mask(text)
        best = min(best, time.perf_counter() - t0)
    return best


def test_masking_is_linear_on_hostile_text():
    """A base64 blob with one "@" took 11.8 s at 80 KB (the e-mail pattern re-scanned the
    blob from every word boundary); dotted runs before an "@" over 60 s. Every pattern is
    now bounded (RFC 5321 lengths), so hostile text costs about what prose does."""
    import base64
    import random

    n = 80_000
    b64 = base64.b64encode(random.Random(1).randbytes(n)).decode()[:n]
    prose = ("Mail jane@example.org or call 8.8.8.8 about the 2001:db8::1 box, ok. " * 1200)[:n]
    hostile = {
        "base64_at": b64[: n // 2] + "@" + b64[n // 2 :],
        "dotted_local_part": "a." * (n // 2) + "@",
        "dotted_domain": ("x@" + "a." * 3000 + " ") * (n // 6003),
        "dotted_digits": "1." * (n // 2),
        "digits": "1" * n,
        "hex_colons": "a:" * (n // 2),
        "at_runs": "ab+cd/ef@" * (n // 9),
    }
    base = max(_mask_seconds(prose), 1e-3)
    slow = {k: round(_mask_seconds(t) / base, 1) for k, t in hostile.items()}
    assert all(r <= 20 for r in slow.values()), slow


@pytest.mark.parametrize(
    "text, expected",
    [
        ("to " + "a" * 64 + "@example.com now", "to <EMAIL_ADDRESS> now"),  # 64: the RFC limit
        ("at x@" + "b" * 63 + ".org.", "at <EMAIL_ADDRESS>."),  # a 63-character label
        ("at x@" + "b" * 64 + ".org.", "at x@" + "b" * 64 + ".org."),  # 64: not a label
    ],
)
def test_address_parts_are_bounded_by_rfc_limits(text, expected):
    assert mask(text) == expected
