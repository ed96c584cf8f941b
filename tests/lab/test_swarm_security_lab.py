"""Swarm security against a real lab: the overlay address pool given at init, join-token
rotation, autolock with its key file, and a locked manager unlocked from that file.

A 3-VM lab of its own (198.18.66.0/24 on phxtest12) whose config sets
`swarm.default_addr_pool`, `subnet_size` and `autolock_key_file`; the swarm is formed by
Phoenix's tasks.  State is verified through a second channel, the docker SDK on each
VM's own socket.  No join token and no unlock key may appear in any output, log or file
other than the key file.  Tests build on each other in file order (one swarm).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import stat

import docker
import pytest

from phoenix_tasks.config import load_config
from phoenix_tasks.lab import control
from phoenix_tasks.lab import vm as labvm
from phoenix_tasks.tasks import swarm as swarm_tasks
from phoenix_tasks.tasks import sync as sync_tasks

from conftest import module_lab, task_runner, wait_until

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.66.0/24", "phxtest12"
POOLS = ["10.123.0.0/16", "10.124.0.0/16"]
SUBNET_SIZE = 26
SEEN: list[str] = []  # every task output of this module, checked for secrets at the end
SECRETS: set[str] = set()  # every join token and unlock key the SDK showed


@pytest.fixture(scope="module")
def sec_lab(tmp_path_factory):
    with module_lab(tmp_path_factory.mktemp("seclab"), SUBNET, BRIDGE) as lab:
        hv_file = lab.config.hypervisor_file
        hv = json.loads(hv_file.read_text())
        hv["swarm"].update({"default_addr_pool": POOLS, "subnet_size": SUBNET_SIZE,
                            "autolock_key_file": "secrets/swarm_unlock.key"})
        hv_file.write_text(json.dumps(hv, indent=2))
        (lab.config.config_dir / "secrets").mkdir(mode=0o700)
        lab.config = load_config(lab.config.config_dir, lab.config.stacks_dir)
        yield lab


@pytest.fixture
def run(sec_lab, monkeypatch, capsys, caplog):
    """Run a task in-process; every output is kept for the final secrets check."""
    caplog.set_level(logging.DEBUG)  # paramiko, invoke, fabric: everything they log
    go = task_runner(sec_lab.config, monkeypatch, capsys)

    def recorded(task, **flags):
        code, out, t = go(task, **flags)
        SEEN.append(out + "\n".join(r.display for r in (t.log if t else [])))
        return code, out, t
    yield recorded
    SEEN.append(caplog.text)


def has(out: str, text: str) -> bool:
    """`text` in a task's output, whitespace-insensitive: the console wraps long lines."""
    return " ".join(text.split()) in " ".join(out.split())


def vm(lab, name):
    return next(v for v in lab.vms if v.name == name)


def manager(lab) -> docker.DockerClient:
    return lab.docker(vm(lab, "portainer"))


def tokens(lab) -> dict:
    m = manager(lab)
    m.swarm.reload()
    found = dict(m.swarm.attrs["JoinTokens"])
    SECRETS.update(found.values())
    return found


def test_init_with_an_address_pool_gives_overlay_networks_from_it(sec_lab, run):
    code, out, t = run(swarm_tasks.init, dry_run=True, verbose=True)
    assert code == 0 and t.mutating_commands == [], out
    assert has(out, ("initialise the swarm, advertising 198.18.66.11, overlay address pool "
            "10.123.0.0/16, 10.124.0.0/16 in /26s"))
    assert has(out, ("$ docker swarm init --advertise-addr 198.18.66.11 --default-addr-pool 10.123.0.0/16 "
            "--default-addr-pool 10.124.0.0/16 --default-addr-pool-mask-length 26"))
    for task in (swarm_tasks.init, swarm_tasks.join, swarm_tasks.label):
        code, out, _ = run(task)
        assert code == 0, out
    m = manager(sec_lab)
    cluster = m.info()["Swarm"]["Cluster"]
    assert (cluster["DefaultAddrPool"], cluster["SubnetSize"]) == (POOLS, SUBNET_SIZE)
    net = m.networks.create("phx-pool-check", driver="overlay")
    try:
        [ipam] = m.api.inspect_network(net.id)["IPAM"]["Config"]
        subnet = ipaddress.IPv4Network(ipam["Subnet"])
        assert subnet.prefixlen == SUBNET_SIZE and subnet.subnet_of(ipaddress.IPv4Network(POOLS[0])), subnet
    finally:
        net.remove()
    code, out, _ = run(swarm_tasks.status, json=True)
    assert code == 0, out
    doc = json.loads(out)
    assert (doc["default_addr_pool"], doc["subnet_size"], doc["autolock"], doc["warnings"]) == (
        POOLS, SUBNET_SIZE, False, [])


def test_a_different_pool_in_the_config_is_a_warning_and_changes_nothing(sec_lab, run, tmp_path, monkeypatch):
    etc = tmp_path / "etc"
    etc.mkdir()
    for f in sec_lab.config.config_dir.glob("*.json"):
        doc = json.loads(f.read_text())
        if "swarm" in doc:
            doc["swarm"]["default_addr_pool"] = ["10.200.0.0/16"]
        (etc / f.name).write_text(json.dumps(doc))
    monkeypatch.setenv("PHOENIX_CONFIG_DIR", str(etc))
    code, out, t = run(swarm_tasks.join)
    assert code == 0, out
    assert has(out, ("warning: default_addr_pool differs: the swarm has 10.123.0.0/16, 10.124.0.0/16 in /26s, the config "
            "says 10.200.0.0/16 in /26s; changing it needs a new swarm (not done by Phoenix)"))
    assert has(out, "swarm join: no changes") and t.mutating_commands == []
    assert manager(sec_lab).info()["Swarm"]["Cluster"]["DefaultAddrPool"] == POOLS


def test_rotating_the_worker_token_refuses_the_old_one_and_the_new_one_joins(sec_lab, run):
    old = tokens(sec_lab)
    code, out, t = run(swarm_tasks.tokens, rotate="worker", dry_run=True)
    assert code == 0 and t.mutating_commands == [], out
    assert has(out, "worker join token  rotate") and has(out, "dry run: nothing was changed")
    assert tokens(sec_lab) == old
    code, out, t = run(swarm_tasks.tokens, rotate="worker", verbose=True)
    assert code == 0, out
    assert has(out, "rotated: the worker join token on portainer (vmid 1001)")
    assert has(out, "recorded as cluster event phx-cluster-event-")
    new = tokens(sec_lab)
    assert new["Worker"] != old["Worker"] and new["Manager"] == old["Manager"]
    cpu_vm = vm(sec_lab, "cpuworker")
    cpu = sec_lab.docker(cpu_vm)
    cpu.swarm.leave()
    with pytest.raises(docker.errors.APIError):
        cpu.swarm.join(remote_addrs=["198.18.66.11:2377"], join_token=old["Worker"],
                       advertise_addr=cpu_vm.address)
    assert cpu.info()["Swarm"]["LocalNodeState"] == "inactive"
    code, out, _ = run(swarm_tasks.join)  # reads the worker token now valid
    assert code == 0, out
    assert has(out, "cpuworker (vmid 1003)  join")
    assert cpu.info()["Swarm"]["LocalNodeState"] == "active"
    assert run(swarm_tasks.label)[0] == 0
    # The event names the role, never a token.
    events = manager(sec_lab).configs.list(filters={"label": "io.phoenix.event"})
    assert [c.attrs["Spec"]["Labels"]["io.phoenix.event.what"] for c in events] == ["worker"]
    code, out, _ = run(swarm_tasks.tokens)
    assert code == 0 and has(out, "last rotation: rotate-join-token worker at") and has(out, "worker: ***")


def test_autolock_enable_writes_the_key_file_0600(sec_lab, run):
    path = sec_lab.config.hypervisor.swarm.autolock_key_file
    code, out, t = run(swarm_tasks.autolock, enable=True, dry_run=True)
    assert code == 0 and t.mutating_commands == [] and not path.exists(), out
    assert has(out, "turn autolock on")
    code, out, _ = run(swarm_tasks.autolock, enable=True, verbose=True)
    assert code == 0, out
    key = manager(sec_lab).api.get_unlock_key()["UnlockKey"]
    SECRETS.add(key)
    assert manager(sec_lab).info()["Swarm"]["Cluster"]["Spec"]["EncryptionConfig"]["AutoLockManagers"] is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == key + "\n"
    assert has(out, f"autolock: on; key file: {path} (mode 0600, the swarm's current key)")
    code, out, t = run(swarm_tasks.autolock, enable=True)
    assert code == 0 and has(out, "swarm autolock: no changes") and t.mutating_commands == []
    code, out, _ = run(swarm_tasks.status)
    assert code == 0 and has(out, f"autolock: on (key file: {path} (mode 0600))"), out


def restart_manager_engine(lab):
    names = control.names_for(lab.config).vm(vm(lab, "portainer").vmid)
    labvm.stop_dockerd(names)
    control.up(lab.config)  # the lab starts the engine again, as a VM's reboot would
    assert manager(lab).info()["Swarm"]["LocalNodeState"] == "locked"


def test_a_restarted_manager_comes_back_locked_and_the_converge_unlocks_it_from_the_file(sec_lab, run):
    path = sec_lab.config.hypervisor.swarm.autolock_key_file
    restart_manager_engine(sec_lab)
    # Without the file: reported as locked, with what to do; nothing runs.
    aside = path.with_name("aside.key")
    path.rename(aside)
    code, out, t = run(swarm_tasks.join)
    assert code == 1 and t.mutating_commands == []
    assert has(out, "blocked portainer (vmid 1001): its swarm is locked (autolock): the unlock key file")
    assert has(out, "does not exist: put the key there (mode 0600), or run `docker swarm unlock`")
    assert manager(sec_lab).info()["Swarm"]["LocalNodeState"] == "locked"
    aside.rename(path)
    # sync-all's plan says it unlocks first.
    code, out, t = run(sync_tasks.sync_all, dry_run=True, verbose=True)
    assert code == 0 and t.mutating_commands == [], out
    assert has(out, f"portainer (vmid 1001)  unlock   unlock (key from {path})")
    assert has(out, f"$ docker swarm unlock < unlock key from {path} (53 bytes)")
    code, out, _ = run(swarm_tasks.join, verbose=True)
    assert code == 0, out
    assert has(out, "converged: facts read again, nothing pending")
    m = manager(sec_lab)
    assert m.info()["Swarm"]["LocalNodeState"] == "active"
    # The swarm works: every node ready again, and an overlay network can be made.
    ids = [sec_lab.docker(v).info()["Swarm"]["NodeID"] for v in sec_lab.vms]  # not the stale one of the rejoin
    wait_until("every VM's node ready", lambda: all(m.nodes.get(i).attrs["Status"]["State"] == "ready" for i in ids), 60)
    net = m.networks.create("phx-after-unlock", driver="overlay")
    net.remove()
    code, out, t = run(swarm_tasks.join)
    assert code == 0 and has(out, "no changes") and t.mutating_commands == []


def test_sync_all_unlocks_a_restarted_manager_too(sec_lab, run):
    restart_manager_engine(sec_lab)
    code, out, _ = run(sync_tasks.sync_all)
    assert code == 0, out
    assert has(out, "unlock") and has(out, "sync-all: converged")
    assert manager(sec_lab).info()["Swarm"]["LocalNodeState"] == "active"


def test_autolock_disable_and_no_secret_anywhere(sec_lab, run):
    path = sec_lab.config.hypervisor.swarm.autolock_key_file
    code, out, _ = run(swarm_tasks.autolock, disable=True)
    assert code == 0, out
    assert has(out, f"the unlock key file {path} is no longer needed once autolock is off; Phoenix leaves it")
    assert manager(sec_lab).info()["Swarm"]["Cluster"]["Spec"]["EncryptionConfig"]["AutoLockManagers"] is False
    assert path.exists()
    whats = sorted(c.attrs["Spec"]["Labels"]["io.phoenix.event.what"]
                   for c in manager(sec_lab).configs.list(filters={"label": "io.phoenix.event"}))
    assert whats == ["off", "on", "worker"]
    # No token and no key in any output, log, event or file but the key file.
    tokens(sec_lab)
    assert len(SECRETS) >= 4
    everything = "\n".join(SEEN)
    for secret in SECRETS:
        assert secret not in everything
        assert secret[9:40] not in everything
    for c in manager(sec_lab).configs.list(filters={"label": "io.phoenix.event"}):
        data = base64.b64decode(manager(sec_lab).configs.get(c.id).attrs["Spec"]["Data"]).decode()
        assert json.loads(data)["kind"] in ("rotate-join-token", "autolock")
        assert all(secret not in data for secret in SECRETS)
    for f in sec_lab.config.config_dir.rglob("*"):
        if f.is_file() and f != path:
            assert all(secret not in f.read_text(errors="replace") for secret in SECRETS), f
