-- Sign-in failure counters (checklist 49, 59): one row per user, device and factor. `device` is
-- '' for the unknown-devices bucket (no valid device cookie, and every password grant), else the
-- id carried by a signed device cookie. Rows exist only for real users, never for a typed name.
-- Counts change by compare-and-swap (a conditional UPDATE whose affected-row count decides).
CREATE TABLE sign_in_failures (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device TEXT NOT NULL,
    factor TEXT NOT NULL,
    failures INTEGER NOT NULL,
    locked_until BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, device, factor)
);
