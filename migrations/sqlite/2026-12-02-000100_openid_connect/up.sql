-- OpenID Connect: the user's profile claims, the client's sign-in and sign-out settings, the
-- authorization request's OIDC parameters, what an ID token needs from its grant, and
-- remembered consent.
ALTER TABLE users ADD COLUMN name TEXT;
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email_verified BOOLEAN NOT NULL DEFAULT FALSE;

ALTER TABLE clients ADD COLUMN skip_consent BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';

ALTER TABLE interactions ADD COLUMN nonce TEXT;
ALTER TABLE interactions ADD COLUMN max_age BIGINT;
ALTER TABLE interactions ADD COLUMN prompt TEXT NOT NULL DEFAULT '';
ALTER TABLE interactions ADD COLUMN login_hint TEXT;

-- When the user authenticated for this grant (`auth_time`), and the nonce of its ID token
-- (a nonce is refused when its session used it before).
ALTER TABLE grants ADD COLUMN auth_time BIGINT;
ALTER TABLE grants ADD COLUMN nonce TEXT;

-- What a user allowed a client: its scopes (space-separated) and audiences (a JSON list).
CREATE TABLE consents (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    scopes TEXT NOT NULL,
    audiences TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX consents_client_id ON consents(client_id);
