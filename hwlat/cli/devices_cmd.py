"""`hwlat devices ...`: list, add, show, check, trust."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from hwlat.cli.common import console, print_json
from hwlat.devices import RUNTIMES, TRANSPORTS, Device, get_device, load_devices, save_device
from hwlat.errors import ConfigError, DeviceError

app = typer.Typer(help="Device inventory: list, add, show, check and trust devices.", no_args_is_help=True)


@app.command("list")
def list_devices(json_out: bool = typer.Option(False, "--json", help="JSON list for scripting.")) -> None:
    """List the devices (built-in local ones and those in devices.toml)."""
    devs = load_devices()
    if json_out:
        print_json([{**d.to_dict(), "builtin": d.builtin} for d in devs.values()])
        return
    t = Table("name", "transport", "runtime", "target", "threads", "tags", title="devices")
    for d in devs.values():
        target = "this machine" if d.transport == "local" else f"{d.user + '@' if d.user else ''}{d.host}:{d.port}"
        t.add_row(d.name, d.transport, d.runtime, target, str(d.threads), ",".join(d.tags))
    console.print(t)


@app.command("add")
def add_device(
    name: str = typer.Argument(..., help="Device name (used as the profile store folder)."),
    transport: str = typer.Option("ssh", help=f"One of {', '.join(TRANSPORTS)}."),
    host: Optional[str] = typer.Option(None, help="SSH host name or address."),
    port: int = typer.Option(22, help="SSH port."),
    user: Optional[str] = typer.Option(None, help="SSH user."),
    key: Optional[str] = typer.Option(None, help="Private key file (key-based auth only)."),
    runtime: str = typer.Option("onnxruntime", help=f"One of {', '.join(RUNTIMES)}."),
    threads: int = typer.Option(1, help="Runtime threads."),
    provider: Optional[str] = typer.Option(None, help="Execution provider, e.g. CPUExecutionProvider."),
    python: Optional[str] = typer.Option(None, help="Python interpreter on the device (default python3)."),
    tag: list[str] = typer.Option([], "--tag", help="Free-form tag (repeatable)."),
    option: list[str] = typer.Option([], "--option", help="Runtime option KEY=VALUE (repeatable), e.g. xnnpack=false."),
) -> None:
    """Add (or replace) a device in devices.toml."""
    opts = {}
    for o in option:
        if "=" not in o:
            raise ConfigError(f"--option {o!r} must look like KEY=VALUE")
        k, v = o.split("=", 1)
        opts[k] = {"true": True, "false": False}.get(v.lower(), int(v) if v.isdigit() else v)
    dev = Device(name=name, transport=transport, host=host, port=port, user=user, key=key, runtime=runtime,
                 threads=threads, provider=provider, python=python, tags=list(tag), options=opts)
    path = save_device(dev)
    console.print(f"added device [bold]{name}[/] to {path}")
    if transport == "ssh":
        console.print(f"next: `hwlat devices trust {name}` to pin its host key, then `hwlat devices check {name}`")


@app.command("show")
def show_device(name: str, json_out: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """Show one device's settings and its last recorded fingerprint."""
    from hwlat.store import ProfileStore

    dev = get_device(name)
    fp = ProfileStore(name).latest_fingerprint()
    if json_out:
        print_json({**dev.to_dict(), "builtin": dev.builtin, "fingerprint": fp})
        return
    t = Table("field", "value", title=f"device {name}")
    for k, v in dev.to_dict().items():
        t.add_row(k, str(v))
    for k, v in (fp or {}).items():
        t.add_row(f"fingerprint.{k}", str(v))
    console.print(t)


@app.command("check")
def check_device(name: str, json_out: bool = typer.Option(False, "--json", help="JSON output.")) -> None:
    """Connect, report the fingerprint and runtime versions, or say what is missing."""
    from hwlat.profiling import check

    dev = get_device(name)
    fp, missing = check(dev)
    if json_out:
        print_json({"device": name, "ok": not missing, "missing": missing, "fingerprint": fp})
    elif missing:
        for m in missing:
            console.print(f"[red]missing[/] {m}")
    else:
        t = Table("field", "value", title=f"device {name}: ok")
        for k, v in (fp or {}).items():
            t.add_row(k, str(v))
        console.print(t)
    if missing:
        raise typer.Exit(3)


@app.command("trust")
def trust_device(
    name: str,
    replace: bool = typer.Option(False, "--replace", help="Replace a recorded key that changed."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    expect: Optional[str] = typer.Option(None, "--fingerprint", help="Only trust a key with this SHA256:... fingerprint."),
) -> None:
    """Fetch the device's SSH host key, show its fingerprint and record it as trusted."""
    from hwlat.transports.hostkeys import fetch_host_key, fingerprint, trust

    dev = get_device(name)
    if dev.transport != "ssh":
        raise ConfigError(f"device {name!r} uses transport {dev.transport!r}; only ssh devices have host keys")
    key = fetch_host_key(dev)
    fp = fingerprint(key)
    if expect and expect != fp:
        raise DeviceError(f"device {name!r} offered {fp}, not the expected {expect}; not trusted")
    console.print(f"{dev.host}:{dev.port} offers {key.get_name()} key {fp}")
    if not (yes or expect) and not typer.confirm("Trust this key?", default=False):
        raise typer.Exit(1)
    path = trust(dev, key, replace=replace)
    console.print(f"trusted; recorded in {path}")
