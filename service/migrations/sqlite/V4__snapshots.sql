-- Edge snapshots: the store's version (bumped once by every write
-- transaction that changes an enrollment or a CA certificate), and the
-- version at which each document last changed (`deleted`: a tombstone, so
-- that a delta carries the delete). Tombstones older than the history kept
-- are pruned; `horizon` is the newest version pruned, and a delta from
-- before it is answered "history gone".
CREATE TABLE changes (
    kind TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
    deleted INTEGER NOT NULL, PRIMARY KEY (kind, id));
CREATE INDEX changes_by_version ON changes (version);
-- Documents stored before this migration changed at version 1.
INSERT INTO changes (kind, id, version, deleted) SELECT kind, id, 1, 0 FROM enrollments;
INSERT INTO changes (kind, id, version, deleted) SELECT 'certificate', name, 1, 0 FROM certificates;
INSERT INTO meta (key, value) VALUES ('version', 1), ('horizon', 0);
-- What an edge replica (a gateway's copy of a service's snapshot) knows of
-- where it came from; unused by a service's own store.
CREATE TABLE edge_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
