"""Host-list expansion and how the launcher resolves its node layout (options, SLURM)."""

import re

import pytest

from launch.__main__ import build_parser
from launch.config import DEFAULT_MASTER_PORT, resolve
from launch.hostlist import expand_hostlist


@pytest.mark.parametrize("text, hosts", [
    ("node01", ["node01"]),
    ("node[01-03,7]", ["node01", "node02", "node03", "node7"]),
    ("a1,b[2-3],c", ["a1", "b2", "b3", "c"]),
    ("gpu[008-010]", ["gpu008", "gpu009", "gpu010"]),
    ("r[1-2]n[1-2]", ["r1n1", "r1n2", "r2n1", "r2n2"]),
    ("x[1-2]-ib,y", ["x1-ib", "x2-ib", "y"]),
    ("n[1-7:3]", ["n1", "n4", "n7"]),
    ("", []),
])
def test_expand_hostlist(text, hosts):
    assert expand_hostlist(text) == hosts


@pytest.mark.parametrize("bad, msg", [
    ("node[1-3", "unclosed '['"),
    ("node1-3]", "unmatched ']'"),
    ("node[a-b]", "bad range 'a-b'"),
    ("node[5-2]", "runs backwards"),
])
def test_expand_hostlist_errors(bad, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        expand_hostlist(bad)


def cfg(argv, env=None):
    return resolve(build_parser().parse_args([*argv, "train.py", "--lr", "1"]), env or {})


STEP = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_NODES": "3",
        "SLURM_NODEID": "2", "SLURM_STEP_NODELIST": "cn[07-09]",
        "SLURM_JOB_NODELIST": "cn[01-09]"}


def test_defaults_outside_slurm():
    c = cfg(["--nproc-per-node", "2"])
    assert (c.nnodes, c.node_rank, c.master_addr, c.master_port) == (1, 0, "127.0.0.1", None)
    assert c.cmd[1:] == ["-u", "train.py", "--lr", "1"]


def test_layout_from_a_slurm_step():
    c = cfg([], STEP)
    assert (c.nnodes, c.node_rank, c.master_addr) == (3, 2, "cn07")
    assert c.master_port == DEFAULT_MASTER_PORT + 4242 % 1000 and c.from_slurm


def test_slurm_batch_script_without_srun_is_one_node():
    env = {k: v for k, v in STEP.items() if not k.startswith("SLURM_STEP")}
    c = cfg([], env)
    assert (c.nnodes, c.node_rank, c.master_addr) == (1, 0, "127.0.0.1")


def test_explicit_options_override_slurm():
    c = cfg(["--nnodes", "2", "--node-rank", "1", "--master-addr", "h0", "--master-port",
             "1234"], STEP)
    assert (c.nnodes, c.node_rank, c.master_addr, c.master_port) == (2, 1, "h0", 1234)
    assert not c.from_slurm


def test_rdzv_endpoints():
    c = cfg(["--nnodes", "2", "--rdzv-endpoint", "tcp://10.1.2.3:4567"])
    assert (c.master_addr, c.master_port, c.rdzv_file) == ("10.1.2.3", 4567, None)
    c = cfg(["--nnodes", "2", "--rdzv-endpoint", "file:///shared/rdzv"])
    assert c.rdzv_file == "/shared/rdzv" and c.master_port is None
    with pytest.raises(ValueError, match="tcp://host:port or file:///path"):
        cfg(["--rdzv-endpoint", "udp://x:1"])
    with pytest.raises(ValueError, match="file:///absolute/path"):
        cfg(["--rdzv-endpoint", "file://relative/path"])


def test_module_target_command():
    c = resolve(build_parser().parse_args(["-m", "pkg.mod", "--x"]), {})
    assert c.cmd[1:] == ["-u", "-m", "pkg.mod", "--x"]


def test_node0_bind_address():
    from launch.agent import bind_host

    assert bind_host(cfg(["--nnodes", "2", "--master-addr", "127.0.0.1"])) == "127.0.0.1"
    # a host *name* that resolves to loopback could not be reached from other nodes
    assert bind_host(cfg(["--nnodes", "2", "--master-addr", "localhost"])) == "0.0.0.0"
    assert bind_host(cfg(["--master-addr", "localhost"])) == "localhost"  # one node
