"""Fuzzing the folder-name mapping (restore targets, Maildir++ and file names, import's reverse map):
any name a server or a foreign Maildir may hold gives a usable name or the project's own error."""

from __future__ import annotations

from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from archiver.errors import RestoreError
from archiver.files.formats import maildir_folder
from archiver.names import (
    MAX_NAME_BYTES,
    UNNAMED,
    decode_maildir_component,
    folder_parts,
    maildir_dirname,
    safe_component,
    split_folder,
)
from archiver.restore.plan import FolderPlan, distinct_targets, target_mailbox, target_parts

# every code point, lone surrogates included (imap_utf7.decode of "&2AA-" gives one)
ANY_TEXT = st.text(st.characters(blacklist_categories=()), max_size=300)
DELIMITERS = st.sampled_from(["/", ".", "\\", None, "&", "~"])


@settings(max_examples=400)
@given(ANY_TEXT, DELIMITERS)
@example("", "/")
@example("/", "/")
@example("a//b/./..", "/")
@example("\ud800", "/")
def test_restore_components_are_never_empty_dot_or_dotdot(name, delimiter):
    parts = folder_parts(name, delimiter)
    assert parts and not any(part in ("", ".", "..") for part in parts)
    if all(part not in ("", ".", "..") for part in split_folder(name, delimiter)):
        assert parts == tuple(split_folder(name, delimiter))  # ordinary names are left alone
    if not any(split_folder(name, delimiter)):
        assert parts == (UNNAMED,)
    for target_delimiter in ("/", ".", None):
        joined = target_mailbox(target_parts(name, delimiter, "R"), target_delimiter)
        if target_delimiter:
            assert all(joined.split(target_delimiter)), joined  # no empty level reaches the server


@given(ANY_TEXT)
@example("../x")
@example("a/./b")
def test_a_prefix_is_taken_or_refused_with_a_restore_error(prefix):
    try:
        parts = target_parts("Folder", "/", prefix)
    except RestoreError:
        assert {".", ".."} & set(prefix.split("/"))
        return
    assert parts[-1] == "Folder" and not any(p in ("", ".", "..") for p in parts)


@given(st.lists(st.sampled_from(["", "/", "a", "a/", "/a", "a//", "..", ".", "(unnamed)", "a/(dot)"]), unique=True))
def test_two_source_folders_never_share_a_restore_target(names):
    plans = [FolderPlan(name, "/", target_parts(name, "/", "R"), 1, 1) for name in sorted(names)]
    targets = [plan.target_parts for plan in distinct_targets(plans)]
    assert len(set(targets)) == len(targets)
    for plan, target in zip(plans, targets, strict=True):
        if folder_parts(plan.source, "/") == tuple(split_folder(plan.source, "/")):
            assert target == plan.target_parts  # a folder restored under its own name keeps it


@settings(max_examples=400)
@given(st.lists(ANY_TEXT, min_size=1, max_size=4))
@example(["x" * 10_000])
@example(["Ü" * 3000])
@example([""])
@example(["a", "", "b"])
def test_maildir_names_are_short_ascii_never_the_root_and_decode(parts):
    name = maildir_dirname(tuple(parts))
    assert name.startswith(".") and name not in (".", "..") and name.isascii()
    assert len(name) <= MAX_NAME_BYTES and "/" not in name and "\x00" not in name
    assert all(component for component in name[1:].split("."))  # no empty Maildir++ level
    assert maildir_folder(Path(name))  # the import reads it back without failing


@given(ANY_TEXT)
@example("&2AA-")
@example("&AB")
@example("&&&-")
def test_reading_any_maildir_name_back_never_raises(text):
    decode_maildir_component(text)
    if text and "/" not in text and "\x00" not in text:
        maildir_folder(Path("." + text))
        maildir_folder(Path(text) / "sub")


@settings(max_examples=400)
@given(ANY_TEXT)
@example("\ud800")
@example("CON.txt")
def test_file_names_are_safe_bounded_and_never_empty(name):
    safe = safe_component(name)
    assert safe and len(safe.encode("utf-8", "surrogatepass")) <= MAX_NAME_BYTES
    assert not safe.startswith(".") and not safe.endswith((".", " "))
    assert not any(ch in safe for ch in '<>:"/\\|?*\x00')
