-- A counter bumped by every write the enrollment index reads: a service
-- whose index was built at another version rebuilds it before deciding.
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('index_version', 0);
