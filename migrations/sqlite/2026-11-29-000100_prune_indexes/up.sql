-- The scheduled prune (flows::prune) finds expired codes and ended grants by these, one small
-- batch at a time, without scanning the tables.
CREATE INDEX auth_codes_expires_at ON auth_codes(expires_at);
CREATE INDEX grants_expires_at ON grants(expires_at);
CREATE INDEX grants_revoked_at ON grants(revoked_at);
