"""The evaluation report as one self-contained HTML page with inline SVG charts.

Rendered on request from ``report.json`` and the job's per-step metrics
(the loss curve), so a report written by an older version renders with
today's page. Everything from the data (texts, labels, answers) is escaped.
"""

from __future__ import annotations

from typing import Any

from tailorml.charts import CSS, bar_chart, heatmap, line_chart, reliability_chart
from tailorml.charts import escape as _e

CLASSIFICATION_FIGURES = ("accuracy", "macro_f1")
GENERATION_FIGURES = ("exact_match", "bleu", "chrf", "rouge_l")


def _figure(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.4f}" if isinstance(value, float) and abs(value) < 10 else f"{value:.4g}"


def _comparison_table(base: dict[str, Any], tuned: dict[str, Any], keys: tuple[str, ...]) -> str:
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td>{_figure(base.get(k))}</td><td>{_figure(tuned.get(k))}</td>"
        f"<td>{_delta(base.get(k), tuned.get(k))}</td></tr>"
        for k in keys
        if k in base or k in tuned
    )
    return (
        f"<table><tr><th>metric</th><th>base</th><th>tuned</th><th>change</th></tr>{rows}</table>"
    )


def _delta(before: Any, after: Any) -> str:
    if not isinstance(before, int | float) or not isinstance(after, int | float):
        return ""
    return f"{after - before:+.4g}"


def _loss_curve(history: list[dict[str, Any]]) -> str:
    series: dict[str, list[tuple[float, float]]] = {"train_loss": [], "valid_loss": []}
    for row in history:
        for key, points in series.items():
            if isinstance(row.get(key), int | float) and isinstance(row.get("step"), int):
                points.append((float(row["step"]), float(row[key])))
    return line_chart({k: v for k, v in series.items() if v}, "Loss per step")


def _classification(report: dict[str, Any]) -> list[str]:
    ev = report["evaluation"]
    labels = report.get("labels") or []
    base, tuned = ev["base"], ev["tuned"]
    per_class = "".join(
        f"<tr><td>{_e(label)}</td>"
        + "".join(
            f"<td>{_figure(side['per_class'][label][k])}</td>"
            for side in (base, tuned)
            for k in ("precision", "recall")
        )
        + f"<td>{tuned['per_class'][label]['support']}</td></tr>"
        for label in labels
    )
    return [
        "<h2>Base against tuned</h2>",
        f"<p class='muted'>Base: {_e(base.get('how', 'the base model'))}. Majority label "
        f"({_e(ev['majority']['label'])}): accuracy {_figure(ev['majority']['accuracy'])}.</p>",
        _comparison_table(base, tuned, CLASSIFICATION_FIGURES),
        bar_chart(
            list(CLASSIFICATION_FIGURES),
            {
                "base": [base[k] for k in CLASSIFICATION_FIGURES],
                "tuned": [tuned[k] for k in CLASSIFICATION_FIGURES],
            },
            "Base and tuned",
        ),
        "<h2>Per class</h2><table><tr><th>class</th><th>base precision</th><th>base recall</th>"
        f"<th>tuned precision</th><th>tuned recall</th><th>support</th></tr>{per_class}</table>",
        "<h2>Confusion matrices</h2>",
        heatmap(tuned["confusion_matrix"], labels, labels, "Tuned model"),
        heatmap(base["confusion_matrix"], labels, labels, "Base (nearest centroid)"),
        "<h2>Calibration</h2>",
        f"<p>Expected calibration error of the tuned model: <b>{_figure(tuned.get('ece'))}</b> "
        "(0 is perfect: its 80 %-sure answers are right 80 % of the time).</p>",
        reliability_chart(tuned.get("reliability") or [], "Reliability diagram (tuned)"),
    ]


def _generation(report: dict[str, Any]) -> list[str]:
    ev = report["evaluation"]
    base, tuned = ev["base"], ev["tuned"]
    keys = (*GENERATION_FIGURES, "valid_loss", "perplexity")
    return [
        "<h2>Base against tuned</h2>",
        f"<p class='muted'>Greedy answers to {ev['n']} held-out prompts, scored against the "
        f"reference; base: {_e(base.get('how', 'the base model'))}. Loss and perplexity are "
        "training's, on the same split. BLEU, chrF and ROUGE-L are 0-100.</p>",
        _comparison_table(base, tuned, keys),
        _judge(ev.get("judge")),
        bar_chart(
            ["bleu", "chrf", "rouge_l"],
            {
                "base": [base[k] for k in ("bleu", "chrf", "rouge_l")],
                "tuned": [tuned[k] for k in ("bleu", "chrf", "rouge_l")],
            },
            "Base and tuned (0-100)",
        ),
    ]


def _judge(verdict: dict[str, Any] | None) -> str:
    if not verdict:
        return ""
    low, high = verdict["ci95"]
    return (
        f"<p>Judge: the tuned model wins <b>{verdict['win_rate']:.2f}</b> (95 % CI "
        f"{low:.2f}-{high:.2f}) of {verdict['n']} prompts against the base: {verdict['wins']} "
        f"wins, {verdict['losses']} losses, {verdict['ties']} ties ({_e(verdict['how'])}).</p>"
    )


def _samples(report: dict[str, Any]) -> str:
    if not report.get("samples"):
        return ""
    rows = "".join(
        f"<tr><td><pre>{_e(s['input'])}</pre></td><td><pre>{_e(s['reference'])}</pre></td>"
        f"<td><pre>{_e(s['base'])}</pre></td><td><pre>{_e(s['tuned'])}</pre></td></tr>"
        for s in report["samples"]
    )
    return (
        "<h2>Samples, side by side</h2><table><tr><th>input</th><th>reference</th><th>base</th>"
        f"<th>tuned</th></tr>{rows}</table>"
    )


def _highlighted(tokens: list[str], scores: list[float]) -> str:
    """Tokens shaded by attribution: green towards the answer, red against it."""
    peak = max((abs(v) for v in scores), default=0.0) or 1.0
    parts = []
    for token, value in zip(tokens, scores, strict=False):
        alpha = min(abs(value) / peak, 1.0) * 0.8
        color = f"rgba(27,158,119,{alpha:.2f})" if value >= 0 else f"rgba(217,95,2,{alpha:.2f})"
        parts.append(f"<span style='background:{color}' title='{value:+.4f}'>{_e(token)}</span>")
    return " ".join(parts)


def _explanations(report: dict[str, Any]) -> str:
    items = report.get("explanations") or []
    if not items:
        return ""
    out = [
        "<h2>Why: attributions and the nearest training records</h2><p class='muted'>As the "
        "served model answers: each token's integrated-gradients share of the answer (green "
        "for, red against) and the training records closest to the input in the model's own "
        "representation.</p>"
    ]
    for item in items:
        out.append(f"<h3>{_e(item.get('label', ''))}</h3>")
        if item.get("tokens"):
            out.append(f"<p>{_highlighted(item['tokens'], item['attributions'])}</p>")
        else:
            out.append(f"<pre>{_e(item['input'])}</pre>")
        rows = "".join(
            f"<tr><td>{n.get('line')}</td><td>{_figure(n.get('similarity'))}</td>"
            f"<td>{_e(n.get('label', n.get('answer', '')))}</td><td>{_e(n.get('text', ''))}</td></tr>"
            for n in item.get("neighbors") or []
        )
        if rows:
            out.append(
                "<table><tr><th>line</th><th>similarity</th><th>label / answer</th>"
                f"<th>training record</th></tr>{rows}</table>"
            )
    return "".join(out)


def render_report_html(report: dict[str, Any], history: list[dict[str, Any]], title: str) -> str:
    """The page of ``report`` (``tailorml.eval.report``) with the loss curve of ``history``
    (the job's metrics events, in order)."""
    training = report.get("training") or {}
    cards = {
        "task": report.get("task"),
        "method": report.get("method"),
        "base model": report.get("base_model"),
        "held-out records": report.get("n_validation"),
        "best step": training.get("best_step"),
    }
    sections = [
        f"<h1>Evaluation report: {_e(title)}</h1>",
        "<div class='cards'>"
        + "".join(f"<div class='card'>{_e(k)}<b>{_e(v)}</b></div>" for k, v in cards.items())
        + "</div>",
        "".join(f"<p class='muted'>{_e(note)}</p>" for note in report.get("notes") or []),
        "<h2>Training</h2>",
        _loss_curve(history),
    ]
    if report.get("evaluation"):
        if report["task"] == "classification":
            sections += _classification(report)
        else:
            sections += _generation(report)
    sections.append(_samples(report))
    sections.append(_explanations(report))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Evaluation report: "
        f"{_e(title)}</title><style>{CSS}</style></head><body>"
        + "".join(sections)
        + "</body></html>"
    )
