"""`ProxmoxApiSimulator`: a stateful simulator of the Proxmox VE API endpoints Phoenix
uses, built from the API documentation's shapes and the recorded answers in
tests/data/proxmox.  It is NOT a Proxmox host: it knows the few endpoints below, and
only the behaviour of each that Phoenix can meet.

It listens on 127.0.0.1 only (port 0: the kernel picks one), over HTTPS with a
throwaway self-signed certificate (`ca_file`), and checks the API token header.

State: nodes; guests by vmid (node, running or stopped, and a config dict shaped like
tests/data/proxmox/qemu_config_*.json, which holds the name, `template`, `lock` and
`tags` as Proxmox keeps them); tasks by UPID.  Seeded with template 9000 (the recorded
qemu_config_9000_template.json) on node "phoenix"; `guests=` adds more.

Tasks.  A change answers with a UPID; the task answers "running" to its first
`polls` status reads (default 2, `delay(kind, polls)` changes it per kind) and the
next status read of that task ends it: only then are its checks made and its effect
applied (a config change, a resize, a start: none of them is visible before).  Only
reads of the task's own status advance it.  A start with an `on_start` hook runs the
hook in a thread when the task ends; the task answers "running" until the hook has
returned (a status read waits for it up to `hook_wait_s`), then "OK", or the hook's
message (str(exc)) as its exit status, the VM left stopped.

Proxmox behaviour kept (from qemu-server / pve-manager sources), where it matters to
a client:
- clone: checked before the task (HTTP 500 when the source is missing or locked, the
  new vmid exists, a target node is unknown or the disks are not on shared storage);
  the new guest appears at once, stopped, `lock: clone`, on the SOURCE node (its
  config is written there), and moves to `target` when the task ends OK; on a failed
  end it is removed.  The clone's task id is the source vmid (`qmclone:9000`), so
  `tasks?vmid=<newid>` does not list it, as on Proxmox.  Full clone: disks renamed
  vm-{newid}-disk-N (on `storage` if given), the cloud-init drive vm-{newid}-cloudinit,
  new MAC, `template` dropped, `name` set.
- a running clone holds the new VM's config lock (flock): a start or resize of it
  ends "can't lock file '/var/lock/qemu-server/lock-N.conf' - got timeout", a
  cloud-init PUT answers HTTP 500 with that text; a config POST, which checks the
  `lock` in the config before taking the flock, answers HTTP 500 "VM is locked
  (clone)".  A lock set by another task (`lock_externally`) makes each of them fail
  with "VM is locked (<lock>)" (POST and PUT as HTTP 500, start and resize in their
  task).
- resize's task type is "resize" (PVE 8; "qmresize" is accepted by `fail_next`);
  a smaller size ends "shrinking disks is not supported".
- sshkeys must be URL-encoded (400 "invalid urlencoded string" otherwise), each key
  passes `ssh-keygen -l` as Proxmox checks it (500 "SSH public key validation
  error"), and is stored as sent; tags are stored sorted, lower-case, unique, ';'.
- The live host's two speeds (docs/proxmox.md, "What a live host does differently"):
  `/cluster/resources` lists every guest of the cluster's VM list at once (vmid, node),
  but its name, status, template and sizes come from a snapshot of the guests'
  status, refreshed at most every `resources_lag_s` seconds (default 10, as pvestatd;
  0: always fresh; `refresh_resources()` forces one; `clock=` for tests that hold
  time still), as pve-manager PVE/API2/Cluster.pm builds it with
  PVE::API2Tools::extract_vm_stats: a guest not reported yet is listed with status
  "unknown" and no name; `lock` and `tags` are read from the config, live.  Live,
  with qemu-server's shapes: `status/current` and `GET /nodes/{node}/qemu`
  (PVE::QemuServer::vmstatus), the config, `pending`, and the task list.
- `GET .../config` answers with pending changes applied (`current=1`: without);
  `GET .../pending` lists each key's `value` and `pending`/`delete` (qemu-server
  PVE/API2/Qemu.pm vm_pending).  On a running VM, cores/sockets without cpu hotplug
  and memory without memory hotplug wait in [PENDING]; everything else Phoenix sets
  (cloud-init, tags: "fast plug") applies at once.  A start applies what is pending.
- `GET /nodes/{node}/tasks` (pve-manager PVE/API2/Tasks.pm node_tasks): `source=active`
  lists running tasks oldest first with status "RUNNING"; the archive (default) lists
  ended tasks newest first with their end status; `vmid` matches the task's id (a
  clone's is its source vmid); `typefilter`, `start`, `limit`.
Not simulated: HA, pools, linked clones onto another storage, DELETE (Phoenix never
deletes), a task that ended but is not archived yet, anything else: HTTP 501 "not
simulated: METHOD PATH".

Also here: `lab_start_hook(lab_config)`, an `on_start` hook that checks what a real
cloud-init would need to make the VM reachable as the lab config says, then brings
that VM up as a lab VM (network namespace, sshd, dockerd) through the lab provider.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
import itertools
import json
import re
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple
from urllib.parse import parse_qsl, unquote, urlsplit

DATA = Path(__file__).resolve().parent / "data" / "proxmox"
DEFAULT_TOKEN = "root@pam!phoenix=5f0c3d1e-7a2b-4c9d-8e6f-0123456789ab"
TOKEN = re.compile(r"(?P<user>[^@!=\s]+)@(?P<realm>[^@!=\s]+)!(?P<tokenid>[A-Za-z][A-Za-z0-9._-]*)=(?P<secret>\S+)")
DISK = re.compile(r"(scsi|virtio|sata|ide|efidisk|tpmstate)\d+")
SIZE = re.compile(r"(\+)?(\d+(?:\.\d+)?)([KMGT])?")
UNITS = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
URLENCODED = re.compile(r"[-%a-zA-Z0-9_.!~*'()]*")
# What the simulator knows of POST /config (anything else: 501, not simulated).
CONFIG_KEYS = {"cores", "sockets", "memory", "name", "ciuser", "sshkeys", "nameserver", "searchdomain",
               "tags", "description", "onboot", "agent", "digest"} | {f"ipconfig{i}" for i in range(10)}
INT_KEYS = {"cores", "sockets", "onboot"}
CLONE_KEYS = {"newid", "name", "full", "target", "storage", "description"}
KIND_ALIASES = {"qmresize": "resize"}  # the brief's name / PVE < 8 vs PVE 8's task type


class Sent(NamedTuple):
    """One request as the simulator received it: path under /api2/json, unquoted."""

    method: str
    path: str
    params: dict


class SimError(Exception):
    """An HTTP error answer: status, Proxmox's reason (the status line), and for a
    parameter error (400) the per-parameter `errors` of the JSON body."""

    def __init__(self, status: int, reason: str, errors: Mapping[str, str] | None = None):
        super().__init__(f"{status} {reason}")
        self.status, self.reason, self.errors = status, reason, dict(errors or {})


def bad_params(**errors: str) -> SimError:
    return SimError(400, "Parameter verification failed.", errors)


@dataclass
class SimGuest:
    """A QEMU guest.  name, template, lock and tags live in `config`, as on Proxmox."""

    vmid: int
    config: dict = field(default_factory=dict)
    node: str = "phoenix"
    status: str = "stopped"
    pending: dict = field(default_factory=dict)  # key -> value for the next boot (None: a pending delete)

    @property
    def name(self) -> str:
        return str(self.config.get("name", f"VM {self.vmid}"))

    @property
    def template(self) -> bool:
        return bool(int(self.config.get("template") or 0))

    @property
    def lock(self) -> str | None:
        return self.config.get("lock") or None

    @property
    def tags(self) -> str | None:
        return self.config.get("tags") or None

    @classmethod
    def recorded(cls, file: str, vmid: int, *, node: str = "phoenix", status: str = "stopped") -> "SimGuest":
        """A guest whose config is the `data` of a recorded tests/data/proxmox file."""
        return cls(vmid, json.loads((DATA / file).read_text())["data"], node, status)


@dataclass(frozen=True)
class StartingGuest:
    """What an `on_start` hook is given: the guest as its start task ends."""

    vmid: int
    name: str
    node: str
    config: Mapping[str, Any]


StartHook = Callable[[StartingGuest], None]


@dataclass
class SimTask:
    upid: str
    node: str
    type: str
    id: str
    user: str  # user@realm
    tokenid: str | None
    pid: int
    pstart: int
    starttime: int
    polls_needed: int
    vmid: int | None = None  # the guest it works on (for a clone: the new one)
    external: bool = False  # not started through the API (lock_externally)
    planned_exit: str | None = None  # an injected failure (fail_next)
    check: Callable[[], str | None] = lambda: None  # at the end, state locked: an error text or None
    apply: Callable[[], None] = lambda: None  # on an OK end, state locked
    undo: Callable[[], None] = lambda: None  # on a failed end, state locked
    hook: Callable[[], None] | None = None  # run outside the state lock before `apply`
    status: str = "running"
    exitstatus: str | None = None
    polls: int = 0
    hook_thread: threading.Thread | None = None
    hook_error: str | None = None

    def answer(self) -> dict:
        out = {"upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
               "starttime": self.starttime, "type": self.type, "id": self.id, "user": self.user,
               "status": self.status}
        if self.tokenid:
            out["tokenid"] = self.tokenid
        if self.exitstatus is not None:
            out["exitstatus"] = self.exitstatus
        return out


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for 127.0.0.1: (cert.pem, key.pem)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=proxmox-api-simulator", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


def _props(text: str) -> dict[str, str]:
    """'local-lvm:vm-1-disk-0,size=16G' -> {'': 'local-lvm:vm-1-disk-0', 'size': '16G'}."""
    out = {}
    for part in str(text).split(","):
        k, sep, v = part.partition("=")
        out[k if sep else ""] = v if sep else k
    return out


def _print_props(props: Mapping[str, str]) -> str:
    return ",".join(v if k == "" else f"{k}={v}" for k, v in props.items())


def _size_bytes(text: str) -> int:
    m = SIZE.fullmatch(text)
    if not m:
        raise ValueError(text)
    return int(float(m.group(2)) * UNITS.get(m.group(3) or "", 1))


def _print_size(n: int) -> str:
    for unit in ("T", "G", "M", "K"):
        if n % UNITS[unit] == 0:
            return f"{n // UNITS[unit]}{unit}"
    return str(n)


def _memory_mib(value: Any) -> int:
    for part in str(value).split(","):
        part = part.removeprefix("current=")
        if part.isdigit():
            return int(part)
    return 512


def _is_cdrom(props: Mapping[str, str]) -> bool:
    return props.get("media") == "cdrom"


def _is_cloudinit(props: Mapping[str, str]) -> bool:
    return "cloudinit" in props.get("", "")


def _digest(config: Mapping[str, Any]) -> str:
    body = json.dumps({k: v for k, v in config.items() if k != "digest"}, sort_keys=True)
    return hashlib.sha1(body.encode()).hexdigest()


def _unique_tags(text: str) -> str:
    return ";".join(sorted({t.lower() for t in re.split(r"[;, ]+", text) if t}))


def _ssh_keys_valid(encoded: str) -> bool:
    """Each non-empty line must pass `ssh-keygen -l`, as Proxmox checks it."""
    for line in unquote(encoded).split("\n"):
        if not line.strip():
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".pub") as f:
            f.write(line + "\n")
            f.flush()
            if subprocess.run(["ssh-keygen", "-l", "-f", f.name], capture_output=True, timeout=30).returncode:
                return False
    return True


class ProxmoxApiSimulator:
    """A stateful simulator of the Proxmox VE API endpoints Phoenix uses, built from the
    API documentation's shapes and the recorded answers in tests/data/proxmox; NOT a
    Proxmox host.  See the module docstring for what it does and does not do."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, nodes=("phoenix",), guests=(), polls: int = 2,
                 on_start: StartHook | None = None, storages: Mapping[str, bool] | None = None,
                 seed_template: bool = True, cert: tuple[Path, Path] | None = None, hook_wait_s: float = 1.0,
                 resources_lag_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        m = TOKEN.fullmatch(token)
        if not m:
            raise ValueError("token must be USER@REALM!TOKENID=SECRET")
        self._token = token
        self._user = f"{m.group('user')}@{m.group('realm')}"
        self._tokenid = m.group("tokenid")
        self.nodes = list(nodes)
        self.storages = dict(storages if storages is not None else {"local-lvm": False, "local": False})
        self.on_start = on_start
        self.hook_wait_s = hook_wait_s
        self.polls = polls
        self._lock = threading.RLock()
        self._guests: dict[int, SimGuest] = {}
        seeds = ([SimGuest.recorded("qemu_config_9000_template.json", 9000)] if seed_template else []) + list(guests)
        for g in seeds:
            if g.node not in self.nodes:
                raise ValueError(f"guest {g.vmid} is on node {g.node!r}, not one of {self.nodes}")
            self._guests[g.vmid] = SimGuest(g.vmid, copy.deepcopy(g.config), g.node, g.status,
                                            copy.deepcopy(g.pending))
        self.resources_lag_s = resources_lag_s
        self._clock = clock
        self._rrd: dict[int, dict] = {}  # vmid -> the status pvestatd last reported (see _resources)
        self._rrd_at = float("-inf")
        self._refresh_rrd()
        self._tasks: dict[str, SimTask] = {}
        self._flock: dict[int, str] = {}  # vmid -> UPID of the running task holding its config lock
        self._fail_next: dict[str, list[str]] = {}
        self._broken: list[tuple[str, re.Pattern, int, str]] = []
        self._delays: dict[str, int] = {}
        self._pids = itertools.count(0x000A1B2C)
        self.sent: list[Sent] = []
        self.regenerations: dict[int, int] = {}
        self._tmp = None
        if cert is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="pve-sim-")
            cert = make_cert(Path(self._tmp.name))
        self.ca_file, self._key = cert
        self.httpd = self._server()
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    # -- lifecycle --------------------------------------------------------------------
    def __enter__(self) -> "ProxmoxApiSimulator":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)
        for t in list(self._tasks.values()):  # a hook still bringing a VM up finishes first
            if t.hook_thread is not None:
                t.hook_thread.join(600)
        if self._tmp is not None:
            self._tmp.cleanup()

    def settings(self, **overrides):
        """ProxmoxSettings that point at this simulator (TLS verified against its cert)."""
        from phoenix_tasks.core.model import ProxmoxSettings
        values = dict(host="127.0.0.1", node=self.nodes[0], ssh_user="root", ssh_port=22,
                      api_token_env="PHOENIX_PROXMOX_API_TOKEN", api_port=self.port, ca_file=self.ca_file)
        values.update(overrides)
        return ProxmoxSettings(**values)

    def token_environ(self, var: str = "PHOENIX_PROXMOX_API_TOKEN") -> dict[str, str]:
        return {var: self._token}

    # -- inspection and fault injection -----------------------------------------------
    def guest(self, vmid: int) -> SimGuest | None:
        """A copy of the guest as it is now (None: no such vmid)."""
        with self._lock:
            g = self._guests.get(vmid)
            return None if g is None else SimGuest(g.vmid, copy.deepcopy(g.config), g.node, g.status,
                                                   copy.deepcopy(g.pending))

    def task(self, upid: str) -> dict:
        with self._lock:
            return self._tasks[upid].answer()

    def tasks(self, vmid: int | None = None) -> list[dict]:
        """Every task so far (of the guest `vmid`, if given), oldest first."""
        with self._lock:
            return [t.answer() for t in self._tasks.values() if vmid is None or t.vmid == vmid]

    def fail_next(self, kind: str, exitstatus: str) -> None:
        """The next task of `kind` (qmclone, qmconfig, resize, qmstart) ends with `exitstatus`
        and changes nothing (a failed clone's new guest is removed)."""
        with self._lock:
            self._fail_next.setdefault(KIND_ALIASES.get(kind, kind), []).append(exitstatus)

    def delay(self, kind: str, polls: int) -> None:
        """Tasks of `kind` started from now on answer "running" to `polls` status reads."""
        with self._lock:
            self._delays[KIND_ALIASES.get(kind, kind)] = polls

    def lock_externally(self, vmid: int, lock: str = "backup", *, polls: int = 2, kind: str = "vzdump",
                        user: str = "root@pam") -> str:
        """Lock `vmid` by a task Phoenix did not start (e.g. a backup): its config gets
        `lock`, the task is listed by `tasks?vmid=`, and it ends OK after `polls` status
        reads, clearing the lock.  Returns its UPID."""
        with self._lock:
            g = self._need(None, vmid)
            g.config["lock"] = lock
            g.config["digest"] = _digest(g.config)

            def clear():
                if g.config.get("lock") == lock:
                    del g.config["lock"]
                    g.config["digest"] = _digest(g.config)

            t = self._new_task(g.node, kind, vmid, vmid=vmid, user=user, tokenid=None, external=True,
                               polls=polls, apply=clear, undo=clear)
            return t.upid

    def break_endpoint(self, method: str, path: str, status: int = 500, reason: str = "internal error") -> None:
        """From now on, `method` on a path that fully matches the regex `path` answers
        HTTP `status` with `reason` (e.g. a node whose task list cannot be read)."""
        with self._lock:
            self._broken.append((method, re.compile(path), status, reason))

    def refresh_resources(self) -> None:
        """pvestatd's next report now: /cluster/resources catches up with every guest."""
        with self._lock:
            self._refresh_rrd()

    def mutating_calls(self) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.method != "GET"]

    def calls_for(self, vmid: int) -> list[Sent]:
        """Requests that name `vmid`: in the path, or as newid / vmid parameter."""
        pattern = re.compile(rf"/qemu/{vmid}(/|$)")
        with self._lock:
            return [s for s in self.sent if pattern.search(s.path)
                    or str(vmid) in (s.params.get("newid"), s.params.get("vmid"))]

    # -- state helpers (called with the state lock held) ------------------------------
    def _check_node(self, node: str) -> None:
        if node not in self.nodes:
            raise SimError(500, f"hostname lookup '{node}' failed - failed to get address info for: "
                                f"{node}: Name or service not known")

    def _need(self, node: str | None, vmid: int) -> SimGuest:
        g = self._guests.get(vmid)
        if node is not None:
            self._check_node(node)
        if g is None or (node is not None and g.node != node):
            raise SimError(500, f"Configuration file 'nodes/{node or 'phoenix'}/qemu-server/{vmid}.conf' does not exist")
        return g

    def _write(self, g: SimGuest) -> None:
        g.config["digest"] = _digest(g.config)

    def _holder(self, vmid: int) -> SimTask | None:
        upid = self._flock.get(vmid)
        t = self._tasks.get(upid) if upid else None
        return t if t is not None and t.status == "running" else None

    def _locked_error(self, g: SimGuest) -> str | None:
        """Why a worker that takes the VM's config lock fails now (None: it would not)."""
        if self._holder(g.vmid) is not None:
            return f"can't lock file '/var/lock/qemu-server/lock-{g.vmid}.conf' - got timeout"
        if g.lock:
            return f"VM is locked ({g.lock})"
        return None

    def _refuse_if_locked(self, g: SimGuest) -> None:
        """An API call that checks the lock before any task: HTTP 500."""
        if g.lock:
            raise SimError(500, f"VM is locked ({g.lock})")

    def _new_task(self, node: str, kind: str, task_id: int, *, vmid: int | None, user: str | None = None,
                  tokenid: str | None = "", external: bool = False, polls: int | None = None, **steps) -> SimTask:
        pid = next(self._pids)
        pstart, starttime = 0x01F2E3D4 + pid % 1000, int(time.time())
        user = user or self._user
        tokenid = self._tokenid if tokenid == "" else tokenid
        who = f"{user}!{tokenid}" if tokenid else user
        upid = f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{kind}:{task_id}:{who}:"
        queue = self._fail_next.get(kind) or []
        planned = queue.pop(0) if queue and not external else None
        needed = polls if polls is not None else self._delays.get(kind, self.polls)
        t = SimTask(upid, node, kind, str(task_id), user, tokenid, pid, pstart, starttime, needed,
                    vmid=vmid, external=external, planned_exit=planned, **steps)
        self._tasks[upid] = t
        return t

    def _end(self, t: SimTask, exitstatus: str) -> None:
        t.status, t.exitstatus = "stopped", exitstatus
        if exitstatus == "OK":
            t.apply()
        else:
            t.undo()
        for vmid, upid in list(self._flock.items()):
            if upid == t.upid:
                del self._flock[vmid]

    def _due(self, t: SimTask) -> None:
        """The task's last poll: end it, or start its hook."""
        if t.planned_exit is not None:
            return self._end(t, t.planned_exit)
        error = t.check()
        if error:
            return self._end(t, error)
        if t.hook is None:
            return self._end(t, "OK")

        def run():
            try:
                t.hook()
            except Exception as exc:  # the hook's message is the task's exit status
                t.hook_error = str(exc) or type(exc).__name__

        t.hook_thread = threading.Thread(target=run, daemon=True, name=f"start-hook {t.upid}")
        t.hook_thread.start()

    def _after_hook(self, t: SimTask) -> None:
        if t.status == "running" and t.hook_thread is not None and not t.hook_thread.is_alive():
            self._end(t, t.hook_error or "OK")

    # -- endpoints --------------------------------------------------------------------
    def _stats(self, g: SimGuest) -> dict:
        """What pvestatd reports of a guest (its RRD status entry): name, status,
        template and the sizes, from the config as it is at that moment."""
        cfg = g.config
        disk = next((_props(cfg[k]) for k in sorted(cfg) if DISK.fullmatch(k)
                     and not _is_cdrom(_props(cfg[k])) and not _is_cloudinit(_props(cfg[k]))), {})
        running = g.status == "running"
        return {"name": g.name, "status": g.status, "template": int(g.template),
                "maxcpu": int(cfg.get("cores", 1)) * int(cfg.get("sockets", 1)),
                "maxmem": _memory_mib(cfg.get("memory", 512)) * 1024 ** 2,
                "maxdisk": _size_bytes(disk["size"]) if "size" in disk else 0,
                "cpu": 0.01 if running else 0, "mem": 0, "disk": 0, "uptime": 60 if running else 0,
                "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0}

    def _refresh_rrd(self) -> None:
        self._rrd = {vmid: self._stats(g) for vmid, g in self._guests.items()}
        self._rrd_at = self._clock()

    def _resources(self, params: dict) -> list[dict]:
        """pve-manager PVE/API2/Cluster.pm: one entry per guest of the cluster's VM list
        (live: which vmid, which node), its fields from PVE::API2Tools::extract_vm_stats
        over the status pvestatd last reported (here: a snapshot refreshed at most every
        `resources_lag_s` seconds; a guest it has not reported yet has status "unknown"
        and no name), and `lock` and `tags` read from the config (live)."""
        if params.get("type") != "vm":
            raise SimError(501, "not simulated: GET /cluster/resources without type=vm")
        if self._clock() - self._rrd_at >= self.resources_lag_s:
            self._refresh_rrd()
        out = []
        for g in sorted(self._guests.values(), key=lambda g: g.vmid):
            r = {"id": f"qemu/{g.vmid}", "type": "qemu", "vmid": g.vmid, "node": g.node, "status": "unknown"}
            stats = self._rrd.get(g.vmid)
            if stats is not None:
                r.update(stats)
            if g.tags:
                r["tags"] = g.tags
            if g.lock:
                r["lock"] = g.lock
            out.append(r)
        return out

    def _vmstatus(self, g: SimGuest) -> dict:
        """qemu-server PVE::QemuServer::vmstatus for one guest (live): what
        `status/current` and the per-node list answer."""
        cfg = g.config
        running = g.status == "running"
        disk = next((_props(cfg[k]) for k in sorted(cfg) if DISK.fullmatch(k)
                     and not _is_cdrom(_props(cfg[k])) and not _is_cloudinit(_props(cfg[k]))), {})
        d = {"vmid": g.vmid, "status": g.status, "name": cfg.get("name") or f"VM {g.vmid}",
             "cpus": int(cfg.get("cores", 1)) * int(cfg.get("sockets", 1)),
             "maxmem": _memory_mib(cfg.get("memory", 512)) * 1024 ** 2,
             "maxdisk": _size_bytes(disk["size"]) if "size" in disk else 0, "disk": 0,
             "uptime": 60 if running else 0, "cpu": 0.01 if running else 0, "mem": 0, "memhost": 0,
             "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0,
             "qmpstatus": g.status}
        if running:
            d["pid"] = 4000 + g.vmid % 10000
        if g.template:
            d["template"] = 1
        if g.lock:
            d["lock"] = g.lock
        if "tags" in cfg:
            d["tags"] = cfg["tags"]
        return d

    def _status_current(self, node: str, vmid: int) -> dict:
        return {**self._vmstatus(self._need(node, vmid)), "ha": {"managed": 0}}

    def _node_vms(self, node: str) -> list[dict]:
        self._check_node(node)
        return [self._vmstatus(g) for g in sorted(self._guests.values(), key=lambda g: g.vmid) if g.node == node]

    def _get_config(self, node: str, vmid: int, params: dict) -> dict:
        """The config with its pending changes applied, unless `current=1` (qemu-server
        PVE/API2/Qemu.pm, vm_config)."""
        g = self._need(node, vmid)
        cfg = copy.deepcopy(g.config)
        if params.get("current") not in ("1", "true"):
            for k, v in g.pending.items():
                if v is None:
                    cfg.pop(k, None)
                else:
                    cfg[k] = v
        return cfg

    def _pending(self, node: str, vmid: int) -> list[dict]:
        """qemu-server vm_pending (PVE::GuestHelpers::config_with_pending_array): each
        key with `value`, and `pending` / `delete` for what waits for the next boot."""
        g = self._need(node, vmid)
        out = []
        for key in sorted(set(g.config) | set(g.pending)):
            item = {"key": key}
            if key in g.config:
                item["value"] = g.config[key]
            if key in g.pending:
                if g.pending[key] is None:
                    item["delete"] = 1
                else:
                    item["pending"] = g.pending[key]
            out.append(item)
        return out

    def _clone(self, node: str, vmid: int, params: dict) -> str:
        if "newid" not in params:
            raise bad_params(newid="property is missing and it is not optional")
        try:
            newid = int(params["newid"])
        except ValueError:
            raise bad_params(newid="invalid format - value does not look like a valid VM ID") from None
        src = self._need(node, vmid)
        target = params.get("target")
        if target == node:
            target = None
        storage = params.get("storage")
        if target is not None and target not in self.nodes:
            raise SimError(500, f"no such cluster node '{target}'")
        if storage is not None:
            if storage not in self.storages:
                raise SimError(500, f"storage '{storage}' does not exist")
            if target and not self.storages[storage]:
                raise SimError(500, f"can't clone to non-shared storage '{storage}'")
        self._refuse_if_locked(src)
        full = params.get("full", "0" if src.template else "1") not in ("0", "")
        if storage is not None and not full:
            raise SimError(500, "parameter 'storage' not allowed for linked clones")
        drives = {k: _props(v) for k, v in src.config.items() if DISK.fullmatch(k)}
        shared = all(self.storages.get(p[""].split(":")[0], False) for p in drives.values() if ":" in p[""])
        if target and not shared:
            raise SimError(500, f"can't clone VM to node '{target}' (VM uses local storage)")
        if newid in self._guests:
            raise SimError(500, f"unable to create VM {newid}: config file already exists")
        new = {}
        n = itertools.count()
        for key, value in sorted(src.config.items()):
            if key in ("template", "digest", "lock", "snapshots", "parent") or key.startswith("unused"):
                continue
            if key.startswith("net"):
                p = _props(value)  # Proxmox always gives a clone new MACs
                mac = "BC:24:11:%02X:%02X:%02X" % ((newid >> 16) & 255, (newid >> 8) & 255, newid & 255)
                new[key] = _print_props({k: mac if MAC.fullmatch(v) else v for k, v in p.items()})
            elif key in drives and _is_cdrom(drives[key]) and not _is_cloudinit(drives[key]):
                new[key] = value
            elif key in drives:
                p = dict(drives[key])
                sid, _, volname = p[""].partition(":")
                if _is_cloudinit(p):
                    p[""] = f"{storage or sid}:vm-{newid}-cloudinit"
                elif full:
                    p[""] = f"{storage or sid}:vm-{newid}-disk-{next(n)}"
                else:
                    p[""] = f"{sid}:{volname}/vm-{newid}-disk-{next(n)}"
                new[key] = _print_props(p)
            else:
                new[key] = copy.deepcopy(value)
        new["name"] = params.get("name") or f"Copy-of-VM-{src.name}"
        new["lock"] = "clone"
        g = SimGuest(newid, new, node, "stopped")
        self._write(g)
        self._guests[newid] = g

        def done():
            g.config.pop("lock", None)
            self._write(g)
            if target:
                g.node = target

        def failed():
            if self._guests.get(newid) is g:
                del self._guests[newid]

        t = self._new_task(node, "qmclone", vmid, vmid=newid, apply=done, undo=failed)
        self._flock[newid] = t.upid
        return t.upid

    def _set_config(self, node: str, vmid: int, params: dict) -> str:
        unknown = sorted(set(params) - CONFIG_KEYS)
        if unknown:
            raise SimError(501, f"not simulated: POST /nodes/{node}/qemu/{vmid}/config {unknown[0]}=")
        errors = {}
        for key in INT_KEYS & set(params):
            if not params[key].isdigit():
                errors[key] = f"type check ('integer') failed - got '{params[key]}'"
        if "memory" in params and not params["memory"].isdigit():
            errors["memory"] = f"value '{params['memory']}' does not look like a valid memory size"
        if "sshkeys" in params and not URLENCODED.fullmatch(params["sshkeys"]):
            errors["sshkeys"] = f"invalid urlencoded string: {params['sshkeys']}"
        for key in (k for k in params if k.startswith("ipconfig")):
            problem = self._ipconfig_problem(params[key])
            if problem:
                errors[key] = problem
        if errors:
            raise bad_params(**errors)
        g = self._need(node, vmid)
        if "sshkeys" in params and not _ssh_keys_valid(params["sshkeys"]):
            raise SimError(500, "SSH public key validation error")
        if "digest" in params and params["digest"] != g.config.get("digest"):
            raise SimError(500, "checksum mismatch (file change by other user?)")
        self._refuse_if_locked(g)
        change = {k: (int(v) if k in INT_KEYS else v) for k, v in params.items() if k != "digest"}
        if "tags" in change:
            change["tags"] = _unique_tags(change["tags"])

        def apply():
            # A running VM takes at once what it can (qemu-server
            # vmconfig_hotplug_pending: cloud-init settings, tags, name are "fast plug";
            # cores with cpu hotplug, memory with memory hotplug); the rest waits in
            # [PENDING] for its next boot.
            hotplug = set(re.split(r"[;, ]+", str(g.config.get("hotplug", "network,disk,usb"))))
            for k, v in change.items():
                later = g.status == "running" and (
                    (k in ("cores", "sockets") and "cpu" not in hotplug)
                    or (k == "memory" and "memory" not in hotplug))
                if later:
                    if str(g.config.get(k)) == str(v):
                        g.pending.pop(k, None)
                    else:
                        g.pending[k] = v
                elif v == "" and k == "tags":
                    g.config.pop(k, None)
                else:
                    g.config[k] = v
                    g.pending.pop(k, None)
            self._write(g)

        # The worker checks the lock again once it holds the config lock.
        return self._new_task(node, "qmconfig", vmid, vmid=vmid, check=lambda: self._locked_error(g),
                              apply=apply).upid

    @staticmethod
    def _ipconfig_problem(text: str) -> str | None:
        for k, v in _props(text).items():
            try:
                if k == "ip" and v not in ("dhcp", "manual"):
                    ipaddress.IPv4Interface(v)
                    if "/" not in v:
                        raise ValueError(v)
                elif k == "gw":
                    ipaddress.IPv4Address(v)
                elif k not in ("ip6", "gw6"):
                    return f"invalid format - property '{k}' is not defined in the format"
            except ValueError:
                return f"invalid format - {k}: value '{v}' does not look like a valid address"
        return None

    def _resize(self, node: str, vmid: int, params: dict) -> str:
        disk, size = params.get("disk"), params.get("size")
        if disk is None or size is None:
            missing = "disk" if disk is None else "size"
            raise bad_params(**{missing: "property is missing and it is not optional"})
        if not DISK.fullmatch(disk):
            raise bad_params(disk=f"value '{disk}' does not have a value in the enumeration")
        m = SIZE.fullmatch(size)
        if not m:
            raise bad_params(size="value does not match the regex pattern")
        g = self._need(node, vmid)
        grown: dict = {}

        def check():
            locked = self._locked_error(g)
            if locked:
                return locked
            if disk not in g.config:
                return f"disk '{disk}' does not exist"
            p = _props(g.config[disk])
            if _is_cdrom(p):
                return "you can't resize a cdrom"
            old = _size_bytes(p.get("size", "0"))
            new = _size_bytes(size.lstrip("+")) + (old if m.group(1) else 0)
            if new < old:
                return "shrinking disks is not supported"
            p["size"] = _print_size(new)
            grown["value"] = _print_props(p)
            return None

        def apply():
            if grown:
                g.config[disk] = grown["value"]
                self._write(g)

        return self._new_task(node, "resize", vmid, vmid=vmid, check=check, apply=apply).upid

    def _regenerate(self, node: str, vmid: int) -> None:
        g = self._need(node, vmid)
        locked = self._locked_error(g)
        if locked:
            raise SimError(500, locked)
        self.regenerations[vmid] = self.regenerations.get(vmid, 0) + 1

    def _start(self, node: str, vmid: int) -> str:
        g = self._need(node, vmid)

        def check():
            if g.template:
                return "you can't start a vm if it's a template"
            locked = self._locked_error(g)
            if locked:
                return locked
            if g.status == "running":
                return f"VM {vmid} already running"
            return None

        def apply():
            for k, v in g.pending.items():  # a start applies what waited for it
                if v is None:
                    g.config.pop(k, None)
                else:
                    g.config[k] = v
            g.pending.clear()
            self._write(g)
            g.status = "running"

        hook = None
        if self.on_start is not None:
            on_start = self.on_start

            def hook():
                with self._lock:
                    view = StartingGuest(g.vmid, g.name, g.node, copy.deepcopy(g.config))
                on_start(view)

        return self._new_task(node, "qmstart", vmid, vmid=vmid, check=check, apply=apply, hook=hook).upid

    def _task_status(self, node: str, upid: str) -> SimTask:
        self._check_node(node)
        if not upid.startswith("UPID:") or upid.count(":") < 8:
            raise bad_params(upid="unable to parse worker upid")
        t = self._tasks.get(upid)
        if t is None or t.node != node:
            raise bad_params(upid="no such task")
        if t.status == "running" and t.hook_thread is None:
            t.polls += 1
            if t.polls > t.polls_needed:
                self._due(t)
        return t

    def _node_tasks(self, node: str, params: dict) -> list[dict]:
        """pve-manager PVE/API2/Tasks.pm (node_tasks): `source=active` lists the running
        tasks in the order they started (oldest first), status "RUNNING"; the archive
        (the default) lists ended tasks newest first (the index read backwards), each
        with its end status; `all`: both.  `vmid` matches the task's id (a clone's id is
        its SOURCE vmid); `typefilter`, `start` and `limit` (default 50) as there."""
        self._check_node(node)
        source = params.get("source", "archive")
        if source not in ("archive", "active", "all"):
            raise bad_params(source=f"value '{source}' does not have a value in the enumeration "
                                    "'archive, active, all'")
        vmid, kind = params.get("vmid"), params.get("typefilter")
        try:
            start, limit = int(params.get("start", 0)), int(params.get("limit", 50))
        except ValueError:
            raise bad_params(limit="type check ('integer') failed") from None
        mine = [t for t in self._tasks.values() if t.node == node and (not vmid or t.id == vmid)
                and (not kind or t.type == kind)]
        listed = []
        if source in ("active", "all"):
            listed += [{**{k: v for k, v in t.answer().items() if k != "exitstatus"}, "status": "RUNNING"}
                       for t in mine if t.status == "running"]
        if source != "active":
            ended = sorted((t for t in mine if t.status != "running"), key=lambda t: t.pid, reverse=True)
            listed += [{**{k: v for k, v in t.answer().items() if k != "exitstatus"},
                        "status": t.exitstatus, "endtime": t.starttime} for t in ended]
        return listed[start:start + limit]

    # -- HTTP -------------------------------------------------------------------------
    ROUTES = [
        ("GET", re.compile(r"/cluster/resources"), "resources"),
        ("GET", re.compile(r"/nodes/([^/]+)/qemu/(\d+)/config"), "get_config"),
        ("GET", re.compile(r"/nodes/([^/]+)/qemu/(\d+)/status/current"), "status_current"),
        ("GET", re.compile(r"/nodes/([^/]+)/qemu/(\d+)/pending"), "pending"),
        ("GET", re.compile(r"/nodes/([^/]+)/qemu"), "node_vms"),
        ("POST", re.compile(r"/nodes/([^/]+)/qemu/(\d+)/config"), "set_config"),
        ("POST", re.compile(r"/nodes/([^/]+)/qemu/(\d+)/clone"), "clone"),
        ("PUT", re.compile(r"/nodes/([^/]+)/qemu/(\d+)/resize"), "resize"),
        ("PUT", re.compile(r"/nodes/([^/]+)/qemu/(\d+)/cloudinit"), "cloudinit"),
        ("POST", re.compile(r"/nodes/([^/]+)/qemu/(\d+)/status/start"), "start"),
        ("GET", re.compile(r"/nodes/([^/]+)/tasks/([^/]+)/status"), "task_status"),
        ("GET", re.compile(r"/nodes/([^/]+)/tasks"), "tasks"),
    ]

    def handle(self, method: str, path: str, params: dict, authorization: str | None) -> Any:
        """One request: its answer's `data`, or SimError.  Public for tests that want
        the simulator's logic without HTTP."""
        wait_for: SimTask | None = None
        with self._lock:
            self.sent.append(Sent(method, path, dict(params)))
            if not authorization:
                raise SimError(401, "No ticket")
            if authorization != f"PVEAPIToken={self._token}":
                raise SimError(401, "authentication failure")
            for b_method, b_path, b_status, b_reason in self._broken:
                if b_method == method and b_path.fullmatch(path):
                    raise SimError(b_status, b_reason)
            for route_method, pattern, name in self.ROUTES:
                m = pattern.fullmatch(path)
                if m and route_method == method:
                    break
            else:
                raise SimError(501, f"not simulated: {method} {path}")
            args = m.groups()
            if len(args) == 2 and name not in ("task_status", "tasks"):
                args = (args[0], int(args[1]))
                if not 100 <= args[1] <= 999_999_999:
                    raise bad_params(vmid="invalid format - value does not look like a valid VM ID")
            if name == "resources":
                return self._resources(params)
            if name == "get_config":
                return self._get_config(*args, params)
            if name == "status_current":
                return self._status_current(*args)
            if name == "pending":
                return self._pending(*args)
            if name == "node_vms":
                return self._node_vms(args[0])
            if name == "set_config":
                return self._set_config(*args, params)
            if name == "clone":
                return self._clone(*args, params)
            if name == "resize":
                return self._resize(*args, params)
            if name == "cloudinit":
                self._regenerate(*args)
                return None
            if name == "start":
                return self._start(*args)
            if name == "tasks":
                return self._node_tasks(args[0], params)
            t = self._task_status(*args)
            if t.status != "running" or t.hook_thread is None:
                return t.answer()
            wait_for = t
        wait_for.hook_thread.join(self.hook_wait_s)  # outside the lock: other requests go on
        with self._lock:
            self._after_hook(wait_for)
            return wait_for.answer()

    def _server(self) -> ThreadingHTTPServer:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("ascii", "replace") if length else ""
                raw = url.query if self.command == "GET" else body
                params = dict(parse_qsl(raw, keep_blank_values=True))
                path = unquote(url.path)
                status, reason, doc = 200, "OK", None
                if not path.startswith("/api2/json/"):
                    status, reason, doc = 501, f"not simulated: {self.command} {path}", {"data": None}
                else:
                    try:
                        doc = {"data": sim.handle(self.command, path.removeprefix("/api2/json"), params,
                                                  self.headers.get("Authorization"))}
                    except SimError as e:
                        status, reason = e.status, " ".join(e.reason.split())
                        doc = {"data": None, **({"errors": e.errors} if e.errors else {})}
                payload = json.dumps(doc).encode()
                self.send_response(status, reason)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that refuses the certificate is a test, not an error

        httpd = Server(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.ca_file, self._key)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        return httpd


# -- the lab as what a start brings up ----------------------------------------------------

class CloudInitRefused(Exception):
    """What the guest's cloud-init would lack to make it reachable as configured."""


class LabStartHook:
    """An `on_start` hook: checks the cloud-init settings a real guest would boot with,
    then makes and starts the lab VM with that vmid (LabProvider: create, then start).

    `prepare()` readies the lab (bridge, registry, Phoenix's key) and returns the
    public key that `sshkeys` must carry: call it before setting cloud-init."""

    def __init__(self, lab_config):
        from phoenix_tasks.providers.lab import LabProvider
        if lab_config.hypervisor.provider != "lab":
            raise ValueError("lab_start_hook needs a lab config (hypervisor.provider 'lab')")
        self.config = lab_config
        self.provider = LabProvider(lab_config)
        self.started: list[int] = []

    @property
    def public_key_file(self) -> Path:
        return Path(f"{self.config.hypervisor.vm_access.private_key_file}.pub")

    def prepare(self) -> str:
        self.provider.prepare()
        return self.public_key_file.read_text().strip()

    def problems(self, guest: StartingGuest) -> list[str]:
        """Why cloud-init would not make this guest the lab VM it should be ([]: it would)."""
        try:
            vm = self.config.vm_by_id(guest.vmid)
        except KeyError:
            return [f"vmid {guest.vmid} is not a VM of the lab config in {self.config.config_dir}"]
        cfg = guest.config
        out = []
        if not any(DISK.fullmatch(k) and _is_cloudinit(_props(v)) for k, v in cfg.items()):
            out.append("cloud-init: the VM has no cloud-init drive: the guest would get none of its settings")
        if guest.name != vm.name:
            out.append(f"cloud-init: name {guest.name!r} is not {vm.name!r}: the guest's hostname would differ")
        if cfg.get("ciuser") != vm.username:
            out.append(f"cloud-init: ciuser is {cfg.get('ciuser')!r}, not {vm.username!r}: "
                       "that user would not be set up")
        try:
            ours = self.public_key_file.read_text().split()[:2]
        except OSError:
            ours = None
        keys = [line.split()[:2] for line in unquote(str(cfg.get("sshkeys", ""))).splitlines() if line.strip()]
        if ours is None or ours not in keys:
            out.append("cloud-init: sshkeys lacks Phoenix's key: the guest would not accept it")
        ipc = _props(cfg["ipconfig0"]) if cfg.get("ipconfig0") else {}
        if ipc.get("ip") != str(vm.network.ip):
            out.append(f"cloud-init: ipconfig0 has ip={ipc.get('ip')}, not ip={vm.network.ip}: "
                       "the guest would not be at its address")
        if ipc.get("gw") != str(vm.network.gw):
            out.append(f"cloud-init: ipconfig0 has gw={ipc.get('gw')}, not gw={vm.network.gw}")
        return out

    def __call__(self, guest: StartingGuest) -> None:
        problems = self.problems(guest)
        if problems:
            raise CloudInitRefused("; ".join(problems))
        vm = self.config.vm_by_id(guest.vmid)
        self.provider.create(vm)
        self.provider.start(vm)
        self.started.append(vm.vmid)


def lab_start_hook(lab_config) -> LabStartHook:
    """An `on_start` hook that brings the started VM up on the local lab (see LabStartHook)."""
    return LabStartHook(lab_config)
