"""A private Docker engine for the end-to-end tests, and stand-ins for images it cannot pull.

`DockerEngine` runs Debian's dockerd (package docker.io) as a child process
with everything under one temporary directory (data root, exec root, pidfile,
socket), without iptables and without the default bridge: builds and
containers use the host's network (`--network host`) and loopback addresses.

`ensure_image` pulls an image, or, when Docker Hub cannot be reached, makes a
stand-in under the same name:

- `python:3.11-slim`: Debian bookworm (its python3 is 3.11) from debootstrap
  and the mirror apt uses, with a virtualenv at /usr/local, so that `python`
  and `pip` are on PATH and pip installs into a Python that is not
  "externally managed", as in the real image. It carries the host's extra CA
  certificates and pip configuration: the build's pip reaches the index the
  way the host's pip does (a mirror, a proxy's CA). Its root file system is
  kept as a tarball under .cache/docker/, named by a hash of everything that
  went into it, so only the first run pays for debootstrap.
- `caddy:2`: Debian's caddy package on that base, laid out like the official
  image (config /etc/caddy/Caddyfile, state in /data and /config).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.processes import terminate

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "docker"


def program(name: str, *fallbacks: str) -> str | None:
    """`name` on PATH, or the first fallback path that is executable (sbin is not on every PATH)."""
    found = shutil.which(name)
    return found or next((path for path in fallbacks if os.access(path, os.X_OK)), None)


DOCKERD = program("dockerd", "/usr/sbin/dockerd")
# The client packaged with Debian's dockerd first: it speaks the daemon's API version.
DOCKER = program("/usr/bin/docker") or program("docker")
DOCKER_COMPOSE = program("docker-compose")
DEBOOTSTRAP = program("debootstrap", "/usr/sbin/debootstrap")

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
COMMAND_TIMEOUT = 120.0
PULL_TIMEOUT = 120.0
BUILD_TIMEOUT = 600.0
DEBOOTSTRAP_TIMEOUT = 900.0

PYTHON_IMAGE = "python:3.11-slim"  # what the stand-in replaces
SUITE = "bookworm"  # the Debian release whose python3 is 3.11
PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Bump when the stand-in's recipe changes: the cached tarball is then rebuilt.
RECIPE = "1"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CHROOT_ENV = {"PATH": PATH, "HOME": "/root", "LANG": "C.UTF-8"}
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
# Where pip reads its configuration (site-wide, then the build's user, root).
PIP_CONFIG_FILES = {
    Path("/etc/pip.conf"): "etc/pip.conf",
    Path("/etc/xdg/pip/pip.conf"): "etc/xdg/pip/pip.conf",
    Path.home() / ".config/pip/pip.conf": "root/.config/pip/pip.conf",
    Path.home() / ".pip/pip.conf": "root/.pip/pip.conf",
}
REFERENCED_FILE_LIMIT = 1024 * 1024  # a constraints file or a CA bundle, never a wheel

CADDY_STAND_IN = """\
FROM {base}
# Debian's caddy: the package lists debootstrap left first, refreshed if stale.
RUN export DEBIAN_FRONTEND=noninteractive \\
    && (apt-get install -y --no-install-recommends caddy \\
        || (apt-get update && apt-get install -y --no-install-recommends caddy)) \\
    && rm -rf /var/cache/apt/archives/*.deb
# As in the official image: state in /data, autosaved config in /config.
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
VOLUME /config /data
EXPOSE 80 443 443/udp 2019
WORKDIR /srv
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
"""


class DockerEngine:
    """dockerd on a private socket, its state under `directory`; `docker()` runs the client."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.socket = directory / "docker.sock"
        self.log = directory / "dockerd.log"
        self.environ = {
            "PATH": os.environ.get("PATH", PATH),
            "HOME": str(directory),
            "DOCKER_HOST": f"unix://{self.socket}",
            # No ~/.docker: no credential helpers, nothing written there.
            "DOCKER_CONFIG": str(directory / "client"),
            # The classic builder, docker.io 20.10's default, whichever client is found.
            "DOCKER_BUILDKIT": "0",
        }
        namespace = f"gateway-test-{os.getpid()}"
        command = [
            DOCKERD,
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver=overlay2",
            f"--data-root={directory / 'data'}",
            f"--exec-root={directory / 'exec'}",
            f"--pidfile={directory / 'docker.pid'}",
            f"--host=unix://{self.socket}",
            # A system containerd, if one runs, must not mix our containers with its own.
            f"--containerd-namespace={namespace}",
            f"--containerd-plugins-namespace={namespace}-plugins",
            # host.docker.internal (compose.yaml's extra_hosts): no bridge, so loopback.
            "--host-gateway-ip=127.0.0.1",
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"dockerd exited early:\n{self.log_tail()}")
            if self.socket.exists() and self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise AssertionError(f"dockerd did not answer in {START_TIMEOUT} s:\n{self.log_tail()}")

    def docker(
        self, *args: str, timeout: float = COMMAND_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker client against this engine; fail with its output unless it succeeds."""
        return self.run([DOCKER, *args], timeout=timeout, check=check)

    def run(
        self, command: list[str], timeout: float = COMMAND_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a client program (docker, docker-compose) with this engine's environment."""
        return run_client(command, self.environ, timeout, check)

    def has_image(self, name: str) -> bool:
        return self.docker("image", "inspect", name, check=False).returncode == 0

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """Remove every container, then stop dockerd (and the containerd it started)."""
        if self.process.poll() is None:
            listed = self.docker("ps", "-aq", check=False).stdout.split()
            if listed:
                self.docker("rm", "-f", *listed, check=False)
            terminate(self.process, STOP_TIMEOUT)
        # dockerd leaves its network namespace bound under the exec root.
        for mountpoint in reversed(self.mounts()):
            subprocess.run(["umount", "--lazy", mountpoint], check=False, timeout=COMMAND_TIMEOUT)

    def mounts(self) -> list[str]:
        """Mount points under this engine's directory, outermost first."""
        inside = f"{self.directory}/"
        with open("/proc/self/mounts") as table:
            points = [line.split()[1] for line in table]
        return [point for point in points if point.startswith(inside)]


def run_client(
    command: list[str], environ: dict[str, str], timeout: float, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `command` with exactly `environ`; fail with its output unless it succeeds."""
    completed = subprocess.run(
        command, env=environ, capture_output=True, text=True, timeout=timeout
    )
    if check and completed.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited with {completed.returncode}:\n"
            f"{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
        )
    return completed


def ensure_image(
    engine: DockerEngine, name: str, stand_in: Callable[[DockerEngine, str], None]
) -> None:
    """Make `name` available: already there, pulled, or made by `stand_in`."""
    if engine.has_image(name):
        return
    pulled = engine.docker("pull", name, timeout=PULL_TIMEOUT, check=False)
    if pulled.returncode != 0:
        stand_in(engine, name)


def stand_in_python(engine: DockerEngine, name: str) -> None:
    """Import the cached stand-in root file system as `name`, making it first if needed."""
    if name != PYTHON_IMAGE:
        raise StandInUnavailable(f"{name} cannot be pulled; the stand-in is for {PYTHON_IMAGE}")
    if DEBOOTSTRAP is None:
        raise StandInUnavailable(f"{name} cannot be pulled and debootstrap is not installed")
    mirror = debian_mirror()
    if mirror is None:
        raise StandInUnavailable(f"{name} cannot be pulled and apt names no {SUITE} mirror")
    pip_files = pip_configuration()
    texts = [value for _, value in pip_environment()] + [p.read_text() for p in pip_files]
    referenced = referenced_files(texts)
    recipe = {
        "recipe": RECIPE,
        "suite": SUITE,
        "mirror": mirror,
        "packages": PACKAGES,
        "ca": {path.name: path.read_text() for path in extra_ca_certificates()},
        "pip": {target: path.read_text() for path, target in pip_files.items()},
        "pip_env": pip_environment(),
        "referenced": {str(path): path.read_text(errors="replace") for path in referenced},
    }
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    prefix = f"{name.replace(':', '-')}-{SUITE}-"
    tarball = CACHE / f"{prefix}{key}.tar"
    if not tarball.exists():
        make_root_tarball(tarball, mirror, pip_files, referenced)
        for stale in CACHE.glob(f"{prefix}*.tar"):
            if stale != tarball:
                stale.unlink()
    changes = [f"ENV PATH={PATH}", "ENV LANG=C.UTF-8", 'CMD ["python3"]']
    changes += [f"ENV {variable}={json.dumps(value)}" for variable, value in pip_environment()]
    options = [argument for change in changes for argument in ("--change", change)]
    engine.docker("import", *options, str(tarball), name, timeout=BUILD_TIMEOUT)


def stand_in_caddy(engine: DockerEngine, name: str) -> None:
    """Build `name` from the Python stand-in's base with Debian's caddy package."""
    ensure_image(engine, PYTHON_IMAGE, stand_in_python)
    with tempfile.TemporaryDirectory(prefix="caddy-image-") as context:
        (Path(context) / "Dockerfile").write_text(CADDY_STAND_IN.format(base=PYTHON_IMAGE))
        engine.docker("build", "--network", "host", "--tag", name, context, timeout=BUILD_TIMEOUT)


class StandInUnavailable(Exception):
    """An image can neither be pulled nor made here (the reason says which program is missing)."""


def debian_mirror() -> str | None:
    """The Debian archive apt uses for `SUITE` (deb822 .sources files or one-line .list files)."""
    sources = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([\w-]+):\s*(.*)$", stanza, re.MULTILINE))
                if (
                    "deb" in fields.get("Types", "").split()
                    and SUITE in fields.get("Suites", "").split()
                    and fields.get("Enabled", "yes") != "no"
                ):
                    return fields["URIs"].split()[0]
        elif path.suffix == ".list" or path.name == "sources.list":
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb" and words[2] == SUITE:
                    return words[1]
    return None


def extra_ca_certificates() -> list[Path]:
    """The host's own CA certificates (update-ca-certificates adds them to the system bundle)."""
    return sorted(EXTRA_CA_DIR.rglob("*.crt")) if EXTRA_CA_DIR.is_dir() else []


def pip_configuration() -> dict[Path, str]:
    """pip's configuration files here, each with its path in the stand-in's root (no leading /)."""
    files = {path: target for path, target in PIP_CONFIG_FILES.items() if path.is_file()}
    named = os.environ.get("PIP_CONFIG_FILE")
    if named and Path(named).is_file():
        files[Path(named)] = named.lstrip("/")
    return files


def pip_environment() -> list[tuple[str, str]]:
    """The PIP_* variables of this environment (the Dockerfile's own ENV still wins)."""
    return sorted((name, value) for name, value in os.environ.items() if name.startswith("PIP_"))


def referenced_files(texts: list[str]) -> set[Path]:
    """Small files named by absolute path in pip settings (constraints, certificate bundles)."""
    found = set()
    for text in texts:
        for word in re.findall(r"(?:file://)?(/[^\s'\"]+)", text):
            path = Path(word)
            if path.is_file() and path.stat().st_size <= REFERENCED_FILE_LIMIT:
                found.add(path)
    return found


def make_root_tarball(
    tarball: Path, mirror: str, pip_files: dict[Path, str], referenced: set[Path]
) -> None:
    """debootstrap the stand-in's root, set it up like python:3.11-slim, and tar it to `tarball`."""
    with tempfile.TemporaryDirectory(prefix="python-stand-in-") as work:
        root = Path(work) / "root"
        include = ",".join(PACKAGES)
        command = [DEBOOTSTRAP, "--variant=minbase", f"--include={include}", SUITE, str(root)]
        bootstrap(command + [mirror], Path(work) / "debootstrap.log")
        for certificate in extra_ca_certificates():
            target = root / certificate.relative_to("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(certificate, target)
        chroot(root, "update-ca-certificates")
        # A virtualenv over /usr/local: python, pip and installed scripts in
        # /usr/local/bin as in the real image, and pip free to install there.
        chroot(root, "python3", "-m", "venv", "/usr/local")
        for source, target in pip_files.items():
            (root / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, root / target)
        # What the stand-in has already (the CA bundle made above) stays its own.
        for source in referenced:
            target = root / source.relative_to("/")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
        for deb in (root / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial")
        subprocess.run(
            ["tar", "--numeric-owner", "--exclude=./dev/*", "-C", str(root), "-cf", str(partial)]
            + ["."],
            check=True,
            timeout=BUILD_TIMEOUT,
        )
        partial.rename(tarball)


def bootstrap(command: list[str], log: Path) -> None:
    with log.open("wb") as output:
        completed = subprocess.run(
            command, stdout=output, stderr=subprocess.STDOUT, timeout=DEBOOTSTRAP_TIMEOUT
        )
    if completed.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{log.read_text()[-4000:]}")


def chroot(root: Path, *command: str) -> None:
    completed = subprocess.run(
        ["chroot", str(root), *command],
        env=CHROOT_ENV,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    if completed.returncode != 0:
        raise AssertionError(f"chroot {' '.join(command)}: {completed.stderr[-4000:]}")
