-- Only revoked grants in the index the prune finds them by: a grant is inserted unrevoked, so
-- before, every grant a code or a password grant started added an entry (a page to write at
-- each commit) that no query reads. The prune's condition (`revoked_at IS NOT NULL AND
-- revoked_at <= ?`) implies the index's, so it still searches it.
DROP INDEX grants_revoked_at;
CREATE INDEX grants_revoked_at ON grants(revoked_at) WHERE revoked_at IS NOT NULL;
