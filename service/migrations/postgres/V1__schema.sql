CREATE TABLE enrollments (
    kind TEXT NOT NULL, id TEXT NOT NULL, doc TEXT NOT NULL, etag TEXT NOT NULL,
    PRIMARY KEY (kind, id));
CREATE TABLE certificates (
    name TEXT PRIMARY KEY, der BYTEA NOT NULL, verified BOOLEAN NOT NULL,
    code TEXT, etag TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE registrations (
    id TEXT PRIMARY KEY, group_id TEXT, doc TEXT NOT NULL, etag TEXT NOT NULL,
    leaf_sha256 BYTEA);
CREATE INDEX registrations_by_group ON registrations (group_id, id);
CREATE TABLE operations (
    id TEXT PRIMARY KEY, registration_id TEXT NOT NULL, leaf_sha256 BYTEA NOT NULL,
    doc TEXT NOT NULL, created BIGINT NOT NULL);
CREATE INDEX operations_by_created ON operations (created);
CREATE INDEX operations_by_registration ON operations (registration_id);
