"""Every PromQL expression of a generated dashboard, and Grafana's variable substitution done the
way Grafana does it for Prometheus, so the expressions can be sent to a real Prometheus."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Grafana's built-in interval variables, fixed to values that suit a TSDB a minute old scraped every
# second (Grafana computes them from the time range and the scrape interval).
BUILTINS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "5m"}


@dataclass(frozen=True, slots=True)
class Expr:
    dashboard: str
    panel: str
    ref: str
    expr: str
    instant: bool


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    query: str
    regex: str
    multi: bool


def panels(doc: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for p in doc.get("panels", []):
        yield p
        yield from p.get("panels", [])  # collapsed rows keep their panels inside


def expressions(name: str, doc: Mapping[str, Any]) -> list[Expr]:
    out = []
    for p in panels(doc):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append(Expr(name, p.get("title", "?"), t.get("refId", "?"), t["expr"], bool(t.get("instant"))))
    return out


def variables(doc: Mapping[str, Any]) -> list[Variable]:
    out = []
    for v in doc.get("templating", {}).get("list", []):
        if v.get("type") != "query":
            continue
        query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        out.append(Variable(v["name"], query, v.get("regex", ""), bool(v.get("multi") or v.get("includeAll"))))
    return out


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace ``$name`` / ``${name}`` (longest names first) and Grafana's built-ins."""
    for k, v in BUILTINS.items():
        expr = expr.replace(k, v)
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    return expr


def variable_value(values: Sequence[str], multi: bool) -> str:
    """Grafana's Prometheus formatting: one value as is; several as a regex alternation, each
    special character escaped for a regex inside a PromQL string (two backslashes)."""
    if not values:
        raise AssertionError("variable has no values")
    if not multi:
        return values[0]
    return "(" + "|".join(re.sub(r"([\\^$.|?*+()\[\]{}'])", r"\\\\\1", v) for v in values) + ")"


_LABEL_VALUES = re.compile(r"^label_values\((?:(?P<expr>.*),\s*)?(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\)$", re.S)
_QUERY_RESULT = re.compile(r"^query_result\((?P<expr>.*)\)$", re.S)


def parse_variable_query(query: str) -> tuple[str, str, str]:
    """("label_values", match expr, label) or ("query_result", expr, "")."""
    if m := _LABEL_VALUES.match(query.strip()):
        return "label_values", m["expr"] or "", m["label"]
    if m := _QUERY_RESULT.match(query.strip()):
        return "query_result", m["expr"], ""
    raise ValueError(f"unsupported variable query {query!r}")


def query_result_lines(result: Sequence[Mapping[str, Any]]) -> list[str]:
    """Grafana's text for each query_result() series: ``{a="x",b="y"} value timestamp_ms``."""
    lines = []
    for r in result:
        labels = ",".join(f'{k}="{v}"' for k, v in r["metric"].items())
        ts, val = r["value"]
        lines.append(f"{{{labels}}} {val} {int(float(ts) * 1000)}")
    return lines


def apply_regex(regex: str, texts: Sequence[str]) -> list[str]:
    """A Grafana variable regex (``/.../``, JavaScript named groups) applied to option texts: the
    ``value`` group, else the first group, else the whole match."""
    if not regex:
        return list(texts)
    body = regex[1:regex.rindex("/")] if regex.startswith("/") else regex
    rx = re.compile(body.replace("(?<", "(?P<"))
    out = []
    for t in texts:
        if m := rx.search(t):
            gd = m.groupdict()
            out.append(gd.get("value") or (m.group(1) if m.groups() else m.group(0)))
    return out
