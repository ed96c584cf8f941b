"""Deploy safety against a real lab: the ledger, rollback, clean-up, the lock.

A 3-VM lab with its swarm formed by sync-all; `thinkheads_ai_app` deployed as `s1`
(and `s2`) from a copy of the stacks that the tests edit.  State is verified through
the docker SDK on the manager's own socket.  Tests build on each other in file order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from phoenix_tasks.config import load_config
from phoenix_tasks.stack import ledger
from phoenix_tasks.tasks import stacks as stack_tasks
from phoenix_tasks.tasks import sync as sync_tasks

from conftest import REPO, module_lab, task_runner

pytestmark = pytest.mark.lab

SUBNET, BRIDGE = "198.18.63.0/24", "phxtest8"
APP = "thinkheads_ai_app"
TTL_S = 30  # short for the test (default 120); longer than any step between two renewals here


@pytest.fixture(scope="module")
def safety_lab(tmp_path_factory, stacks_dir):
    with module_lab(tmp_path_factory.mktemp("safetylab"), SUBNET, BRIDGE, stacks_dir=stacks_dir) as lab:
        hv_file = lab.config.hypervisor_file
        hv = json.loads(hv_file.read_text())
        hv["swarm"].update({"keep_deploys": 5, "lock_ttl_s": TTL_S})
        hv_file.write_text(json.dumps(hv, indent=2))
        lab.config = load_config(lab.config.config_dir, lab.config.stacks_dir)
        yield lab


@pytest.fixture
def run(safety_lab, monkeypatch, capsys):
    return task_runner(safety_lab.config, monkeypatch, capsys)


def manager(lab):
    return lab.docker(next(v for v in lab.vms if v.name == "portainer"))


def settings(stacks_dir, text):
    (stacks_dir / APP / "config" / "api_settings.yaml").write_text(f"# test\nrequest_timeout_s: {text}\n")


def api_config(lab, env="s1"):
    spec = manager(lab).services.get(f"{env}_{APP}_api").attrs["Spec"]
    return [c["ConfigName"] for c in spec["TaskTemplate"]["ContainerSpec"].get("Configs") or []]


def service_hash(lab, env="s1"):
    return {s.name: s.attrs["Spec"]["Labels"].get("io.phoenix.hash")
            for s in manager(lab).services.list() if s.name.startswith(f"{env}_")}


def env_configs(lab, env):
    return sorted(c.name for c in manager(lab).configs.list(
        filters={"label": f"com.docker.stack.namespace={env}_{APP}"}))


def history(run, env="s1"):
    code, out, _ = run(stack_tasks.history, stack=APP, env=env, json=True)
    assert code == 0, out
    return json.loads(out[out.index("["):])


def phoenix(config, *args):
    env = {**os.environ, "PHOENIX_CONFIG_DIR": str(config.config_dir), "PHOENIX_STACKS_DIR": str(config.stacks_dir)}
    return subprocess.Popen([str(REPO / "bin" / "phoenix"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def test_the_swarm_forms(safety_lab, run):
    code, out, _ = run(sync_tasks.sync_all)
    assert code == 0, out


def test_history_of_deploy_change_failure_and_rollback(safety_lab, run, stacks_dir):
    settings(stacks_dir, 30)
    code, out, _ = run(stack_tasks.deploy, stack=APP, env="s1")
    assert code == 0 and "ledger: record #1 deploy converged" in out, out
    first_hash, first_config = set(service_hash(safety_lab).values()), api_config(safety_lab)

    settings(stacks_dir, 45)
    code, out, _ = run(stack_tasks.deploy, stack=APP, env="s1")
    assert code == 0 and "ledger: record #2 deploy converged" in out, out
    good_hash, good_config = set(service_hash(safety_lab).values()), api_config(safety_lab)
    assert good_hash != first_hash and good_config != first_config

    # A version whose api exits 3: the deploy fails, and the ledger says so.
    compose = stacks_dir / APP / "docker-compose.yml"
    original = compose.read_text()
    compose.write_text(original.replace("      INFERENCE_URL: http://inference:8080\n",
                                        "      INFERENCE_URL: http://inference:8080\n      PHX_STANDIN_EXIT: \"3\"\n"))
    try:
        # --no-restore: this test rolls back by hand (the automatic restore has its own:
        # test_deploy_restore_lab.py)
        code, out, _ = run(stack_tasks.deploy, stack=APP, env="s1", timeout="60", no_restore=True)
    finally:
        compose.write_text(original)
    assert code == 1, out
    assert "ledger: record #3 deploy failed" in out or "ledger: record #3 deploy rolled-back" in out, out

    # Back to the last deploy that converged: #2, its hash, its config version.
    code, out, _ = run(stack_tasks.rollback, stack=APP, env="s1", timeout="60")
    assert code == 0, out
    assert "rollback dev" not in out and "to record #2" in out and "ledger: record #4 rollback converged" in out
    assert set(service_hash(safety_lab).values()) == good_hash
    assert api_config(safety_lab) == good_config

    records = history(run)
    assert [(r["seq"], r["kind"], r["result"] in ("failed", "rolled-back") if r["seq"] == 3 else r["result"])
            for r in records] == [(1, "deploy", "converged"), (2, "deploy", "converged"), (3, "deploy", True),
                                  (4, "rollback", "converged")]
    assert records[3]["hash"] == records[1]["hash"]
    assert all(r["who"] and r["started"] and r["duration_s"] is not None for r in records)
    assert "PHX_STANDIN_EXIT" not in json.dumps([r["reason"] for r in records[:2]])

    code, out, _ = run(stack_tasks.rollback, stack=APP, env="s1", to="99")
    assert code == 1 and "no ledger record #99 (records: #1 deploy converged" in out, out


def test_clean_up_keeps_the_last_five_and_never_another_environments(safety_lab, run, stacks_dir):
    settings(stacks_dir, 99)
    code, out, _ = run(stack_tasks.deploy, stack=APP, env="s2")
    assert code == 0, out
    s2_before = env_configs(safety_lab, "s2")
    for value in (50, 51, 52):  # records #5, #6, #7 of s1
        settings(stacks_dir, value)
        code, out, _ = run(stack_tasks.deploy, stack=APP, env="s1")
        assert code == 0, out
    records = history(run)
    assert [r["seq"] for r in records] == [3, 4, 5, 6, 7]
    kept_objects = sorted({name for r in records for name in r["objects"]})
    assert env_configs(safety_lab, "s1") == kept_objects
    assert env_configs(safety_lab, "s2") == s2_before
    assert "clean-up: removed" in out or "clean-up: nothing" in out


def test_two_deploys_at_once_never_interleave(safety_lab, run, stacks_dir):
    settings(stacks_dir, 60)
    a = phoenix(safety_lab.config, "swarm", "deploy", APP, "--env", "s1", "--lock-wait", "120")
    b = phoenix(safety_lab.config, "swarm", "deploy", APP, "--env", "s1", "--lock-wait", "120")
    out_a, err_a = a.communicate(timeout=300)
    out_b, err_b = b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, out_a + err_a + out_b + err_b
    both = out_a + err_a + out_b + err_b
    # one deployed; the other waited for the lock, then found nothing to change
    assert both.count("deploy converged") == 1, both
    assert "held by" in both and "no changes" in both, both
    # every service carries the hash of its own spec as this document renders it
    from phoenix_tasks.docker.render import render
    rendered = render(safety_lab.config.stacks[APP], "s1")
    assert service_hash(safety_lab) == {f"s1_{APP}_{name}": svc["deploy"]["labels"]["io.phoenix.hash"]
                                        for name, svc in rendered.services.items()}
    assert history(run)[-1]["result"] == "converged"


def test_a_killed_deploy_leaves_a_lock_that_expires_and_an_incomplete_record(safety_lab, run, stacks_dir):
    settings(stacks_dir, 70)
    before = history(run)[-1]["seq"]
    victim = phoenix(safety_lab.config, "swarm", "deploy", APP, "--env", "s1")
    m = manager(safety_lab)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until its ledger entry exists: the deploy is under way
        if any(c.name == ledger.entry_name(f"s1_{APP}", before + 1) for c in m.configs.list()):
            break
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    code, out, _ = run(stack_tasks.deploy, stack=APP, env="s1", lock_wait="0")
    assert code == 1 and "is locked by" in out and "swarm.deploy --stack thinkheads_ai_app --env s1" in out, out
    assert history(run)[-1]["result"] == "incomplete"
    time.sleep(TTL_S + 1)
    code, out, _ = run(stack_tasks.deploy, stack=APP, env="s1", lock_wait="5")
    assert code == 0, out
    assert "did not renew it" in out and "taking it over" in out


def test_images_run_by_digest_and_a_moved_tag_is_a_change(safety_lab, run):
    from phoenix_tasks.lab import mirror
    api = manager(safety_lab).services.get(f"s1_{APP}_api").attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert api.startswith("thinkheads/ai-api:1.4.0@sha256:")
    last = history(run)[-1]
    assert last["digests"]["thinkheads/ai-api:1.4.0"] == api  # the ledger records what runs
    code, out, t = run(stack_tasks.deploy, stack=APP, env="s1", dry_run=True)
    assert code == 0 and f"s1_{APP}: no changes" in out, out
    digest = mirror.push_variant(safety_lab.config, "thinkheads/ai-api:1.4.0", "rebuilt-1.4.0")
    assert digest and digest not in api  # same tag, new content
    code, out, t = run(stack_tasks.deploy, stack=APP, env="s1", dry_run=True)
    assert code == 0, out
    assert f"change  s1_{APP}_api: change image" in out, out
    assert t.mutating_commands == []
    code, out, _ = run(stack_tasks.deploy, stack=APP, env="s1")
    assert code == 0 and "deploy converged" in out, out
    now = manager(safety_lab).services.get(f"s1_{APP}_api").attrs["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]
    assert now.endswith(digest)
    assert history(run)[-1]["digests"]["thinkheads/ai-api:1.4.0"] == now


def test_lock_for_people(safety_lab, run):
    code, out, _ = run(stack_tasks.lock_, stack=APP, env="s2", ttl="600", reason="db migration")
    assert code == 0 and "locked s2_thinkheads_ai_app" in out, out
    code, out, _ = run(stack_tasks.rm, stack=APP, env="s2", lock_wait="0")
    assert code == 1 and "swarm.lock: db migration" in out, out
    code, out, _ = run(stack_tasks.unlock, stack=APP, env="s2")
    assert code == 1 and "run with --force" in out
    code, out, _ = run(stack_tasks.unlock, stack=APP, env="s2", force=True)
    assert code == 0 and "lock removed" in out
    code, out, _ = run(stack_tasks.rm, stack=APP, env="s2")
    assert code == 0 and "ledger: record #2 rm removed" in out, out
    assert env_configs(safety_lab, "s2") == []
    assert [r["kind"] for r in history(run, "s2")] == ["deploy", "rm"]  # the ledger outlives the environment
