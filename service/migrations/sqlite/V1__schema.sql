-- The embedded store's schema as first released (IF NOT EXISTS: databases
-- created before migrations were versioned already have it).
CREATE TABLE IF NOT EXISTS enrollments (
    kind TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, etag TEXT NOT NULL,
    PRIMARY KEY (kind, id));
CREATE TABLE IF NOT EXISTS certificates (
    name TEXT PRIMARY KEY, der BLOB NOT NULL, verified INTEGER NOT NULL,
    code TEXT, etag TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS registrations (
    id TEXT PRIMARY KEY, group_id TEXT, doc TEXT NOT NULL, etag TEXT NOT NULL,
    leaf_sha256 BLOB);
CREATE INDEX IF NOT EXISTS registrations_by_group ON registrations (group_id, id);
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY, registration_id TEXT NOT NULL, leaf_sha256 BLOB NOT NULL,
    doc TEXT NOT NULL, created INTEGER);
CREATE INDEX IF NOT EXISTS operations_by_created ON operations (created);
CREATE INDEX IF NOT EXISTS operations_by_registration ON operations (registration_id);
