"""More faults on a real lab (docs/faults.md), verified through the docker SDK on each
VM's own socket (never through the code under test):

- `sync-all` killed with SIGKILL while the workers join: the manager's swarm is intact,
  the next `sync-all` converges to one cluster with every node labelled;
- a worker's dockerd hung (SIGSTOP): `swarm.status` and `swarm.label` end within the
  command deadline naming the VM, the others are read and labelled; once it runs
  again (SIGCONT) the next run converges;
- two `sync-all` from two control machines (no shared cluster lock) on a fresh lab:
  one cluster, no leave advised, a third run has no changes;
- `swarm.deploy` killed with SIGKILL after its ledger entry is written: the lock blocks
  (clearly) until its TTL, the ledger keeps the entry as "incomplete", a later deploy
  takes the lock over and converges; the other stack (Portainer) is untouched;
- a worker's data root full (a small tmpfs) during a deploy: the deploy fails naming the
  service, the node and the error; other VMs and stacks untouched; once space is freed
  the next deploy of the same stack resumes the update Swarm paused and converges."""

import json
import os
import shutil
import signal
import subprocess

import docker
import pytest

from conftest import (REPO, bridge_lock, clear_stale_lab, lab_skip_reason, lab_with_password, run_task, start_task,
                      task_env, wait_until)

pytestmark = pytest.mark.lab

BRIDGE, SUBNET = "phxtest19", "198.18.74.0/24"
PASSWORD = "faults-kill-lab-password-4e19"
APP = "thinkheads_ai_app"
NS = f"dev1_{APP}"
LOCK_TTL_S = 20  # short for the test (default 120)
COMMAND_TIMEOUT_S = 10  # the hung-engine scenario's command deadline (default 60)


def env_for(config_dir, password, stacks_dir=None, runtime_dir=None):
    return task_env(config_dir, password, stacks_dir=stacks_dir, runtime_dir=runtime_dir)


def flat(res):
    return " ".join((res.stdout + res.stderr).split())


def set_hypervisor(etc, section, **values):
    path = etc / "phoenix_hypervisor_config.json"
    doc = json.loads(path.read_text())
    doc[section].update(values)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def clients_of(config, names):
    return {vm.name: docker.DockerClient(base_url=names.vm(vm.vmid).docker_host, timeout=60)
            for vm in config.real_vms}


def swarm_state(client):
    try:
        return client.info()["Swarm"]["LocalNodeState"]
    except docker.errors.DockerException:
        return None


def assert_one_cluster_every_node_labelled(config, clients):
    """One cluster ID among the managers, every VM a node of it with its role and the
    labels of its config; returns (cluster ID, {node ID: labels})."""
    clusters = {c.info()["Swarm"]["Cluster"]["ID"] for c in clients.values() if c.info()["Swarm"]["ControlAvailable"]}
    assert len(clusters) == 1, clusters
    manager = clients["portainer"]
    nodes = {n.id: n.attrs["Spec"] for n in manager.nodes.list()}
    assert len(nodes) == len(config.real_vms)
    for vm in config.real_vms:
        info = clients[vm.name].info()["Swarm"]
        assert info["LocalNodeState"] == "active", (vm.name, info)
        spec = nodes[info["NodeID"]]
        assert spec["Role"] == vm.swarm_role
        assert {k: v for k, v in (spec.get("Labels") or {}).items() if k in vm.node_labels} == dict(vm.node_labels)
    return clusters.pop(), {k: dict(v.get("Labels") or {}) for k, v in nodes.items()}


def services_snapshot(manager, prefix):
    """{service: (its spec, the IDs of its running tasks)} of services whose name starts
    with prefix: equal snapshots mean the same specs and no task replaced.  (Not the
    version index: `docker stack deploy` updates every service of the stack, an
    unchanged one included, and that alone moves it.)"""
    out = {}
    for s in manager.services.list():
        if s.name.startswith(prefix):
            running = sorted(t["ID"] for t in s.tasks(filters={"desired-state": "running"})
                             if t["Status"]["State"] == "running")
            out[s.name] = (json.dumps(s.attrs["Spec"], sort_keys=True), running)
    return out


def workload(manager, prefix):
    """{service: (its task template, the IDs of its running tasks)}: what runs, not labels."""
    return {name: (json.loads(spec)["TaskTemplate"], tasks) for name, (spec, tasks) in
            services_snapshot(manager, prefix).items()}


def ledger_of(manager, namespace):
    """[(seq, result)] of a namespace's ledger, read from the swarm configs' labels."""
    from phoenix_tasks.stack import ledger
    entries = {int(c.attrs["Spec"]["Labels"][ledger.L_SEQ])
               for c in manager.configs.list(filters={"label": f"{ledger.ENTRY}={namespace}"})}
    results = {int(c.attrs["Spec"]["Labels"][ledger.L_SEQ]): c.attrs["Spec"]["Labels"][ledger.L_RESULT]
               for c in manager.configs.list(filters={"label": f"{ledger.RESULT_OF}={namespace}"})}
    return [(seq, results.get(seq, "incomplete")) for seq in sorted(entries)]


def converged_running(manager, prefix, deadline_s=180):
    """Until every service of prefix runs all its desired replicas (a deadline, not a sleep)."""
    def check():
        snap = {}
        for s in manager.services.list():
            if not s.name.startswith(prefix):
                continue
            mode = s.attrs["Spec"]["Mode"]
            want = mode["Replicated"]["Replicas"] if "Replicated" in mode else None
            running = sum(t["Status"]["State"] == "running" for t in s.tasks(filters={"desired-state": "running"}))
            if want is not None and running != want:
                return None
            snap[s.name] = running
        return snap or None
    return wait_until(f"every {prefix}* service at its replicas", check, deadline_s, every=1)


def test_sync_all_killed_mid_join_then_a_hung_worker_engine(tmp_path):
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from phoenix_tasks.lab import control, vm as lab_vm
    config, password = lab_with_password(tmp_path, 3, SUBNET, BRIDGE, PASSWORD)
    etc = config.config_dir
    env = env_for(etc, password)
    names = control.names_for(config)
    with bridge_lock(BRIDGE):
        clear_stale_lab(BRIDGE)
        try:
            control.up(config)  # the VMs, no swarm yet
            clients = clients_of(config, names)
            assert {swarm_state(c) for c in clients.values()} == {"inactive"}

            # 1. sync-all killed (SIGKILL, by its pid) as soon as a worker's engine is joining.
            victim = start_task(env, "sync-all")
            try:
                wait_until("a worker's engine joining", lambda: victim.poll() is not None or any(
                    swarm_state(clients[n]) in ("pending", "active") for n in ("drphoenix", "cpuworker")),
                    600, every=0.02)
                assert victim.poll() is None, "sync-all ended before a worker joined: " + victim.stdout.read()
                victim.send_signal(signal.SIGKILL)
            finally:
                out, err = victim.communicate(timeout=60)
            assert victim.returncode == -signal.SIGKILL
            assert "sync-all: converged" not in out  # it did not get to the end
            # The manager's swarm is intact: initialised by the killed run, still there.
            manager = clients["portainer"]
            info = manager.info()["Swarm"]
            assert info["LocalNodeState"] == "active" and info["ControlAvailable"], info
            cluster = info["Cluster"]["ID"]

            again = run_task(env, "sync-all")
            assert again.returncode == 0, again.stdout + again.stderr
            assert "sync-all: converged" in again.stdout
            text = flat(again)
            assert "leave" not in text and "Traceback" not in text
            cluster_after, labels = assert_one_cluster_every_node_labelled(config, clients)
            assert cluster_after == cluster  # the same swarm, never re-initialised

            # 4. A worker's dockerd hung (SIGSTOP, the pid from the lab's pid file).
            set_hypervisor(etc, "vm_access", command_timeout_s=COMMAND_TIMEOUT_S)
            before = services_snapshot(manager, "prod_")
            assert before, "Portainer runs"
            pid = lab_vm.dockerd_pid(names.vm(1003))
            assert pid
            os.kill(pid, signal.SIGSTOP)
            try:
                status = run_task(env, "swarm.status", timeout=300)
                assert status.returncode == 1, status.stdout + status.stderr
                text = flat(status)
                assert "cpuworker (vmid 1003): unreachable:" in text, text
                assert f"did not finish within {COMMAND_TIMEOUT_S} s" in text, text
                assert "portainer (vmid 1001): unreachable" not in text
                assert "drphoenix (vmid 1002): unreachable" not in text
                assert "leave" not in text and "Traceback" not in text

                # swarm.label: the others are labelled, the hung one is named.
                worker = next(n for n in manager.nodes.list() if n.attrs["Description"]["Hostname"] == "drphoenix")
                spec = dict(worker.attrs["Spec"])
                spec["Labels"] = {k: v for k, v in spec["Labels"].items() if k != "zone"}
                worker.update(spec)  # drift on a healthy worker: swarm.label must put it back
                label = run_task(env, "swarm.label", timeout=300)
                assert label.returncode == 1, label.stdout + label.stderr
                text = flat(label)
                assert "cpuworker (vmid 1003): unreachable:" in text, text
                assert f"did not finish within {COMMAND_TIMEOUT_S} s" in text, text
                assert "Traceback" not in text
                worker.reload()
                assert worker.attrs["Spec"]["Labels"].get("zone") == "compute"
            finally:
                os.kill(pid, signal.SIGCONT)
            # Nothing was removed or changed while it hung.
            assert services_snapshot(manager, "prod_").keys() == before.keys()
            assert {k: v[0] for k, v in services_snapshot(manager, "prod_").items()} == \
                {k: v[0] for k, v in before.items()}
            assert {n.id: dict(n.attrs["Spec"].get("Labels") or {}) for n in manager.nodes.list()} == labels
            wait_until("cpuworker's engine answers again", lambda: swarm_state(clients["cpuworker"]) == "active",
                       120, every=0.5)
            back = run_task(env, "sync-all")
            assert back.returncode == 0, back.stdout + back.stderr
            assert "sync-all: converged" in back.stdout
            assert assert_one_cluster_every_node_labelled(config, clients)[0] == cluster
        finally:
            control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)


def _mounted(path):
    with open("/proc/mounts") as f:
        return any(line.split()[1] == str(path) for line in f)


def test_two_control_machines_then_a_killed_deploy_and_a_full_disk(tmp_path):
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    from phoenix_tasks.config import load_config
    from phoenix_tasks.lab import control, vm as lab_vm
    from phoenix_tasks.stack import ledger
    stacks = tmp_path / "stacks"
    shutil.copytree(REPO / "stacks", stacks)
    _, password = lab_with_password(tmp_path, 3, SUBNET, BRIDGE, PASSWORD, stacks)
    etc = tmp_path / "etc"
    set_hypervisor(etc, "swarm", lock_ttl_s=LOCK_TTL_S)
    config = load_config(etc, stacks)  # as edited
    names = control.names_for(config)
    # drphoenix (gpu=true: the inference service runs there) gets a small data root.
    full_root = names.vm(1002).data_root
    with bridge_lock(BRIDGE):
        clear_stale_lab(BRIDGE)
        try:
            control.up(config)  # the VMs, no swarm yet
            # Before any swarm: drphoenix's engine stopped, a tmpfs over its (empty from now
            # on) data root, and the lab brought up again: its engine starts on the tmpfs and
            # pulls its images there.  lab.down unmounts it (a mount under the data root).
            lab_vm.stop_dockerd(names.vm(1002))
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400m,mode=711", "tmpfs", str(full_root)], check=True)
            control.up(config)
            clients = clients_of(config, names)
            assert {swarm_state(c) for c in clients.values()} == {"inactive"}

            # 5. Two control machines at once: each its own cluster lock (XDG_RUNTIME_DIR).
            machines = [tmp_path / "machine-a", tmp_path / "machine-b"]
            for m in machines:
                m.mkdir()
            runs = [start_task(env_for(etc, password, stacks, m), "sync-all") for m in machines]
            done = [(p, *p.communicate(timeout=900)) for p in runs]
            for p, out, err in done:
                text = " ".join((out + err).split())
                assert "waiting for the cluster lock" not in text  # they did not share a lock
                assert "leave" not in text and "Traceback" not in text, text
                assert "already part of a swarm" not in text and "foreign" not in text, text
                if p.returncode != 0:
                    # The one clear way to lose here: Portainer's deploy lock (in the swarm)
                    # held by the other run for longer than --lock-wait.
                    assert "prod_portainer_service is locked by" in text, text
            assert any(p.returncode == 0 for p, _, _ in done), done
            manager = clients["portainer"]
            cluster, labels = assert_one_cluster_every_node_labelled(config, clients)
            env = env_for(etc, password, stacks)
            third = run_task(env, "sync-all")
            assert third.returncode == 0, third.stdout + third.stderr
            assert "sync-all: converged (no changes)" in third.stdout

            # A running app stack beside Portainer.
            first = run_task(env, "swarm.deploy", "--stack", APP, "--env", "dev1", "--timeout", "120")
            assert first.returncode == 0, first.stdout + first.stderr
            portainer_before = services_snapshot(manager, "prod_")
            portainer_ledger = ledger_of(manager, "prod_portainer_service")
            assert ledger_of(manager, NS) == [(1, "converged")]

            # 2. swarm.deploy killed with SIGKILL once its ledger entry exists (lock taken).
            (stacks / APP / "config" / "api_settings.yaml").write_text("# changed\nrequest_timeout_s: 70\n")
            victim = start_task(env, "swarm.deploy", "--stack", APP, "--env", "dev1")
            try:
                wait_until("the killed deploy's ledger entry", lambda: victim.poll() is not None or any(
                    c.name == ledger.entry_name(NS, 2) for c in manager.configs.list()), 300, every=0.05)
                assert victim.poll() is None, "the deploy ended before its entry was seen: " + victim.stdout.read()
                victim.send_signal(signal.SIGKILL)
            finally:
                victim.communicate(timeout=60)
            assert victim.returncode == -signal.SIGKILL
            assert ledger_of(manager, NS) == [(1, "converged"), (2, "incomplete")]
            # The lock it held blocks the next deploy, clearly, and names the killed run.
            blocked = run_task(env, "swarm.deploy", "--stack", APP, "--env", "dev1", "--lock-wait", "0")
            assert blocked.returncode == 1, blocked.stdout + blocked.stderr
            text = flat(blocked)
            assert f"{NS} is locked by" in text and f"(swarm.deploy --stack {APP} --env dev1" in text, text
            assert "--force-unlock" in text and "Traceback" not in text
            assert ledger_of(manager, NS) == [(1, "converged"), (2, "incomplete")]
            # Waiting longer than the TTL: the lock is taken over and the deploy converges.
            later = run_task(env, "swarm.deploy", "--stack", APP, "--env", "dev1", "--lock-wait", str(LOCK_TTL_S * 4),
                         "--timeout", "120")
            assert later.returncode == 0, later.stdout + later.stderr
            text = flat(later)
            assert "did not renew it" in text and "taking it over" in text, text
            assert ledger_of(manager, NS) == [(1, "converged"), (2, "incomplete"), (3, "converged")]
            assert services_snapshot(manager, "prod_") == portainer_before
            assert ledger_of(manager, "prod_portainer_service") == portainer_ledger

            # 3. drphoenix's data root full during a deploy that needs a new task there.
            dev1_api = workload(manager, f"{NS}_api")
            filler = full_root / "phoenix-test-filler"
            free = os.statvfs(full_root)
            with open(filler, "wb") as f:
                os.posix_fallocate(f.fileno(), 0, free.f_bavail * free.f_frsize)
            manifest = stacks / APP / "phoenix.json"
            doc = json.loads(manifest.read_text())
            doc["environments"]["dev1"] = {"variables": {"MODEL_NAME": "phi-3-medium"}}
            manifest.write_text(json.dumps(doc))
            try:
                # --no-restore: what is tested here is the rerun resuming Swarm's paused update
                full = run_task(env, "swarm.deploy", "--stack", APP, "--env", "dev1", "--timeout", "90",
                                "--no-restore")
            finally:
                filler.unlink()
            full_text = flat(full)
            assert full.returncode == 1, full.stdout + full.stderr
            assert f"{NS}_inference" in full_text and "no space left on device" in full_text, full_text
            assert "on node drphoenix rejected" in full_text, full_text
            assert "Traceback" not in full_text
            assert ledger_of(manager, NS)[-1][1] in ("failed", "rolled-back")
            # Untouched: Portainer, the api service of the same stack, nodes and labels.
            assert services_snapshot(manager, "prod_") == portainer_before
            # (the api's stack-wide hash label moves with any change of the stack: its
            # task template and its running task stay)
            assert workload(manager, f"{NS}_api") == dev1_api
            assert {n.id: dict(n.attrs["Spec"].get("Labels") or {}) for n in manager.nodes.list()} == labels
            # Space freed.  Swarm paused the update (failure_action pause) and starts no task
            # for it by itself: the next deploy of the same stack resumes it (one forced
            # rollout of the same spec, under the lock, with a ledger record) and converges.
            same = run_task(env, "swarm.deploy", "--stack", APP, "--env", "dev1", "--timeout", "180")
            assert same.returncode == 0, same.stdout + same.stderr
            text = flat(same)
            assert f"{NS}: no changes" in text and "not every service has converged" in text, text
            assert f"resume {NS}_inference (0/1 running; Swarm paused its update)" in text, text
            assert f"converged: {NS} running as deployed" in text, text
            records = dict(ledger_of(manager, NS))
            assert records[4] in ("failed", "rolled-back") and records[5] == "converged" and max(records) == 5
            converged_running(manager, NS)
            inference = manager.services.get(f"{NS}_inference").attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"]
            assert "MODEL_NAME=phi-3-medium" in inference
            assert assert_one_cluster_every_node_labelled(config, clients)[0] == cluster
        finally:
            control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)
            if _mounted(full_root):
                subprocess.run(["umount", str(full_root)], check=False)
