DROP INDEX grants_session_nonce;
CREATE INDEX grants_session_hash ON grants(session_hash);
