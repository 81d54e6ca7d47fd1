-- Security events (README "Audit log"). The client address is stored only anonymised: a keyed
-- hash (HMAC-SHA256 under a master-key subkey) and its network prefix (IPv4 /24, IPv6 /48).
CREATE TABLE audit_events (
    id TEXT PRIMARY KEY NOT NULL,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    actor TEXT NOT NULL,
    user_id TEXT,
    client_id TEXT,
    address_hash TEXT,
    network TEXT,
    detail TEXT
);
CREATE INDEX audit_events_at ON audit_events(at);
CREATE INDEX audit_events_user_id ON audit_events(user_id, at);
