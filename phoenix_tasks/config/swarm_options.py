"""Checks of the swarm's init-only options: the overlay address pool and its subnet size.

A pool that overlaps the VMs' LAN is the problem these settings exist to avoid (swarm's
ingress network takes the pool's first subnet, and services on overlay networks would
route LAN addresses into the overlay), so it is an error, named by file and pointer.
Without a pool, a LAN inside docker's default pool is a warning saying what to set.
"""

from __future__ import annotations

import ipaddress

from ..core import paths
from ..core.safe_read import pointer
from .problems import Problem
from .read import Raw

DOCKER_DEFAULT_POOL = ipaddress.IPv4Network("10.0.0.0/8")
DOCKER_DEFAULT_SUBNET_SIZE = 24


def check_swarm_options(raw: Raw, problems: list[Problem]) -> None:
    hv = raw.hypervisor
    if hv is None:
        return
    f = raw.hv_file
    swarm = hv.get("swarm", {})
    lans = [("/network/subnet", ipaddress.IPv4Network(hv["network"]["subnet"], strict=False))]
    if hv.get("lab"):
        lans.append(("/lab/subnet", ipaddress.IPv4Network(hv["lab"]["subnet"], strict=False)))
    pools: list[tuple[int, ipaddress.IPv4Network]] = []
    for i, text in enumerate(swarm.get("default_addr_pool", [])):
        where = pointer("swarm", "default_addr_pool", i)
        net = ipaddress.IPv4Network(text, strict=False)
        if str(net) != text:
            problems.append(Problem(f, where, f"{text} has host bits set; did you mean {net}?"))
        for lan_where, lan in lans:
            if net.overlaps(lan):
                problems.append(Problem(f, where, f"{net} overlaps the VMs' network {lan} ({lan_where}): overlay "
                                        f"networks from this pool would collide with the LAN; pick a range "
                                        f"the LAN does not use"))
        for j, other in pools:
            if net.overlaps(other):
                problems.append(Problem(f, where, f"{net} overlaps {other} (/swarm/default_addr_pool/{j}): "
                                        f"the pools must be disjoint"))
        pools.append((i, net))
    size = swarm.get("subnet_size")
    if size is not None:
        for j, net in pools:
            if size < net.prefixlen:
                problems.append(Problem(f, "/swarm/subnet_size", f"/{size} subnets do not fit in the pool {net} "
                                        f"(/swarm/default_addr_pool/{j}): subnet_size must be at least {net.prefixlen}"))
    if not pools:
        for lan_where, lan in lans[:1]:
            if lan.overlaps(DOCKER_DEFAULT_POOL):
                problems.append(Problem(f, "/swarm", f"the VMs' network {lan} ({lan_where}) lies in docker's default "
                                        f"overlay pool {DOCKER_DEFAULT_POOL}: set swarm.default_addr_pool in "
                                        f"{paths.HYPERVISOR_CONFIG_FILE} to a range the LAN does not use, before "
                                        f"the swarm is initialised (init-only)", "warning"))
