"""Config files through the real CLI: shipped examples validate; each bad input is one exact line, exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from reachwatch.config.load import EMBEDDED, embedded_default_text, load_config, with_tor_targets
from reachwatch.config.schema import Config
from reachwatch.probes import PROBES

ROOT = Path(__file__).resolve().parents[2]
TESTDATA = Path(__file__).parent / "testdata"
REACHWATCH = [sys.executable, "-m", "reachwatch"]
EXAMPLES = [ROOT / "config" / "example.yaml", *sorted((ROOT / "config" / "examples").glob("*.yaml"))]


def _validate(path: Path | str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*REACHWATCH, "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_shipped_example_configs_validate(path: Path) -> None:
    # the schema and what sections generate; the secret files they name are the operator's to create
    loaded = with_tor_targets(load_config(path))
    # a vantage's config measures something; the canary's host may run only the canary (canary.yaml)
    assert loaded.config.all_targets() or loaded.config.canary is not None


def test_embedded_default_validates_and_keeps_its_sections() -> None:
    proc = subprocess.run([*REACHWATCH, "validate"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"{EMBEDDED}: OK")
    cfg = load_config(None).config
    kinds = {t.kind for t in cfg.targets}
    assert {"tls", "https", "dns"} <= kinds
    assert cfg.controls.international and not cfg.controls.domestic  # a default cannot know the country
    doh = {r.doh for t in cfg.targets if t.kind == "dns" for r in t.resolvers}  # type: ignore[attr-defined]
    assert doh == {
        "https://1.1.1.1/dns-query",
        "https://dns.google/dns-query",
        "https://dns.quad9.net/dns-query",
    }
    assert "Tor directory authorities and built-in bridges" in embedded_default_text()


def _field_names(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


CORE_KINDS = ("tcp", "tls", "http", "https", "dns", "throughput")


def test_example_documents_every_core_option() -> None:
    text = (ROOT / "config" / "example.yaml").read_text()
    missing = []
    for section, info in Config.model_fields.items():
        if f"\n{section}:" not in text:
            missing.append(section)
        ann = info.annotation
        sub = getattr(ann, "__args__", (ann,))[0] if section == "reference_vantages" else ann
        if isinstance(sub, type) and issubclass(sub, BaseModel) and section not in ("controls",):
            missing += [f"{section}.{f}" for f in _field_names(sub) if f"{f}:" not in text]
    for kind in CORE_KINDS:
        if kind in PROBES:
            assert f"kind: {kind}" in text, f"no {kind} example"
            missing += [f"{kind}.{f}" for f in _field_names(PROBES[kind].target_model) if f"{f}:" not in text]
    assert missing == [], "options not documented in config/example.yaml"


def _invalid_cases() -> list[Path]:
    return sorted(TESTDATA.glob("invalid-*.yaml"))


@pytest.mark.parametrize("case", _invalid_cases(), ids=lambda p: p.stem)
def test_invalid_config_is_one_exact_line_and_exit_2(case: Path, tmp_path: Path) -> None:
    first = case.read_text().splitlines()[0]
    assert first.startswith("# expect: ")
    path = tmp_path / case.name
    shutil.copy(case, path)
    path.chmod(0o600)  # a world-readable config adds a (deserved) warning line
    kinds = ", ".join(repr(k) for k in PROBES)
    expected = first.removeprefix("# expect: ").replace("{file}", str(path)).replace("{kinds}", kinds)
    proc = _validate(path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == f"reachwatch: {expected}\n"


SECRET_CONFIG = """
reference_vantages:
  - name: ref
    url: https://ref.example.org/
    username: rw
    {secret}
"""


@pytest.mark.parametrize(
    ("secret", "prepare", "message"),
    [
        (
            "password_file: missing.pass",
            None,
            "reference_vantages[0] (name 'ref').password_file: cannot read secret file {dir}/missing.pass: "
            "No such file or directory",
        ),
        (
            "password_file: ref.pass",
            0o640,
            "reference_vantages[0] (name 'ref').password_file: secret file {dir}/ref.pass is readable by "
            "group or others (mode 640); chmod 600 it",
        ),
        (
            "password_file: ref.pass",
            0o604,
            "reference_vantages[0] (name 'ref').password_file: secret file {dir}/ref.pass is readable by "
            "group or others (mode 604); chmod 600 it",
        ),
        (
            "password_file: adir",
            "dir",
            "reference_vantages[0] (name 'ref').password_file: cannot read secret file {dir}/adir: "
            "Is a directory",
        ),
        (
            "password_env: REACHWATCH_TEST_UNSET_VAR",
            None,
            "reference_vantages[0] (name 'ref').password_env: environment variable REACHWATCH_TEST_UNSET_VAR "
            "is not set",
        ),
    ],
    ids=["missing-file", "group-readable", "world-readable", "directory", "unset-env"],
)
def test_bad_secret_is_one_exact_line_and_exit_2(
    tmp_path: Path, secret: str, prepare: int | str | None, message: str
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SECRET_CONFIG.format(secret=secret))
    cfg.chmod(0o600)
    if isinstance(prepare, int):
        (tmp_path / "ref.pass").write_text("s3cret\n")
        (tmp_path / "ref.pass").chmod(prepare)
    elif prepare == "dir":
        (tmp_path / "adir").mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if k != "REACHWATCH_TEST_UNSET_VAR"}
    proc = subprocess.run(
        [*REACHWATCH, "validate", str(cfg)], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert proc.returncode == 2
    assert proc.stderr == f"reachwatch: {cfg}: {message.replace('{dir}', str(tmp_path))}\n"


def test_private_secret_file_is_accepted(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(SECRET_CONFIG.format(secret="password_file: ref.pass"))
    cfg.chmod(0o600)
    (tmp_path / "ref.pass").write_text("s3cret\n")
    (tmp_path / "ref.pass").chmod(0o600)
    proc = _validate(cfg)
    assert proc.returncode == 0, proc.stderr


def test_run_check_checks_the_configs_web_config_as_validate_does(tmp_path: Path) -> None:
    # one loader for every command: run --check used to skip the config's own web.config_file
    (tmp_path / "web.yml").write_text("basic_auth_users:\n  prometheus: plain-text\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("web:\n  config_file: web.yml\n")
    cfg.chmod(0o600)
    checks = [[*REACHWATCH, "validate", str(cfg)], [*REACHWATCH, "run", "--check", "--config", str(cfg)]]
    procs = [subprocess.run(a, capture_output=True, text=True, timeout=60, check=False) for a in checks]
    expected = (
        f"reachwatch: {tmp_path}/web.yml: basic_auth_users: user 'prometheus': password must be a bcrypt "
        "hash ($2y$10$...), not plain text\n"
    )
    assert [(p.returncode, p.stderr) for p in procs] == [(2, expected), (2, expected)]
