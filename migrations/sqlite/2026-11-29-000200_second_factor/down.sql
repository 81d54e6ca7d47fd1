ALTER TABLE grants DROP COLUMN amr;
ALTER TABLE sessions DROP COLUMN pending_until;
ALTER TABLE sessions DROP COLUMN pending_stage;
ALTER TABLE sessions DROP COLUMN pending_user_id;
ALTER TABLE sessions DROP COLUMN amr;
ALTER TABLE clients DROP COLUMN require_mfa;
DROP TABLE recovery_codes;
DROP TABLE totp_factors;
