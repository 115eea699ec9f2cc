"""The /metrics body: prometheus_client's exposition, with per-target families written as text directly.

Why: with 10,000 targets a scrape has ~135,000 samples, and prometheus_client formats each one from a
``Sample`` whose label dict it sorts, validates and escapes name by name (12 µs a sample: 1.8-2.3 s a
scrape). Per-target families here are ``TextFamily``: ``metrics.py`` renders a target's labels once
(a ``LabelSet``) and each ``add`` writes the sample line at once, so a scrape allocates strings rather
than hundreds of thousands of tuples and dicts (whose garbage collection alone cost a third of a
scrape). ``encode`` writes those lines and hands every other family to prometheus_client's encoder.

The output is byte for byte what prometheus_client writes for the same series (a test compares them
for each negotiated format): a ``TextFamily`` is a real ``Metric`` whose ``samples`` are parsed back
from its lines, so ``generate_latest`` and the parsers in the tests see the same series. The fast path
covers the escapings under which valid legacy names are written unchanged (``underscores``, the
default, and ``allow-utf-8``); any other negotiated escaping goes through prometheus_client whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal, NamedTuple, cast

from prometheus_client import exposition
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

_FAST_ESCAPINGS = frozenset({om_exposition.UNDERSCORES, om_exposition.ALLOWUTF8})
_EOF = b"# EOF\n"
# how both formats write a value (1 -> "1.0", 1.7e9 -> "1.7e+09"); prometheus_client leaves it untyped
_float_to_go = cast(Callable[[float], str], floatToGoString)
# most per-target samples are 0 or 1 (verdicts, success, info): skip the float formatting for those
_COMMON_VALUES: dict[float, str] = {0: _float_to_go(0), 1: _float_to_go(1)}


def escape_value(value: str) -> str:
    """A label value as both text formats write it (backslash, newline and double quote escaped)."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


class LabelSet(NamedTuple):
    """Labels shared by several series (one target's), escaped and rendered once per scrape.

    ``pairs`` are the rendered ``name="value"`` items in name order (the encoders sort labels), ``text``
    their join. Names must be valid legacy Prometheus label names (the config validates user label
    names; ours are constants).
    """

    pairs: tuple[str, ...]
    text: str

    @classmethod
    def of(cls, labels: Mapping[str, str]) -> LabelSet:
        return LabelMaker(tuple(labels))(tuple(labels.values()))


class LabelMaker:
    """Builds ``LabelSet``s for one tuple of names, their sort order worked out once."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        order = sorted(range(len(names)), key=names.__getitem__)
        self._slots = tuple((f'{names[i]}="', i) for i in order)

    def __call__(self, values: tuple[str, ...]) -> LabelSet:
        pairs = tuple([f'{head}{escape_value(values[i])}"' for head, i in self._slots])
        return LabelSet(pairs, ",".join(pairs))


class TextFamily(Metric):
    """A gauge or counter family whose series carry ``base`` labels (a ``LabelSet``) plus ``extra``.

    ``add(labels, value, *extra)`` writes the sample line; ``lines`` is what ``encode`` sends;
    ``samples`` parses the lines back into prometheus_client ``Sample``s for any other consumer.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        typ: Literal["gauge", "counter"],
        base: tuple[str, ...],
        extra: tuple[str, ...] = (),
    ) -> None:
        super().__init__(name, documentation, typ)
        self.sample_name = name + "_total" if typ == "counter" else name
        self.base = base
        self.extra = extra
        self.lines: list[str] = []
        # where each extra label goes among the base's sorted pairs (e.g. stage: after group, kind,
        # role, before target), last first so that inserting keeps the earlier positions valid
        ordered = sorted(base)
        self._inserts = sorted(
            ((sum(b < n for b in ordered), n, i) for i, n in enumerate(extra)), reverse=True
        )
        self.add: Callable[..., None]
        if not extra:
            self.add = self._add_plain
        elif len(extra) == 1 and self._inserts[0][0] == len(base):
            self.add = self._add_suffix  # one extra label that sorts after all the base labels
        else:
            self.add = self._add_merged

    # the value is formatted inline (a helper function's frame is ~15 % of a scrape)
    def _add_plain(self, labels: LabelSet, value: float) -> None:
        text = _COMMON_VALUES.get(value) or _float_to_go(value)
        self.lines.append(f"{self.sample_name}{{{labels.text}}} {text}\n")

    def _add_suffix(self, labels: LabelSet, value: float, extra: str) -> None:
        text = _COMMON_VALUES.get(value) or _float_to_go(value)
        label = self.extra[0]
        self.lines.append(f'{self.sample_name}{{{labels.text},{label}="{escape_value(extra)}"}} {text}\n')

    def _add_merged(self, labels: LabelSet, value: float, *extra: str) -> None:
        if len(extra) != len(self.extra):
            raise ValueError(f"{self.name}: extra label values {extra} do not fit {self.extra}")
        pairs = list(labels.pairs)
        for at, label, i in self._inserts:
            pairs.insert(at, f'{label}="{escape_value(extra[i])}"')
        text = _COMMON_VALUES.get(value) or _float_to_go(value)
        self.lines.append(f"{self.sample_name}{{{','.join(pairs)}}} {text}\n")

    @property
    def samples(self) -> list[Sample]:
        if not self.lines:
            return []
        head = _header(self, exposition.generate_latest).decode()
        (family,) = text_string_to_metric_families(head + "".join(self.lines))
        return family.samples

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        # Metric.__init__ assigns an empty list; series go through add()
        if value:
            raise TypeError("TextFamily series are added with add()")


class _Fixed:
    """A collector yielding a fixed list (to run prometheus_client's encoder over part of a scrape)."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def _header(family: TextFamily, encoder: Callable[[Collector], bytes]) -> bytes:
    """HELP and TYPE lines from prometheus_client itself: its rendering of an empty family.

    (OpenMetrics ends every body with ``# EOF``; ``encode`` writes it once, at the very end.)
    """
    return encoder(_Fixed([Metric(family.name, family.documentation, family.type)])).removesuffix(_EOF)


def encode(registry: Collector, accept: str) -> tuple[bytes, str]:
    """The /metrics body and content type for an ``Accept`` header, negotiated as prometheus_client does."""
    encoder, content_type = exposition.choose_encoder(accept)
    func = getattr(encoder, "func", encoder)
    keywords = getattr(encoder, "keywords", {})
    openmetrics_format = func is om_exposition.generate_latest
    fast = (func is exposition.generate_latest or openmetrics_format) and keywords.get(
        "escaping", om_exposition.UNDERSCORES
    ) in _FAST_ESCAPINGS
    if not fast:
        return encoder(registry), content_type

    out: list[bytes] = []
    pending: list[Metric] = []
    for metric in registry.collect():
        if not isinstance(metric, TextFamily):
            pending.append(metric)
            continue
        if pending:
            out.append(encoder(_Fixed(pending)).removesuffix(_EOF))
            pending = []
        out.append(_header(metric, encoder))
        out.append("".join(metric.lines).encode())
    if pending:
        out.append(encoder(_Fixed(pending)).removesuffix(_EOF))
    if openmetrics_format:
        out.append(_EOF)
    return b"".join(out), content_type
