"""Stand-in images: no registry is reachable, so the lab makes its own.

Every image that `stacks/*/docker-compose.yml` references gets a tiny image built
from Debian's busybox-static, under the real name and tag (served to every lab VM by
the lab registry, see ``mirror``),
plus this machine's /usr/bin/openssl with the shared libraries `ldd` names for it
and a self-signed certificate (made once per lab on this machine, `openssl req
-x509`, CN phoenix-lab-stand-in, 10 years). It accepts any command and arguments (and
ignores them). These are stand-ins: the program inside is not the real service.

What a stand-in does is chosen by the container's environment (a stack's compose
`environment:`), so deploy tests can have serving, failing and one-shot services:

- `PHX_STANDIN_EXIT` unset or empty: serve, forever, on every port that image's
  services listen on (compose `ports[].target` and `expose`, baked into the image as
  `PHX_PORTS`): a port whose number ends in 443 (443, 8443, 9443, ...) answers HTTPS
  (`openssl s_server -www`: any GET gets HTTP 200 with a status page; one connection
  at a time), every other port HTTP (busybox httpd: "phoenix lab stand-in image").
  So a probe of Portainer's 9443 (TLS handshake, `GET /api/system/status`) gets 200.
- `PHX_STANDIN_EXIT=<code>`, a number 0-255 written without leading zeros: wait
  `PHX_STANDIN_DELAY` seconds (a whole number, at most 9 digits, 0 allowed; default
  1), then exit with that code without serving. 0 is a one-shot job that completes;
  any other code is a failing service.
- `PHX_STANDIN_EXIT` anything else (or a bad `PHX_STANDIN_DELAY` with it): one
  `stand-in: ...` line on stderr naming the variable and its value, exit 2.

Before serving or waiting it prints one line on stdout saying what it does (`stand-in
for thinkheads/ai-api:1.4.0: serving on 8000`, `stand-in for x/y:1: exiting with 3
after 1 s`), which `docker service logs` shows. SIGTERM or SIGINT ends it at once with
exit 0 in every mode (`docker stop` does not wait for the kill timeout).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from phoenix_tasks.config.documents import read_compose
from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.lab import commands

# Where the image holds the TLS pair that SERVE_SCRIPT names (written there literally).
TLS_CERT = "etc/stand-in/cert.pem"
TLS_KEY = "etc/stand-in/key.pem"
BUSYBOX_APPLETS = ("sh", "sleep", "httpd", "wget", "cat", "echo", "ls", "ps", "hostname",
                   "env", "kill", "mkdir", "nc", "true", "false", "id", "ip", "nslookup")

# Runs as `sh -c SCRIPT stand-in ARGS...`: whatever command or arguments a stack gives
# the container land in $0.. and are ignored. The script reads only the environment
# variables PHX_STANDIN_EXIT, PHX_STANDIN_DELAY, PHX_STANDIN_FOR and PHX_PORTS (the
# shell itself reads PATH to find the busybox applets), and runs only the applets
# echo, sleep and httpd, and openssl (ports ending in 443: `case $port in *443)`).
# It is POSIX sh as busybox ash runs it; numbers are checked with `case` patterns
# before any use. The TERM handler makes `docker stop` fast: pid 1 ignores signals it
# does not trap, and a trap runs only once the foreground command ends, so every wait
# is a background `sleep` plus the `wait` builtin, which a trapped signal interrupts.
# (Background children, the servers included, are not killed on exit: in a container
# they die with pid 1.)
SERVE_SCRIPT = "\n".join((
    'trap "exit 0" TERM INT',
    'me="stand-in for $PHX_STANDIN_FOR"',
    'case $PHX_STANDIN_EXIT in',
    "'')",
    '  echo "$me: serving on ${PHX_PORTS:-no port (PHX_PORTS is empty)}"',
    '  for port in $PHX_PORTS; do',
    '    case $port in',
    '    *443) openssl s_server -quiet -www -accept "$port"'
    ' -cert /etc/stand-in/cert.pem -key /etc/stand-in/key.pem & ;;',
    '    *) httpd -f -p "$port" -h /www & ;;',
    '    esac',
    '  done',
    '  sleep 2147483647 & wait ;;',
    '[0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])',
    '  delay=${PHX_STANDIN_DELAY:-1}',
    '  case $delay in',
    '  *[!0-9]*|??????????*)',
    '    echo "stand-in: PHX_STANDIN_DELAY must be a whole number of seconds'
    ' (at most 9 digits), not \'$delay\'" >&2',
    '    exit 2 ;;',
    '  esac',
    '  echo "$me: exiting with $PHX_STANDIN_EXIT after $delay s"',
    '  sleep "$delay" & wait $!',
    '  exit "$PHX_STANDIN_EXIT" ;;',
    '*)',
    '  echo "stand-in: PHX_STANDIN_EXIT must be a number 0-255,'
    ' not \'$PHX_STANDIN_EXIT\'" >&2',
    '  exit 2 ;;',
    'esac',
))


# Labels the lab adds to a stand-in: what it was built from (``mirror`` compares it with
# what the registry holds), and the note of a variant pushed on purpose.
FINGERPRINT_LABEL = "io.phoenix.lab.stand-in.fingerprint"
VARIANT_LABEL = "io.phoenix.lab.stand-in.variant"
NOTE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Docker's reference grammar, the parts the lab uses (a name's path and a tag).
_PATH = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")


class ComposeUnreadable(PhoenixError):
    pass


class BadNote(PhoenixError):
    """A variant's note that cannot be a label value as it is."""


@dataclass(frozen=True)
class HubName:
    """An image name:tag on Docker Hub, as a registry mirror serves it."""

    repository: str  # the path in the registry: "portainer/agent", "library/busybox"
    tag: str

    @property
    def familiar_repository(self) -> str:
        """As the engine shows it in RepoTags and RepoDigests: "busybox", "portainer/agent"."""
        return self.repository.removeprefix("library/")

    @property
    def familiar(self) -> str:
        return f"{self.familiar_repository}:{self.tag}"

    def in_registry(self, address: str) -> str:
        """The name that pushes it to the registry at address ("host:port")."""
        return f"{address}/{self.repository}:{self.tag}"


def hub_name(image: str) -> HubName | None:
    """image as a Docker Hub name and tag; None if it names another registry, a
    digest, or is not a valid reference (the lab then loads it on each VM itself)."""
    if "@" in image:
        return None
    name, tag = image, "latest"
    head, slash, tail = image.rpartition("/")
    if ":" in tail:
        name_tail, tag = tail.rsplit(":", 1)
        name = f"{head}{slash}{name_tail}"
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        if first not in HUB_HOSTS:
            return None
        name = rest
    if "/" not in name:
        name = f"library/{name}"
    if not _PATH.fullmatch(name) or not _TAG.fullmatch(tag):
        return None
    return HubName(name, tag)


def fingerprint(rootfs: bytes, changes: list[str]) -> str:
    """What a stand-in is built from: its root filesystem and its `--change` lines."""
    digest = hashlib.sha256(rootfs)
    digest.update(b"\0" + "\n".join(changes).encode())
    return f"sha256:{digest.hexdigest()}"


class StandInUnbuildable(PhoenixError):
    """A file the stand-in root filesystem needs cannot be found on this machine."""


@dataclass(frozen=True)
class RootfsParts:
    """Files of this machine that go into the stand-in root filesystem."""

    busybox: Path  # static
    openssl: Path
    libraries: tuple[Path, ...]  # openssl's, as ldd names them, the loader included
    tls_cert: Path
    tls_key: Path


@dataclass(frozen=True)
class StandIn:
    image: str  # name:tag, as the stacks write it
    ports: tuple[int, ...]

    def changes(self, note: str | None = None) -> list[str]:
        """`docker import --change` instructions giving the image its behaviour:
        SERVE_SCRIPT as entrypoint, no command, the ports to serve (PHX_PORTS) and the
        real image name for its log line (PHX_STANDIN_FOR). PHX_STANDIN_EXIT and
        PHX_STANDIN_DELAY are not set here: a stack sets them per service.

        note: a variant (same behaviour, another image): labelled VARIANT_LABEL=note."""
        changes = [
            "ENTRYPOINT " + json.dumps(["/bin/sh", "-c", SERVE_SCRIPT, "stand-in"]),
            'CMD []',
            "ENV PHX_PORTS=" + json.dumps(" ".join(str(p) for p in self.ports)),
            "ENV PHX_STANDIN_FOR=" + self.image,
            "LABEL io.phoenix.lab.stand-in=true",
        ]
        if note is not None:
            if not NOTE_PATTERN.fullmatch(note):
                raise BadNote(f"a variant's note must be 1-64 letters, digits, '.', '_' "
                              f"or '-' (starting with a letter or digit), not {note!r}")
            changes.append(f"LABEL {VARIANT_LABEL}={note}")
        return changes



def _port_numbers(value: Any, where: str) -> list[int]:
    """Container ports from one `ports`/`expose` entry (short or long syntax)."""
    if isinstance(value, dict):
        value = value.get("target")
        if value is None:
            raise ComposeUnreadable(f"{where}: a long-syntax port without 'target'")
    text = str(value).strip()
    text = text.rsplit("/", 1)[0]          # 8080/tcp
    text = text.rsplit(":", 1)[-1]         # [ip:]published:target
    match = re.fullmatch(r"(\d+)(?:-(\d+))?", text)
    if not match:
        raise ComposeUnreadable(f"{where}: cannot read a container port from {value!r}")
    first = int(match.group(1))
    last = int(match.group(2) or first)
    if not 1 <= first <= last <= 65535 or last - first > 100:
        raise ComposeUnreadable(f"{where}: port range {value!r} is out of bounds")
    return list(range(first, last + 1))


def stand_ins_from_compose(documents: Iterable[tuple[str, dict]]) -> list[StandIn]:
    """One StandIn per image name, with the union of its services' ports.

    documents: (file name for messages, parsed compose YAML) pairs."""
    ports: dict[str, set[int]] = {}
    for where, doc in documents:
        services = (doc or {}).get("services") or {}
        for service_name, service in services.items():
            image = (service or {}).get("image")
            if not image:
                continue
            if "$" in str(image):
                raise ComposeUnreadable(f"{where}: service {service_name}: image "
                                        f"{image!r} uses a variable; the lab needs "
                                        "literal image names")
            here = f"{where}: service {service_name}"
            found = ports.setdefault(str(image), set())
            for entry in service.get("ports") or []:
                found.update(_port_numbers(entry, here))
            for entry in service.get("expose") or []:
                found.update(_port_numbers(entry, here))
    return [StandIn(image, tuple(sorted(p))) for image, p in sorted(ports.items())]


def stand_ins_for_stacks(stacks_dir: Path) -> list[StandIn]:
    documents = []
    for compose in sorted(stacks_dir.glob("*/docker-compose.yml")):
        problems: list = []
        doc = read_compose(compose, problems)  # the safe reader validate uses
        if doc is None:
            raise ComposeUnreadable("; ".join(p.render() for p in problems))
        documents.append((str(compose), doc))
    return stand_ins_from_compose(documents)


def ldd_libraries(text: str) -> tuple[Path, ...]:
    """The shared objects that `ldd` output names, with the dynamic loader, as
    absolute paths (the kernel's vdso has no file); a library ldd cannot find is an
    error, since the program would not start in the image."""
    found = []
    for line in text.splitlines():
        line = line.strip()
        name, arrow, target = line.partition("=>")
        path = (target if arrow else name).split(" (", 1)[0].strip()
        if path == "not found":
            raise StandInUnbuildable(f"ldd: {name.strip()} not found; the stand-in's "
                                     "openssl could not run")
        if path.startswith("/"):
            found.append(Path(path))
    return tuple(dict.fromkeys(found))


def openssl_libraries(openssl: Path, run: Callable[[list[str]], Any]) -> tuple[Path, ...]:
    """openssl's shared libraries and loader, read with ldd through `run` (system.run)."""
    return ldd_libraries(run(commands.ldd(openssl)).stdout)


def ensure_tls_pair(cert: Path, key: Path, run: Callable[[list[str]], Any]) -> bool:
    """The stand-ins' self-signed certificate and key, made once (`openssl req` on
    this machine: the image has no openssl.cnf); True if made.  Kept in the lab's
    state so the rootfs tar stays the same from one `lab.up` to the next."""
    if cert.is_file() and key.is_file():
        return False
    cert.parent.mkdir(parents=True, exist_ok=True)
    for path in (cert, key):
        path.unlink(missing_ok=True)
    run(commands.self_signed_cert(cert, key))
    return True


def rootfs_tar_bytes(parts: RootfsParts) -> bytes:
    """A root filesystem: /bin/busybox, applet links, /www/index.html, /tmp,
    /usr/bin/openssl with its libraries at the paths ldd gave, the TLS pair."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs: set[str] = set()

        def add_dir(name: str, mode: int = 0o755) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
            dirs.add(name)

        def add_file(name: str, data: bytes, mode: int = 0o644) -> None:
            parent = ""
            for part in name.split("/")[:-1]:  # parents first, each once
                parent = f"{parent}/{part}" if parent else part
                if parent not in dirs:
                    add_dir(parent)
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))

        def copy(source: Path, name: str, mode: int) -> None:
            try:
                data = source.read_bytes()  # a link's target: the image has no links there
            except OSError as e:
                raise StandInUnbuildable(f"cannot read {source} for the stand-in image: "
                                         f"{e.strerror}") from None
            add_file(name, data, mode)

        for d in ("bin", "www", "etc", "proc", "sys", "dev", "root", "var"):
            add_dir(d)
        add_dir("tmp", 0o1777)
        copy(parts.busybox, "bin/busybox", 0o755)
        for applet in BUSYBOX_APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname, link.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(link)
        add_file("www/index.html", b"phoenix lab stand-in image\n")
        add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        add_file("etc/group", b"root:x:0:\n")
        copy(parts.openssl, "usr/bin/openssl", 0o755)
        for library in parts.libraries:
            copy(library, str(library).lstrip("/"), 0o755)
        copy(parts.tls_cert, TLS_CERT, 0o644)
        copy(parts.tls_key, TLS_KEY, 0o600)
    return buf.getvalue()


def ensure_rootfs_tar(path: Path, parts: RootfsParts) -> bool:
    """Write the rootfs tar if missing or different; True if written."""
    data = rootfs_tar_bytes(parts)
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return True
