DROP INDEX sessions_address_hash;
ALTER TABLE sessions DROP COLUMN address_hash;
