-- Certificate revocation lists the decisions check (RFC 5280 §6.3), by a
-- name the operator chooses (or the distribution point a CRL was fetched
-- from). `issuer_key` is the issuer name's key (what the policy
-- component's `revocation` import asks by); `source` is the URL it was
-- fetched from, NULL when uploaded.
CREATE TABLE crls (
    name TEXT PRIMARY KEY, der BYTEA NOT NULL, issuer_key BYTEA NOT NULL,
    source TEXT, etag TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE INDEX crls_by_issuer ON crls (issuer_key);
