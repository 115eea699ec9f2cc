"""The offline install bundle (`make bundle`) and the install it makes, for real:

- the wheelhouse holds binary wheels for amd64, arm64 and armv7 with the hashes it records;
- dry-run resolution of every dependency for arm64 and armv7 against the wheelhouse alone
  (`pip download --platform ... --only-binary=:all: --no-index`);
- a real install on this amd64 from the bundle in a network namespace with no network at all (so no
  PyPI), into a throwaway root, on Debian's python3 and its python3-* packages (deploy/debian-python.txt);
  the installed reachwatch then checks a local port, on Debian's cryptography, PyNaCl, PyYAML and uvloop.

The bundle is built once per source state (cached under .venv/bundle-cache: building downloads the
wheels from the package index, ~1 minute).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
import bundle  # noqa: E402

pytestmark = pytest.mark.slow

DEBIAN_PYTHON = Path("/usr/bin/python3")  # bookworm's 3.11, whose python3-* packages the route uses


def _source_state() -> str:
    """Changes when anything the bundle is built from changes (tracked and modified files)."""
    listing = subprocess.run(
        [
            "git",
            "-C",
            str(REPO),
            "ls-files",
            "-s",
            "-m",
            "daemon",
            "pyproject.toml",
            "setup.py",
            "deploy",
            "scripts/bundle.py",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    digest = hashlib.sha256(listing.encode())
    for line in subprocess.run(
        ["git", "-C", str(REPO), "diff", "--name-only"], capture_output=True, text=True, check=True
    ).stdout.split():
        path = REPO / line
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def bundle_dir() -> Path:
    # kept between runs in the user's cache (building the wheelhouse downloads three architectures)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cache = base / "reachwatch-tests" / "bundle" / _source_state()
    top = cache / "unpacked"
    if not top.exists():
        out = cache / "dist"
        tarball = bundle.build(out, list(bundle.ARCHES))
        with tarfile.open(tarball) as tar:
            tar.extractall(top, filter="data")
    (inner,) = top.iterdir()
    return inner


def _requirements(wheelhouse: Path, arch: str) -> dict[str, tuple[str, str]]:
    """name -> (version, sha256) of requirements-<arch>.txt."""
    out = {}
    for line in (wheelhouse / f"requirements-{arch}.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            pin, hash_ = line.split(" --hash=sha256:")
            name, version = pin.split("==")
            out[name.lower().replace("_", "-")] = (version, hash_)
    return out


def test_the_wheelhouse_has_binary_wheels_for_every_architecture_with_their_hashes(bundle_dir: Path) -> None:
    wheelhouse = bundle_dir / "wheelhouse"
    files = {f.name: f for f in wheelhouse.glob("*.whl")}
    assert not list(wheelhouse.glob("*.tar.gz")), "no sdist: a Pi has no compiler"
    by_hash = {hashlib.sha256(f.read_bytes()).hexdigest(): f for f in files.values()}
    machine = {"amd64": "x86_64", "arm64": "aarch64", "armhf": "armv7l"}
    for arch in ("amd64", "arm64", "armhf"):
        pins = _requirements(wheelhouse, arch)
        assert "reachwatch" in pins and "pydantic-core" in pins and "aiohttp" in pins
        # what the Debian route takes from apt is not in the bundle
        assert not {"cryptography", "cffi", "pynacl", "pyyaml", "uvloop"} & set(pins), arch
        for name, (_version, digest) in pins.items():
            wheel = by_hash.get(digest)
            assert wheel is not None, f"{arch}: {name} pinned to a hash no wheel has"
            tags = wheel.name.removesuffix(".whl").split("-")[-1]
            assert tags == "any" or machine[arch] in tags, f"{arch}: {wheel.name}"
    ours = next(f for n, f in files.items() if n.startswith("reachwatch-"))
    with zipfile.ZipFile(ours) as zf:
        revision = zf.read("reachwatch/data/revision.txt").decode().strip()
    assert revision in (bundle_dir / "BUNDLE").read_text()


@pytest.mark.parametrize("arch", ["arm64", "armhf"])
def test_dry_run_resolution_for_the_pi_architectures_needs_nothing_but_the_wheelhouse(
    bundle_dir: Path, arch: str, tmp_path: Path
) -> None:
    wheelhouse = bundle_dir / "wheelhouse"
    machine = bundle.ARCHES[arch]
    (ours,) = wheelhouse.glob("reachwatch-*.whl")
    reqs = bundle.top_level(bundle.wheel_requirements(ours), machine, bundle.debian_provided())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            "--dest",
            str(tmp_path),
            *bundle.pip_platform_args(machine),
            *reqs,
        ],
        capture_output=True,
        text=True,
        env={**env, "PIP_CONFIG_FILE": os.devnull},
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    resolved = {f.name.split("-")[0].lower().replace("_", "-") for f in tmp_path.glob("*.whl")}
    assert resolved == set(_requirements(wheelhouse, arch)) - {"reachwatch"}


def _listener() -> Iterator[int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def listener() -> Iterator[int]:
    yield from _listener()


@pytest.mark.skipif(
    not DEBIAN_PYTHON.exists() or os.geteuid() != 0, reason="Debian python3 and root (unshare)"
)
def test_offline_install_from_the_bundle_uses_debians_packages_and_runs(
    bundle_dir: Path, tmp_path: Path, listener: int
) -> None:
    root = tmp_path / "root"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    argv = [
        "unshare",
        "--net",
        "bash",
        str(bundle_dir / "deploy" / "install.sh"),
        "--root",
        str(root),
        "--country",
        "KZ",
        "--name",
        "almaty-home-1",
        "--city",
        "Almaty",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK (targets and controls:" in proc.stdout
    venv = root / "opt/reachwatch/venv"
    where = subprocess.run(
        [
            str(venv / "bin/python"),
            "-c",
            "import json, cryptography, nacl, yaml, uvloop, pydantic; print(json.dumps({m.__name__:"
            " m.__file__ for m in (cryptography, nacl, yaml, uvloop, pydantic)}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    paths = json.loads(where.stdout)
    for name in ("cryptography", "nacl", "yaml", "uvloop"):
        assert paths[name].startswith("/usr/lib/python3/dist-packages/"), paths
    assert paths["pydantic"].startswith(str(venv)), paths
    # the config is the operator's: the identity given, nothing from a sample, private
    config = root / "etc/reachwatch/config.yaml"
    text = config.read_text()
    assert "name: almaty-home-1" in text and "city: Almaty" in text
    assert "AS9198" not in text and "Kazakhtelecom" not in text and "example.net" not in text
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    rw = str(venv / "bin/reachwatch")
    version = subprocess.run([rw, "--version"], capture_output=True, text=True, check=True).stdout
    assert "(revision " in version and "unknown" not in version
    # the installed daemon's code on Debian's libraries: a one-off check of a local port, judged
    local = tmp_path / "local.yaml"
    local.write_text(
        "scheduler: {min_destination_spacing: 1ms}\n"
        f"controls: {{international: [{{name: ctl, kind: tcp, host: 127.0.0.1, port: {listener}}}]}}\n"
    )
    check = subprocess.run(
        [rw, "check", "--config", str(local), "--json", f"127.0.0.1:{listener}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    assert [t["verdict"] for t in json.loads(check.stdout)["targets"]] == ["reachable", "reachable"]
    # idempotent: a second run upgrades in place and keeps the operator's edit
    config.write_text(text + "# operator edit\n")
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, check=False)
    assert again.returncode == 0, again.stderr
    assert config.read_text().endswith("# operator edit\n")


def test_the_bundle_carries_every_file_install_sh_installs() -> None:
    """install.sh reads ``$SRC/<path>`` from the unpacked bundle: a file it names that the bundle does not
    carry stops an offline install half-way (the canary's unit once did)."""
    script = (REPO / "deploy" / "install.sh").read_text()
    named = set(re.findall(r'\$SRC/([A-Za-z0-9_./-]+)', script)) - {"wheelhouse"}
    assert named, "install.sh names no file of the source tree?"
    assert named <= set(bundle.CARRIED), sorted(named - set(bundle.CARRIED))

