"""The online store's WAL checkpointed off the request's thread (``WalCheckpointer``)."""

import sqlite3
import threading
import time

from evergreen.features.sqlite_online_store import WalCheckpointer


def _writer(path, stop: threading.Event, commits: list[int]) -> None:
    """A replica's writes, one per request with the request's other work between them (a
    tenth of a millisecond here), its own checkpoints off, as a serving reader's."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    k = 0
    while not stop.is_set():
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO events VALUES (?, ?)", (k, "x" * 200))
        conn.execute("COMMIT")
        k += 1
        time.sleep(0.0001)
    commits.append(k)
    conn.close()


def _wal_frames_after_writing(path, checkpointer: WalCheckpointer | None) -> tuple[int, int]:
    """(the most frames the WAL file ever held, commits) after ~1.5 s of writes."""
    # Open, and reading, throughout: SQLite deletes the WAL file when the last connection that
    # has it open closes, and a connection opens it at its first read, not at connect.
    holder = sqlite3.connect(path)
    holder.execute("SELECT count(*) FROM events").fetchall()
    stop, commits = threading.Event(), []
    writer = threading.Thread(target=_writer, args=(path, stop, commits))
    writer.start()
    if checkpointer is not None:
        checkpointer.start()
    stop.wait(1.5)
    stop.set()
    writer.join()
    page = holder.execute("PRAGMA page_size").fetchall()[0][0]
    # The file is never shrunk, only rewound: its size is its high-water mark.
    frames = path.with_name(path.name + "-wal").stat().st_size // (page + 24)
    if checkpointer is not None:
        checkpointer.stop()
    holder.close()
    return frames, commits[0]


def _database(path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, payload TEXT)")


def test_the_wal_is_checkpointed_and_rewound_under_a_writer_that_never_pauses(tmp_path):
    bounded, unchecked = tmp_path / "bounded.db", tmp_path / "unchecked.db"
    _database(bounded)
    _database(unchecked)

    frames, commits = _wal_frames_after_writing(
        bounded, WalCheckpointer(str(bounded), interval_s=0.01, restart_frames=200)
    )
    alone, alone_commits = _wal_frames_after_writing(unchecked, None)

    assert commits > 1_000 and alone_commits > 1_000  # each commit adds frames
    assert alone > 1_000  # nobody checkpoints: the WAL only grows
    # Rewound again and again: it never held much more than ``restart_frames``.
    assert frames < 0.25 * alone, (frames, alone)
    with sqlite3.connect(bounded) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == commits
