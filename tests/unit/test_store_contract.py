"""The local blob store keeps the whole :class:`archiver.store.BlobBackend` contract, as any backend must."""

from __future__ import annotations

import inspect
from pathlib import Path

from archiver.store import BlobBackend, BlobStore

CONTRACT = [name for name in vars(BlobBackend) if not name.startswith("_") and callable(getattr(BlobBackend, name))]


def test_the_local_store_is_a_blob_backend(tmp_path: Path) -> None:
    with BlobStore(tmp_path) as store:
        assert isinstance(store, BlobBackend)
        assert store.temp_dir.is_dir()


def test_every_method_of_the_contract_is_documented_and_matched_exactly() -> None:
    assert {"put_batch", "put_file", "get", "open", "exists", "check", "iter_ids", "sweep_temp_of_dead"} <= set(
        CONTRACT
    )
    for name in CONTRACT:
        assert inspect.getdoc(getattr(BlobBackend, name)), f"BlobBackend.{name} states no contract"
        expected = inspect.signature(getattr(BlobBackend, name))
        actual = inspect.signature(getattr(BlobStore, name))
        assert list(actual.parameters) == list(expected.parameters), f"BlobStore.{name}{actual} != {expected}"
        for param in expected.parameters.values():
            assert actual.parameters[param.name].default == param.default, f"BlobStore.{name}: default of {param.name}"


def test_a_store_missing_a_method_is_not_a_backend() -> None:
    class Partial:
        temp_dir = Path("/nonexistent")

        def get(self, blob_id: str, verify: bool = True) -> bytes:
            return b""

    assert not isinstance(Partial(), BlobBackend)
