"""A disk queue directory has one owner: a second queue on it is refused, naming it."""

import subprocess
import sys
import textwrap

import pytest

from mqferry._buffer import DiskBufferError, DiskBufferInUseError, DiskQueue


def test_a_second_queue_in_this_process_is_refused_until_the_first_closes(tmp_path):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    q.append([b"a"])
    with pytest.raises(DiskBufferError) as info:
        DiskQueue(tmp_path, segment_bytes=4096)
    assert str(tmp_path) in str(info.value)
    assert "is in use by this process" in str(info.value)
    # its next owner in this process may wait for it (a replaced action's stop that overran)
    assert isinstance(info.value, DiskBufferInUseError) and info.value.this_process
    q.append([b"b"])  # the refusal left the owner's files alone
    q.close()
    again = DiskQueue(tmp_path, segment_bytes=4096)
    assert again.recovered() == [(0, b"a"), (1, b"b")]
    assert again.problems == [] and again.lost_on_open == 0
    again.close()


def test_a_queue_held_by_another_process_is_refused_with_its_directory_and_process(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from pathlib import Path
            from mqferry._buffer import DiskQueue
            q = DiskQueue(Path({str(tmp_path)!r}), segment_bytes=4096)
            print("open", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(DiskBufferError) as info:
            DiskQueue(tmp_path, segment_bytes=4096)
        message = str(info.value)
        assert message.startswith(f"disk buffer {tmp_path}: is in use by process {holder.pid}")
        assert "two mqferry instances need a data_dir each" in message
        assert isinstance(info.value, DiskBufferInUseError)
        assert (info.value.this_process, info.value.holder) == (False, holder.pid)
    finally:
        holder.kill()  # as kill -9: the kernel releases the lock
        holder.communicate()
    DiskQueue(tmp_path, segment_bytes=4096).close()



def test_count_reads_what_a_held_directory_holds_without_taking_it(tmp_path):
    q = DiskQueue(tmp_path, segment_bytes=4096)
    q.append([b"a", b"b", b"c"])
    q.ack(0)
    assert DiskQueue.count(tmp_path) == 2  # no lock taken: the holder keeps it
    q.append([b"d"])
    q.close()
    assert DiskQueue.count(tmp_path) == 3 and DiskQueue.count(tmp_path / "none") == 0
