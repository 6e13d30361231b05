"""Phone numbers validated by libphonenumber: regions, country codes, the default region."""

from __future__ import annotations

import pytest

from tailorml.data.ops.pii_detect import detect_pii
from tailorml.data.ops.pii_phone import phone_confidence


def phones(text: str, **kwargs: object) -> list[str]:
    return [s.text for s in detect_pii(text, ["PHONE"], **kwargs)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("手机13812345678，随时联系", "13812345678"),
        ("电话+86 138 1234 5678", "+86 138 1234 5678"),
        ("北京办公室：010-6552-9988", "010-6552-9988"),
        ("東京の番号は+81 3-1234-5678です", "+81 3-1234-5678"),
        ("Tokyo office: 03-1234-5678", "03-1234-5678"),
        ("call +1 415-555-2671 after 9", "+1 415-555-2671"),
        ("New York desk (212) 736-5000", "(212) 736-5000"),
        ("London: +44 20 7946 0958", "+44 20 7946 0958"),
        ("London office 020 7946 0958", "020 7946 0958"),
        ("Berlin +49 30 901820", "+49 30 901820"),
        ("Paris : +33 1 42 68 53 00", "+33 1 42 68 53 00"),
        ("Paris 01 42 68 53 00", "01 42 68 53 00"),
        ("香港分公司电话2109 0812", "2109 0812"),
        ("from abroad dial 0044 20 7946 0958", "0044 20 7946 0958"),
    ],
)
def test_international_phones_in_several_regions(text: str, number: str) -> None:
    assert phones(text) == [number], detect_pii(text)


def test_country_code_numbers_are_checked_for_their_region() -> None:
    assert phone_confidence("+81 3-1234-5678", "CN", ()) == 0.9
    # Too short for Japan, though shaped like a number.
    assert phone_confidence("+81 3-12", "CN", ()) == 0.0


def test_the_default_region_decides_numbers_without_a_code() -> None:
    us = "650-253-0000"
    # Valid in the US, not in China: the default region ranks it higher.
    assert phone_confidence(us, "US", ("CN",)) > phone_confidence(us, "CN", ("US",))
    found = {r: detect_pii("see 6502530000 ok", region=r)[0].confidence for r in ("CN", "US")}
    assert found["US"] > found["CN"] >= 0.5
    # A bare run of fewer than 9 digits needs a context word.
    assert phones("see 21090812 ok", region="HK") == []
    assert phones("电话21090812", region="CN") == ["21090812"]


@pytest.mark.parametrize(
    "text",
    [
        "2019 2020 和 2021 年的数据",
        "价格 1380013800 元",
        "订单号 13812345678",
        "v5.11.69.107",
        "10.0.19045.2965",
        "at 10:30:00 on 2021-03-04",
        "from 1997-2005",
    ],
)
def test_numbers_that_are_not_phones(text: str) -> None:
    assert phones(text) == [], detect_pii(text)
