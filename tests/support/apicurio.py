"""A real schema registry for the integration tests: Apicurio Registry, run locally.

Apicurio Registry serves the Confluent Schema Registry REST API under ``/apis/ccompat/v7``.
Its project publishes a prebuilt server on Maven Central beside the app's jar
(``io.apicurio:apicurio-registry-app:<version>:tar.gz:all``): :func:`ensure_server` fetches
and unpacks it once into the streamproc cache with Maven (tests/support/apicurio/pom.xml;
~142 MB, seconds), and :func:`running_registry` starts it on a free loopback port with
in-memory storage (empty at every start, no files written) and stops it afterwards.
Java 17 and ``mvn`` come from the machine (as for the local Kafka broker). See
tests/support/apicurio/README.md for what was checked against it and how it differs from
Confluent's registry.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streamproc.broker.jars import cache_root

APICURIO_VERSION = "2.6.13.Final"
POM = Path(__file__).resolve().parent / "apicurio" / "pom.xml"
START_TIMEOUT_S = 90.0
FETCH_TIMEOUT_S = 900.0
JAVA_FLAGS = ("-Xms32m", "-Xmx192m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")


class RegistrySetupError(RuntimeError):
    """The local registry cannot be fetched or started; the message says why."""


def install_dir(version: str = APICURIO_VERSION) -> Path:
    return cache_root() / "apicurio" / version


def ensure_server(version: str = APICURIO_VERSION) -> Path:
    """The runner jar of ``version``, fetched and unpacked with Maven if needed."""
    home = install_dir(version)
    runner = home / f"apicurio-registry-app-{version}-runner.jar"
    marker = home / ".complete"
    if marker.exists() and runner.exists():
        return runner
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RegistrySetupError("`mvn` is not on PATH (Debian: apt-get install maven)")
    shutil.rmtree(home, ignore_errors=True)
    command = [mvn, "-B", "-q", "-T", "1", "-f", str(POM), "package",
               f"-Dapicurio.version={version}", f"-Dapicurio.dir={home}"]  # fmt: skip
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise RegistrySetupError(f"fetching Apicurio Registry took over {exc.timeout} s") from exc
    if done.returncode != 0 or not runner.exists():
        tail = (done.stdout + done.stderr).strip()[-2000:]
        raise RegistrySetupError(f"fetching Apicurio Registry {version} failed: {tail}")
    shutil.rmtree(POM.parent / "build", ignore_errors=True)  # Maven's own output dir
    marker.touch()
    return runner


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running_registry(version: str = APICURIO_VERSION) -> Iterator[str]:
    """A fresh Apicurio Registry on a free loopback port; its Confluent-API base URL."""
    runner = ensure_server(version)
    java = shutil.which("java")
    if java is None:
        raise RegistrySetupError("`java` is not on PATH (Debian: apt-get install openjdk-17-jre)")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7"
    log = (runner.parent / f"registry-{port}.log").open("wb")
    env = {**os.environ, "HTTP_PORT": str(port), "QUARKUS_HTTP_HOST": "127.0.0.1"}
    process = subprocess.Popen(
        [java, *JAVA_FLAGS, "-jar", str(runner)],
        cwd=runner.parent,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(url):
            if process.poll() is not None:
                raise RegistrySetupError(
                    f"Apicurio Registry exited with {process.returncode}; see {log.name}"
                )
            if time.monotonic() > deadline:
                raise RegistrySetupError(f"Apicurio Registry did not answer in {START_TIMEOUT_S} s")
            time.sleep(0.25)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()
