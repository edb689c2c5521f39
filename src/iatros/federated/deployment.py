"""Flower's deployment engine for `iatros federate --deployment`: the Flower App folder and the
plan the ServerApp reads, the connection `flwr run` uses, TLS certificates for a SuperLink, and
starting a SuperLink or a SuperNode as Flower's own commands (`flower-superlink`,
`flower-supernode`), with Flower's traps avoided (no run-time dependency installs, no telemetry,
the venv's executables)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from iatros.errors import ConfigError, RunError
from iatros.federated.local import Plan
from iatros.federated.outcome import read_outcome

QUIET = {"FLWR_TELEMETRY_ENABLED": "0", "FLWR_DISABLE_UPDATE_CHECK": "1",
         "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
         "RAY_USAGE_STATS_ENABLED": "0", "UV_OFFLINE": "1"}
PLAN_FILE = "plan.json"
APP_DIR = "app"
FLWR_HOME = "flwr-home"
CONNECTION = "iatros"


def flower_command(name: str) -> str:
    """A `flower-*` / `flwr` executable beside this Python (its venv), else the one on PATH."""
    local = Path(sys.executable).with_name(name)
    return str(local) if local.exists() else name


def flower_env(**extra: str) -> dict[str, str]:
    """The environment of Flower's processes: quiet, and this venv's `bin` first on PATH
    (SuperLink and SuperNode start `flower-superexec` by name)."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return {**os.environ, **QUIET, "PATH": path, **extra}


@dataclass(frozen=True)
class Connection:
    """How `flwr run` reaches the SuperLink's Control API: TLS with the CA that signed its
    certificate, or `insecure` (plain text; only on 127.0.0.1 for trying things out)."""

    address: str = "127.0.0.1:9095"
    root_certificates: str | None = None
    insecure: bool = False

    def __post_init__(self) -> None:
        if not self.insecure and not self.root_certificates:
            raise ConfigError("--deployment needs --root-certificates CA.pem (the CA of the "
                              "SuperLink's TLS certificate), or --insecure on 127.0.0.1")
        host = self.address.rsplit(":", 1)[0]
        if self.insecure and host not in ("127.0.0.1", "localhost", "[::1]"):
            raise ConfigError(f"--insecure sends model weights in clear text: only for a "
                              f"SuperLink on this machine, not {self.address}")


def write_app(folder: Path, plan: Plan, federation: dict[str, Any], private: bool = False,
              secure: bool = False) -> Path:
    """The Flower App folder `flwr run` submits: it names iatros's ServerApp and ClientApp
    (installed at every site) and the plan file; it installs nothing."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PLAN_FILE).write_text(json.dumps({"plan": asdict(plan), "federation": federation},
                                               indent=2))
    app = folder / APP_DIR
    app.mkdir(exist_ok=True)
    client = ("private_client_app" if private else "secure_client_app" if secure
              else "client_app")
    (app / "pyproject.toml").write_text(f'''[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "iatros-federate"
version = "1.0.0"
description = "iatros federated run (the apps live in the installed iatros package)"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "iatros"

[tool.flwr.app.components]
serverapp = "iatros.federated.apps:server_app"
clientapp = "iatros.federated.apps:{client}"

[tool.flwr.app.config]
plan-file = "{(folder / PLAN_FILE).resolve().as_posix()}"
''')
    return app


def write_connection(home: Path, connection: Connection) -> Path:
    """`$FLWR_HOME/config.toml` naming the SuperLink for `flwr run`."""
    home.mkdir(parents=True, exist_ok=True)
    lines = ["[superlink]", f'default = "{CONNECTION}"', "", f"[superlink.{CONNECTION}]",
             f'address = "{connection.address}"']
    if connection.insecure:
        lines.append("insecure = true")
    else:
        lines.append(f'root-certificates = "{Path(str(connection.root_certificates)).resolve()}"')
    path = home / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def submit(folder: Path, connection: Connection, timeout: float) -> dict[str, Any]:
    """Submit the run with `flwr run` and wait for the ServerApp's outcome beside the plan."""
    home = folder / FLWR_HOME
    write_connection(home, connection)
    result = subprocess.run([flower_command("flwr"), "run", str(folder / APP_DIR), CONNECTION],
                            env=flower_env(FLWR_HOME=str(home)), capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        raise RunError(f"flwr run could not submit the run to the SuperLink at "
                       f"{connection.address}: {(result.stderr or result.stdout).strip()[-800:]}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = read_outcome(folder)
        if outcome is not None:
            return outcome
        time.sleep(1.0)
    raise RunError(f"no outcome from the SuperLink at {connection.address} within {timeout:.0f} s; "
                   f"check its log and `flwr ls` (FLWR_HOME={home})")


# -- starting Flower's processes ------------------------------------------------------------
def superlink_command(state_dir: Path, *, host: str = "127.0.0.1", port: int = 9095,
                      certificates: Path | None = None, node_auth: bool = False) -> list[str]:
    """`flower-superlink` serving its Fleet, Control and runtime APIs on one HTTP port (Flower
    1.42), bound to `host` (this machine only by default), installing nothing at run time;
    with `certificates` (from `make_certificates`) it serves TLS; with `node_auth` only
    SuperNodes whose public key was registered (`register_node`) may join."""
    command = [flower_command("flower-superlink"), "--host", host, "--port", str(port),
               "--disable-runtime-dependency-installation",
               "--database", str(state_dir / "superlink.db")]
    if node_auth:
        command.append("--enable-supernode-auth")
    if certificates is None:
        command.append("--insecure")
    else:
        command += ["--ssl-ca-certfile", str(certificates / "ca.crt"),
                    "--ssl-certfile", str(certificates / "server.pem"),
                    "--ssl-keyfile", str(certificates / "server.key")]
    return command


def supernode_command(*, data_root: str | Path, site: str | None = None,
                      superlink: str = "127.0.0.1:9095", port: int = 9096,
                      root_certificates: Path | None = None,
                      private_key: Path | None = None) -> list[str]:
    """`flower-supernode` for one hospital: its own data root and, when that data holds several
    sites, which one it is; `private_key` (from `make_node_key`) authenticates it."""
    config = f"data-root='{Path(data_root).resolve()}'" + (f" site='{site}'" if site else "")
    command = [flower_command("flower-supernode"), "--superlink", superlink, "--node-config",
               config, "--port", str(port)]
    if private_key is not None:
        command += ["--auth-supernode-private-key", str(private_key)]
    if root_certificates is None:
        command.append("--insecure")
    else:
        command += ["--root-certificates", str(root_certificates)]
    return command


def start(command: list[str], log_file: Path) -> subprocess.Popen:
    """Start a Flower process in the background, its output in `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handle = log_file.open("ab")
    return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                            env=flower_env(), start_new_session=True)


def register_node(public_key: Path, connection: Connection, home: Path) -> None:
    """Allow the SuperNode holding this key to join (`flwr supernode register`)."""
    write_connection(home, connection)
    result = subprocess.run([flower_command("flwr"), "supernode", "register", str(public_key),
                             CONNECTION], env=flower_env(FLWR_HOME=str(home)),
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RunError(f"could not register {public_key} with the SuperLink at "
                       f"{connection.address}: {(result.stderr or result.stdout).strip()[-500:]}")


# -- TLS and node keys --------------------------------------------------------------------------
def make_node_key(out: Path, name: str) -> tuple[Path, Path]:
    """A SuperNode's key pair for node authentication (EC P-384, OpenSSH format): NAME (the
    private key, owner-only, stays at the hospital) and NAME.pub (registered at the SuperLink)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    out.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private, public = out / name, out / f"{name}.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                     serialization.PublicFormat.OpenSSH))
    return private, public
def make_certificates(out: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
                      days: int = 365) -> Path:
    """A private CA and a SuperLink server certificate for `hosts` (PEM files ca.crt,
    server.pem, server.key in `out`; keys readable by the owner only). The CA file goes to
    every hospital as --root-certificates."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iatros federation CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + dt.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
              .issuer_name(ca_name).public_key(key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now)
              .not_valid_after(now + dt.timedelta(days=days))
              .add_extension(x509.SubjectAlternativeName(names), critical=False)
              .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (out / "ca.crt").write_bytes(ca.public_bytes(pem))
    (out / "server.pem").write_bytes(server.public_bytes(pem))
    for name, private in (("server.key", key), ("ca.key", ca_key)):
        path = out / name
        path.write_bytes(private.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        path.chmod(0o600)
    return out
