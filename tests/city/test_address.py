"""The address normal form: every common way of typing one address maps to one key."""

from __future__ import annotations

import random

import pytest

from twin.city.address import chinese_to_int, composes, normalize, normalize_name


@pytest.mark.parametrize(
    "typed",
    [
        "临江市江北区人民路128号",
        "临江市江北区人民路１２８号",  # full-width digits
        "临江市 江北区　人民路 128 号",  # spaces, ideographic space
        "临江市江北区人民路128號",  # traditional 號
        "临江市江北区人民路一百二十八号",
        "临江市江北区人民路No.128",
        "临江市江北区人民路No. 128号",
        "临江市江北区人民路#128",
        "临江市江北区人民路128",
    ],
)
def test_variants_share_one_key(typed: str) -> None:
    assert normalize(typed) == "临江市江北区人民路128号"


@pytest.mark.parametrize(("cn", "n"), [("十", 10), ("十五", 15), ("二十", 20), ("一百零八", 108),
                                       ("一百二十八", 128), ("二〇八", 208), ("三千零一", 3001)])  # fmt: skip
def test_chinese_numerals(cn: str, n: int) -> None:
    assert chinese_to_int(cn) == n


def test_road_keys_compose_with_house_numbers() -> None:
    # Generated addresses are keyed as normalize_name(road) + "<n>号"; that must equal the key
    # of the whole text for every road name the key says composes.
    rng = random.Random(3)
    alphabet = "人民路街No.#一二十ＡＢab 12G"  # noqa: RUF001 - full-width on purpose
    for _ in range(2000):
        road = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
        key = normalize_name(road)
        n = rng.randint(1, 999)
        if composes(key):
            assert normalize(f"{road}{n}号") == f"{key}{n}号", road
