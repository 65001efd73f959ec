"""Configuration precedence and validation."""

import pytest

from memosd.config import ConfigError, load_config


def test_defaults_work_without_any_file_or_env():
    config = load_config(environ={})
    assert config.store.durable is True
    assert config.limits.max_k == 1000
    assert config.server.endpoints[0].startswith("ipc://")


def test_file_then_env_then_flags(tmp_path):
    path = tmp_path / "memosd.toml"
    path.write_text('[store]\ndata_dir = "/from/file"\n[limits]\nmax_k = 50\nmax_batch = 7\n')
    config = load_config(
        path,
        environ={"MEMOSD_LIMITS_MAX_K": "60", "MEMOSD_STORE_DURABLE": "false"},
        overrides={"limits.max_batch": 9},
    )
    assert config.store.data_dir == "/from/file"
    assert config.limits.max_k == 60
    assert config.store.durable is False
    assert config.limits.max_batch == 9


def test_env_lists_are_comma_separated():
    config = load_config(environ={"MEMOSD_SERVER_ENDPOINTS": "ipc:///tmp/a.sock, tcp://127.0.0.1:1"})
    assert config.server.endpoints == ["ipc:///tmp/a.sock", "tcp://127.0.0.1:1"]


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[store]\nbogus = 1\n", "unknown key"),
        ("[nope]\nx = 1\n", "unknown section"),
        ("[limits]\nmax_k = \"many\"\n", "expected an integer"),
        ("[store]\ndurable = 1\n", "expected bool"),
        ("[store\n", "cannot read config"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, toml, message):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ={})


def test_bad_env_value_is_reported():
    with pytest.raises(ConfigError, match="MEMOSD_LIMITS_MAX_K"):
        load_config(environ={"MEMOSD_LIMITS_MAX_K": "ten"})


def test_example_config_is_valid_and_matches_defaults():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "systemd" / "memosd.example.toml"
    config = load_config(example, environ={})
    defaults = load_config(environ={})
    assert config.limits == defaults.limits
    assert config.retrieval == defaults.retrieval
    assert config.store.durable == defaults.store.durable


def test_retrieval_section_mirrors_the_index_defaults_and_takes_env():
    from memosd.retrieval import RetrievalConfig

    assert load_config(environ={}).retrieval_config() == RetrievalConfig()
    config = load_config(environ={"MEMOSD_RETRIEVAL_K1": "1.2", "MEMOSD_RETRIEVAL_HASH_NORM_EXPONENT": "0.5"})
    assert config.retrieval_config() == RetrievalConfig(k1=1.2, hash_norm_exponent=0.5)
    with pytest.raises(ConfigError, match="retrieval"):
        load_config(environ={"MEMOSD_RETRIEVAL_HASH_DIM": "0"})


def test_cluster_example_config_is_valid():
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "systemd" / "cluster" / "memosd-cluster.toml"
    config = load_config(example, environ={})
    assert config.cluster.enabled and len(config.cluster.servers) == 3 and config.cluster.replicas == 3
    assert config.security.curve and config.cluster.advertise.startswith("tcp://")
    assert load_config(environ={}).cluster.enabled is False  # single node stays the default
