"""Stand-in images in the lab registry: built and pushed once, pulled by real names.

Every lab engine has the lab registry as its Docker Hub mirror (``registry``), so a
stand-in pushed there as `<gateway>:5000/portainer/portainer-ce:2.21.4` is what
`docker pull portainer/portainer-ce:2.21.4` gets on every VM, with a RepoDigest, as a
real VM gets the real image.

Pushing (`Publisher`, once per `lab.up`): for each stand-in with a Docker Hub name the
registry is asked which image its tag holds.  If that image's fingerprint label
(images.fingerprint: the rootfs tar and the `--change` lines) is the one this lab.up
would build, nothing is done.  Otherwise the stand-in is imported into one lab engine
(the first VM ready: any engine of the lab does) under its registry name, pushed, and
that name removed from the engine again (VMs carry real names only).  `docker import`
stamps a creation time into every image, so two imports of the same files are two
digests: the fingerprint, not the digest, says whether a push is needed.

Pulling (vm.image_actions): each VM pulls a stand-in through its mirror unless the
image it holds under that name already carries the registry's digest.

A stand-in whose name is not on Docker Hub (another registry, a digest) cannot come
through a mirror: each VM imports it itself, as before the registry.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from phoenix_tasks.core.errors import PhoenixError
from phoenix_tasks.lab import commands, images, registry, registry_api, system
from phoenix_tasks.lab import vm as labvm
from phoenix_tasks.lab.naming import LabNames, VMNames
from phoenix_tasks.core.model import Config
from phoenix_tasks.core.plan import LOCAL, Action

Report = Callable[[str], None]


class PushFailed(PhoenixError):
    pass


@dataclass(frozen=True)
class Wanted:
    """One stand-in as this lab.up builds it."""

    stand_in: images.StandIn
    hub: images.HubName
    fingerprint: str  # images.fingerprint of the rootfs and stand_in.changes(note)
    changes: tuple[str, ...]  # stand_in.changes(note), then the fingerprint label


def wanted(stand_ins: Iterable[images.StandIn], rootfs: bytes,
           note: str | None = None) -> list[Wanted]:
    """The stand-ins that go through the registry (Docker Hub names), as built now."""
    found = []
    for s in stand_ins:
        hub = images.hub_name(s.image)
        if hub is None:
            continue
        changes = s.changes(note)
        mark = images.fingerprint(rootfs, changes)
        found.append(Wanted(s, hub, mark,
                            (*changes, f"LABEL {images.FINGERPRINT_LABEL}={mark}")))
    return found


# --- facts ----------------------------------------------------------------------------
def registry_holds(address: str, items: Iterable[Wanted]) -> dict[str, registry_api.TaggedImage | None]:
    """For each stand-in (by image), what the registry's tag holds (None: nothing)."""
    return {w.stand_in.image: registry_api.tagged_image(address, w.hub.repository, w.hub.tag)
            for w in items}


# --- plan (pure) ----------------------------------------------------------------------
def push_plan(address: str, items: Iterable[Wanted],
              held: dict[str, registry_api.TaggedImage | None]) -> list[Action]:
    """A push for each stand-in whose tag in the registry holds another build."""
    actions = []
    for w in items:
        there = held.get(w.stand_in.image)
        if there is not None and there.labels.get(images.FINGERPRINT_LABEL) == w.fingerprint:
            continue
        why = "new" if there is None else "changed"
        actions.append(Action(kind="push", where=LOCAL, target=w.stand_in.image,
                              summary=f"push stand-in {w.stand_in.image} to the lab registry "
                                      f"{address} ({why})"))
    return actions


# --- apply ----------------------------------------------------------------------------
def push(builder: VMNames, address: str, item: Wanted, rootfs_tar: Path) -> None:
    """Import item into builder's engine under its registry name, push it, untag it."""
    name = item.hub.in_registry(address)
    system.run(commands.rootfs_import(builder, name, list(item.changes)), stdin_file=rootfs_tar)
    try:
        system.run(commands.image_push(builder, name), timeout=300)
    finally:
        system.run(commands.image_untag(builder, name), check=False)


def publish(builder: VMNames, address: str, items: list[Wanted], rootfs_tar: Path,
            report: Report = lambda line: None) -> tuple[list[str], dict[str, str]]:
    """Push what the registry lacks; (what was done, {image: digest in the registry})."""
    done = []
    by_image = {w.stand_in.image: w for w in items}
    for action in push_plan(address, items, registry_holds(address, items)):
        report(action.summary)
        push(builder, address, by_image[action.target], rootfs_tar)
        done.append(action.summary)
    held = registry_holds(address, items)  # read again: what the VMs will pull
    digests = {}
    for w in items:
        there = held[w.stand_in.image]
        if there is None or there.labels.get(images.FINGERPRINT_LABEL) != w.fingerprint:
            raise PushFailed(f"the lab registry {address} does not hold the stand-in "
                             f"{w.stand_in.image} after pushing it")
        digests[w.stand_in.image] = there.digest
    return done, digests


class Publisher:
    """Publishes the stand-ins once, through the engine of the first VM that asks
    (VMs come up in parallel); later callers get the same digests.  Thread-safe."""

    def __init__(self, names: LabNames, address: str, stand_ins: list[images.StandIn],
                 report: Report = lambda line: None) -> None:
        self.names, self.address, self.stand_ins, self.report = names, address, stand_ins, report
        self._lock = threading.Lock()
        self._digests: dict[str, str] | None = None
        self._error: PhoenixError | None = None
        self._done: list[str] = []

    def digests(self, builder: VMNames) -> dict[str, str]:
        """{image: registry digest} of every Docker Hub stand-in; publishes first (once)."""
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._digests is None:
                items = wanted(self.stand_ins, self.names.rootfs_tar.read_bytes())
                try:
                    done, self._digests = publish(builder, self.address, items,
                                                  self.names.rootfs_tar, self.report)
                except PhoenixError as e:
                    self._error = PushFailed(f"stand-in images not published: {e}")
                    raise self._error from None
                self._done += done
            return self._digests

    def take_done(self) -> list[str]:
        """What publishing did (each line once)."""
        with self._lock:
            done, self._done = self._done, []
            return done


# --- a variant, for tests and demos ---------------------------------------------------
def push_variant(config: Config, image: str, note: str) -> str:
    """Push a stand-in for `image` that differs from the lab's (label VARIANT_LABEL=note)
    under the same name:tag, and return its digest: a fresh pull of `image` on any
    VM now gets this one.  `image` may be a name the stacks do not use (it then serves
    no port).  The next `lab.up` pushes the lab's own stand-in back."""
    lab = config.hypervisor.lab
    if lab is None:
        raise PushFailed("this configuration has no lab section")
    names = LabNames(lab.bridge, lab.state_dir)
    address = registry.address(lab.gateway)
    known = {s.image: s for s in images.stand_ins_for_stacks(config.stacks_dir)}
    stand_in = known.get(image, images.StandIn(image, ()))
    items = wanted([stand_in], names.rootfs_tar.read_bytes(), note)
    if not items:
        raise PushFailed(f"{image!r} is not a Docker Hub name:tag; only those come "
                         "through the lab registry")
    builder = next((names.vm(vm.vmid) for vm in config.real_vms
                    if labvm.engine_name(names.vm(vm.vmid)) == vm.name), None)
    if builder is None:
        raise PushFailed("no lab VM's engine answers; run `inv lab.up` first")
    push(builder, address, items[0], names.rootfs_tar)
    there = registry_api.tagged_image(address, items[0].hub.repository, items[0].hub.tag)
    if there is None or there.labels.get(images.VARIANT_LABEL) != note:
        raise PushFailed(f"the lab registry {address} does not hold the variant of {image}")
    return there.digest
