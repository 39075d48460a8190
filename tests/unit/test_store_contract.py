"""The local blob store keeps the whole :class:`archiver.store.BlobBackend` contract, as any backend must.

The behaviour tests run for the plain store and the sealed one (``[archive] encryption = true``).
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from archiver.errors import IntegrityError
from archiver.store import BlobBackend, BlobStore, blob_id_of
from tests.fixtures.sealed import sealed_store

CONTRACT = [name for name in vars(BlobBackend) if not name.startswith("_") and callable(getattr(BlobBackend, name))]


@pytest.fixture(params=["plain", "sealed"])
def backend(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[BlobStore]:
    with BlobStore(tmp_path) if request.param == "plain" else sealed_store(tmp_path) as store:
        yield store


def test_the_local_store_is_a_blob_backend(backend: BlobStore) -> None:
    assert isinstance(backend, BlobBackend)
    assert backend.temp_dir.is_dir()


def test_the_promises_of_the_contract_hold(backend: BlobStore) -> None:
    raws = [b"Subject: a\r\n\r\none", b"Subject: b\r\n\r\ntwo, no final newline", b"Subject: a\r\n\r\none"]
    stored = backend.put_batch(raws)
    assert [b.blob_id for b in stored] == [blob_id_of(r) for r in raws]
    assert [b.written for b in stored] == [True, True, False]  # the same bytes twice in a batch: stored once
    assert [b.written for b in backend.put_batch(raws[:1])] == [False]  # present: never rewritten
    big = b"x" * 3_000_000 + b"end"
    streamed = backend.put_file(io.BytesIO(big), len(big))
    assert (streamed.blob_id, streamed.written) == (blob_id_of(big), True)
    for raw in (*raws[:2], big):
        blob_id = blob_id_of(raw)
        assert backend.exists(blob_id) and backend.get(blob_id) == raw and backend.check(blob_id, len(raw)) is None
        with backend.open(blob_id) as reader:
            assert reader.read() == raw
    assert sorted(backend.iter_ids()) == sorted({blob_id_of(r) for r in (*raws, big)})
    missing = blob_id_of(b"never stored")
    assert not backend.exists(missing)
    with pytest.raises(IntegrityError, match=missing):
        backend.get(missing)
    assert missing in (backend.check(missing) or "")
    assert backend.sweep_temp_of_dead() == 0


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
