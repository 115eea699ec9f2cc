"""Build the offline install bundle: reachwatch and every dependency as wheels for amd64, arm64 and armv7.

For operators who cannot reach PyPI from inside their country (``make bundle``). The result,
``dist/reachwatch-<version>-bundle.tar.gz``, unpacks to a directory with ``deploy/install.sh`` and a
``wheelhouse/``; ``sudo ./deploy/install.sh`` installs from it with ``pip --no-index``. What the bundle
does NOT carry is what the Debian route takes from Debian (``deploy/debian-python.txt``: compiled
packages without an armv7 wheel, installed with apt from a Debian mirror, which in-country mirrors serve).

Per architecture the wheelhouse holds the resolved closure of reachwatch's requirements minus those, as
binary wheels only (``--only-binary=:all:``: a Pi has no compiler); ``wheelhouse/requirements-<arch>.txt``
pins each with its sha256 (``pip install --require-hashes``). stem publishes no wheel: it is pure Python,
so it is built into one here. Markers are evaluated for each target machine, not for this one.

    python scripts/bundle.py [--out dist] [--arch amd64 --arch arm64 --arch armhf]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
# Debian architecture -> platform.machine() and the manylinux tags a bookworm system (glibc 2.36) accepts
ARCHES = {"amd64": "x86_64", "arm64": "aarch64", "armhf": "armv7l"}
GLIBC_MINORS = range(17, 37)
PYTHON = "3.11"  # bookworm's python3
# built from source here because PyPI has no wheel (pure Python only)
PURE_SDISTS = ("stem",)
# files of the repository the bundle carries beside the wheelhouse (what install.sh and a reader need)
CARRIED = (
    "README.md",
    "SECURITY.md",
    "deploy/install.sh",
    "deploy/debian-python.txt",
    "deploy/systemd/reachwatch.service",
    "deploy/systemd/reachwatch.env",
    "deploy/systemd/reachwatch-canary.service",
    "deploy/systemd/reachwatch.service.d/openvpn-tunnel.conf",  # opt-in drop-in (docs/ARCHITECTURE.md)
    "docs/raspberry-pi.md",
    *(
        f"docs/{lang}/{doc}"
        for lang in ("ru", "kk")
        for doc in ("quickstart.md", "raspberry-pi.md", "SECURITY.md")
    ),
)


def platform_tags(machine: str) -> list[str]:
    return [f"manylinux2014_{machine}", *(f"manylinux_2_{minor}_{machine}" for minor in GLIBC_MINORS)]


def pip_platform_args(machine: str) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp"]
    args += ["--abi", "cp311", "--abi", "abi3", "--abi", "none"]
    for tag in platform_tags(machine):
        args += ["--platform", tag]
    return args


def debian_provided() -> set[str]:
    """Distribution names deploy/debian-python.txt says come from Debian."""
    names = set()
    for line in (ROOT / "deploy" / "debian-python.txt").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            names.add(canonicalize_name(line.split()[0]))
    return names


def wheel_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(zf.read(meta).decode())
    return [Requirement(r) for r in message.get_all("Requires-Dist") or []]


def top_level(requirements: list[Requirement], machine: str, skip: set[str]) -> list[str]:
    """The requirements that apply on ``machine`` (no extras), minus those Debian provides."""
    env = {**default_environment(), "platform_machine": machine, "python_version": PYTHON, "extra": ""}
    env.update({"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"})
    chosen = []
    for req in requirements:
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        if canonicalize_name(req.name) not in skip:
            chosen.append(str(req).split(";", 1)[0].strip())
    return chosen


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    print("+", " ".join(argv[:6]), "...", file=sys.stderr)
    return subprocess.run(argv, check=True, text=True, capture_output=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def resolve(wheelhouse: Path, reqs: list[str], machine: str, scratch: Path) -> list[Path]:
    """The wheels (in ``wheelhouse``) that install ``reqs`` on ``machine``, resolved offline by pip."""
    report = scratch / f"report-{machine}.json"
    run(
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
        "--no-index", "--find-links", str(wheelhouse), "--target", str(scratch / f"t-{machine}"),
        "--report", str(report), *pip_platform_args(machine), *reqs,
    )  # fmt: skip
    wheels = []
    for item in json.loads(report.read_text())["install"]:
        url = item["download_info"]["url"]
        wheels.append(Path(re.sub(r"^file://", "", url)))
    return wheels


def build(out: Path, arches: list[str]) -> Path:
    version_wheel_dir = Path(tempfile.mkdtemp(prefix="reachwatch-bundle-"))
    try:
        scratch = version_wheel_dir / "scratch"
        scratch.mkdir()
        wheelhouse = version_wheel_dir / "wheelhouse"
        run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheelhouse), str(ROOT))
        (ours,) = wheelhouse.glob("reachwatch-*.whl")
        version = ours.name.split("-")[1]
        requirements = wheel_requirements(ours)
        skip = debian_provided()
        pins = {canonicalize_name(r.name): str(r.specifier) for r in requirements}
        for name in PURE_SDISTS:
            run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(wheelhouse),
                f"{name}{pins.get(canonicalize_name(name), '')}")  # fmt: skip
        for arch in arches:
            machine = ARCHES[arch]
            reqs = top_level(requirements, machine, skip)
            run(sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(wheelhouse),
                "--find-links", str(wheelhouse), *pip_platform_args(machine), *reqs)  # fmt: skip
            wheels = resolve(wheelhouse, reqs, machine, scratch)
            lines = [f"# reachwatch {version} for Debian {arch} ({machine}), Python {PYTHON}; generated"]
            lines.append("# from deploy/debian-python.txt: those distributions come from apt, not from here")
            for wheel in [ours, *sorted(wheels)]:
                name, ver = wheel.name.split("-")[:2]
                lines.append(f"{name}=={ver} --hash=sha256:{sha256(wheel)}")
            (wheelhouse / f"requirements-{arch}.txt").write_text("\n".join(lines) + "\n")
        revision = _revision_of(ours)
        top = version_wheel_dir / f"reachwatch-{version}"
        top.mkdir()
        shutil.move(str(wheelhouse), top / "wheelhouse")
        for rel in CARRIED:
            (top / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, top / rel)
        summary = f"reachwatch {version}\nrevision {revision}\narchitectures {' '.join(arches)}\n"
        (top / "BUNDLE").write_text(summary)
        out.mkdir(parents=True, exist_ok=True)
        tarball = out / f"reachwatch-{version}-bundle.tar.gz"
        with tarfile.open(tarball, "w:gz") as tar:
            tar.add(top, arcname=top.name)
        (out / (tarball.name + ".sha256")).write_text(f"{sha256(tarball)}  {tarball.name}\n")
        return tarball
    finally:
        shutil.rmtree(version_wheel_dir, ignore_errors=True)


def _revision_of(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        try:
            return zf.read("reachwatch/data/revision.txt").decode().strip()
        except KeyError:
            return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--arch", action="append", choices=sorted(ARCHES), help="default: all three")
    args = parser.parse_args()
    try:
        tarball = build(args.out, args.arch or list(ARCHES))
    except subprocess.CalledProcessError as exc:
        print(f"bundle: {' '.join(exc.cmd[:5])}... failed:\n{exc.stderr.strip()}", file=sys.stderr)
        return 1
    print(tarball)
    return 0


if __name__ == "__main__":
    sys.exit(main())
