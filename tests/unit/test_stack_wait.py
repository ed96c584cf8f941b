"""The wait's judgement from recorded progress reads (tests/data/stack/README.md):
only this deploy's tasks count, failures and rollbacks are failures, one-shot jobs
complete, a task must run for a while before it counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from phoenix_tasks.stack.diff import Desired
from phoenix_tasks.stack.facts import parse_progress
from phoenix_tasks.stack.wait import CONVERGED, FAILED, PENDING, judge_all, wait

DATA = Path(__file__).resolve().parents[1] / "data" / "stack"
JOB, FAIL, RB_FIRST, RB = 1795645074682445486, 1795645081994575630, 1795645089240796696, 1795645101474565312


def read(name):
    return parse_progress((DATA / f"progress_{name}.txt").read_text())


def desired_for(progress, **overrides):
    """What the deploy wanted, from the services as recorded (their hash label)."""
    out = {}
    for name, s in progress.services.items():
        fields = dict(name=name, image=s.image, mode=s.mode, replicas=s.replicas, constraints=s.constraints,
                      env=s.env, ports=s.ports, configs=s.configs, secrets=s.secrets, hash=s.hash,
                      restart_condition=s.restart_condition)
        fields.update(overrides)
        out[name] = Desired(**fields)
    return out


def verdict(progress, started, **overrides):
    (v,) = judge_all(progress, desired_for(progress, **overrides), started=started).values()
    return v


def test_the_progress_read_has_the_managers_clock_services_and_tasks():
    p = read("fail_failed")
    assert p.now == 1795645088057624884
    assert list(p.services) == ["t3_probe_fail_broken"]
    assert sorted(t.state for t in p.tasks) == ["failed", "preparing"]


def test_a_task_still_preparing_is_pending_with_its_state():
    v = verdict(read("job_starting"), JOB)
    assert (v.state, v.progress, v.detail) == (PENDING, "0/1 running", "latest task preparing")


def test_a_one_shot_job_that_completed_is_converged():
    v = verdict(read("job_completed"), JOB)
    assert (v.state, v.progress) == (CONVERGED, "1/1 completed")


def test_a_task_that_exits_non_zero_fails_the_deploy_with_its_error():
    v = verdict(read("fail_failed"), FAIL)
    assert v.state == FAILED
    assert "failed (exit code 3): task: non-zero exit (3)" in v.detail


def test_a_failed_tasks_error_names_the_node_it_failed_on_when_the_read_has_the_nodes():
    # The progress read ends with each node's ID and hostname (a disk full on one VM:
    # the error must say which); a read without that section names no node.
    text = (DATA / "progress_fail_failed.txt").read_text()
    failed = next(t for t in parse_progress(text).tasks if t.state == "failed")
    p = parse_progress(text.rstrip("\n") + f"\n--- phoenix ---\n{failed.node_id} Ready Active drphoenix\n"
                                              "abc123 Down Active other\n")
    assert p.node_names == {failed.node_id: "drphoenix", "abc123": "other"}
    assert p.ready_hosts == {"drphoenix": 1}
    v = verdict(p, FAIL)
    assert v.state == FAILED
    assert f"task {failed.id[:12]} on node drphoenix failed (exit code 3): task: non-zero exit (3)" in v.detail
    assert " on node " not in verdict(read("fail_failed"), FAIL).detail


def test_an_old_failure_from_before_this_deploy_is_history_not_this_deploys_result():
    # The same read, judged as if the deploy had started after that failure.
    p = read("fail_failed")
    v = verdict(p, p.now)
    assert v.state == PENDING


def test_a_container_running_for_under_the_stable_time_does_not_count_yet():
    v = verdict(read("serving_running_briefly"), RB_FIRST)
    assert v.state == PENDING and "running for less than 5 s" in v.detail
    v = judge_all(read("serving_running_briefly"), desired_for(read("serving_running_briefly")),
                  started=RB_FIRST, stable_s=0.5)
    assert [x.state for x in v.values()] == [CONVERGED]


def test_running_long_enough_is_converged():
    v = verdict(read("serving_converged"), RB_FIRST)
    assert (v.state, v.progress) == (CONVERGED, "1/1 running")


def test_an_update_in_progress_is_pending_and_the_old_task_does_not_count():
    v = verdict(read("update_rolling"), RB)
    assert (v.state, v.detail) == (PENDING, "rolling update in progress")


def test_an_update_swarm_rolled_back_is_a_failure():
    # the deploy wanted the new spec: its hash, not the one Swarm rolled back to
    p = read("update_rolled_back")
    wanted = read("update_rolling")
    (name,) = p.services
    v = judge_all(p, desired_for(wanted), started=RB)[name]
    assert v.state == FAILED and v.detail == (
        "Swarm rolled the update back (rollback_started): update rolled back due to failure or early "
        "termination of task nclmzcd38dee7w43z1psl8udm; task nclmzcd38dee failed (exit code 4): "
        "task: non-zero exit (4)")  # the named task's own error, not only swarm's message


def test_a_rollback_already_completed_still_names_the_failed_tasks_error():
    # With a registry the old image pulls at once and the rollback is over before the
    # next read: swarm's message then names no task.
    import dataclasses
    p = read("update_rolled_back")
    wanted = read("update_rolling")
    (name,) = p.services
    p.services[name] = dataclasses.replace(p.services[name], update_state="rollback_completed",
                                           update_message="rollback completed")
    v = judge_all(p, desired_for(wanted), started=RB)[name]
    assert v.state == FAILED and v.detail == (
        "Swarm rolled the update back (rollback_completed): rollback completed; "
        "task nclmzcd38dee failed (exit code 4): task: non-zero exit (4)")


def test_a_one_shot_container_under_restart_any_is_named_as_the_problem():
    # probe_job with its restart policy taken away: an exit 0 is restarted forever
    p = read("job_completed")
    (s,) = p.services.values()
    p.services[s.name] = s.__class__(**{**s.__dict__, "restart_condition": "any"})
    v = verdict(p, JOB)
    assert v.state == FAILED and "a one-shot service needs deploy.restart_policy.condition" in v.detail


def test_a_service_not_created_yet_is_pending():
    p = read("job_starting")
    want = desired_for(p)
    (name,) = want
    other = {"x_missing": want[name].__class__(**{**want[name].__dict__, "name": "x_missing"})}
    (v,) = judge_all(p, other, started=JOB).values()
    assert (v.state, v.detail) == (PENDING, "service not created yet")


def test_wait_polls_until_converged_and_reports_each_round():
    reads = iter([read("job_starting"), read("job_completed")])
    seen, slept = [], []
    p = read("job_starting")
    out = wait(lambda: next(reads), desired_for(p), timeout_s=60, started=JOB,
               report=lambda v: seen.append([x.state for x in v.values()]), sleep=slept.append,
               clock=lambda: 0.0)
    assert [v.state for v in out.values()] == [CONVERGED]
    assert seen == [[PENDING], [CONVERGED]] and slept == [1.0]


def test_wait_gives_up_at_the_timeout_saying_what_it_waited_for():
    times = iter([0.0, 0.0, 5.0, 11.0])
    p = read("job_starting")
    out = wait(lambda: p, desired_for(p), timeout_s=10, started=JOB, sleep=lambda s: None,
               clock=lambda: next(times))
    (v,) = out.values()
    assert v.state == FAILED and v.detail == "not converged after 10 s: latest task preparing"


@pytest.mark.parametrize("name", ["job_starting", "fail_failed", "update_rolled_back"])
def test_every_recorded_read_parses_to_known_task_states(name):
    known = {"new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running",
             "complete", "failed", "rejected", "shutdown", "orphaned", "remove"}
    assert {t.state for t in read(name).tasks} <= known


def test_a_global_service_waits_only_for_candidates_still_ready_and_active():
    """A worker that rejoined leaves its old node "ready" for some seconds (same hostname):
    the pre-flight counted it; once it is down, the service must not wait for it."""
    from phoenix_tasks.stack.wait import eligible_now
    hosts = ("cpuworker", "cpuworker", "drphoenix", "portainer")  # the old node and the new one
    assert eligible_now(hosts, None) == 4  # no node rows read: as the pre-flight found them
    assert eligible_now(hosts, {"cpuworker": 2, "drphoenix": 1, "portainer": 1}) == 4
    assert eligible_now(hosts, {"cpuworker": 1, "drphoenix": 1, "portainer": 1}) == 3  # the old one went down
    assert eligible_now(hosts, {"cpuworker": 1, "portainer": 1}) == 2  # drphoenix drained or down meanwhile
    assert eligible_now(("a",), {"a": 3}) == 1  # never more than the pre-flight's candidates


def test_node_rows_ready_counts_ready_and_active_nodes_per_hostname():
    from phoenix_tasks.stack.facts import parse_node_rows
    names, ready = parse_node_rows("n1 Ready Active cpuworker\nn2 Down Active cpuworker\n"
                                   "n3 Ready Drain drphoenix\nn4 Ready Active portainer\nbad row\n")
    assert names == {"n1": "cpuworker", "n2": "cpuworker", "n3": "drphoenix", "n4": "portainer"}
    assert ready == {"cpuworker": 1, "portainer": 1}
    assert parse_node_rows("") == ({}, None)


def test_an_image_only_update_swarm_rolled_back_is_a_failure():
    # The hash label leaves the image out (it is compared on its own): the rolled-back
    # service has the wanted hash, but not the wanted image.
    p = read("update_rolled_back")
    (name,) = p.services
    v = judge_all(p, desired_for(p, image="thinkheads/ai-inference:9.9.9"), started=RB)[name]
    assert v.state == FAILED and v.detail.startswith("Swarm rolled the update back (rollback_started)")


def test_swarm_rolling_back_to_the_wanted_spec_is_progress_not_a_failure():
    # A restore (or a rerun) that wants the spec Swarm rolls back to.
    import dataclasses
    p = read("update_rolled_back")
    (name,) = p.services
    v = judge_all(p, desired_for(p), started=None)[name]
    assert (v.state, v.detail) == (PENDING, "Swarm is rolling back to this spec")
    p.services[name] = dataclasses.replace(p.services[name], update_state="rollback_completed")
    assert judge_all(p, desired_for(p), started=None)[name].state != FAILED
