"""Chinese person names: jieba's part-of-speech tagger, checked against the common surnames.

jieba (MIT, already a dependency of the data engine for segmentation) tags
a personal name ``nr``, using its dictionary and, for names it has never
seen, its HMM. A tagged word is kept when it starts with one of the common
surnames (so "小明" alone or a place tagged by mistake is not redacted) and
is two to four characters long. jieba often splits an unseen name into the
surname and the given name ("曾" + "豪晓"): a surname token followed by a
one- or two-character token tagged as a name or left unknown is joined back.

Confidence is 0.6, raised by a context word (联系人, 我叫, 先生, 经理 ...).
A name that is a word of jieba's dictionary, a surname joined to a
non-name word, or a "surname" after a measure word (这张卡) is doubtful:
0.3, so only a context word makes it count.
Loading jieba's dictionary takes about a second, once per process, which is
why PERSON is opt-in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# The ~400 most common surnames (by population) and the compound ones; 和 is left
# out: as a conjunction it starts far more words than names.
SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝"
    "龚邵万钱严覃武戴莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦"
    "俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲"
    "房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全"
    "佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩明佘池查麻苑迟邝"
)
COMPOUND_SURNAMES = ("欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "令狐")
BASE_CONFIDENCE = 0.6
# What makes a tagged name doubtful, so that it needs a context word to count:
AMBIGUOUS = 0.3
_MEASURE_BEFORE = frozenset("这那一两几每某哪各半")  # "这张卡": 张 counts, it is no surname
_CJK_RE = re.compile(r"[\u4e00-\u9fff]")
_NAME_FLAGS = frozenset(("nr", "nrfg", "nrt"))
# Given names the tagger left untagged as names: adjectives, nouns, unknown.
_GIVEN_FLAGS = frozenset(("a", "n", "ng", "nz", "x", "v", "ag", "vn", "j", "i", "l"))

_posseg: Any = None
_freq: dict[str, int] = {}


def _tagger() -> Any:
    global _posseg, _freq
    if _posseg is None:
        import logging

        import jieba
        import jieba.posseg

        jieba.setLogLevel(logging.WARNING)  # jieba prints its cache loading to stderr otherwise
        jieba.initialize()
        _freq = jieba.dt.FREQ
        _posseg = jieba.posseg
    return _posseg


def _surname_len(word: str) -> int:
    if word[:2] in COMPOUND_SURNAMES:
        return 2
    return 1 if word[0] in SURNAMES else 0


def _confidence(text: str, start: int, word: str, joined: bool) -> float:
    doubtful = (
        joined
        # jieba's dictionary tags many ordinary words nr (谢谢, 顾客, 白名单, 阳光); a
        # customer's name is rarely in it and reaches the tagger through its HMM.
        or _freq.get(word, 0) > 0  # (jieba also stores every word's prefixes, at 0)
        or (len(word) == 4 and _surname_len(word) == 1)
        or (start > 0 and text[start - 1] in _MEASURE_BEFORE)
    )
    return BASE_CONFIDENCE - AMBIGUOUS if doubtful else BASE_CONFIDENCE


def find_cn_names(text: str) -> Iterator[tuple[int, int, float]]:
    """``(start, end, confidence)`` of Chinese person names in ``text``."""
    if not _CJK_RE.search(text):
        return
    pairs = [(p.word, p.flag) for p in _tagger().cut(text)]
    pos = 0
    i = 0
    while i < len(pairs):
        word, flag = pairs[i]
        start = pos
        pos += len(word)
        i += 1
        given, given_flag = pairs[i] if i < len(pairs) else ("", "")
        if (
            len(word) == _surname_len(word) > 0
            and 1 <= len(given) <= 2
            and _CJK_RE.match(given)
            and (given_flag in _NAME_FLAGS or given_flag in _GIVEN_FLAGS)
        ):
            # "曾" + "豪晓", "司马" + "文静": jieba split a name into surname and given name.
            pos += len(given)
            i += 1
            joined = given_flag not in _NAME_FLAGS
            yield start, pos, _confidence(text, start, word + given, joined)
        elif flag in _NAME_FLAGS and 2 <= len(word) <= 4 and _surname_len(word):
            yield start, pos, _confidence(text, start, word, joined=False)
