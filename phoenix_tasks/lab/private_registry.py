"""The lab's private registry (a login, its own name, TLS), and Docker Hub's name in the lab.

What every lab VM gets (at `lab.up`, `ensure_files`): an /etc/hosts that names
`registry.phoenix.lab` at the lab gateway, and an /etc/docker whose
`certs.d/registry.phoenix.lab:5443/ca.crt` is the lab's own CA, both bound into each
lab daemon's mount namespace (commands.VM_SETUP_THEN_EXEC).  So an engine reaches the
name, checks its certificate against a CA it trusts, and answers as with any real
private registry: no credentials is `no basic auth credentials`, wrong ones `401
Unauthorized`, a missing tag `manifest unknown`.

The registry itself (`start`, `stop`) is Debian's `docker-registry` (distribution 2.8)
with `auth.htpasswd` (bcrypt), `http.tls` (a certificate for the name and the gateway
address, signed by the lab CA), listening on the gateway, port 5443 only; it is started
by who needs it (a lab test), its pid in its pid file (a pid counts only while its
command line names this lab's config), and stopped by `lab.down` if still running.

Docker Hub's name (`ensure_hub`, at every `lab.up`): the same /etc/hosts names
`registry-1.docker.io` at the gateway, the same certificate holds that name, and a
second `docker-registry` serves the lab registry's storage read-only there on port 443
(TLS, no login), the lab CA being in the CA bundle each lab daemon sees (bound over
/etc/ssl/certs/ca-certificates.crt: Docker Hub's endpoint is checked against the
system roots, not certs.d).  An engine that asks its mirror (the lab registry) for a
tag it lacks falls back to "Docker Hub", as everywhere, and gets Docker Hub's answer
from a registry it reached: `manifest unknown`.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Mapping

import yaml

from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.lab import commands, keys, procs, system
from phoenix_tasks.lab.naming import LabNames

NAME = "registry.phoenix.lab"
PORT = 5443
SERVER = f"{NAME}:{PORT}"
HUB = "registry-1.docker.io"  # where an engine pulls a docker.io image from
HUB_PORT = 443
SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
READY_TIMEOUT_S = 20.0


class PrivateRegistryError(PhoenixError):
    pass


def _files(names: LabNames) -> dict[str, Path]:
    d = names.private_registry_dir
    return {"ca_cert": d / "ca.crt", "ca_key": d / "ca.key", "cert": d / "server.crt", "key": d / "server.key",
            "htpasswd": d / "htpasswd", "config": d / "config.yml", "storage": d / "storage",
            "pid": d / "registry.pid", "log": d / "registry.log",
            "hub_config": d / "hub.yml", "hub_pid": d / "hub.pid", "hub_log": d / "hub.log",
            "bundle": d / "ca-bundle.crt"}


def hosts_text(gateway: ipaddress.IPv4Address) -> str:
    return ("# phoenix lab: bound over /etc/hosts in every lab daemon\n"
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"{gateway}\t{NAME} {HUB}\n")


def _tls(names: LabNames, gateway: ipaddress.IPv4Address) -> bool:
    """The lab CA and the registry's certificate (made once per lab); True if made."""
    f = _files(names)
    if f["ca_cert"].is_file() and f["cert"].is_file() and f["key"].is_file():
        return False
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phoenix lab CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(NAME), x509.DNSName(HUB), x509.IPAddress(gateway)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    names.private_registry_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = serialization.Encoding.PEM
    private = dict(encoding=pem, format=serialization.PrivateFormat.PKCS8,
                   encryption_algorithm=serialization.NoEncryption())
    keys.write_private(f["ca_key"], ca_key.private_bytes(**private).decode())
    keys.write_private(f["key"], key.private_bytes(**private).decode())
    f["ca_cert"].write_text(ca.public_bytes(pem).decode())
    f["cert"].write_text(cert.public_bytes(pem).decode())
    return True


def ensure_files(names: LabNames, gateway: ipaddress.IPv4Address) -> list[str]:
    """What every lab daemon binds: the hosts file and /etc/docker with the lab CA."""
    done = []
    if _tls(names, gateway):
        done.append(f"made the lab CA and {NAME}'s certificate in {names.private_registry_dir}")
    text = hosts_text(gateway)
    if not names.hosts_file.is_file() or names.hosts_file.read_text() != text:
        names.hosts_file.write_text(text)
        done.append(f"wrote {names.hosts_file} ({NAME} at {gateway})")
    ca = names.etc_docker / "certs.d" / SERVER / "ca.crt"
    want = _files(names)["ca_cert"].read_text()
    if not ca.is_file() or ca.read_text() != want:
        ca.parent.mkdir(parents=True, exist_ok=True)
        ca.write_text(want)
        done.append(f"wrote {ca} (the engines trust the lab CA for {SERVER})")
    bundle = _files(names)["bundle"]
    text = (SYSTEM_BUNDLE.read_text() if SYSTEM_BUNDLE.is_file() else "") + want
    if not bundle.is_file() or bundle.read_text() != text:
        bundle.write_text(text)
        done.append(f"wrote {bundle} (the system's CAs and the lab CA)")
    return done


def hub_config_text(names: LabNames, gateway: ipaddress.IPv4Address) -> str:
    f = _files(names)
    return yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "fields": {"service": "phoenix-lab-docker-hub"}},
        "storage": {"filesystem": {"rootdirectory": str(names.registry_storage)},
                    "maintenance": {"uploadpurging": {"enabled": False}, "readonly": {"enabled": True}}},
        "http": {"addr": f"{gateway}:{HUB_PORT}", "host": f"https://{HUB}",
                 "tls": {"certificate": str(f["cert"]), "key": str(f["key"])}},
    }, sort_keys=False)


def hub_pid(names: LabNames) -> int | None:
    f = _files(names)
    return procs.lab_pid(f["hub_pid"], str(f["hub_config"]))


def ensure_hub(names: LabNames, gateway: ipaddress.IPv4Address) -> list[str]:
    """Docker Hub's name served by the lab registry's storage (read-only), TLS, :443."""
    f = _files(names)
    text = hub_config_text(names, gateway)
    same = f["hub_config"].is_file() and f["hub_config"].read_text() == text
    running = hub_pid(names)
    if same and running is not None and _status(gateway, f["ca_cert"], 1.0, HUB_PORT) == 200:
        return []
    if running is not None:
        procs.stop([running], 10)
    keys.write_private(f["hub_config"], text)
    f["hub_pid"].unlink(missing_ok=True)
    system.spawn(["setsid", "--fork", "sh", "-c", commands.WRITE_PID_THEN_EXEC, str(f["hub_pid"]),
                  "docker-registry", "serve", str(f["hub_config"])], f["hub_log"])
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if _status(gateway, f["ca_cert"], 0.5, HUB_PORT) == 200:
            return [f"started {HUB} in the lab on {gateway}:{HUB_PORT} (the lab registry's storage, read-only)"]
        time.sleep(0.1)
    raise PrivateRegistryError(f"the lab's {HUB} does not answer on {gateway}:{HUB_PORT}; see {f['hub_log']}: "
                               f"{system.last_line(f['hub_log'])}")


def htpasswd_text(users: Mapping[str, str]) -> str:
    import bcrypt
    return "".join(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
                   for user, password in sorted(users.items()))


def config_text(names: LabNames, gateway: ipaddress.IPv4Address) -> str:
    f = _files(names)
    return yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "info", "formatter": "text", "fields": {"service": "phoenix-lab-private-registry"}},
        "storage": {"filesystem": {"rootdirectory": str(f["storage"])}, "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "auth": {"htpasswd": {"realm": "phoenix-lab", "path": str(f["htpasswd"])}},
        "http": {"addr": f"{gateway}:{PORT}", "host": f"https://{SERVER}",
                 "tls": {"certificate": str(f["cert"]), "key": str(f["key"])}},
    }, sort_keys=False)


def pid(names: LabNames) -> int | None:
    f = _files(names)
    return procs.lab_pid(f["pid"], str(f["config"]))


def _status(gateway: ipaddress.IPv4Address, ca: Path, timeout: float = 1.0, port: int = PORT) -> int | None:
    """The HTTP status of GET /v2/ (401 when it runs: it wants a login), over TLS
    checked against the lab CA (by the gateway address: the host does not resolve NAME)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    handler = urllib.request.HTTPSHandler(context=ctx)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), handler)
    try:
        with opener.open(f"https://{gateway}:{port}/v2/", timeout=timeout) as res:
            return res.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, urllib.error.URLError):
        return None


def start(names: LabNames, gateway: ipaddress.IPv4Address, users: Mapping[str, str]) -> None:
    """Run the private registry with these users (user -> password); restarts it if it
    runs already.  Waits until it answers 401 on /v2/."""
    ensure_files(names, gateway)
    stop(names)
    f = _files(names)
    f["storage"].mkdir(mode=0o700, parents=True, exist_ok=True)
    keys.write_private(f["htpasswd"], htpasswd_text(users))
    keys.write_private(f["config"], config_text(names, gateway))
    f["pid"].unlink(missing_ok=True)
    system.spawn(commands.private_registry_serve(names, f["config"]), f["log"])
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if _status(gateway, f["ca_cert"], 0.5) == 401:
            return
        time.sleep(0.1)
    raise PrivateRegistryError(f"the lab's private registry does not answer on {gateway}:{PORT}; see {f['log']}: "
                               f"{system.last_line(f['log'])}")


def stop(names: LabNames, hub: bool = False) -> list[str]:
    """Stop the private registry (and with `hub`, Docker Hub's stand-in too)."""
    done = []
    for what, running in (("private registry", pid(names)), (HUB, hub_pid(names) if hub else None)):
        if running is None:
            continue
        if procs.stop([running], 10):
            raise PrivateRegistryError(f"the lab's {what} (pid {running}) did not stop")
        done.append(f"stopped the lab's {what} (pid {running})")
    return done
