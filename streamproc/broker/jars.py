"""Fetch the official Apache Kafka broker jars from Maven Central, once per version.

The jars land in a per-user cache keyed by version
(``$STREAMPROC_CACHE_DIR`` or ``$XDG_CACHE_HOME/streamproc`` or ``~/.cache/streamproc``)
under ``kafka/<version>/libs``. A completed fetch leaves a ``.complete`` marker;
concurrent fetches (two test runs at once) serialize on a file lock.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

#: The pinned Apache Kafka release (Scala 2.13 build), KRaft only.
KAFKA_VERSION = "4.1.1"


class BrokerSetupError(RuntimeError):
    """The local broker cannot be set up; the message says what to do."""


def cache_root() -> Path:
    """Per-user cache directory for streamproc downloads."""
    explicit = os.environ.get("STREAMPROC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "streamproc"


def jar_dir(version: str = KAFKA_VERSION) -> Path:
    """Where the jars of ``version`` live once fetched."""
    return cache_root() / "kafka" / version / "libs"


def require_tool(name: str, purpose: str) -> str:
    """Return the path of an executable or raise with install advice."""
    path = shutil.which(name)
    if path is None:
        raise BrokerSetupError(
            f"`{name}` was not found on PATH; it is needed {purpose}. "
            f"Install it (Debian: `apt-get install {_DEBIAN_PACKAGES.get(name, name)}`) and retry."
        )
    return path


_DEBIAN_PACKAGES = {"java": "openjdk-17-jre-headless", "mvn": "maven"}


def ensure_jars(version: str = KAFKA_VERSION, *, quiet: bool = False) -> Path:
    """Return the directory holding the broker's jars, fetching them with Maven if needed."""
    libs = jar_dir(version)
    marker = libs.parent / ".complete"
    if marker.exists():
        return libs
    mvn = require_tool("mvn", "to fetch the Apache Kafka jars from Maven Central")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():  # another process fetched while we waited
            return libs
        if not quiet:
            print(
                f"Fetching Apache Kafka {version} jars from Maven Central into {libs} ...",
                file=sys.stderr,
            )
        pom = libs.parent / "pom.xml"
        template = resources.files("streamproc.broker").joinpath("pom.xml").read_text()
        pom.write_text(template.replace("@KAFKA_VERSION@", version))
        shutil.rmtree(libs, ignore_errors=True)
        cmd = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            "-DincludeScope=runtime",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
            raise BrokerSetupError(
                f"Maven could not fetch org.apache.kafka:kafka_2.13:{version} "
                f"(exit {proc.returncode}). Check network access to Maven Central and "
                "~/.m2/settings.xml. Maven said:\n" + "\n".join(tail)
            )
        if not any(libs.glob(f"kafka_2.13-{version}.jar")):
            raise BrokerSetupError(f"Maven finished but {libs} holds no kafka_2.13 jar")
        marker.write_text(version + "\n")
    return libs
