-- The second factor: a TOTP secret per user (sealed under the master key, never in clear) with the
-- last accepted time step (a code is accepted once), hashed single-use recovery codes, the
-- half-signed-in state of a session, the factors a grant was authenticated with, and the clients
-- that require a second factor.
CREATE TABLE totp_factors (
    user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_jwe TEXT NOT NULL,
    last_step BIGINT,
    confirmed_at BIGINT,
    created_at BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

ALTER TABLE clients ADD COLUMN require_mfa BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN pending_user_id TEXT;
ALTER TABLE sessions ADD COLUMN pending_stage TEXT;
ALTER TABLE sessions ADD COLUMN pending_until BIGINT;
ALTER TABLE grants ADD COLUMN amr TEXT NOT NULL DEFAULT '';
