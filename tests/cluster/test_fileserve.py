"""The file service of the hosts: token, confinement, rows, folders (on loopback)."""

from __future__ import annotations

import pickle
import urllib.error
import urllib.request

import numpy as np
import pytest

from workbench.cluster.fileserve import FileClient, FileService
from workbench.errors import DataReadError, LaunchError


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "export"
    (root / "host-0" / "assets").mkdir(parents=True)
    (root / "host-0" / "catalog.parquet").write_bytes(b"PAR1" * 100)
    (root / "host-0" / "assets" / "a.bin").write_bytes(bytes(range(256)) * 40)
    np.save(root / "x.npy", np.arange(40, dtype=np.float32).reshape(10, 2, 2))
    (tmp_path / "secret.txt").write_text("not for the hosts")
    with FileService(root) as service:
        yield service, tmp_path


def test_binds_to_loopback_with_a_random_token(served):
    service, _ = served
    assert service.host == "127.0.0.1"
    assert len(service.token) >= 40
    with FileService(service.root) as other:
        assert other.token != service.token


def test_requests_without_the_token_are_refused(served):
    service, _ = served
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{service.url}/file/x.npy", timeout=5)
    assert err.value.code == 403
    with pytest.raises(DataReadError, match="403"):
        FileClient(service.url, "wrong-token").read("x.npy")


def test_paths_stay_inside_the_folder(served):
    service, _ = served
    client = FileClient(service.url, service.token)
    with pytest.raises(DataReadError, match="403"):
        client.read("../secret.txt")
    with pytest.raises(DataReadError, match="404"):
        client.read("missing.bin")


def test_rows_come_back_in_the_asked_order(served):
    service, _ = served
    client = FileClient(service.url, service.token)
    rows = client.rows("x.npy", [7, 0, 7])
    assert rows.shape == (3, 2, 2)
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows[:, 0, 0], [28, 0, 28])
    assert client.bytes_received == rows.nbytes
    with pytest.raises(DataReadError, match="400"):
        client.rows("x.npy", [10])


def test_a_folder_is_copied_whole_and_the_client_pickles(served, tmp_path):
    service, _ = served
    client = pickle.loads(pickle.dumps(FileClient(service.url, service.token)))
    dest = tmp_path / "host-0-data"
    n = client.fetch_tree("host-0", dest)
    assert n > 10_640
    assert (dest / "assets" / "a.bin").read_bytes() == bytes(range(256)) * 40
    assert (dest / "catalog.parquet").stat().st_size == 400
    client.fetch_tree("host-0", dest)  # again: replaced, not nested
    assert sorted(p.name for p in dest.iterdir()) == ["assets", "catalog.parquet"]


def test_bad_arguments(tmp_path):
    with pytest.raises(LaunchError, match="folder"):
        FileService(tmp_path / "nope")
    with pytest.raises(LaunchError, match="URL"):
        FileClient("ftp://x", "t")
