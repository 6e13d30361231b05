"""Chinese person names: jieba's part-of-speech tagger, the common surnames, and the words around.

jieba (MIT, already a dependency of the data engine for segmentation) tags
a personal name ``nr``, using its dictionary and, for names it has never
seen, its HMM. Candidates are:

- a word tagged as a name that starts with one of the common surnames and
  is two to four characters long; one of two characters followed by a
  one-character name ("韩文" + "斌") is joined to it;
- a surname that jieba cut off on its own followed by a one- or
  two-character word ("曾" + "豪晓", "万" + "胜利", "司马" + "文静");
- a word of two or three characters that starts with a surname and is not
  in jieba's dictionary, whatever its tag ("舒颖" tagged as an adjective).

Confidence is 0.6 for a word tagged as a name. It is 0.3, doubtful, when
the name is a word of jieba's dictionary (谢谢, 顾客, 白名单, but also
黄志明 and 金光明, so a context word matters), was joined or found without a
name tag, has four characters after a one-character surname, follows a
measure word (这张卡), ends in 记 (a shop: 李锦记) or holds two characters
that transliterate foreign words (霍格堡).

The words around raise or lower it (``NAME_RAISE``, ``NAME_LOWER``): a
word before it (联系人, 我叫, 感谢, 联系, 找, 名单 ...), a title or verb
right after it (经理, 老师, 先生, 同学, 说, 表示, 认为, 觉得), or a
neighbour in a list (``张三、李四``, ``A和B``, ``A与B``) that is itself a
name raise it; a company or place word right after it (门店, 品牌,
公司, 路, 市, 战役) lowers it. ``min_confidence`` (0.5) then decides.
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
# What makes a name doubtful, so that it needs a context word to count:
AMBIGUOUS = 0.3
NAME_RAISE, NAME_LOWER = 0.2, 0.4
NAME_BEFORE = 5  # characters read before a name for a context word
_MEASURE_BEFORE = frozenset("这那一两几每某哪各半")  # "这张卡": 张 counts, it is no surname
# Characters that spell foreign words (斯特, 格堡, 尔顿) and are rare in Chinese given names.
_TRANSLIT = frozenset("斯特格堡尔夫姆顿逊蒂")
_CJK_RE = re.compile(r"[\u4e00-\u9fff]")
_CJK_ONLY = re.compile(r"[\u4e00-\u9fff]+")
_NAME_FLAGS = frozenset(("nr", "nrfg", "nrt"))
# Given names the tagger left untagged as names: adjectives, nouns, verbs, adverbs, unknown.
_GIVEN_FLAGS = frozenset(("a", "n", "ng", "nz", "x", "v", "ag", "vn", "j", "i", "l", "zg", "d"))
# Tags of words that are never names, even out of the dictionary: numbers, particles...
_NEVER_FLAGS = frozenset(("m", "q", "mq", "u", "uj", "ul", "uz", "ug", "uv", "ud", "p", "c", "r"))
# Characters that cannot be a one-character given name (function words).
_NOT_GIVEN = frozenset("的了着过和与及或在是有被把给对从向也都就还又很")

# Context, read around a candidate:
_BEFORE_WORDS = (
    "联系人|姓名|我叫|名叫|叫做|收件人|负责人|联络人|经办人|感谢|谢谢|转交|联系|找|名单"
).split("|")
_AFTER_WORDS = (
    "先生|女士|小姐|经理|老师|医生|主任|总监|师傅|同学|同志|教授|律师|阿姨|叔叔|说|表示|认为|觉得"
).split("|")
# A company, a product or a place, right after the words: 李锦记的门店, 霍格堡战役.
_ORG_AFTER = re.compile(
    r"(?:的)?(?:门店|旗舰店|专卖店|品牌|产品|广告|官网|公司|集团|工厂|战役)"
    r"|[路街镇市县省村](?![长])"
)
_LIST_JOINERS = frozenset("、和与及")
_CONTEXT_WORDS = frozenset(_BEFORE_WORDS) | frozenset(_AFTER_WORDS)

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


def _doubtful(text: str, start: int, word: str) -> bool:
    given = word[_surname_len(word) :]
    return (
        # jieba's dictionary tags many ordinary words nr (谢谢, 顾客, 白名单, 阳光).
        _freq.get(word, 0) > 0  # (jieba also stores every word's prefixes, at 0)
        or (len(word) == 4 and _surname_len(word) == 1)
        or (start > 0 and text[start - 1] in _MEASURE_BEFORE)
        or word.endswith("记")
        or sum(ch in _TRANSLIT for ch in given) >= 2
    )


def _candidates(text: str) -> list[list[Any]]:
    """``[start, end, confidence]`` of each candidate name, before its context is read."""
    pairs = [(p.word, p.flag) for p in _tagger().cut(text)]
    out: list[list[Any]] = []
    pos = 0
    i = 0
    while i < len(pairs):
        word, flag = pairs[i]
        start = pos
        pos += len(word)
        i += 1
        nxt, nxt_flag = pairs[i] if i < len(pairs) else ("", "")
        surname = _surname_len(word)
        given_ok = (
            1 <= len(nxt) <= 2
            and _CJK_ONLY.fullmatch(nxt) is not None
            and (nxt_flag in _NAME_FLAGS or nxt_flag in _GIVEN_FLAGS)
            and not (len(nxt) == 1 and nxt in _NOT_GIVEN)
        )
        if len(word) == surname > 0 and given_ok:
            # "曾" + "豪晓", "司马" + "文静": jieba split a name into surname and given name.
            pos += len(nxt)
            i += 1
            name = word + nxt
            sure = nxt_flag in _NAME_FLAGS and not _doubtful(text, start, name)
            out.append([start, pos, BASE_CONFIDENCE if sure else BASE_CONFIDENCE - AMBIGUOUS])
        elif flag in _NAME_FLAGS and 2 <= len(word) <= 4 and surname:
            if (
                len(word) == surname + 1
                and len(nxt) == 1
                and nxt_flag in _NAME_FLAGS | {"zg", "ng"}
                and _CJK_RE.match(nxt)
                and nxt not in _NOT_GIVEN
            ):
                # "韩文" + "斌": a two-character name jieba knew, and a third character.
                pos += 1
                i += 1
                out.append([start, pos, BASE_CONFIDENCE - AMBIGUOUS])
                continue
            doubtful = _doubtful(text, start, word)
            out.append([start, pos, BASE_CONFIDENCE - AMBIGUOUS if doubtful else BASE_CONFIDENCE])
        elif (
            surname
            and 2 <= len(word) <= 3
            and len(word) > surname
            and flag not in _NEVER_FLAGS
            and _CJK_ONLY.fullmatch(word)
            and word not in _freq
            and word[-1] not in _NOT_GIVEN
        ):
            # A word jieba's HMM made and tagged otherwise ("舒颖" as an adjective).
            out.append([start, pos, BASE_CONFIDENCE - AMBIGUOUS])
    return out


def _context(text: str, start: int, end: int) -> float:
    """What the words around ``text[start:end]`` add to its confidence."""
    before = text[max(0, start - NAME_BEFORE) : start]
    after = text[end : end + 4]
    delta = 0.0
    if _ORG_AFTER.match(after):
        delta -= NAME_LOWER
    if any(w in before for w in _BEFORE_WORDS) or after.startswith(tuple(_AFTER_WORDS)):
        delta += NAME_RAISE
    return delta


def find_cn_names(text: str, min_confidence: float = 0.5) -> Iterator[tuple[int, int, float]]:
    """``(start, end, confidence)`` of Chinese person names in ``text``, context included.

    ``min_confidence`` is only used for lists: a neighbour that reaches it raises the others.
    """
    if not _CJK_RE.search(text):
        return
    # A title or a context word is not a name itself ("师傅说", "谢谢").
    found = [c for c in _candidates(text) if text[c[0] : c[1]] not in _CONTEXT_WORDS]
    for c in found:
        c[2] = round(max(0.0, min(1.0, c[2] + _context(text, c[0], c[1]))), 2)
    # A list of names: "孔鑫、叶爱民、何淼", "韩文斌与宋海涛". Raised once, from either side.
    listed = [
        (a, b)
        for a, b in zip(found, found[1:], strict=False)
        if b[0] == a[1] + 1 and text[a[1]] in _LIST_JOINERS
    ]
    raised: set[int] = set()
    for _ in range(2):  # twice, so a list of three reaches its far end
        for a, b in listed:
            for x, y in ((a, b), (b, a)):
                if y[2] >= min_confidence > x[2] and id(x) not in raised:
                    x[2] = round(min(1.0, x[2] + NAME_RAISE), 2)
                    raised.add(id(x))
    yield from ((start, end, confidence) for start, end, confidence in found)
