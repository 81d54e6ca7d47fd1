DROP INDEX grants_revoked_at;
DROP INDEX grants_expires_at;
DROP INDEX auth_codes_expires_at;
