-- A browser session's grants, found by the session and the request's nonce in one index: the
-- check that a nonce is used once per session (OpenID Connect) then reads one index entry, not
-- every grant the session ever had. Its first column still serves the lookups by session alone
-- (logout, the session id's rotation at sign-in).
DROP INDEX grants_session_hash;
CREATE INDEX grants_session_nonce ON grants(session_hash, nonce);
