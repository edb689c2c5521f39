"""The deployment engine on this machine: a TLS SuperLink and one SuperNode per site started as
Flower's own commands, a run submitted with `flwr run`, and a wrong certificate refused."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from iatros import api
from iatros.errors import ConfigError, RunError
from iatros.federated.deployment import start, superlink_command, supernode_command
from iatros.run_folder import RunFolder

pytest.importorskip("flwr", reason="Flower (iatros[federated]) is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture(scope="module")
def superlink(tmp_path_factory):
    """A SuperLink serving TLS on 127.0.0.1 with two SuperNodes (sites of the WDBC table)."""
    root = tmp_path_factory.mktemp("flower")
    certificates = api.make_certificates(root / "certs")
    port = _free_port()
    processes: list[subprocess.Popen] = [
        start(superlink_command(root, port=port, certificates=certificates, node_auth=True),
              root / "superlink.log")]
    connection = api.Connection(f"127.0.0.1:{port}", str(certificates / "ca.crt"))
    try:
        _wait_for_port(port)
        for k, site in enumerate(("site-1", "site-2", "intruder")):
            private, public = api.make_node_key(root / "keys", f"node{k}")
            if site != "intruder":
                api.register_node(public, connection, root / "flwr-home")
            processes.append(start(supernode_command(
                data_root=root, site=site, superlink=f"127.0.0.1:{port}", port=_free_port(),
                root_certificates=certificates / "ca.crt", private_key=private),
                root / f"supernode{k}.log"))
        yield {"address": f"127.0.0.1:{port}", "ca": certificates / "ca.crt", "root": root,
               "connection": connection}
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def test_certificates_are_a_ca_and_a_server_key_only_its_owner_reads(tmp_path):
    folder = api.make_certificates(tmp_path / "c")
    assert {p.name for p in folder.iterdir()} == {"ca.crt", "ca.key", "server.pem", "server.key"}
    assert (folder / "server.key").stat().st_mode & 0o077 == 0


def test_a_run_submitted_to_a_tls_superlink_trains_at_the_supernodes(superlink, tmp_path):
    out = api.federate("breast-cancer-wdbc", sites="dirichlet:2:10", out=tmp_path / "run",
                       rounds=1, eval_options=api.EvalOptions(n_boot=20), register=False,
                       connection=api.Connection(superlink["address"], str(superlink["ca"])),
                       timeout=180)
    run = RunFolder(out)
    assert run.is_complete
    record = json.loads((out / "federation.json").read_text())
    assert record["engine"] == "deployment" and set(record["site_tests"]) == {"site-1", "site-2"}
    assert run.config()["federation"]["engine"] == "deployment"


def test_only_registered_supernodes_join(superlink):
    from iatros.federated.deployment import flower_command, flower_env, write_connection

    home = superlink["root"] / "list-home"
    write_connection(home, superlink["connection"])
    deadline = time.monotonic() + 60
    while True:
        listed = subprocess.run([flower_command("flwr"), "supernode", "list", "iatros", "--format",
                                 "json"], env=flower_env(FLWR_HOME=str(home)), capture_output=True,
                                text=True, timeout=60)
        nodes = [n for n in json.loads(listed.stdout).get("nodes", [])
                 if n.get("status") == "online"]
        if len(nodes) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(2)
    time.sleep(5)  # the unregistered node keeps retrying meanwhile
    listed = subprocess.run([flower_command("flwr"), "supernode", "list", "iatros", "--format",
                             "json"], env=flower_env(FLWR_HOME=str(home)), capture_output=True,
                            text=True, timeout=60)
    online = [n for n in json.loads(listed.stdout)["nodes"] if n.get("status") == "online"]
    assert len(online) == 2, listed.stdout


def test_a_wrong_ca_certificate_is_refused_with_a_clear_error(superlink, tmp_path):
    other = api.make_certificates(tmp_path / "other")
    with pytest.raises(RunError, match="could not submit the run"):
        api.federate("breast-cancer-wdbc", sites="dirichlet:2:10", out=tmp_path / "run",
                     rounds=1, register=False,
                     connection=api.Connection(superlink["address"], str(other / "ca.crt")))


def test_plain_text_to_another_machine_is_refused():
    with pytest.raises(ConfigError, match="only for a SuperLink on this machine"):
        api.Connection("10.0.0.5:9095", insecure=True)
    with pytest.raises(ConfigError, match="--root-certificates"):
        api.Connection("10.0.0.5:9095")
