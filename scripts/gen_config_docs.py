"""Generate docs/CONFIGURATION.md from the configuration schema, so the reference cannot drift from the code.

Everything in the document is read from the code: the pydantic models (``config.schema.Config`` and every
registered kind's target model in ``probes.PROBES``) give names, types, bounds, defaults and whether a
field is required; descriptions come from ``Field(description=...)`` where present, else from the
source, in this order: an attribute docstring, a ``- ``field``: text`` bullet of the class docstring (of
the class or of a mixin it inherits), a comment on or just above the field, a sentence of the class
docstring that names the field, and last the trailing comment of the field's line in config/example.yaml,
config/examples/*.yaml or a YAML block of a module docstring. Each kind's section opens with its probe
module's docstring; its stages, failures and evidence are those the module names (docstring or code).
Every YAML example is validated with ``reachwatch.config.load.parse_config`` before it is written.
Secret fields are those typed ``SecretFile``/``SecretEnv`` (``config.secrets``), as the loader reads them.

    .venv/bin/python scripts/gen_config_docs.py            # (re)write docs/CONFIGURATION.md
    .venv/bin/python scripts/gen_config_docs.py --check    # exit 1 if the committed file is stale
    .venv/bin/python scripts/gen_config_docs.py --undocumented   # list fields with no description

``tests/core/test_config_docs.py`` fails when the committed file differs from what this produces.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import re
import sys
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import annotated_types as at
import yaml
from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from reachwatch.config.load import parse_config
from reachwatch.config.schema import Config
from reachwatch.config.secrets import FileKind, field_kind
from reachwatch.config.types import TargetBase, parse_duration
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.probes import PROBES

ROOT = Path(__file__).resolve().parent.parent
TRANSPORT_FAILURES = [
    Failure.CONNECTION_REFUSED,
    Failure.CONNECTION_RESET,
    Failure.GENERIC_TIMEOUT_ERROR,
    Failure.HOST_UNREACHABLE,
    Failure.NETWORK_UNREACHABLE,
    Failure.EOF_ERROR,
]
OUTPUT = ROOT / "docs" / "CONFIGURATION.md"
COMMAND = ".venv/bin/python scripts/gen_config_docs.py"  # what `make docs` runs

# Placeholder values for required fields in the generated minimal examples, by field name. Documentation
# ranges only (RFC 5737 addresses, example.* names). A kind whose required fields these cannot satisfy
# makes the generator stop with a message naming the kind; add a value here (or in KIND_VALUES) then.
PLACEHOLDERS: dict[str, Any] = {
    "host": "server.example.net",
    "port": 443,
    "url": "https://www.example.org/",
    "control_url": "https://speed.example.net/1MiB.bin",
    "front": "cdn.example.com",
    "query": "www.example.org",
    "fingerprint": "0123456789ABCDEF0123456789ABCDEF01234567",
    "bridge": "192.0.2.10:443 0123456789ABCDEF0123456789ABCDEF01234567",
    "public_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "private_key_file": "wg-probe.key",
    "config_file": "client.ovpn",
    "canary": {"host": "canary.example.org", "port": 7},
}
# Last-resort descriptions for fields whose meaning is the same everywhere and that no source documents.
GENERIC = {
    "host": "host name or IP address of the endpoint",
    "port": "the endpoint's port",
    "kind": "selects the probe and the fields below: one of the [kinds](#kinds)",
}
KIND_VALUES: dict[str, dict[str, Any]] = {
    "http": {"url": "http://www.example.org/"},
    "socks5": {"port": 1080},
    "http_proxy": {"port": 3128},
    "shadowsocks": {"port": 8388, "password_file": "shadowsocks.pass"},
    "port_survey": {"secret_file": "canary.secret"},
}

_BULLET = re.compile(r"^\s*[-*]\s+")
_NAME = re.compile(r"``([A-Za-z_][A-Za-z0-9_]*)``")
_HEAD = re.compile(
    r"^\s*``(?P<first>[A-Za-z_]\w*)``(?:\s*\([^()]*\))?"
    r"(?:\s*(?:,|/|\band\b|\bor\b|\+)\s*\(?``[A-Za-z_]\w*``\)?(?:\s*\([^()]*\))?)*\s*(?::\s+|$)"
)


def md(text: str) -> str:
    """reST inline literals (``x``) to Markdown (`x`)."""
    return text.replace("``", "`")


def cell(text: str) -> str:
    """Text fit for one Markdown table cell."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    # outside code spans "<x>" would be read as an HTML tag and vanish
    return "`".join(p if i % 2 else re.sub(r"<(?=[A-Za-z/!])", "&lt;", p) for i, p in enumerate(parts))


def _split_top(text: str, seps: tuple[str, ...]) -> list[tuple[str, str]]:
    """Split at separators outside parentheses and literals; returns (piece, separator that followed)."""
    out: list[tuple[str, str]] = []
    depth, start, i, literal = 0, 0, 0, False
    while i < len(text):
        if text.startswith("``", i):
            literal = not literal
            i += 2
            continue
        ch = text[i]
        if not literal:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth = max(0, depth - 1)
            elif depth == 0:
                for sep in seps:
                    if text.startswith(sep, i):
                        out.append((text[start:i], sep))
                        i += len(sep)
                        start = i
                        break
                else:
                    i += 1
                continue
        i += 1
    out.append((text[start:], ""))
    return out


def bullet_docs(doc: str) -> dict[str, str]:
    """``- ``a``: text; ``b``: text`` bullets -> {field: text}; one bullet may document several fields."""
    bullets: list[str] = []
    for line in doc.splitlines():
        if _BULLET.match(line):
            bullets.append(_BULLET.sub("", line, count=1).strip())
        elif bullets and line.startswith((" ", "\t")) and line.strip():
            bullets[-1] += " " + line.strip()
        elif not line.strip() and bullets:
            bullets.append("")
    docs: dict[str, str] = {}
    for bullet in filter(None, bullets):
        names: list[str] = []
        prev_sep = ""
        for piece, sep in _split_top(bullet, ("; ", ". ")):
            head = _HEAD.match(piece)
            if head:
                shared = piece[head.end() :].strip()
                names = []
                for item, _ in _split_top(piece[: head.end()].rstrip().rstrip(":"), (",", "/", " and ", "+")):
                    found = _NAME.search(item)
                    if not found:
                        continue
                    names.append(found[1])
                    own = re.search(r"\(([^()]*)\)\s*$", item)
                    text = "; ".join(t for t in ((own[1] if own else ""), shared) if t)
                    if text:
                        docs[found[1]] = text
            elif names:  # a clause without field names continues the previous one
                for name in names:
                    if name in docs:
                        docs[name] = docs[name].rstrip(";.") + prev_sep.rstrip() + " " + piece.strip()
            prev_sep = sep
    return {k: v.strip().rstrip(";") for k, v in docs.items()}


_MENTION = re.compile(r"``([A-Za-z_][A-Za-z0-9_]*)(?::[^`]*)?``")  # ``field`` or ``field: value``


def mention_docs(doc: str, names: set[str]) -> dict[str, str]:
    """A docstring sentence (not a bullet) that names fields -> {each field it names: that sentence}.

    A sentence that opens with a field (``private: true`` means ...) is about that field only; the others
    it names in passing (... know it by ``name``) are not documented by it.
    """
    lines = doc.splitlines()
    prose = " ".join(
        line.strip() for line in lines if line.strip() and not line[0].isspace() and not _BULLET.match(line)
    )
    docs: dict[str, str] = {}
    for sentence, sep in _split_top(prose, (". ",)):
        found = [m for m in _MENTION.finditer(sentence) if m[1] in names]
        if found and len(sentence[: found[0].start()].split()) <= 1:
            found = found[:1]
        for m in found:
            docs.setdefault(m[1], sentence.strip() + ("." if sep else ""))
    return docs


@dataclass
class ClassSource:
    """What the source of one model class says about its own fields."""

    own: list[str] = field(default_factory=list)
    attr_docs: dict[str, str] = field(default_factory=dict)
    comments: dict[str, str] = field(default_factory=dict)
    bullets: dict[str, str] = field(default_factory=dict)
    mentions: dict[str, str] = field(default_factory=dict)


@cache
def class_source(cls: type) -> ClassSource:
    info = ClassSource()
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return info
    node = ast.parse(src).body[0]
    assert isinstance(node, ast.ClassDef)
    lines = src.splitlines()
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    body = node.body
    for i, stmt in enumerate(body):
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        name = stmt.target.id
        info.own.append(name)
        nxt = body[i + 1] if i + 1 < len(body) else None
        if (
            isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            info.attr_docs[name] = " ".join(nxt.value.value.split())
        above: list[str] = []
        line = stmt.lineno - 1
        while line >= 1 and lines[line - 1].strip().startswith("#"):
            above.insert(0, comments.get(line, ""))
            line -= 1
        trailing = [
            comments[n] for n in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1) if n in comments
        ]
        text = " ".join(c for c in [*above, *trailing] if c and not c.startswith(("noqa", "type:", "fmt:")))
        if text:
            info.comments[name] = text
    doc = inspect.cleandoc(cls.__doc__ or "") if "__doc__" in cls.__dict__ else ""
    info.bullets = bullet_docs(doc)
    fields = set(getattr(cls, "model_fields", {}))
    info.mentions = mention_docs(doc, fields)
    return info


def model_classes(model: type[BaseModel]) -> list[type[BaseModel]]:
    """The model and the models it inherits from (mixins included), ours only."""
    return [c for c in model.__mro__ if issubclass(c, BaseModel) and not c.__module__.startswith("pydantic")]


_KEY_LINE = re.compile(
    r"^(?P<indent> *)(?P<dash>- +)?(?P<key>[A-Za-z_]\w*):(?: +(?P<value>[^#]*?))? *(?:# *(?P<comment>.*))?$"
)
_ITEM_LISTS = {"targets", "domestic", "international"}


@cache
def example_comments() -> dict[tuple[str, ...], str]:
    """Trailing comments of config/example.yaml, config/examples/*.yaml and the YAML blocks (``::``) in
    the docstrings of the modules that define config models."""
    out: dict[tuple[str, ...], str] = {}
    for path in [ROOT / "config" / "example.yaml", *sorted((ROOT / "config" / "examples").glob("*.yaml"))]:
        if path.exists():
            for key, comment in yaml_comments(path.read_text(encoding="utf-8")).items():
                out.setdefault(key, comment)
    for module in sorted({m.__module__ for m in referring_fields()}):
        doc = sys.modules[module].__doc__ or ""
        for block in re.findall(r"::\n\n((?:(?:    .*)?\n)+)", doc):
            for key, comment in yaml_comments(textwrap.dedent(block)).items():
                out.setdefault(key, comment)
    return out


def yaml_comments(text: str) -> dict[tuple[str, ...], str]:
    """Trailing comments of YAML lines, keyed ("kind", kind, field) or ("field", parent, field).

    Commented-out options (``# key: value  # comment``) count too; commented prose does not.
    """
    out: dict[tuple[str, ...], str] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the mappings we are inside
    items: list[tuple[int, str, list[str]]] = []  # (key indent, list key, [kind]) of open list items
    for raw in text.splitlines():
        body = raw.lstrip()
        commented = body.startswith("#")
        line = raw[: len(raw) - len(body)] + body[1:].removeprefix(" ") if commented else raw
        m = _KEY_LINE.match(line)
        if not m:
            continue
        value, comment = (m["value"] or "").strip(), (m["comment"] or "").strip()
        if commented and not comment and " " in value:
            continue  # a sentence that happens to start with "word:"
        indent = len(m["indent"]) + len(m["dash"] or "")
        floor = len(m["indent"]) if m["dash"] else indent
        while stack and stack[-1][0] >= floor:
            stack.pop()
        while items and (items[-1][0] > indent or (m["dash"] and items[-1][0] >= indent)):
            items.pop()
        if m["dash"]:
            items.append((indent, stack[-1][1] if stack else "", []))
        key = m["key"]
        in_item = bool(items) and items[-1][0] == indent
        if in_item and key == "kind":
            items[-1][2].append(value)
        # "or x" and "optional" only make sense beside the YAML line; "...:" introduces the next line
        if comment and not (comment.endswith(":") or comment.startswith("or ") or comment == "optional"):
            if in_item and items[-1][1] in _ITEM_LISTS and items[-1][2]:
                out.setdefault(("kind", items[-1][2][-1], key), comment)
            elif in_item:
                out.setdefault(("field", items[-1][1], key), comment)
            elif stack:
                out.setdefault(("field", stack[-1][1], key), comment)
        stack.append((indent, key))
    return out


@cache
def referring_fields() -> dict[type, tuple[str, ...]]:
    """Model -> the names of the fields whose values are that model (``canary`` -> CanaryConfig)."""
    refs: dict[type, list[str]] = {}
    todo: list[type[BaseModel]] = [Config, *(spec.target_model for spec in PROBES.values())]
    seen: set[type] = set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            stack: list[Any] = [info.annotation]
            while stack:
                tp = stack.pop()
                if isinstance(tp, type) and issubclass(tp, BaseModel):
                    refs.setdefault(tp, [])
                    if name not in refs[tp]:
                        refs[tp].append(name)
                    todo.append(tp)
                stack.extend(typing.get_args(tp))
    return {model: tuple(names) for model, names in refs.items()}


def _example_doc(model: type[BaseModel], name: str) -> str:
    comments = example_comments()
    kind = typing.get_args(model.model_fields["kind"].annotation) if "kind" in model.model_fields else ()
    keys = [("kind", str(kind[0]), name)] if len(kind) == 1 else []
    keys += [("field", parent, name) for parent in referring_fields().get(model, ())]
    return next((comments[k] for k in keys if k in comments), "")


def field_doc(model: type[BaseModel], name: str) -> str:
    info = model.model_fields[name]
    if info.description:
        return info.description
    classes = model_classes(model)
    # the class that declares the field speaks first, then the rest of the hierarchy
    classes.sort(key=lambda c: name not in class_source(c).own)
    for attr in ("attr_docs", "bullets", "comments", "mentions"):
        for cls in classes:
            text: str | None = getattr(class_source(cls), attr).get(name)
            if text:
                return md(text)
    own = [n for n in model.model_fields if n not in TargetBase.model_fields]
    if issubclass(model, TargetBase) and own == [name] and not class_source(model).bullets:
        return class_intro(model)  # a one-field target: its class docstring is that field's
    return md(_example_doc(model, name))


def field_order(model: type[BaseModel]) -> list[str]:
    """A target's own fields first, then those of option mixins (``TlsOptions``), each in source order.

    A common field the kind declares again with another default (``port_survey``'s hourly ``interval``)
    counts as its own: the kind's table is where a reader looks for what differs."""
    base = TargetBase.model_fields
    own = [n for n in model.model_fields if n not in base or model.model_fields[n].default != base[n].default]
    mixins = [c for c in model_classes(model) if not issubclass(c, TargetBase)]
    from_mixin = {n for c in mixins for n in class_source(c).own}
    return [n for n in own if n not in from_mixin] + [n for n in own if n in from_mixin]


def class_intro(cls: type) -> str:
    """The class docstring without its field bullets."""
    doc = inspect.cleandoc(cls.__doc__ or "") if "__doc__" in cls.__dict__ else ""
    kept = [
        line
        for line in doc.splitlines()
        if not _BULLET.match(line) and not (line.startswith(" ") and line.strip())
    ]
    return md(" ".join(" ".join(kept).split()))


# --- types -------------------------------------------------------------------------------------------


def _meta(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, FieldInfo):
            out.extend(_meta(list(item.metadata)))
        else:
            out.append(item)
    return out


def _is_duration(meta: list[Any]) -> bool:
    return any(isinstance(m, BeforeValidator) and m.func is parse_duration for m in meta)


def _bounds(meta: list[Any], unit: str = "") -> str:
    lo = next((f">= {m.ge}" for m in meta if isinstance(m, at.Ge)), None) or next(
        (f"> {m.gt}" for m in meta if isinstance(m, at.Gt)), None
    )
    hi = next((f"<= {m.le}" for m in meta if isinstance(m, at.Le)), None) or next(
        (f"< {m.lt}" for m in meta if isinstance(m, at.Lt)), None
    )
    if lo and hi and lo.startswith(">=") and hi.startswith("<="):
        return f"{lo[3:]} to {hi[3:]}{unit}"
    return ", ".join(b for b in (lo, hi) if b)


def _lengths(meta: list[Any], what: str) -> list[str]:
    out = []
    for m in meta:
        if isinstance(m, at.MinLen) and m.min_length:
            out.append("non-empty" if m.min_length == 1 else f"at least {m.min_length} {what}")
        if isinstance(m, at.MaxLen):
            out.append(f"at most {m.max_length} {what}")
    return out


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "", text.lower().replace(" ", "-"))


def yaml_type(tp: Any, meta: list[Any], nested: dict[type, None]) -> str:
    """A type in YAML terms: duration, string, integer with bounds, list, mapping, enum values."""
    meta = _meta(meta)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return yaml_type(args[0], [*meta, *args[1:]], nested)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if all(isinstance(a, type) and issubclass(a, TargetBase) for a in members):
            return "[target](#targets) (any kind)"
        return " or ".join(yaml_type(a, meta, nested) for a in members)
    if origin is typing.Literal:
        if len(args) == 1:
            return f"`{args[0]}`"
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (list, tuple, set, frozenset):
        item = args[0] if args else Any
        extra = ", ".join(_lengths(meta, "items"))
        text = f"list of {yaml_type(item, [], nested)}"
        return f"{text} ({extra})" if extra else text
    if origin is dict:
        return f"mapping of {yaml_type(args[0], [], nested)} to {yaml_type(args[1], [], nested)}"
    if tp is bool:
        return "boolean"
    if tp is float and _is_duration(meta):
        return "duration"
    if tp in (int, float):
        bounds = _bounds(meta)
        name = "integer" if tp is int else "number"
        return f"{name}, {bounds}" if bounds else name
    if tp is str:
        parts = ["string", *_lengths(meta, "characters")]
        pattern = next((m.pattern for m in meta if getattr(m, "pattern", None)), None)
        if pattern:
            parts.append(f"matching `{pattern}`")
        return ", ".join(parts)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        nested.setdefault(tp, None)
        return f"mapping: [{tp.__name__}](#{anchor(tp.__name__)})"
    return str(tp)


def _field_type(model: type[BaseModel], name: str, nested: dict[type, None]) -> str:
    info = model.model_fields[name]
    return yaml_type(info.annotation, list(info.metadata), nested)


def duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms" if seconds < 1 else f"{seconds:g}s"


class _Dumper(yaml.SafeDumper):
    """Block style with list items indented under their key, as config files are usually written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def to_yaml(data: Any, flow: bool = False) -> str:
    text: str = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=flow, width=10_000, allow_unicode=True
    )
    return text.removesuffix("...\n").strip() if flow else text


def default_text(model: type[BaseModel], name: str) -> str:
    info = model.model_fields[name]
    if info.is_required():
        return "**required**"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if value == "":
        return '`""`'
    if isinstance(value, BaseModel):
        return (
            "all defaults" if value == type(value)() else f"`{to_yaml(value.model_dump(mode='json'), True)}`"
        )
    if isinstance(value, float) and "duration" in _field_type(model, name, {}):
        return f"`{duration_text(value)}`"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{to_yaml(value, True)}`"


def is_secret(model: type[BaseModel], name: str) -> bool:
    """Declared by the field's type (``config.secrets``): ``SecretFile`` or ``SecretEnv``."""
    return field_kind(model.model_fields[name]) in (FileKind.SECRET_FILE, FileKind.SECRET_ENV)


def _flatten(tp: Any) -> list[Any]:
    """A type and every type argument inside it (``list[X] | None`` -> list[X], X, None)."""
    return [tp, *(inner for arg in typing.get_args(tp) for inner in _flatten(arg))]


def fields_table(
    model: type[BaseModel], names: list[str], nested: dict[type, None], missing: list[str]
) -> str:
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    seen: dict[str, str] = {}
    for name in names:
        doc = field_doc(model, name)
        info = model.model_fields[name]
        ann = info.annotation
        item = next((a for a in _flatten(ann) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if not doc and item is not None and not issubclass(item, TargetBase):
            doc = _split_top(class_intro(item), (". ",))[0][0].rstrip(".") + "."  # its model's first sentence
        if not doc:
            doc = GENERIC.get(name, "")
            if not doc:
                missing.append(f"{model.__module__}.{model.__qualname__}.{name}")
        if doc and doc in seen:
            doc = f"see `{seen[doc]}`"  # one docstring sentence often covers several fields
        else:
            seen.setdefault(doc, name)
        label = f"`{name}`" + (" **secret**" if is_secret(model, name) else "")
        rows.append(
            f"| {label} | {cell(_field_type(model, name, nested))} | {cell(default_text(model, name))} "
            f"| {cell(doc) or '(undocumented)'} |"
        )
    return "\n".join(rows)


# --- examples ------------------------------------------------------------------------------------------


def _placeholder(model: type[BaseModel], name: str, kind: str) -> Any:
    if name in KIND_VALUES.get(kind, {}):
        return KIND_VALUES[kind][name]
    if name in PLACEHOLDERS:
        return PLACEHOLDERS[name]
    info = model.model_fields[name]
    meta = _meta(list(info.metadata))
    tp = info.annotation
    if tp is int:
        return next((m.ge for m in meta if isinstance(m, at.Ge)), 1)
    if tp is float:
        return 30 if _is_duration(meta) else 1.0
    if tp is bool:
        return False
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return {n: _placeholder(tp, n, kind) for n, f in tp.model_fields.items() if f.is_required()}
    return "example"


def example_target(kind: str) -> dict[str, Any]:
    model = PROBES[kind].target_model
    target: dict[str, Any] = {"name": f"my-{kind.replace('_', '-')}", "kind": kind}
    for name, info in model.model_fields.items():
        if name not in target and (info.is_required() or name in KIND_VALUES.get(kind, {})):
            target[name] = _placeholder(model, name, kind)
    return target


def checked_yaml(data: dict[str, Any], what: str, problems: list[str]) -> str:
    """A fenced YAML example, or a visible gap (and a problem) when it would not validate."""
    text = to_yaml(data)
    try:
        parse_config(text, what, ROOT)
    except Exception as exc:
        # the rest of the reference is still written; the kind's section test names the gap
        problems.append(
            f"the generated example for {what} does not validate ({exc}); "
            "add placeholder values for it to PLACEHOLDERS/KIND_VALUES in scripts/gen_config_docs.py"
        )
        return f"(no example: the generated one does not validate: {exc})"
    return f"```yaml\n{text}```"


# --- module docstrings --------------------------------------------------------------------------------


def probe_doc(kind: str) -> tuple[str, str, str]:
    """(purpose, the rest of the module docstring, module path) for a kind."""
    module = sys.modules[PROBES[kind].probe.__module__]
    doc = inspect.cleandoc(module.__doc__ or "")
    paragraphs = doc.split("\n\n")
    purpose = " ".join(paragraphs[0].split())
    purpose = re.sub(r"^(``[a-z0-9_]+``(?: and ``[a-z0-9_]+``)?):\s*", "", purpose)
    path = "daemon/" + module.__name__.replace(".", "/") + ".py"  # the same wherever the package is installed
    return md(purpose[:1].upper() + purpose[1:]), md("\n\n".join(paragraphs[1:])), path


def _code_values(module: str) -> set[str]:
    """Enum members a module's code names (``Stage.CONNECT`` -> "connect")."""
    enums: dict[str, Any] = {"Stage": Stage, "Failure": Failure, "Technique": Technique}
    tree = ast.parse(inspect.getsource(sys.modules[module]))
    return {
        enums[node.value.id][node.attr].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in enums
        and node.attr in enums[node.value.id].__members__
    }


def named_values(doc: str, module: str) -> tuple[list[str], list[str], list[str]]:
    """Stages, failures and evidence the probe module names, in its docstring or its code (enum order)."""
    literals = set(_NAME.findall(doc)) | set(re.findall(r"``([a-z_]+)``", doc))
    stages_line = " ".join(re.findall(r"Stages?:([^\n]*(?:\n[^\n]+)*)", doc))
    in_code = _code_values(module)
    words = literals | set(re.findall(r"\b[a-z_]+\b", stages_line)) | in_code
    return (
        [s.value for s in Stage if s.value in words],
        [f.value for f in Failure if f.value in literals | in_code],
        [t.value for t in Technique if t.value in literals | in_code],
    )


# what a module docstring says success means: "Success means/is ...", "succeeds on ...", else "proves a ..."
_SUCCESS = (
    re.compile(r"^Success\b|\bSuccess (?:means|is)\b|\bsucceeds (?:only )?(?:on|when|if)\b"),
    re.compile(r"\bprove[sn]? (?:a|that|the)\b|\bproof\b"),
)


def success_text(doc: str) -> str:
    """The sentence after the purpose paragraph that says best what success means ("" if none does)."""
    sentences = [
        sentence.strip() + sep.strip()
        for paragraph in doc.split("\n\n")[1:]
        for sentence, sep in _split_top(" ".join(paragraph.split()), (". ", "? "))
    ]
    for pattern in _SUCCESS:
        for sentence in sentences:
            if pattern.search(sentence):
                text = sentence.removeprefix("Success: ")
                return md(text[:1].upper() + text[1:])
    return ""


# --- the document ----------------------------------------------------------------------------------------

INTRO = f"""# Configuration reference

<!-- Generated by scripts/gen_config_docs.py from the schema and the probe modules: do not edit by hand.
     After changing a model or a probe docstring run `make docs` (or `{COMMAND}`). -->

reachwatch reads one YAML file (`reachwatch run --config FILE`; without one it runs on the embedded
default). `reachwatch validate FILE` checks a file and prints a one-line error naming the field. The
commented `config/example.yaml` shows a full configuration; this page lists every option, generated from
the schema (`daemon/reachwatch/config/schema.py` and one target model per probe in
`daemon/reachwatch/probes/`).

- **Unknown keys are errors**: a typo is never silently ignored.
- **Durations** are written `250ms`, `30s`, `5m`, `2h`, `30d` or as a number of seconds.
- **Relative paths** (every `*_file`) are relative to the config file's directory.
- A reload (`SIGHUP` or `POST /-/reload`) that fails validation keeps the last good configuration.
- Every YAML example below is a complete configuration; `tests/core/test_config_docs.py` validates each.

## Secrets

Fields marked **secret** name where a secret is, never the secret itself: a `*_file` field is a path to a
file that only its owner may read (**mode 0600**, or 0400: the daemon refuses a secret file with any group or
other permission bits, at start, `validate` and reload), a `*_env` field the name of an environment
variable. Keys, passwords, proxy URLs with credentials and `.ovpn` files are never written in the YAML: a
config file gets copied, pasted into bug reports and backed up. Other `*_file` fields (CA bundles,
certificates, the web config) are not secret and need only be readable.
"""


def render() -> tuple[str, list[str], list[str]]:
    """The whole document, the fields that have no description anywhere, and examples that failed."""
    missing: list[str] = []
    problems: list[str] = []
    nested: dict[type, None] = {}
    out = [INTRO]

    minimal = {"vantage": {"name": "my-vantage", "country": "KZ"}, "targets": [example_target("tcp")]}
    out.append(
        "## A minimal configuration\n\n" + checked_yaml(minimal, "the minimal configuration", problems) + "\n"
    )

    out.append("## Top level\n")
    top_fields = list(Config.model_fields)
    out.append(fields_table(Config, top_fields, {}, missing) + "\n")
    for name in top_fields:
        info = Config.model_fields[name]
        ann = info.annotation
        item = typing.get_args(ann)[0] if typing.get_origin(ann) is list else ann
        if typing.get_origin(ann) in (typing.Union, types.UnionType):  # an optional section: X | None
            item = next((a for a in typing.get_args(ann) if a is not type(None)), ann)
        if not (isinstance(item, type) and issubclass(item, BaseModel)):
            continue  # `targets`: its own chapter below
        title = f"`{name}`" + (" (list items)" if typing.get_origin(ann) is list else "")
        out.append(f'<a id="{anchor(item.__name__)}"></a>\n\n### {title}\n')
        intro = class_intro(item)
        if intro:
            out.append(intro + "\n")
        out.append(fields_table(item, list(item.model_fields), nested, missing) + "\n")

    out.append("## Targets\n")
    out.append(
        "Targets (and controls) are a list of mappings; `kind` selects the probe and with it the fields "
        "below. Names are unique across targets and controls.\n"
    )
    out.append(
        '<a id="failures"></a>A failed attempt reports a failure and the stage it happened at, from closed '
        "vocabularies (`daemon/reachwatch/failures.py`). Network errors are classified once, in "
        "`reachwatch.net`, so every kind can report the transport failures "
        + ", ".join(f"`{f.value}`" for f in TRANSPORT_FAILURES)
        + " at the stage where they happen; each kind's section lists the stages it walks and the failures "
        "and local evidence its module names.\n"
    )
    out.append("### Fields every target has\n")
    base_intro = class_intro(TargetBase)
    out.append(base_intro + "\n")
    base_fields = list(TargetBase.model_fields)
    out.append(fields_table(TargetBase, base_fields, nested, missing) + "\n")
    common = {
        **example_target("tcp"),
        "group": "web",
        "labels": {"category": "news"},
        "interval": "15m",
        "timeout": "10s",
        "private": True,
    }
    out.append(
        "With every common field set:\n\n"
        + checked_yaml({"targets": [common]}, "common fields", problems)
        + "\n"
    )
    out.append("### Kinds\n\n| kind | what it tests | module |\n|---|---|---|")
    for kind, spec in PROBES.items():
        purpose, _, path = probe_doc(kind)
        out.append(f"| [`{kind}`](#kind-{anchor(kind)}) | {cell(spec.description or purpose)} | `{path}` |")
    out.append("")
    for kind, spec in PROBES.items():
        model = spec.target_model
        purpose, details, path = probe_doc(kind)
        out.append(f'<a id="kind-{anchor(kind)}"></a>\n\n### `{kind}`\n')
        out.append(f"{purpose}\n\nProbe: [`{path}`](../{path}); target model: `{model.__name__}`.\n")
        intro = class_intro(model)
        if intro:
            out.append(f"**Target.** {intro}\n")
        own = field_order(model)
        if own:
            out.append(fields_table(model, own, nested, missing) + "\n")
        else:
            out.append("No fields beyond those every target has.\n")
        module_doc = inspect.cleandoc(sys.modules[spec.probe.__module__].__doc__ or "")
        success = success_text(module_doc)
        stages, failures, evidence = named_values(module_doc, spec.probe.__module__)
        facts = []
        if success:
            facts.append(f"- **What success means:** {success}")
        if stages:
            facts.append("- **Stages:** " + ", ".join(f"`{s}`" for s in stages))
        own_failures = [f for f in failures if f not in TRANSPORT_FAILURES]
        facts.append(
            "- **Failures:** the [transport failures](#failures)"
            + (", and " + ", ".join(f"`{f}`" for f in own_failures) if own_failures else "")
        )
        if evidence:
            facts.append("- **Local evidence it can mark:** " + ", ".join(f"`{t}`" for t in evidence))
        if facts:
            out.append("\n".join(facts) + "\n")
        if details:
            out.append(
                "<details><summary>How it works (from the probe module)</summary>\n\n"
                + details
                + "\n\n</details>\n"
            )
        out.append(
            "Minimal example:\n\n"
            + checked_yaml({"targets": [example_target(kind)]}, f"kind {kind}", problems)
            + "\n"
        )

    out.append("## Nested settings\n")
    done: set[type] = set()
    while len(done) < len(nested):
        for model in [m for m in nested if m not in done]:
            done.add(model)
            out.append(f'<a id="{anchor(model.__name__)}"></a>\n\n### `{model.__name__}`\n')
            intro = class_intro(model)
            if intro:
                out.append(intro + "\n")
            out.append(fields_table(model, list(model.model_fields), nested, missing) + "\n")
    return "\n".join(out).rstrip() + "\n", sorted(set(missing)), problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/CONFIGURATION.md is stale")
    parser.add_argument("--undocumented", action="store_true", help="list fields without any description")
    args = parser.parse_args(argv)
    text, missing, problems = render()
    for problem in problems:
        print(f"gen_config_docs: {problem}", file=sys.stderr)
    if args.undocumented:
        print("\n".join(missing))
        return 0
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run `make docs` (or `{COMMAND}`)", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(PROBES)} kinds, {len(missing)} undocumented fields)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
