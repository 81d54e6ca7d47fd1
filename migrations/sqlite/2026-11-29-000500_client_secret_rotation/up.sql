-- A rotated client secret keeps working until previous_secret_expires_at (the grace period).
ALTER TABLE clients ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE clients ADD COLUMN previous_secret_expires_at BIGINT;
