-- A session not yet signed in keeps a keyed hash of the host it came from (never the address),
-- so that /authorize can cap such sessions per address across every instance (checklist 58).
ALTER TABLE sessions ADD COLUMN address_hash TEXT;
CREATE INDEX sessions_address_hash ON sessions(address_hash, expires_at);
