"""Running the lab's commands and reading facts from this machine.

Commands come from ``commands`` as argv lists and run without a shell.  Fact readers
return plain data that the pure planning and checking code takes as input.
"""

from __future__ import annotations

import functools
import json
import re
import os
import shlex
import subprocess
from pathlib import Path

from phoenix_tasks.core.errors import PhoenixError


class LabCommandFailed(PhoenixError):
    """A lab command exited non-zero; the message names it and its last error line."""


def run(argv: list[str], *, stdin_file: Path | None = None, check: bool = True,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    stdin = open(stdin_file, "rb") if stdin_file else subprocess.DEVNULL
    try:
        result = subprocess.run(argv, stdin=stdin, capture_output=True, timeout=timeout)
    finally:
        if stdin_file:
            stdin.close()
    out = subprocess.CompletedProcess(argv, result.returncode,
                                      result.stdout.decode(errors="replace"),
                                      result.stderr.decode(errors="replace"))
    if check and out.returncode != 0:
        lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {out.returncode}"
        raise LabCommandFailed(f"`{shlex.join(argv)}` failed: {reason}")
    return out


def spawn(argv: list[str], log: Path) -> None:
    """Start a detached daemon: `setsid --fork` returns at once, the daemon is
    re-parented to init and found later through its pid file; its output goes to log."""
    with open(log, "ab") as out:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                       check=True, timeout=30)


def last_line(path: Path) -> str:
    """The last non-empty line of a daemon's log (at most 300 characters), for errors."""
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log)"
    return lines[-1][-300:] if lines else "(empty log)"


@functools.lru_cache(maxsize=1)
def dockerd_major_version() -> int:
    """Major version of this machine's dockerd ("Docker version 20.10.24+dfsg1, ...")."""
    text = run(["dockerd", "--version"]).stdout
    match = re.search(r"version (\d+)\.", text)
    if not match:
        raise LabCommandFailed(f"cannot read the dockerd version from {text.strip()!r}")
    return int(match.group(1))


def ip_json(argv_tail: list[str]) -> list[dict]:
    """`ip -j ...` output as data; [] when ip prints nothing."""
    out = run(["ip", "-j", *argv_tail]).stdout.strip()
    return json.loads(out) if out else []


def ipv4_routes() -> list[dict]:
    """The main table's IPv4 routes of the root namespace (`ip -j -4 route`)."""
    return ip_json(["-4", "route", "show", "table", "main"])


def ipv4_addresses() -> list[dict]:
    return ip_json(["-4", "addr", "show"])


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def link_up(name: str) -> bool:
    """The link is administratively up (IFF_UP in /sys/class/net/NAME/flags)."""
    try:
        return bool(int(Path("/sys/class/net", name, "flags").read_text().strip(), 16) & 0x1)
    except (OSError, ValueError):
        return False


def link_master(name: str) -> str | None:
    master = Path("/sys/class/net", name, "master")
    return os.path.basename(os.readlink(master)) if master.is_symlink() else None


def netns_names() -> list[str]:
    netns_dir = Path("/var/run/netns")
    return sorted(p.name for p in netns_dir.iterdir()) if netns_dir.is_dir() else []


def netns_addresses(netns: str, iface: str) -> list[str]:
    """IPv4 addresses (with prefix) on iface inside netns; [] if it is missing."""
    out = run(["ip", "-n", netns, "-j", "-4", "addr", "show", "dev", iface], check=False)
    if out.returncode != 0 or not out.stdout.strip():
        return []
    return [f"{a['local']}/{a['prefixlen']}"
            for link in json.loads(out.stdout) for a in link.get("addr_info", [])]


def netns_default_gateway(netns: str) -> str | None:
    out = run(["ip", "-n", netns, "-j", "-4", "route", "show", "default"], check=False)
    if out.returncode != 0 or not out.stdout.strip():
        return None
    routes = json.loads(out.stdout)
    return routes[0].get("gateway") if routes else None


def netns_link_up(netns: str, iface: str) -> bool:
    out = run(["ip", "-n", netns, "-j", "link", "show", "dev", iface], check=False)
    if out.returncode != 0 or not out.stdout.strip():
        return False
    return "UP" in json.loads(out.stdout)[0].get("flags", [])


def mounts_under(*roots: Path) -> list[str]:
    """Mount points at or below any of roots, deepest first (for unmounting)."""
    prefixes = [str(r).rstrip("/") for r in roots]
    found = []
    with open("/proc/mounts") as f:
        for line in f:
            point = line.split()[1].encode().decode("unicode_escape")
            if any(point == p or point.startswith(p + "/") for p in prefixes):
                found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))
