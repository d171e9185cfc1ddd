"""A secured Apache Kafka broker for the tests: SASL_SSL with SCRAM-SHA-512 and ACLs.

:func:`start_secure_broker` generates, in a temporary directory, a CA and a broker
certificate (openssl; the broker's PKCS12 keystore with openssl, its PKCS12 truststore
with keytool; ``ca.pem`` is what librdkafka clients trust) and starts a
:class:`~streamproc.broker.local.LocalBroker` with:

- one ``SASL_SSL`` listener on 127.0.0.1 (SCRAM-SHA-512 over TLS) for clients *and*
  inter-broker traffic (the transaction coordinator's markers), the broker logging in as
  the ``admin`` super user;
- the ``CONTROLLER`` listener on 127.0.0.1 over mutual TLS (``ssl.client.auth=required``,
  SCRAM is not available to KRaft controllers): only a client with a certificate of the
  test CA gets in, and the broker's own certificate (``User:CN=broker``) is the second
  super user;
- KRaft's ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``: a
  principal can do exactly what its ACLs allow.

SCRAM credentials of every user are written at storage format time (``--add-scram``), so
they exist before the first client connects. ACLs are created by the tests as the admin
(:func:`create_acls`).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from streamproc.broker.jars import BrokerSetupError, require_tool
from streamproc.broker.local import LocalBroker, free_port

MECHANISM = "SCRAM-SHA-512"
ADMIN = "admin"
BROKER_PRINCIPAL = "User:CN=broker"


@dataclass
class SecureBroker:
    """A running secured broker; :meth:`stop` ends it and removes its directory."""

    bootstrap_servers: str
    ca_pem: Path
    passwords: dict[str, str]
    workdir: Path
    broker: LocalBroker
    log_file: Path
    pid: int

    def client_config(self, user: str, password: str | None = None) -> dict[str, str]:
        """librdkafka settings of ``user`` (``password`` to try a wrong one)."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": user,
            "sasl.password": self.passwords[user] if password is None else password,
            "ssl.ca.location": str(self.ca_pem),
        }

    def admin(self) -> AdminClient:
        return AdminClient(self.client_config(ADMIN))

    def stop(self) -> None:
        self.broker.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass(frozen=True)
class Acl:
    """One ALLOW ACL: ``operation`` on a ``kind`` resource named (or prefixed) ``name``."""

    principal: str
    kind: str  # "topic", "group", "transactional-id", "cluster"
    name: str
    operation: str  # READ, WRITE, CREATE, DESCRIBE, IDEMPOTENT_WRITE, ...
    prefixed: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)

    def binding(self) -> AclBinding:
        kinds = {
            "topic": ResourceType.TOPIC,
            "group": ResourceType.GROUP,
            "transactional-id": ResourceType.TRANSACTIONAL_ID,
            "cluster": ResourceType.BROKER,
        }
        return AclBinding(
            kinds[self.kind],
            self.name,
            ResourcePatternType.PREFIXED if self.prefixed else ResourcePatternType.LITERAL,
            self.principal,
            "*",
            AclOperation[self.operation],
            AclPermissionType.ALLOW,
        )


def create_acls(admin: AdminClient, acls: Iterable[Acl], timeout_s: float = 30) -> None:
    """Create ``acls`` as the admin; raises if the broker refused any of them."""
    futures = admin.create_acls([acl.binding() for acl in acls], request_timeout=timeout_s)
    for future in futures.values():
        future.result(timeout=timeout_s)


def _run(*cmd: str, cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BrokerSetupError(f"{cmd[0]} {cmd[1]} failed: {(proc.stdout + proc.stderr)[-600:]}")


def make_certificates(directory: Path, store_password: str) -> tuple[Path, Path, Path]:
    """A CA and a broker certificate (SAN 127.0.0.1 and localhost, server and client
    auth) in ``directory``: returns (ca.pem, broker keystore, broker truststore)."""
    openssl = require_tool("openssl", "to make the test certificates")
    keytool = require_tool("keytool", "to make the broker's truststore (Java 17)")
    ca_key, ca_pem = directory / "ca.key", directory / "ca.pem"
    _run(
        openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=streamproc-test-ca", "-keyout", str(ca_key), "-out", str(ca_pem),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    key, csr, cert = directory / "broker.key", directory / "broker.csr", directory / "broker.pem"
    _run(
        openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=broker",
        "-keyout", str(key), "-out", str(csr),
        cwd=directory,
    )  # fmt: skip
    ext = directory / "broker.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    _run(
        openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca_pem), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert),
        cwd=directory,
    )  # fmt: skip
    keystore = directory / "broker.keystore.p12"
    _run(
        openssl, "pkcs12", "-export", "-in", str(cert), "-inkey", str(key),
        "-certfile", str(ca_pem), "-name", "broker", "-out", str(keystore),
        "-passout", f"pass:{store_password}",
        cwd=directory,
    )  # fmt: skip
    truststore = directory / "broker.truststore.p12"
    _run(
        keytool, "-importcert", "-noprompt", "-alias", "ca", "-file", str(ca_pem),
        "-keystore", str(truststore), "-storetype", "PKCS12", "-storepass", store_password,
        cwd=directory,
    )  # fmt: skip
    return ca_pem, keystore, truststore


def secured_properties(
    port: int,
    controller_port: int,
    *,
    keystore: Path,
    truststore: Path,
    store_password: str,
    admin_password: str,
) -> dict[str, str]:
    """The listener, TLS, SASL and authorizer block that replaces the plaintext one."""
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN}" password="{admin_password}";'
    )
    return {
        "listeners": f"SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"SASL_SSL://127.0.0.1:{port}",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
        "inter.broker.listener.name": "SASL_SSL",
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": jaas,
        "listener.name.controller.ssl.client.auth": "required",
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(keystore),
        "ssl.keystore.password": store_password,
        "ssl.key.password": store_password,
        "ssl.truststore.type": "PKCS12",
        "ssl.truststore.location": str(truststore),
        "ssl.truststore.password": store_password,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{ADMIN};{BROKER_PRINCIPAL}",
        # no auto-creation: a topic exists only when someone allowed to create it did
        "auto.create.topics.enable": "false",
    }


def start_secure_broker(users: Iterable[str] = (), attempts: int = 3) -> SecureBroker:
    """Start a secured broker with the admin and SCRAM users ``users`` (random passwords,
    see :attr:`SecureBroker.passwords`); BrokerSetupError says why it could not."""
    workdir = Path(tempfile.mkdtemp(prefix="streamproc-test-secure-kafka-"))
    try:
        store_password = secrets.token_hex(12)
        passwords = {name: secrets.token_hex(12) for name in (ADMIN, *users)}
        _ca, keystore, truststore = make_certificates(workdir, store_password)
        scram = [
            arg
            for name, password in passwords.items()
            for arg in ("--add-scram", f"{MECHANISM}=[name={name},password={password}]")
        ]

        def extra(port: int, controller_port: int) -> dict[str, str]:
            return secured_properties(
                port,
                controller_port,
                keystore=keystore,
                truststore=truststore,
                store_password=store_password,
                admin_password=passwords[ADMIN],
            )

        admin_config = {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": MECHANISM,
            "sasl.username": ADMIN,
            "sasl.password": passwords[ADMIN],
            "ssl.ca.location": str(workdir / "ca.pem"),
        }
        broker = LocalBroker(
            workdir / "broker",
            extra_properties=extra,
            format_args=scram,
            client_config=admin_config,
        )
        last: Exception | None = None
        for _ in range(attempts):  # a free port can be taken before the broker binds it
            try:
                info = broker.start(free_port())
            except BrokerSetupError as exc:
                last = exc
                if "already in use" not in str(exc) and "not ready" not in str(exc):
                    raise
                continue
            return SecureBroker(
                bootstrap_servers=info.bootstrap_servers,
                ca_pem=workdir / "ca.pem",
                passwords=passwords,
                workdir=workdir,
                broker=broker,
                log_file=Path(info.log_file),
                pid=info.pid,
            )
        raise BrokerSetupError(f"secured broker did not start after {attempts} attempts: {last}")
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
