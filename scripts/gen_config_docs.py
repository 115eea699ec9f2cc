"""Generate docs/CONFIGURATION.md by walking the configuration schema, so the reference cannot drift.

Everything comes from the models in ``daemon/reachwatch/config/``: their docstrings, each field's
``Field(description=...)``, type, bounds and default, and whether its type is ``SecretFile``,
``SecretEnv`` or ``PublicFile``. Each kind's section opens with its probe module's docstring (the probe
says how it works; the stages, failures and evidence it names are listed). Every YAML example is
validated with ``reachwatch.config.load.parse_config`` before it is written.

    .venv/bin/python scripts/gen_config_docs.py            # (re)write docs/CONFIGURATION.md
    .venv/bin/python scripts/gen_config_docs.py --check    # exit 1 if the committed file is stale

``tests/core/test_config_docs.py`` fails when the committed file differs from what this produces, and
when a field has no description.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types as at
import yaml
from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo

from reachwatch.config.load import parse_config
from reachwatch.config.schema import Config
from reachwatch.config.secrets import FileKind, field_kind
from reachwatch.config.targets import TARGET_MODELS
from reachwatch.config.types import TargetBase, parse_duration
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.probes import PROBES

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "docs" / "CONFIGURATION.md"
COMMAND = ".venv/bin/python scripts/gen_config_docs.py"  # what `make docs` runs
TRANSPORT_FAILURES = [
    Failure.CONNECTION_REFUSED,
    Failure.CONNECTION_RESET,
    Failure.GENERIC_TIMEOUT_ERROR,
    Failure.HOST_UNREACHABLE,
    Failure.NETWORK_UNREACHABLE,
    Failure.EOF_ERROR,
]

# Placeholder values for required fields in the generated minimal examples, by field name. Documentation
# ranges only (RFC 5737 addresses, example.* names). A kind whose required fields these cannot satisfy
# leaves a visible gap naming the kind; add a value here (or in KIND_VALUES) then.
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
KIND_VALUES: dict[str, dict[str, Any]] = {
    "http": {"url": "http://www.example.org/"},
    "socks5": {"port": 1080},
    "http_proxy": {"port": 3128},
    "shadowsocks": {"port": 8388, "password_file": "shadowsocks.pass"},
    "port_survey": {"secret_file": "canary.secret"},
    "tor_bridge": {"bridge_file": "bridges/my-bridge.txt"},  # a private bridge's line stays out of the YAML
}


def md(text: str) -> str:
    """reST inline literals (``x``) to Markdown (`x`)."""
    return text.replace("``", "`")


def cell(text: str) -> str:
    """Text fit for one Markdown table cell."""
    parts = " ".join(text.split()).replace("|", "\\|").split("`")
    # outside code spans "<x>" would be read as an HTML tag and vanish
    return "`".join(p if i % 2 else re.sub(r"<(?=[A-Za-z/!])", "&lt;", p) for i, p in enumerate(parts))


def anchor(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "", text.lower().replace(" ", "-"))


def docstring(cls: type) -> str:
    """A class's own docstring as Markdown paragraphs ("" when it inherits one)."""
    doc = inspect.cleandoc(cls.__doc__ or "") if "__doc__" in vars(cls) else ""
    return md("\n\n".join(" ".join(p.split()) for p in doc.split("\n\n") if p.strip()))


# --- types, defaults -------------------------------------------------------------------------------------


def _meta(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(_meta(list(item.metadata)) if isinstance(item, FieldInfo) else [item])
    return out


def _is_duration(meta: list[Any]) -> bool:
    return any(isinstance(m, BeforeValidator) and m.func is parse_duration for m in meta)


def _bounds(meta: list[Any]) -> str:
    lo = next((f">= {m.ge}" for m in meta if isinstance(m, at.Ge)), None) or next(
        (f"> {m.gt}" for m in meta if isinstance(m, at.Gt)), None
    )
    hi = next((f"<= {m.le}" for m in meta if isinstance(m, at.Le)), None) or next(
        (f"< {m.lt}" for m in meta if isinstance(m, at.Lt)), None
    )
    if lo and hi and lo.startswith(">=") and hi.startswith("<="):
        return f"{lo[3:]} to {hi[3:]}"
    return ", ".join(b for b in (lo, hi) if b)


def _lengths(meta: list[Any], what: str) -> list[str]:
    out = []
    for m in meta:
        if isinstance(m, at.MinLen) and m.min_length:
            out.append("non-empty" if m.min_length == 1 else f"at least {m.min_length} {what}")
        if isinstance(m, at.MaxLen):
            out.append(f"at most {m.max_length} {what}")
    return out


def yaml_type(tp: Any, meta: list[Any], nested: dict[type, None]) -> str:
    """A type in YAML terms: duration, string, integer with bounds, list, mapping, enum values."""
    meta = _meta(meta)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return yaml_type(args[0], [*meta, *args[1:]], nested)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        if all(isinstance(a, type) and issubclass(a, TargetBase) for a in members):
            return "[target](#targets) (any kind)"
        return " or ".join(yaml_type(a, meta, nested) for a in members)
    if origin is typing.Literal:
        return f"`{args[0]}`" if len(args) == 1 else "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (list, tuple, set, frozenset):
        extra = ", ".join(_lengths(meta, "items"))
        text = f"list of {yaml_type(args[0] if args else Any, [], nested)}"
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
        return ", ".join([*parts, f"matching `{pattern}`"] if pattern else parts)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        nested.setdefault(tp, None)
        return f"mapping: [{tp.__name__}](#{anchor(tp.__name__)})"
    return str(tp)


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


def default_text(info: FieldInfo, type_text: str) -> str:
    if info.is_required():
        return "**required**"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if value == "":
        return '`""`'
    if isinstance(value, BaseModel):
        same = value == type(value)()
        return "all defaults" if same else f"`{to_yaml(value.model_dump(mode='json'), True)}`"
    if isinstance(value, float) and "duration" in type_text:
        return f"`{duration_text(value)}`"
    return f"`{to_yaml(list(value) if isinstance(value, tuple) else value, True)}`"


# --- tables ------------------------------------------------------------------------------------------------


def field_order(model: type[BaseModel]) -> list[str]:
    """A target's own fields (and common ones it redeclares, e.g. ``private: true`` for bridges), those of
    option mixins (``TlsOptions``) last; ``kind`` and the other common fields have their own table."""
    redeclared = [n for n in vars(model).get("__annotations__", {}) if n in TargetBase.model_fields]
    own = [n for n in model.model_fields if n not in TargetBase.model_fields]
    own += [n for n in redeclared if n != "kind"]
    mixins = {
        name
        for cls in model.__mro__
        if isinstance(cls, type) and issubclass(cls, BaseModel) and not issubclass(cls, TargetBase)
        for name in vars(cls).get("__annotations__", {})
    }
    return [n for n in own if n not in mixins] + [n for n in own if n in mixins]


def fields_table(model: type[BaseModel], names: list[str], nested: dict[type, None]) -> str:
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for name in names:
        info = model.model_fields[name]
        type_text = yaml_type(info.annotation, list(info.metadata), nested)
        secret = field_kind(info) in (FileKind.SECRET_FILE, FileKind.SECRET_ENV)
        label = f"`{name}`" + (" **secret**" if secret else "")
        rows.append(
            f"| {label} | {cell(type_text)} | {cell(default_text(info, type_text))} "
            f"| {cell(md(info.description or ''))} |"
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
    model = TARGET_MODELS[kind]
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
        problems.append(
            f"the generated example for {what} does not validate ({exc}); "
            "add placeholder values for it to PLACEHOLDERS/KIND_VALUES in scripts/gen_config_docs.py"
        )
        return f"(no example: the generated one does not validate: {exc})"
    return f"```yaml\n{text}```"


# --- what the probe module says --------------------------------------------------------------------------


def probe_doc(kind: str) -> tuple[str, str, str, str]:
    """(purpose, the rest of the probe module's docstring, its path, its module name) for a kind."""
    module = sys.modules[PROBES[kind].probe.__module__]
    paragraphs = inspect.cleandoc(module.__doc__ or "").split("\n\n")
    purpose = re.sub(r"^(``[a-z0-9_]+``(?: and ``[a-z0-9_]+``)?):\s*", "", " ".join(paragraphs[0].split()))
    path = "daemon/" + module.__name__.replace(".", "/") + ".py"  # the same wherever the package is installed
    return md(purpose[:1].upper() + purpose[1:]), md("\n\n".join(paragraphs[1:])), path, module.__name__


def named_values(doc: str, module: str) -> tuple[list[str], list[str], list[str]]:
    """Stages, failures and evidence the probe module names in its docstring or uses in its code."""
    enums: dict[str, Any] = {"Stage": Stage, "Failure": Failure, "Technique": Technique}
    in_code = {
        enums[node.value.id][node.attr].value
        for node in ast.walk(ast.parse(inspect.getsource(sys.modules[module])))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in enums
        and node.attr in enums[node.value.id].__members__
    }
    literals = set(re.findall(r"``([a-z_]+)``", doc)) | in_code
    stages_line = " ".join(re.findall(r"Stages?:([^\n]*(?:\n[^\n]+)*)", doc))
    words = literals | set(re.findall(r"\b[a-z_]+\b", stages_line))
    return (
        [s.value for s in Stage if s.value in words],
        [f.value for f in Failure if f.value in literals],
        [t.value for t in Technique if t.value in literals],
    )


def kind_section(kind: str, nested: dict[type, None], problems: list[str]) -> str:
    model = TARGET_MODELS[kind]
    purpose, details, path, module = probe_doc(kind)
    model_path = "daemon/" + model.__module__.replace(".", "/") + ".py"
    out = [
        f'<a id="kind-{anchor(kind)}"></a>\n\n### `{kind}`\n',
        f"{purpose}\n\nProbe: [`{path}`](../{path}); target model: [`{model.__name__}`](../{model_path}).\n",
    ]
    intro = docstring(model)
    if intro:
        out.append(f"**Target.** {intro}\n")
    names = field_order(model)
    out.append(
        fields_table(model, names, nested) + "\n" if names else "No fields beyond those every target has.\n"
    )
    stages, failures, evidence = named_values(inspect.cleandoc(sys.modules[module].__doc__ or ""), module)
    facts = []
    if stages:
        facts.append("- **Stages:** " + ", ".join(f"`{s}`" for s in stages))
    own_failures = [f for f in failures if f not in TRANSPORT_FAILURES]
    facts.append(
        "- **Failures:** the [transport failures](#failures)"
        + (", and " + ", ".join(f"`{f}`" for f in own_failures) if own_failures else "")
    )
    if evidence:
        facts.append("- **Local evidence it can mark:** " + ", ".join(f"`{t}`" for t in evidence))
    out.append("\n".join(facts) + "\n")
    if details:
        out.append(
            f"<details><summary>How it works (from the probe module)</summary>\n\n{details}\n\n</details>\n"
        )
    example = checked_yaml({"targets": [example_target(kind)]}, f"kind {kind}", problems)
    out.append(f"Minimal example:\n\n{example}\n")
    return "\n".join(out)


# --- the document ----------------------------------------------------------------------------------------

INTRO = f"""# Configuration reference

<!-- Generated by scripts/gen_config_docs.py from the config schema and the probe modules: do not edit by
     hand. After changing a model or a probe docstring run `make docs` (or `{COMMAND}`). -->

reachwatch reads one YAML file (`reachwatch run --config FILE`; without one it runs on the embedded
default). `reachwatch validate FILE` checks a file and prints a one-line error naming the field. The
commented `config/example.yaml` shows a full configuration; this page lists every option, generated from
the schema (`daemon/reachwatch/config/schema.py`, and one target model per kind in
`daemon/reachwatch/config/targets/`).

- **Unknown keys are errors**: a typo is never silently ignored.
- **Durations** are written `250ms`, `30s`, `5m`, `2h`, `30d` or as a number of seconds.
- **Relative paths** are relative to the config file's directory.
- A reload (`SIGHUP` or `POST /-/reload`) that fails validation keeps the last good configuration.
- Every YAML example below is a complete configuration; `tests/core/test_config_docs.py` validates each.

## Secrets

Fields marked **secret** name where a secret is, never the secret itself: a file that only its owner may
read (**mode 0600**, or 0400: the daemon refuses a secret file with any group or other permission bits, at
start, `validate` and reload), or the name of an environment variable that must be set. Keys, passwords,
proxy URLs with credentials and `.ovpn` files are never written in the YAML: a config file gets copied,
pasted into bug reports and backed up. Other file fields (CA bundles, certificates, the web config, relay
lists) are not secret and need only be readable. Which is which is declared by the field's type
(`SecretFile`, `SecretEnv`, `PublicFile` in `daemon/reachwatch/config/secrets.py`); the loader, the log
redaction and this page all read it from there.
"""


def render() -> tuple[str, list[str]]:
    """The whole document, and the examples that failed to validate."""
    problems: list[str] = []
    nested: dict[type, None] = {}
    out = [INTRO]
    minimal = {"vantage": {"name": "my-vantage", "country": "KZ"}, "targets": [example_target("tcp")]}
    out.append(
        "## A minimal configuration\n\n" + checked_yaml(minimal, "the minimal configuration", problems) + "\n"
    )

    out.append("## Top level\n")
    out.append(fields_table(Config, list(Config.model_fields), {}) + "\n")
    for name, info in Config.model_fields.items():
        ann = info.annotation
        item = typing.get_args(ann)[0] if typing.get_origin(ann) is list else ann
        if typing.get_origin(item) in (typing.Union, types.UnionType):  # an optional section
            item = next((a for a in typing.get_args(item) if a is not type(None)), item)
        if not (isinstance(item, type) and issubclass(item, BaseModel)):
            continue  # `targets`: its own chapter below
        title = f"`{name}`" + (" (list items)" if typing.get_origin(ann) is list else "")
        out.append(f'<a id="{anchor(item.__name__)}"></a>\n\n### {title}\n')
        if docstring(item):
            out.append(docstring(item) + "\n")
        out.append(fields_table(item, list(item.model_fields), nested) + "\n")

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
    out.append(docstring(TargetBase) + "\n")
    out.append(fields_table(TargetBase, list(TargetBase.model_fields), nested) + "\n")
    common = {**example_target("tcp"), "group": "web", "labels": {"category": "news"}}
    common |= {"interval": "15m", "timeout": "10s", "private": True}
    out.append(
        "With every common field set:\n\n"
        + checked_yaml({"targets": [common]}, "common fields", problems)
        + "\n"
    )
    out.append("### Kinds\n\n| kind | what it tests | module |\n|---|---|---|")
    for kind in TARGET_MODELS:
        purpose, _, path, _ = probe_doc(kind)
        out.append(
            f"| [`{kind}`](#kind-{anchor(kind)}) | {cell(PROBES[kind].description or purpose)} | `{path}` |"
        )
    out.append("")
    out.extend(kind_section(kind, nested, problems) for kind in TARGET_MODELS)

    out.append("## Nested settings\n")
    done: set[type] = set()
    while len(done) < len(nested):
        for model in [m for m in nested if m not in done]:
            done.add(model)
            out.append(f'<a id="{anchor(model.__name__)}"></a>\n\n### `{model.__name__}`\n')
            if docstring(model):
                out.append(docstring(model) + "\n")
            out.append(fields_table(model, list(model.model_fields), nested) + "\n")
    return "\n".join(out).rstrip() + "\n", problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/CONFIGURATION.md is stale")
    args = parser.parse_args(argv)
    text, problems = render()
    for problem in problems:
        print(f"gen_config_docs: {problem}", file=sys.stderr)
    if args.check:
        if (OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else "") != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run `make docs` (or `{COMMAND}`)", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(TARGET_MODELS)} kinds)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
