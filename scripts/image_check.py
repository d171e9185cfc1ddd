#!/usr/bin/env python3
"""Build the project's Dockerfile and prove the image against a real Kafka broker.

``make image-check`` runs this (``.ci/run`` calls it; it needs root for buildah's storage,
a Debian-like host with apt for the tools, Java for the broker, ``make setup`` done).
No Docker engine and no image registry are needed:

1. tools: ``buildah`` and ``debootstrap`` (``apt-get install`` when missing);
2. base: a stand-in for ``python:3.11.13-slim-bookworm`` (the Dockerfile's default
   ``PYTHON_IMAGE``, which stays the real one): a Debian bookworm root from
   ``debootstrap --variant=minbase --include=python3.11,python3-venv,python3-pip,
   ca-certificates`` with ``/usr/local/bin/python`` -> ``python3``, committed under
   ``localhost/streamproc-base:bookworm-<recipe hash>``. The root's tarball is cached in
   ``${XDG_CACHE_HOME:-~/.cache}/streamproc/image-base/<hash>/`` (and the image stays in
   buildah's storage), so only the first run pays for debootstrap;
3. build: ``buildah bud --isolation chroot --format docker`` (docker format keeps the
   HEALTHCHECK) with the host's CA bundle and pip settings mounted, so ``pip install``
   in the build reaches the package index the way the host does;
4. smoke: the image runs as uid/gid 10001, ``streamproc --version`` (= pyproject's),
   ``streamproc worker --help``;
5. stack: the Compose stack's streamproc services (docker-compose.yml) with their own
   config (``deploy/compose`` at ``/etc/streamproc``) against a broker on the host
   (``streamproc broker start``; chroot isolation shares the host's network): the
   ``reference`` and ``traffic`` commands and the worker, each in a container of the
   image; the worker's ``/metrics`` must count every record on the predictions topic, the
   image's own HEALTHCHECK command must pass against it (and fail where nothing listens),
   and the worker must stop cleanly (exit 0) on SIGTERM.

``buildah run`` is used instead of ``podman run``, which fails on ``setrlimit`` in some
sandboxes; ``--isolation chroot`` works there. Everything is removed afterwards except the
cached base (``--keep-image`` keeps ``localhost/streamproc:image-check``). The seconds
spent per phase are printed at the end.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
STREAMPROC = BIN / "streamproc"

IMAGE = "localhost/streamproc:image-check"
ISOLATION = ("--isolation", "chroot")
SUITE = "bookworm"
INCLUDE = ("python3.11", "python3-venv", "python3-pip", "ca-certificates")
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}
#: What makes the stand-in base; its hash names the cached tarball and the image tag.
RECIPE: dict[str, Any] = {
    "suite": SUITE,
    "variant": "minbase",
    "include": list(INCLUDE),
    "links": {"/usr/local/bin/python": "/usr/bin/python3"},
    "env": BASE_ENV,
    "cmd": ["python3"],
    "revision": 1,
}
#: pip settings that decide how the build reaches the package index.
PIP_KEYS = {
    "index-url",
    "extra-index-url",
    "trusted-host",
    "cert",
    "client-cert",
    "proxy",
    "timeout",
    "default-timeout",
    "retries",
    "find-links",
    "no-index",
}
PIP_PATH_KEYS = {"cert", "client-cert", "find-links"}
UID = 10001
TOPIC = "predictions"
MODEL = "credit-risk"  # the compose stack's demo model (deploy/compose/monitor.toml)
CONTAINER_DATA = "/var/lib/streamproc"
REFERENCE = f"{CONTAINER_DATA}/reference/credit-risk.profile"


class CheckFailed(Exception):
    """A step of the check did not do what the image promises."""


# ----------------------------------------------------------------------------- output


class Phases:
    """Seconds per phase, printed as a summary at the end."""

    def __init__(self) -> None:
        self.spent: list[tuple[str, float, str]] = []

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[list[str]]:
        note: list[str] = []
        print(f"== image-check: {name}", flush=True)
        began = time.monotonic()
        try:
            yield note
        finally:
            self.spent.append((name, time.monotonic() - began, " ".join(note)))

    def summary(self) -> str:
        total = sum(seconds for _, seconds, _ in self.spent)
        lines = [f"  {name:<10} {seconds:7.1f} s  {note}" for name, seconds, note in self.spent]
        return "\n".join(
            ["image-check cost (seconds per phase):", *lines, f"  {'total':<10} {total:7.1f} s"]
        )


def log(message: str) -> None:
    print(f"image-check: {message}", flush=True)


def run(cmd: Sequence[str], *, capture: bool = False, timeout: float | None = None) -> str:
    """Run ``cmd``; raise CheckFailed with its output when it fails."""
    proc = subprocess.run(
        list(cmd),
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.STDOUT if capture else None,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stdout or "")[-2000:]
        raise CheckFailed(f"{' '.join(cmd)} exited with {proc.returncode}\n{tail}")
    return proc.stdout or ""


# ----------------------------------------------------------------------------- tools


def ensure_tools() -> str:
    """buildah and debootstrap on PATH, installed with apt-get when missing."""
    missing = [tool for tool in ("buildah", "debootstrap") if shutil.which(tool) is None]
    if not missing:
        return "present"
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise CheckFailed(
            f"missing {', '.join(missing)}; install them (Debian/Ubuntu: "
            f"sudo apt-get install -y {' '.join(missing)}) and run this as root"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
    subprocess.run(["apt-get", "install", "-y", "-q", *missing], env=env, check=True)
    return f"installed {' '.join(missing)}"


def remove_stale_containers() -> int:
    """Working containers an earlier run left behind (killed before its cleanup)."""
    listed = subprocess.run(
        ["buildah", "containers", "--format", "{{.ContainerName}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    removed = 0
    for name in listed:
        match = re.fullmatch(r"streamproc-image-check-\w+-(\d+)", name)
        if match and not Path(f"/proc/{match.group(1)}").exists():
            subprocess.run(["buildah", "rm", name], capture_output=True, check=False)
            removed += 1
    return removed


# ----------------------------------------------------------------------------- base


def debian_mirror() -> str:
    """The Debian archive apt already uses for ``bookworm`` (not the security one)."""
    if os.environ.get("STREAMPROC_DEBIAN_MIRROR"):
        return os.environ["STREAMPROC_DEBIAN_MIRROR"]
    apt = Path("/etc/apt")
    candidates: list[tuple[str, list[str]]] = []
    for path in sorted([apt / "sources.list", *apt.glob("sources.list.d/*.list")]):
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            words = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                candidates.append((words[1], [words[2]]))
    for path in sorted(apt.glob("sources.list.d/*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled") != "no":
                for uri in fields.get("uris", "").split():
                    candidates.append((uri, fields.get("suites", "").split()))
    for uri, suites in candidates:
        if SUITE in suites and "security" not in uri:
            return uri
    return "http://deb.debian.org/debian"


def image_exists(ref: str) -> bool:
    proc = subprocess.run(
        ["buildah", "inspect", "--type", "image", ref], capture_output=True, check=False
    )
    return proc.returncode == 0


def cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "streamproc" / "image-base"


def ensure_base(note: list[str]) -> str:
    """The stand-in base image's tag: from buildah's storage, else from the cached
    tarball, else made with debootstrap (and cached)."""
    key = hashlib.sha256(json.dumps(RECIPE, sort_keys=True).encode()).hexdigest()[:12]
    tag = f"localhost/streamproc-base:{SUITE}-{key}"
    if image_exists(tag):
        note.append(f"{tag} (in buildah storage)")
        return tag
    cache = cache_dir() / key
    cache.mkdir(parents=True, exist_ok=True)
    tarball = cache / "rootfs.tar"
    with open(cache / ".lock", "w") as lock:  # one debootstrap at a time
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            note.append(f"{tag} (imported from {tarball})")
        else:
            make_rootfs(tarball)
            note.append(f"{tag} (debootstrap; cached in {tarball})")
        if not image_exists(tag):
            import_rootfs(tarball, tag)
    return tag


def make_rootfs(tarball: Path) -> None:
    mirror = debian_mirror()
    root = Path(tempfile.mkdtemp(prefix="rootfs.", dir=tarball.parent))
    try:
        log(f"debootstrap {SUITE} from {mirror} (once; cached afterwards)")
        run(
            [
                "debootstrap",
                f"--variant={RECIPE['variant']}",
                f"--include={','.join(INCLUDE)}",
                SUITE,
                str(root),
                mirror,
            ]
        )
        for link, target in RECIPE["links"].items():
            path = root / link.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            path.symlink_to(target)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (root / junk).glob("*"):
                if entry.is_file():
                    entry.unlink()
        partial = tarball.with_suffix(".partial")
        run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."])
        partial.replace(tarball)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def import_rootfs(tarball: Path, tag: str) -> None:
    """``podman import`` with buildah alone: a scratch container, the root, a commit."""
    container = run(["buildah", "from", "scratch"], capture=True).strip().splitlines()[-1]
    try:
        mount = run(["buildah", "mount", container], capture=True).strip().splitlines()[-1]
        run(["tar", "--numeric-owner", "-xpf", str(tarball), "-C", mount])
        run(["buildah", "unmount", container])
        env = [arg for k, v in BASE_ENV.items() for arg in ("--env", f"{k}={v}")]
        run(["buildah", "config", *env, "--cmd", json.dumps(RECIPE["cmd"]), container])
        run(["buildah", "commit", "--quiet", "--format", "docker", container, tag], capture=True)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)


# ----------------------------------------------------------------------------- build


def pip_settings() -> tuple[str, list[str]]:
    """The host's pip settings that reach the index (``pip config list``: files and
    PIP_* variables) as a pip.conf, and the host paths they name (to mount)."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    settings: dict[str, str] = {}
    for line in listed.splitlines():
        match = re.match(r"^(:env:|[\w-]+)\.([\w-]+)=(.*)$", line.strip())
        if not match or match.group(2) not in PIP_KEYS:
            continue
        raw = match.group(3)
        try:
            value = str(ast.literal_eval(raw))
        except (ValueError, SyntaxError):
            value = raw
        settings[match.group(2)] = value
    mounts: list[str] = []
    lines = ["[global]"]
    for key, value in settings.items():
        if key in PIP_PATH_KEYS:
            paths = [p for p in value.split() if not p.startswith("/") or Path(p).exists()]
            if not paths:
                continue  # a host path that is not there (pip would only warn)
            mounts += [p for p in paths if p.startswith("/") and not p.startswith("/etc/ssl/")]
            value = " ".join(paths)
        lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n", mounts


def build(base: str, work: Path, note: list[str]) -> str:
    """Build the Dockerfile on ``base``; returns the image id."""
    conf, paths = pip_settings()
    pip_conf = work / "pip.conf"
    pip_conf.write_text(conf)
    log("pip settings for the build:\n" + conf.rstrip())
    volumes = ["-v", "/etc/ssl/certs:/etc/ssl/certs:ro", "-v", f"{pip_conf}:/etc/pip.conf:ro"]
    for path in paths:
        volumes += ["-v", f"{path}:{path}:ro"]
    cmd = [
        "buildah",
        "bud",
        *ISOLATION,
        "--format",
        "docker",  # the OCI format drops HEALTHCHECK
        "--pull=never",
        *volumes,
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        "--iidfile",
        str(work / "iid"),
        "-t",
        IMAGE,
        "-f",
        str(ROOT / "Dockerfile"),
        str(ROOT),
    ]
    log(" ".join(cmd))
    run(cmd)
    image = (work / "iid").read_text().strip().removeprefix("sha256:")
    note.append(f"{IMAGE} ({image[:12]})")
    return image


# ----------------------------------------------------------------------------- running


def image_config(image: str) -> dict[str, Any]:
    data = json.loads(run(["buildah", "inspect", "--type", "image", image], capture=True))
    config: dict[str, Any] = data["Docker"]["config"]
    return config


def new_container(role: str, image: str, env: dict[str, str] | None = None) -> str:
    """A working container of ``image`` (``env`` as ``docker run -e``)."""
    name = f"streamproc-image-check-{role}-{os.getpid()}"
    container = run(["buildah", "from", "--pull=never", "--name", name, image], capture=True)
    container = container.strip().splitlines()[-1]
    if env:
        args = [arg for k, v in env.items() for arg in ("--env", f"{k}={v}")]
        run(["buildah", "config", *args, container])
    return container


def in_container(container: str, command: Sequence[str], volumes: Sequence[str] = ()) -> list[str]:
    """The ``buildah run`` command line (the image's user, env and workdir apply; /tmp a
    tmpfs, as compose's ``tmpfs`` and the chart's emptyDir)."""
    args = [arg for v in volumes for arg in ("-v", v)]
    tmp = ("--mount", "type=tmpfs,destination=/tmp")
    return ["buildah", "run", *ISOLATION, *tmp, *args, container, "--", *command]


#: What ``buildah run`` itself writes into a container's root: /run/.containerenv and the
#: name-resolution files (Docker and Kubernetes mount their own over those).
RUNTIME_WRITES = {
    "run",
    "run/.containerenv",
    "etc",
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
}


def root_writes(container: str, since: float) -> list[str]:
    """Paths of ``container``'s root filesystem changed after ``since`` (not the volumes
    or /tmp, which are other mounts): what a read-only root filesystem would refuse."""
    mount = Path(run(["buildah", "mount", container], capture=True).strip().splitlines()[-1])
    try:
        device = mount.stat().st_dev
        changed = []
        for top, dirs, files in os.walk(mount):
            for name in [*dirs, *files]:
                path = Path(top) / name
                info = path.lstat()
                if info.st_dev != device:
                    dirs[:] = [d for d in dirs if d != name]
                elif max(info.st_mtime, info.st_ctime) > since:
                    changed.append(str(path.relative_to(mount)))
        return sorted(set(changed) - RUNTIME_WRITES)
    finally:
        subprocess.run(["buildah", "unmount", container], capture_output=True, check=False)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


class Background:
    """A ``buildah run`` in the background with its output in a log file. ``stop`` sends
    SIGTERM to the command itself (as ``docker stop`` does): signalling ``buildah run``
    would kill it."""

    def __init__(self, name: str, cmd: list[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: TextIO = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout_s: float = 60.0) -> int:
        deadline = time.monotonic() + timeout_s
        while self.running() and time.monotonic() < deadline:
            # Again every few seconds: a command still starting may not handle it yet.
            below = descendants(self.proc.pid)
            for pid in [p for p in below if not descendants(p)]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(min(5.0, max(0.1, deadline - time.monotonic())))
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        if not self._log.closed:
            self._log.close()
        return self.proc.returncode

    def said(self, text: str) -> bool:
        return text in self.log_path.read_text(errors="replace")

    def tail(self, n: int = 40) -> str:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(f"  [{self.name}] {line}" for line in lines[-n:])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metrics(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return str(r.read().decode())
    except OSError:
        return None


def counted(text: str) -> tuple[float, float]:
    """(records counted for the demo model, records dead-lettered) from /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    events = dead = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "streamproc_events_total" and sample.labels.get("model") == MODEL:
                events += sample.value
            elif sample.name == "streamproc_deadletter_total":
                dead += sample.value
    return events, dead


def wait_for(predicate: Callable[[], object], timeout_s: float, every_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return bool(predicate())


def topic_records(bootstrap: str, topic: str) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "image-check.count"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        total = 0
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """What the compose stack's ``topics`` service does."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        future.result(timeout=30)


class Broker:
    """``streamproc broker start`` on a free port with its own data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.bootstrap = ""

    def start(self) -> str:
        last = ""
        for _ in range(3):  # a free port can be taken before the broker binds it
            port = free_port()
            cmd = [str(STREAMPROC), "broker", "start", "--port", str(port)]
            proc = subprocess.run(
                [*cmd, "--data-dir", str(self.data_dir)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode == 0:
                self.bootstrap = f"127.0.0.1:{port}"
                return self.bootstrap
            last = (proc.stdout + proc.stderr).strip()
        raise CheckFailed(f"streamproc broker start failed: {last}")

    def stop(self) -> None:
        subprocess.run(
            [str(STREAMPROC), "broker", "stop", "--data-dir", str(self.data_dir)],
            capture_output=True,
            check=False,
        )


def healthcheck_command(config: dict[str, Any]) -> tuple[list[str], float]:
    check = config.get("Healthcheck") or {}
    test = list(check.get("Test") or [])
    if not test or test[0] not in {"CMD", "CMD-SHELL"}:
        raise CheckFailed(f"the image has no HEALTHCHECK command (Healthcheck={check})")
    command = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
    timeout_s = (check.get("Timeout") or 30_000_000_000) / 1e9
    return command, timeout_s


def healthcheck(container: str, command: list[str], timeout_s: float) -> int:
    proc = subprocess.run(
        in_container(container, command), capture_output=True, timeout=timeout_s + 10, check=False
    )
    return proc.returncode


# ----------------------------------------------------------------------------- checks


def smoke(image: str, config: dict[str, Any], note: list[str]) -> None:
    user = str(config.get("User") or "")
    if not user or user.split(":")[0] in {"root", "0"}:
        raise CheckFailed(f"the image runs as {user or 'root'}, not as an unprivileged user")
    if config.get("Entrypoint") != ["streamproc"]:
        raise CheckFailed(f"ENTRYPOINT is {config.get('Entrypoint')}, not ['streamproc']")
    container = new_container("smoke", image)
    try:
        ids = run(in_container(container, ["id", "-u"]), capture=True).split()[-1]
        gid = run(in_container(container, ["id", "-g"]), capture=True).split()[-1]
        if (ids, gid) != (str(UID), str(UID)):
            raise CheckFailed(f"runs as uid {ids} gid {gid}, not {UID}:{UID}")
        version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
        said = run(in_container(container, ["streamproc", "--version"]), capture=True).strip()
        if said.splitlines()[-1] != f"streamproc {version}":
            raise CheckFailed(f"streamproc --version said {said!r}, not 'streamproc {version}'")
        helped = run(in_container(container, ["streamproc", "worker", "--help"]), capture=True)
        if "usage: streamproc worker" not in helped:
            raise CheckFailed(f"streamproc worker --help said:\n{helped}")
        note.append(f"user {user} (uid {ids}), {said}, worker --help")
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, check=False)


def stack(
    image: str,
    config: dict[str, Any],
    work: Path,
    phase: Phases,
    traffic_s: float,
    cleanup: list[Callable[[], object]],
) -> None:
    """The compose stack's reference, worker and traffic services against a host broker."""
    with phase("broker") as note:
        broker = Broker(work / "broker")
        cleanup.append(broker.stop)
        bootstrap = broker.start()
        create_topic(bootstrap, TOPIC, 4)
        note.append(f"{bootstrap}, topic {TOPIC} (4 partitions)")

    metrics_port = free_port()
    env = {
        "STREAMPROC_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "STREAMPROC_METRICS_PORT": str(metrics_port),
    }
    data = work / "data"  # the compose volume streamproc-data, owned by the image's user
    data.mkdir()
    os.chown(data, UID, UID)
    volumes = [f"{ROOT / 'deploy' / 'compose'}:/etc/streamproc:ro", f"{data}:{CONTAINER_DATA}"]

    with phase("worker") as note:
        worker_ctr = new_container("worker", image, env)
        cleanup.append(lambda: subprocess.run(["buildah", "rm", worker_ctr], capture_output=True))
        reference = ["python", "/etc/streamproc/demo_traffic.py", "reference", "--out", REFERENCE]
        time.sleep(1.0)  # file times have a coarse clock: changes from here on are the runs'
        began = time.time()
        run(in_container(worker_ctr, reference, volumes))
        command = ["streamproc", "worker", "--config", "/etc/streamproc/monitor.toml"]
        worker = Background("worker", in_container(worker_ctr, command, volumes), work / "w.log")
        cleanup.append(worker.stop)
        if not wait_for(lambda: not worker.running() or metrics(metrics_port), 120):
            raise CheckFailed(f"no /metrics on :{metrics_port} after 120 s\n{worker.tail()}")
        if not worker.running():
            raise CheckFailed(f"the worker exited with {worker.proc.returncode}\n{worker.tail()}")
        note.append(f"reference written, /metrics on :{metrics_port}")

    with phase("health") as note:
        check, timeout_s = healthcheck_command(config)
        rc = healthcheck(worker_ctr, check, timeout_s)
        if rc != 0:
            raise CheckFailed(f"HEALTHCHECK {check} exited with {rc}\n{worker.tail()}")
        probe = new_container("probe", image, {"STREAMPROC_METRICS_PORT": "1"})
        cleanup.append(lambda: subprocess.run(["buildah", "rm", probe], capture_output=True))
        if healthcheck(probe, check, timeout_s) == 0:
            raise CheckFailed("HEALTHCHECK passes where nothing listens: it proves nothing")
        note.append("HEALTHCHECK passes on the worker, fails where nothing listens")

    with phase("traffic") as note:
        traffic_ctr = new_container("traffic", image, env)
        cleanup.append(lambda: subprocess.run(["buildah", "rm", traffic_ctr], capture_output=True))
        produce = [
            "python",
            "/etc/streamproc/demo_traffic.py",
            "produce",
            "--bootstrap-servers",
            bootstrap,
            "--topic",
            TOPIC,
            "--rate",
            "500",
        ]
        traffic = Background("traffic", in_container(traffic_ctr, produce, volumes), work / "t.log")
        cleanup.append(traffic.stop)
        if not wait_for(lambda: not traffic.running() or traffic.said("script cycle 1"), 60):
            raise CheckFailed(f"the traffic container did not start in 60 s\n{traffic.tail()}")
        time.sleep(traffic_s)
        rc = traffic.stop()
        if rc != 0:
            raise CheckFailed(f"the traffic container exited with {rc}\n{traffic.tail()}")
        produced = topic_records(bootstrap, TOPIC)
        if produced == 0:
            raise CheckFailed(f"no records on {TOPIC}\n{traffic.tail()}")

        seen: list[tuple[float, float]] = [(0.0, 0.0)]

        def consumed() -> bool:
            text = metrics(metrics_port)
            if text is not None:
                seen.append(counted(text))
            return sum(seen[-1]) >= produced

        if not wait_for(consumed, 90) or seen[-1][0] == 0:
            raise CheckFailed(
                f"the worker counted {seen[-1][0]:.0f} (dead-lettered {seen[-1][1]:.0f}) of "
                f"{produced} records after 90 s\n{worker.tail()}"
            )
        note.append(
            f"{produced} records in {traffic_s:.0f} s; the worker counted {seen[-1][0]:.0f}"
            f" (dead-lettered {seen[-1][1]:.0f})"
        )

    with phase("stop") as note:
        rc = worker.stop()
        if rc != 0:
            raise CheckFailed(f"the worker exited with {rc} on SIGTERM\n{worker.tail()}")
        wrote = root_writes(worker_ctr, began)
        if wrote:
            raise CheckFailed(
                "the worker wrote to its root filesystem (read-only in the chart and in "
                f"compose): {wrote[:20]}"
            )
        note.append("worker exit 0 on SIGTERM; nothing written outside /tmp and the volume")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep-image", action="store_true", help=f"keep {IMAGE} afterwards")
    parser.add_argument(
        "--traffic-seconds", type=float, default=10.0, help="how long traffic runs (default 10)"
    )
    args = parser.parse_args(argv)
    phase = Phases()
    cleanup: list[Callable[[], object]] = []
    image = ""
    work = Path(tempfile.mkdtemp(prefix="streamproc-image-check-"))
    os.chmod(work, 0o755)
    failed: str | None = None
    try:
        with phase("tools") as note:
            note.append(ensure_tools())
            if stale := remove_stale_containers():
                note.append(f"removed {stale} stale containers")
        with phase("base") as note:
            base = ensure_base(note)
        with phase("build") as note:
            image = build(base, work, note)
        config = image_config(image)
        with phase("smoke") as note:
            smoke(image, config, note)
        stack(image, config, work, phase, args.traffic_seconds, cleanup)
    except (CheckFailed, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        failed = str(exc)
    finally:
        with phase("cleanup"):
            for step in reversed(cleanup):
                with contextlib.suppress(Exception):
                    step()
            if image and not args.keep_image:
                subprocess.run(["buildah", "rmi", image], capture_output=True, check=False)
            shutil.rmtree(work, ignore_errors=True)
        print(phase.summary(), flush=True)
    if failed is not None:
        print(f"image-check FAILED: {failed}", file=sys.stderr, flush=True)
        return 1
    print("image-check: OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
