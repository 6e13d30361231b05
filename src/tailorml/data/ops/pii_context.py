"""Context words, in Chinese and English, that raise or lower a PII finding's confidence.

A pattern and its checksum say a string *could* be a card number; the words
before it say whether the writer meant one. "卡号" or "card" before a
Luhn-valid number raises it; "订单号" or "tracking number" lowers it, since
one random 16-digit order number in ten passes Luhn. "版本" or "version"
before a dotted quad says it is a version string, not an address; "元" or
"$" next to a number says it is an amount, not a phone.

Only a short window is read (``BEFORE`` characters before the finding,
``AFTER`` after it, lower-cased), so the cost is per finding, not per text.
"""

from __future__ import annotations

import re

BEFORE, AFTER, NAME_BEFORE = 24, 8, 5
RAISE, LOWER = 0.2, 0.4

# Words are separated by "|" (some hold a space: "social security").
_POSITIVE = {
    "PHONE": "电话|手机|号码|联系方式|致电|拨打|来电|热线|座机|传真|微信|联系|phone|tel|mobile|cell"
    "|call|fax|contact|reach|dial|whatsapp|text me|number",
    "CREDIT_CARD": "卡号|信用卡|银行卡|借记卡|刷卡|card|visa|mastercard|amex",
    "CN_ID": "身份证|证件|公民身份|id|identity|resident",
    "IBAN": "iban|账户|账号|汇款|收款|account|bank|wire|transfer",
    "IP_ADDRESS": "ip|地址|服务器|主机|server|host|address|login|ssh|白名单",
    "API_KEY": "key|token|secret|密钥|秘钥|令牌|口令|api",
    "US_SSN": "ssn|social security|社会安全",
    "PERSON": "联系人|姓名|我叫|名叫|叫做|收件人|负责人|联络人|经办人|感谢|谢谢|转交|先生|女士|小姐"
    "|经理|老师|医生|主任|总监|师傅",
}
# Words that say the number is something else: an order, a version, an amount.
_ORDER = (
    "订单|单号|快递|物流|运单|编号|流水号|工单|档案号|批次|发票|券"
    "|order|tracking|invoice|ref|case no|batch|record|serial|sku"
)
_VERSION = "版本|固件|升级|version|ver.|build|release|firmware"
_AMOUNT = "¥|￥|$|€|£|元|块|人民币|金额|价格|price|total|usd|rmb"
_NEGATIVE = {
    # A number after "card" or "zip" is that, not a phone.
    "PHONE": f"{_ORDER}|{_VERSION}|{_AMOUNT}|card|卡号|ssn|license|licence|zip|postal|邮编",
    "CREDIT_CARD": _ORDER,
    "IP_ADDRESS": _VERSION,
}
# Words that must follow the finding to lower it ("3000元", "1.2.3.4 版本").
_NEGATIVE_AFTER = {
    "PHONE": "元|块|美元|usd|rmb|eur|次|个|件|岁",
    "IP_ADDRESS": "版本|版",
}


def _compile(words: dict[str, str]) -> dict[str, re.Pattern[str]]:
    return {t: re.compile("|".join(map(re.escape, w.split("|")))) for t, w in words.items()}


_POS_RE = _compile(_POSITIVE)
_NEG_RE = _compile(_NEGATIVE)
_NEG_AFTER_RE = _compile(_NEGATIVE_AFTER)
# "key" must not be read inside "keyboard", nor "ip" inside "ship": English words
# are matched only when no ASCII letter touches them (CJK may: Chinese has no spaces).
_ASCII_LETTER = frozenset("abcdefghijklmnopqrstuvwxyz")


def _has(pattern: re.Pattern[str] | None, window: str) -> bool:
    if pattern is None:
        return False
    for m in pattern.finditer(window):
        word = m.group()
        if not word.isascii() or not word[0].isalpha():
            return True
        s, e = m.span()
        if (s == 0 or window[s - 1] not in _ASCII_LETTER) and (
            e == len(window) or window[e] not in _ASCII_LETTER
        ):
            return True
    return False


def adjust(text: str, start: int, end: int, etype: str, confidence: float) -> float:
    """``confidence`` raised by a positive context word near the finding, lowered by a negative one."""
    # A name's context is the word or title right beside it ("联系人：", "经理").
    reach = NAME_BEFORE if etype == "PERSON" else BEFORE
    before = text[max(0, start - reach) : start].lower()
    after = text[end : end + AFTER].lower()
    if _has(_NEG_RE.get(etype), before) or _has(_NEG_AFTER_RE.get(etype), after):
        confidence -= LOWER
    # Both may apply: "订单用卡号 4111..." names an order and a card.
    if _has(_POS_RE.get(etype), before) or (
        etype == "PERSON" and _has(_POS_RE["PERSON"], after[:2])
    ):
        confidence += RAISE
    return round(max(0.0, min(1.0, confidence)), 2)
