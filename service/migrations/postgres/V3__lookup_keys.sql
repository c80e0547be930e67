-- Lookup keys: what a decision looks enrollment groups and trust anchors
-- up by (CA identity, subject name key), derived from the documents by the
-- service and written in the same transaction (and re-derived at every start), so
-- that no decision reads the whole store. `owner` is 'group:<id>' or 'ca:<name>'.
CREATE TABLE lookup_keys (
    kind TEXT NOT NULL, value BYTEA NOT NULL, owner TEXT NOT NULL, der BYTEA);
CREATE INDEX lookup_keys_by_value ON lookup_keys (kind, value);
CREATE INDEX lookup_keys_by_owner ON lookup_keys (owner);
