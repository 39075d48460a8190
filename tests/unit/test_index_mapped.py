"""Segment files read in place answer every read exactly as Whoosh's own copying ``BufferFile`` does."""

from __future__ import annotations

import mmap
import pickle

from hypothesis import given, settings
from hypothesis import strategies as st
from whoosh.filedb.structfile import BufferFile

from archiver.index.mapped import _PICKLE_WINDOW, MappedFile

#: (operation, argument): what Whoosh's readers do with a file (reads, seeks, the integer and pickle readers).
_operation = st.one_of(
    st.tuples(st.just("read"), st.integers(-1, 300)),
    st.tuples(st.just("seek"), st.integers(0, 5000)),
    st.tuples(st.just("seek_end"), st.integers(-300, 0)),
    st.tuples(st.just("seek_cur"), st.integers(-50, 300)),
    st.tuples(st.just("readline"), st.integers(-1, 80)),
    st.tuples(st.just("read_int"), st.just(0)),
    st.tuples(st.just("read_varint"), st.just(0)),
    st.tuples(st.just("get"), st.integers(0, 4000)),
)


def _apply(file: BufferFile, operation: str, argument: int) -> object:
    """The result of one operation, or the type of the error it raised, and the position after it."""
    try:
        if operation == "read":
            result: object = file.read(argument)
        elif operation == "seek":
            result = file.seek(argument)
        elif operation == "seek_end":
            result = file.seek(argument, 2)
        elif operation == "seek_cur":
            result = file.seek(max(argument, -file.tell()), 1)
        elif operation == "readline":
            result = file.readline(argument)
        elif operation == "read_int":
            result = file.read_int()
        elif operation == "read_varint":
            result = file.read_varint()
        else:
            result = file.get(argument, 7)
    except Exception as exc:  # the same failure on both sides is the same answer
        result = type(exc)
    return result, file.tell()


def _pair(data: bytes) -> tuple[BufferFile, MappedFile, mmap.mmap]:
    mapped = mmap.mmap(-1, len(data))
    mapped[:] = data
    view = memoryview(mapped)
    return BufferFile(view), MappedFile(view), mapped


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=4000), st.lists(_operation, max_size=40))
def test_reads_match_whooshs_buffer_file(data: bytes, operations: list[tuple[str, int]]) -> None:
    copied, in_place, mapped = _pair(data)
    try:
        for operation, argument in operations:
            assert _apply(in_place, operation, argument) == _apply(copied, operation, argument), operation
    finally:
        copied.file.close()
        del copied, in_place
        mapped.close()


def test_pickles_of_any_size_and_their_end() -> None:
    """A pickle longer than the window is still read whole, and reading goes on right after each one."""
    values = [("block", 1, 2.5), list(range(5 * _PICKLE_WINDOW)), {"ids": b"\x00" * 3 * _PICKLE_WINDOW}]
    data = b"".join(pickle.dumps(value, -1) for value in values) + b"tail"
    copied, in_place, mapped = _pair(data)
    try:
        assert [in_place.read_pickle() for _ in values] == values
        assert in_place.read() == b"tail" == data[[copied.read_pickle() for _ in values] and copied.tell() :]
    finally:
        copied.file.close()
        del copied, in_place
        mapped.close()
