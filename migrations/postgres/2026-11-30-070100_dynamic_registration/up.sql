-- Dynamic client registration (RFC 7591, RFC 7592).
-- Initial access tokens an administrator created: only their SHA-256 is stored. Each may register
-- at most max_uses clients (uses is raised by a compare-and-swap in the registering transaction)
-- until expires_at.
CREATE TABLE registration_tokens (
    id TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    max_uses BIGINT NOT NULL,
    uses BIGINT NOT NULL
);
CREATE INDEX registration_tokens_expires_at ON registration_tokens (expires_at);

-- One row per dynamically registered client: the SHA-256 of its registration access token
-- (RFC 7592), its token endpoint auth method, and how it was registered. Goes with its client.
CREATE TABLE client_registrations (
    client_id TEXT PRIMARY KEY NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    access_token_hash TEXT NOT NULL UNIQUE,
    auth_method TEXT NOT NULL,
    initial_token_id TEXT,
    address_hash TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX client_registrations_address_hash ON client_registrations (address_hash);
