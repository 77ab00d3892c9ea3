"""Fleet profiling on Ray: ``hwlat profile --all --engine ray [--address ADDR]``.

Each device's campaign runs as one Ray task that asks for one unit of the device's own custom
resource (:func:`device_resource`). Every device resource has capacity 1 in the whole cluster, so Ray
never runs two campaigns on one device at once: a measurement taken while another benchmark runs on
the same board would be wrong. The node that declares a device's resource is the node whose
campaign reaches it, which is how a lab pins each board to the jump host that can see it.

Exactly-once rows come from the store, not from Ray: every row is appended atomically the moment
it is measured, and a campaign skips what is stored. A worker killed mid-campaign is retried by
Ray (``max_retries``) and the retry continues where the dead one stopped; a dead driver takes its
tasks with it, and re-running the same command continues. Ray kills the process group of a dead
worker, so the device agent it had started dies with it instead of measuring beside the retry.

Without ``address`` a local Ray instance is started with one resource per device and shut down at
the end. With ``address`` (or when ``ray.init`` already ran in this process) the cluster's nodes must
declare the resources themselves: ``ray start ... --resources "$(python -m hwlat.profiling.fleet_ray
resources NAME...)"`` prints the JSON.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwlat.devices import Device
from hwlat.errors import ConfigError, HwlatError
from hwlat.paths import devices_file, known_hosts_file, profiles_root

#: environment a campaign needs to find the same store, inventory and pinned host keys as the driver
ENV_KEYS = ("HWLAT_PROFILES", "HWLAT_DEVICES", "HWLAT_KNOWN_HOSTS")

Campaign = Callable[[Device], dict[str, Any]]


def device_resource(name: str) -> str:
    """The Ray resource standing for device ``name``: readable, and unique even when two names
    differ only in characters Ray resource names should not carry (device names may hold spaces, ``;``)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:48]
    return f"hwlat_dev_{safe}_{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def fleet_resources(names: Sequence[str]) -> dict[str, float]:
    """``{resource: 1}`` for each device: what ``ray.init(resources=...)`` / ``ray start --resources`` take."""
    return {device_resource(n): 1.0 for n in names}


def _require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("--engine ray needs Ray: pip install 'hwlat[ray]' (or use the default --engine "
                          "threads)") from None
    return ray


def driver_env() -> dict[str, str]:
    """Absolute paths of the driver's store, inventory and host keys, and its working directory:
    campaigns on other processes (or nodes, over a shared file system) then read and write the same."""
    return {"HWLAT_PROFILES": str(profiles_root().resolve()), "HWLAT_DEVICES": str(devices_file().resolve()),
            "HWLAT_KNOWN_HOSTS": str(known_hosts_file().expanduser().resolve()), "PWD": os.getcwd()}


@contextlib.contextmanager
def _driver_context(env: dict[str, str]) -> Iterator[None]:
    """Run with the driver's paths; Ray reuses worker processes, so the old values are put back."""
    old = {k: os.environ.get(k) for k in ENV_KEYS}
    old_cwd = os.getcwd()
    try:
        for k in ENV_KEYS:
            os.environ[k] = env[k]
        with contextlib.suppress(OSError):  # another node may lack the folder; paths above are absolute
            os.chdir(env["PWD"])
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        with contextlib.suppress(OSError):
            os.chdir(old_cwd)


def run_campaign(campaign: Campaign, device: Device, env: dict[str, str]) -> dict[str, Any]:
    """What one Ray task runs: ``campaign(device)`` with the driver's paths."""
    with _driver_context(env):
        try:
            return campaign(device)
        except HwlatError as e:  # one device failing must not stop the others
            return {"device": device.name, "error": str(e), "measured": 0, "failed": []}


@dataclass
class ItemsCampaign:
    """A picklable campaign for :func:`profile_fleet` from Python: kernels of a suite (``types`` only,
    when given) and/or every model file of ``models``, one pass each, skipping what is stored. Items are
    built where the campaign runs, so workers on other nodes export their own copies. ``store``: where
    rows go, an ``s3://`` URL (a store the team shares, :mod:`hwlat.store.shared`) or a folder;
    default the driver's profiles root."""

    suite: str | None = None
    types: list[str] | None = None
    models: str | None = None
    seed: int = 0
    measure: dict[str, Any] = field(default_factory=dict)
    force: bool = False
    store: str | None = None
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __call__(self, device: Device) -> dict[str, Any]:
        from hwlat.profiling.items import Item, items_from_dir
        from hwlat.profiling.runner import profile
        from hwlat.profiling.sources import kernel_items

        items: list[Item] = []
        if self.suite:
            items += kernel_items(self.suite, device.runtime, seed=self.seed, types=self.types)
        if self.models:
            items += items_from_dir(Path(self.models), device.runtime)
        if not items:
            raise ConfigError(f"device {device.name!r}: the campaign has no items; give suite= or models=")
        store: Any = None  # a ProfileStore or a SharedProfileStore: the same interface
        if self.store:
            from hwlat.store.shared import open_store

            store = open_store(device.name, self.store, self.storage_options)
        return profile(device, items, store, force=self.force, measure=self.measure).to_dict()


def _check_reachable(address: str) -> None:
    """Fail in seconds on an address nothing listens at (Ray itself retries for minutes)."""
    m = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:(\d+)", address.strip())
    if not m:
        return  # "auto", "local" or another form Ray resolves itself
    try:
        with socket.create_connection((m.group(1), int(m.group(2))), timeout=5.0):
            pass
    except OSError as e:
        raise ConfigError(f"cannot reach the Ray cluster at {address!r} ({e.strerror or e}); start it with "
                          "`ray start --head` there, or drop --address for a local one") from None


def _check_cluster(ray: Any, devices: Sequence[Device], address: str | None) -> None:
    have = ray.cluster_resources()
    where = f"the Ray cluster at {address}" if address else "the running Ray cluster"
    for d in devices:
        res = device_resource(d.name)
        n = have.get(res, 0.0)
        if n == 0:
            raise ConfigError(
                f"device {d.name!r} has no Ray resource {res!r} on {where}; start the node that reaches it "
                f"with ray start --address ADDR --resources '{json.dumps({res: 1})}' (all devices: "
                "python -m hwlat.profiling.fleet_ray resources)")
        if n != 1:
            raise ConfigError(f"device {d.name!r}: Ray resource {res!r} has capacity {n:g} on {where}; declare it "
                              "on one node with capacity 1, or two campaigns could measure the device at once")


def profile_fleet(devices: Sequence[Device], campaign: Campaign, *, address: str | None = None,
                  max_retries: int = 2, num_cpus: int | None = None,
                  on_done: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run ``campaign(device)`` for every device as Ray tasks; returns their results in ``devices`` order.

    ``campaign`` must be picklable by cloudpickle (closures are) and return a dict with at least
    ``device``; a campaign that raises :class:`HwlatError` or whose retries all died yields
    ``{"device": ..., "error": ...}`` and does not stop the others.
    """
    ray = _require_ray()
    names = [d.name for d in devices]
    if len(set(names)) != len(names):
        raise ConfigError("profile_fleet: a device is listed twice; each device runs one campaign")
    started = False
    if ray.is_initialized():
        _check_cluster(ray, devices, None)
    elif address:
        _check_reachable(address)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot reach the Ray cluster at {address!r} ({' '.join(str(e).split())[:200]}); "
                              "check `ray status --address ...` there; a cluster with token authentication also "
                              "needs RAY_AUTH_MODE=token and its ~/.ray/auth_token here") from None
        started = True
        _check_cluster(ray, devices, address)
    else:
        # address="local": a new instance even when a `ray start` cluster runs on this host
        ray.init(address="local", num_cpus=num_cpus, resources=fleet_resources(names), include_dashboard=False,
                 log_to_driver=False)
        started = True
    try:
        env = driver_env()
        task = ray.remote(run_campaign)
        refs = {}
        for d in devices:
            # num_cpus=0: how many campaigns run at once is the device resources' business, not the
            # cores of the node that talks to them (an SSH campaign mostly waits on its board)
            refs[task.options(num_cpus=0, resources={device_resource(d.name): 1}, max_retries=max_retries,
                              retry_exceptions=False, name=f"hwlat-profile:{d.name}").remote(campaign, d, env)] = d
        results: dict[str, dict[str, Any]] = {}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                d = refs[ref]
                try:
                    res = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # the campaign raised something not an HwlatError
                    cause = getattr(e, "cause", None) or e
                    why = " ".join(f"{type(cause).__name__}: {cause}".split())[:200]
                    res = {"device": d.name, "measured": 0, "failed": [],
                           "error": f"campaign on {d.name!r} failed on Ray ({why}); rows measured are stored, "
                                    "re-run the same command to continue"}
                except ray.exceptions.RayError as e:  # its worker (or node) died on every try
                    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    res = {"device": d.name, "measured": 0, "failed": [],
                           "error": f"campaign on {d.name!r} died {max_retries + 1} times on Ray "
                                    f"({type(e).__name__}: {first[:160]}); rows measured are stored, re-run "
                                    "the same command to continue"}
                results[d.name] = res
                if on_done:
                    on_done(res)
        return [results[n] for n in names]
    finally:
        if started:
            ray.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hwlat.profiling.fleet_ray resources [NAME...]``: the ``--resources`` JSON of
    ``ray start`` for the named devices (default: every device in devices.toml)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] != "resources":
        print("usage: python -m hwlat.profiling.fleet_ray resources [DEVICE...]", file=sys.stderr)
        return 2
    names = args[1:]
    if not names:
        from hwlat.devices import load_devices

        names = [d.name for d in load_devices().values() if not d.builtin]
    print(json.dumps(fleet_resources(names)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
