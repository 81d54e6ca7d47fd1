DROP INDEX grants_revoked_at;
CREATE INDEX grants_revoked_at ON grants(revoked_at);
