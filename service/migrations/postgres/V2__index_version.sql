-- A counter bumped by every write the enrollment index reads: a replica
-- whose index was built at another version rebuilds it before deciding.
CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO meta (key, value) VALUES ('index_version', 0);
