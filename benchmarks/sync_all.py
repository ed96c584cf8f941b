"""Benchmark: `sync-all` at 3, 8 and 20 VMs against the floor, as ratios taken in one run (issue 13).

For each lab size (a fresh lab, bridge `phxbench1`, subnet 198.18.89.0/24, torn down
afterwards), rounds interleaved so that the machine's noise hits all alike, medians:
  floor        = one parallel `docker info` per VM over a fresh SSH connection each
                 (the Fabric/paramiko transport Phoenix uses), in this process;
  floor (proc) = the same in a fresh Python process (start-up + imports + the floor):
                 the fair floor for a whole `sync-all` command;
  cold         = the real command `python -m invoke --search-root REPO sync-all` on VMs
                 that are up with no swarm: init, join, labels, Portainer deployed and
                 answering; converged in ONE run = exit 0 and "sync-all: converged".
                 Between cold rounds the swarm is undone (`swarm leave --force` on every
                 VM through its own docker socket, Portainer's containers and volumes
                 removed), which is slow at 20 VMs: by default 2 cold rounds up to 8 VMs
                 and 1 above (--cold-rounds, --cold-rounds-large);
  converged    = (a) the swarm phases (init + join + labels: facts, plan, "no changes")
                 in this process on a fresh Transport, remote commands per VM counted from
                 the transport's own records; (b) the whole `sync-all` command (Python
                 start-up, config, swarm, Portainer check), commands per VM counted from
                 one extra untimed `--verbose` run's echo.
  cold swarm   = the swarm stage alone, from VMs that are up with no swarm, in this
                 process: Phoenix's phases (facts, plan, init, join, labels, the
                 re-reads and the final read) vs the bare commands any tool must run
                 (init, the join tokens, the joins, the label updates: no read, no plan,
                 no check). Bare / floor is docker's own share; Phoenix / bare its overhead.
On the 3-VM size only (--deploy-sizes): an unchanged and a changed `swarm.deploy` of
thinkheads_ai_app as dev1 (stack_deploy.py's functions), against the manager's floor.

Run as root:
    .venv/bin/python benchmarks/sync_all.py [--sizes 3 8 20] [--rounds N] [--json out.json]
Traffic goes only to the lab's own namespaces (198.18.89.0/24) and loopback.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from phoenix_tasks.config import load_config  # noqa: E402
from phoenix_tasks.lab import control  # noqa: E402
from phoenix_tasks.lab.configgen import write_lab_config  # noqa: E402
from phoenix_tasks.swarm import commands  # noqa: E402
from phoenix_tasks.swarm.apply import converge  # noqa: E402
from phoenix_tasks.swarm.plan import Options  # noqa: E402
from phoenix_tasks.core.transport import Transport  # noqa: E402

SUBNET = "198.18.89.0/24"
BRIDGE = "phxbench1"
PASSWORD = "bench-sync-all-password-4e1a"
GOAL_COLD, GOAL_CONVERGED, GOAL_CMDS = 3.5, 1.3, 1
ECHO = re.compile(r"^\[([^\]]+)\] \$ ")
STAGE = re.compile(r"^stage (\d+)/\d+: ")

# The floor in a fresh Python process: the same transport and command as floor().
FLOOR_CHILD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from phoenix_tasks.config import load_config
from phoenix_tasks.swarm import commands
from phoenix_tasks.core.transport import Transport
config = load_config(sys.argv[2])
with Transport(config.hypervisor.vm_access) as t:
    results = t.each(config.swarm_vms, lambda vm: t.run(vm, commands.info(), mutating=False))
assert all(not isinstance(r, Exception) for r in results.values()), results
"""


# --- measurements ---

def floor(config) -> float:
    t0 = time.perf_counter()
    with Transport(config.hypervisor.vm_access) as t:
        results = t.each(config.swarm_vms, lambda vm: t.run(vm, commands.info(), mutating=False))
    assert all(not isinstance(r, Exception) for r in results.values()), results
    return time.perf_counter() - t0


def floor_proc(etc: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR_CHILD, str(REPO), str(etc)], check=True,
                   stdout=subprocess.DEVNULL, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    return time.perf_counter() - t0


def swarm_converged(config) -> tuple[float, Counter, int]:
    import swarm_converged as converged_bench  # benchmarks/swarm_converged.py: the same run, not a copy
    return converged_bench.phoenix_converged(config)


def cold_swarm_phoenix(config) -> tuple[float, Counter]:
    """Phoenix's swarm phases (init + join + labels) on VMs that are up with no swarm, in
    this process on a fresh transport: facts, plan, apply, the re-reads, the final read."""
    t0 = time.perf_counter()
    with Transport(config.hypervisor.vm_access) as t:
        outcome = converge(t, config, Options(label_policy=config.hypervisor.swarm.label_policy))
    elapsed = time.perf_counter() - t0
    assert outcome.ok and not outcome.pending and outcome.applied, (outcome.failed, outcome.pending)
    return elapsed, Counter(r.vm for r in t.log)


JOIN_THEN_ID = 'docker swarm join --token "$1" --advertise-addr "$2" -- "$3" >/dev/null && docker info --format "{{.Swarm.NodeID}}"'


def cold_swarm_bare(config) -> float:
    """The least any tool must run for the same cold swarm, with no read, plan or check:
    `swarm init` on the first manager (its node ID), the join tokens, every other VM's
    join in parallel (each prints its node ID), every node's labels in parallel on the
    manager.  The fair floor of a cold swarm stage: docker's own work."""
    from phoenix_tasks.core.secrets import Secret
    from phoenix_tasks.swarm.init_settings import init_argv

    swarm = config.hypervisor.swarm
    first = config.managers[0]
    t0 = time.perf_counter()
    with Transport(config.hypervisor.vm_access) as t:
        t.run(first, init_argv(swarm, swarm.advertise_addr(first)), mutating=True)
        ids = {first.name: t.run(first, ["docker", "info", "--format", "{{.Swarm.NodeID}}"], mutating=False).stdout.strip()}
        others = [vm for vm in config.swarm_vms if vm.vmid != first.vmid]
        tokens = {role: Secret(t.run(first, commands.join_token(role), mutating=False, secret_output=True).stdout.strip())
                  for role in {vm.swarm_role for vm in others}}
        manager_addr = f"{swarm.advertise_addr(first)}:{commands.SWARM_PORT}"

        def join(vm):
            argv = ["sh", "-c", JOIN_THEN_ID, "join", tokens[vm.swarm_role], swarm.advertise_addr(vm), manager_addr]
            return t.run(vm, argv, mutating=True).stdout.strip()

        joined = t.each(others, join)
        assert all(isinstance(v, str) and v for v in joined.values()), joined
        ids.update(joined)
        labelled = [vm for vm in config.swarm_vms if vm.node_labels]
        done = t.each(labelled, lambda vm: t.run(first, commands.node_update_labels(ids[vm.name], vm.node_labels, []),
                                                 mutating=True))
        assert not [r for r in done.values() if isinstance(r, Exception)], done
    return time.perf_counter() - t0


def sync_all(etc: Path, password: Path, *flags: str) -> tuple[float, subprocess.CompletedProcess]:
    """The real command; `res.stages` = seconds from the start to each "stage N/5" header
    (stdout unbuffered, read as it comes)."""
    return inv(etc, password, "sync-all", *flags)


def inv(etc: Path, password: Path | None, *args: str, stacks: Path | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """`python -m invoke --search-root REPO ARGS...` as a user types it, timed as a whole
    process; `res.stages` as for sync_all."""
    env = {"PHOENIX_CONFIG_DIR": str(etc),
           "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "PYTHONUNBUFFERED": "1"}
    if password is not None:
        env["PHOENIX_PORTAINER_ADMIN_PASSWORD_FILE"] = str(password)
    if stacks is not None:
        env["PHOENIX_STACKS_DIR"] = str(stacks)
    argv = [sys.executable, "-m", "invoke", "--search-root", str(REPO), *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    with ThreadPoolExecutor(max_workers=1) as pool:
        err = pool.submit(proc.stderr.read)
        lines, stages = [], {}
        for line in proc.stdout:
            m = STAGE.match(line)
            if m:
                stages.setdefault(int(m.group(1)), time.perf_counter() - t0)
            lines.append(line)
        code = proc.wait(timeout=1500)
        elapsed = time.perf_counter() - t0
        res = subprocess.CompletedProcess(argv, code, "".join(lines), err.result())
    res.stages = stages
    return elapsed, res


def stage_split(elapsed: float, stages: dict) -> dict:
    """A cold run in parts: plan read (start to stage 1), swarm (stage 3 to 4), Portainer
    deploy (4 to 5), Portainer answers (5 to the end)."""
    if not all(k in stages for k in (1, 3, 4, 5)):
        return {}
    return {"to_stage_1_ms": ms(stages[1]), "swarm_ms": ms(stages[4] - stages[3]),
            "portainer_deploy_ms": ms(stages[5] - stages[4]), "portainer_answers_ms": ms(elapsed - stages[5])}


def converged_in_one_run(res: subprocess.CompletedProcess) -> bool:
    return res.returncode == 0 and "sync-all: converged" in res.stdout


def undo_swarm(config) -> float:
    """Every VM leaves the swarm (workers first), Portainer's containers and volumes go:
    VMs up, no swarm, as before a cold run.  Through each VM's own docker socket."""
    import docker
    t0 = time.perf_counter()
    names = control.names_for(config)
    clients = {vm.name: docker.DockerClient(base_url=names.vm(vm.vmid).docker_host, timeout=120)
               for vm in config.real_vms}
    managers = {vm.name for vm in config.managers}

    def leave(name):
        client = clients[name]
        if client.info()["Swarm"]["LocalNodeState"] != "inactive":
            client.swarm.leave(force=True)
        for c in client.containers.list(all=True, filters={"label": "com.docker.stack.namespace"}):
            c.remove(force=True)
        for v in client.volumes.list(filters={"label": "com.docker.stack.namespace"}):
            v.remove(force=True)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(leave, [n for n in clients if n not in managers]))
        list(pool.map(leave, [n for n in clients if n in managers]))
    for name, client in clients.items():
        assert client.info()["Swarm"]["LocalNodeState"] == "inactive", name
        client.close()
    return time.perf_counter() - t0


def echoed_commands(stderr: str) -> tuple[Counter, int, dict]:
    """Commands per VM, mutating count and the commands themselves from a `--verbose` run's echo."""
    per_vm, muts, seen = Counter(), 0, {}
    for line in stderr.splitlines():
        m = ECHO.match(line)
        if m:
            per_vm[m.group(1)] += 1
            seen.setdefault(m.group(1), []).append(line[m.end():][:160])
            cmd = line[m.end():]
            muts += any(cmd.startswith(p) for p in (
                "docker swarm init", "docker swarm join", "docker swarm leave", "docker node update",
                "docker stack deploy", "docker secret create", "docker config create", "docker service update"))
    return per_vm, muts, seen


def deploy_bench(config_dir: Path, stacks: Path, rounds: int, changed: int) -> dict:
    import stack_deploy  # benchmarks/stack_deploy.py: the same measurement, not a copy

    r = stack_deploy.measure(config_dir, stacks, rounds, changed)
    floor, unchanged = statistics.median(r["floor"]), statistics.median(r["unchanged"])
    return {"floor_manager_ms": ms(floor), "unchanged_ms": ms(unchanged), "unchanged_ratio": unchanged / floor,
            "unchanged_commands": r["commands"],
            "changed_ms": ms(statistics.median(r["changed"])) if r["changed"] else None,
            "changed_waiting_ms": ms(statistics.median(r["waited"])) if r["waited"] else None,
            "rounds": rounds, "changed_rounds": changed}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def bench(nodes: int, rounds: int, cold_rounds: int, deploy: bool, deploy_rounds: int, changed: int,
          log) -> dict:
    with tempfile.TemporaryDirectory(prefix="phx-bench-sync-") as tmp:
        etc, stacks, password = Path(tmp) / "etc", Path(tmp) / "stacks", Path(tmp) / "pw"
        shutil.copytree(REPO / "stacks", stacks)
        write_lab_config(etc, nodes, subnet=SUBNET, bridge=BRIDGE, state_dir=f"{tmp}/state")
        password.write_text(PASSWORD + "\n")
        config = load_config(etc)
        try:
            t0 = time.perf_counter()
            for attempt in (1, 2, 3):  # a loaded machine: a dockerd may miss lab.up's 90 s; up is idempotent
                try:
                    control.up(config)
                    break
                except control.LabFailed as exc:
                    if attempt == 3:
                        raise
                    log(f"{nodes} VMs: lab up attempt {attempt} failed, again: {str(exc)[:300]}")
            log(f"{nodes} VMs: lab up in {time.perf_counter() - t0:.1f} s")
            floor(config), floor_proc(etc)  # warm-up: page cache, first connections
            cold, cold_fl, cold_flp, cold_ok, undo, cold_parts = [], [], [], [], [], []
            swarm_phx, swarm_bare, cold_counts = [], [], Counter()
            for i in range(cold_rounds):
                if i:
                    undo.append(undo_swarm(config))
                    log(f"{nodes} VMs: swarm undone in {undo[-1]:.1f} s")
                cold_fl.append(floor(config))
                elapsed, res = sync_all(etc, password)
                cold.append(elapsed)
                cold_parts.append(stage_split(elapsed, res.stages))
                cold_ok.append(converged_in_one_run(res))
                log(f"{nodes} VMs: cold sync-all {elapsed:.1f} s, exit {res.returncode}, "
                    f"converged in one run: {cold_ok[-1]}")
                if not cold_ok[-1]:
                    log(res.stdout[-3000:] + res.stderr[-3000:])
                    _, res = sync_all(etc, password)  # so that the converged rounds can run
                    assert converged_in_one_run(res), res.stdout[-3000:] + res.stderr[-3000:]
                cold_flp.append(floor_proc(etc))
                # The swarm stage alone, Phoenix vs the bare commands, from the same start.
                undo.append(undo_swarm(config))
                elapsed, cold_counts = cold_swarm_phoenix(config)
                swarm_phx.append(elapsed)
                undo.append(undo_swarm(config))
                swarm_bare.append(cold_swarm_bare(config))
                log(f"{nodes} VMs: cold swarm phases: Phoenix {swarm_phx[-1]:.1f} s, "
                    f"bare commands {swarm_bare[-1]:.1f} s")
            sync_all(etc, password), swarm_converged(config)  # warm-up (Portainer back after the bare swarm)
            fl, flp, sw, sub = [], [], [], []
            counts, muts = Counter(), 0
            for _ in range(rounds):
                fl.append(floor(config))
                elapsed, counts, muts = swarm_converged(config)
                sw.append(elapsed)
                flp.append(floor_proc(etc))
                elapsed, res = sync_all(etc, password)
                assert res.returncode == 0 and "sync-all: converged (no changes)" in res.stdout, \
                    res.stdout[-3000:] + res.stderr[-3000:]
                sub.append(elapsed)
            _, res = sync_all(etc, password, "--verbose")
            assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
            sub_counts, sub_muts, sub_seen = echoed_commands(res.stderr)
            log(f"{nodes} VMs: converged rounds done")
            f, fp = statistics.median(fl), statistics.median(flp)
            out = {
                "vms": nodes,
                "floor_ms": ms(f), "floor_proc_ms": ms(fp),
                "cold": {"rounds": cold_rounds, "ms": [ms(x) for x in cold], "median_ms": ms(statistics.median(cold)),
                         "floor_ms": ms(statistics.median(cold_fl)), "floor_proc_ms": ms(statistics.median(cold_flp)),
                         "ratio_to_floor": statistics.median(cold) / statistics.median(cold_fl),
                         "ratio_to_floor_proc": statistics.median(cold) / statistics.median(cold_flp),
                         "converged_in_one_run": cold_ok, "parts": cold_parts,
                         "parts_median_ms": {k: ms(statistics.median(p[k] for p in cold_parts) / 1000)
                                             for k in (cold_parts[0] if all(cold_parts) else {})},
                         "undo_swarm_ms": [ms(x) for x in undo]},
                "cold_swarm": {"rounds": len(swarm_phx), "phoenix_ms": ms(statistics.median(swarm_phx)),
                               "bare_ms": ms(statistics.median(swarm_bare)),
                               "ratio_to_bare": statistics.median(swarm_phx) / statistics.median(swarm_bare),
                               "ratio_to_floor": statistics.median(swarm_phx) / statistics.median(cold_fl),
                               "bare_ratio_to_floor": statistics.median(swarm_bare) / statistics.median(cold_fl),
                               "commands_per_vm": dict(cold_counts)},
                "converged_swarm": {"rounds": rounds, "median_ms": ms(statistics.median(sw)),
                                    "ratio_to_floor": statistics.median(sw) / f,
                                    "max_commands_per_vm": max(counts.values()), "commands_per_vm": dict(counts),
                                    "mutating": muts},
                "converged_sync_all": {"rounds": rounds, "median_ms": ms(statistics.median(sub)),
                                       "ratio_to_floor": statistics.median(sub) / f,
                                       "ratio_to_floor_proc": statistics.median(sub) / fp,
                                       "max_commands_per_vm": max(sub_counts.values()) if sub_counts else None,
                                       "commands_per_vm": dict(sub_counts), "mutating_echoed": sub_muts,
                                       "commands_of_busiest_vm": max(sub_seen.values(), key=len) if sub_seen else []},
            }
            if deploy:
                out["deploy"] = deploy_bench(etc, stacks, deploy_rounds, changed)
                log(f"{nodes} VMs: deploys done")
            return out
        finally:
            control.down(config.hypervisor.lab.state_dir, config.hypervisor.lab.bridge)


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    try:
        dockerd = subprocess.run(["dockerd", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        dockerd = "?"
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(), "dockerd": dockerd,
            "python": platform.python_version(), "commit": commit, "loadavg_at_start": load}


def table(results: list[dict]) -> str:
    rows = ["| VMs | floor | floor (proc) | cold sync-all | cold / floor | one run | converged swarm phases "
            "| / floor | max cmds per VM | mutating | converged sync-all | / floor | / floor (proc) "
            "| sync-all max cmds per VM |",
            "|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        c, s, a = r["cold"], r["converged_swarm"], r["converged_sync_all"]
        rows.append(
            f"| {r['vms']} | {r['floor_ms']:.0f} ms | {r['floor_proc_ms']:.0f} ms | {c['median_ms'] / 1000:.1f} s "
            f"(n={c['rounds']}) | {c['ratio_to_floor']:.1f}x | {'yes' if all(c['converged_in_one_run']) else 'NO'} "
            f"| {s['median_ms']:.0f} ms | {s['ratio_to_floor']:.2f}x | {s['max_commands_per_vm']} | {s['mutating']} "
            f"| {a['median_ms']:.0f} ms | {a['ratio_to_floor']:.2f}x | {a['ratio_to_floor_proc']:.2f}x "
            f"| {a['max_commands_per_vm']} |")
    rows += ["", "| VMs | floor (cold rounds) | cold sync-all | plan read (start to stage 1) | swarm stage (init, join, labels) "
             "| / floor | Portainer deploy (incl. waiting) | Portainer answers |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        c, p = r["cold"], r["cold"]["parts_median_ms"]
        if p:
            rows.append(f"| {r['vms']} | {c['floor_ms']:.0f} ms | {c['median_ms'] / 1000:.1f} s | {p['to_stage_1_ms'] / 1000:.1f} s "
                        f"| {p['swarm_ms'] / 1000:.1f} s | {p['swarm_ms'] / c['floor_ms']:.1f}x "
                        f"| {p['portainer_deploy_ms'] / 1000:.1f} s | {p['portainer_answers_ms'] / 1000:.1f} s |")
    rows += ["", "| VMs | floor (cold rounds) | cold swarm phases: Phoenix | / floor | bare init, join, labels "
             "| / floor | Phoenix / bare | Phoenix's commands (manager, max other VM) |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        c, w = r["cold"], r.get("cold_swarm")
        if w:
            per = w["commands_per_vm"]
            others = max((n for vm, n in per.items() if vm != max(per, key=per.get)), default=0)
            rows.append(f"| {r['vms']} | {c['floor_ms']:.0f} ms | {w['phoenix_ms'] / 1000:.2f} s | {w['ratio_to_floor']:.1f}x "
                        f"| {w['bare_ms'] / 1000:.2f} s | {w['bare_ratio_to_floor']:.1f}x | {w['ratio_to_bare']:.2f}x "
                        f"| {max(per.values())}, {others} |")
    deploys = [r for r in results if "deploy" in r]
    if deploys:
        rows += ["", "| VMs | floor: docker info on the manager | unchanged swarm.deploy | / floor | commands "
                 "| changed deploy until converged | of which waiting |", "|---:|---:|---:|---:|---:|---:|---:|"]
        for r in deploys:
            d = r["deploy"]
            changed = f"{d['changed_ms'] / 1000:.1f} s" if d["changed_ms"] else "-"
            waiting = f"{d['changed_waiting_ms'] / 1000:.1f} s" if d["changed_waiting_ms"] else "-"
            rows.append(f"| {r['vms']} | {d['floor_manager_ms']:.0f} ms | {d['unchanged_ms']:.0f} ms "
                        f"| {d['unchanged_ratio']:.2f}x | {d['unchanged_commands']} | {changed} | {waiting} |")
    return "\n".join(rows)


def goals(results: list[dict]) -> list[str]:
    lines = []
    for r in results:
        c, s = r["cold"], r["converged_swarm"]
        checks = [
            ("cold in one run", all(c["converged_in_one_run"])),
            (f"cold <= {GOAL_COLD}x floor ({c['ratio_to_floor']:.1f}x)", c["ratio_to_floor"] <= GOAL_COLD),
            (f"converged swarm phases <= {GOAL_CONVERGED}x floor ({s['ratio_to_floor']:.2f}x)",
             s["ratio_to_floor"] <= GOAL_CONVERGED),
            (f"<= {GOAL_CMDS} command per VM ({s['max_commands_per_vm']})", s["max_commands_per_vm"] <= GOAL_CMDS),
            (f"0 mutating ({s['mutating']})", s["mutating"] == 0),
        ]
        lines.append(f"{r['vms']} VMs: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks))
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[3, 8, 20])
    ap.add_argument("--rounds", type=int, default=3, help="converged rounds per size (default 3)")
    ap.add_argument("--cold-rounds", type=int, default=2, help="cold rounds per size up to 8 VMs (default 2)")
    ap.add_argument("--cold-rounds-large", type=int, default=1, help="cold rounds above 8 VMs (default 1)")
    ap.add_argument("--deploy-sizes", type=int, nargs="*", default=[3], help="sizes with the deploy benchmark")
    ap.add_argument("--deploy-rounds", type=int, default=5)
    ap.add_argument("--changed", type=int, default=2, help="changed deploys (default 2)")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--show", type=Path, help="print the tables of an earlier run's JSON and exit")
    args = ap.parse_args()
    if args.show:
        doc = json.loads(args.show.read_text())
        print(table(doc["results"]))
        print()
        print("\n".join(goals(doc["results"])))
        return 0
    if os.geteuid() != 0:
        print("run as root (the lab needs namespaces)", file=sys.stderr)
        return 2

    def log(line: str) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)

    info = machine()
    started = time.perf_counter()
    results = []
    for n in args.sizes:
        cold_rounds = args.cold_rounds if n <= 8 else args.cold_rounds_large
        results.append(bench(n, args.rounds, cold_rounds, n in args.deploy_sizes, args.deploy_rounds,
                             args.changed, log))
        if args.json:  # each size as it ends: a later size's failure keeps the earlier figures
            args.json.write_text(json.dumps({"machine": info, "partial": True, "results": results}, indent=2) + "\n")
        log(table(results[-1:]).split("\n", 3)[2])
    doc = {"machine": info, "elapsed_s": round(time.perf_counter() - started, 1), "subnet": SUBNET,
           "bridge": BRIDGE, "goals": {"cold_ratio": GOAL_COLD, "converged_ratio": GOAL_CONVERGED,
                                       "commands_per_vm": GOAL_CMDS}, "results": results}
    print(f"machine: {info['nproc']} cores, {info['cpu']}, kernel {info['kernel']}, {info['dockerd']}, "
          f"commit {info['commit']}; whole run {doc['elapsed_s']:.0f} s")
    print(table(results))
    print()
    for line in goals(results):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
