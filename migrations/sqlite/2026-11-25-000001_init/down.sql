DROP TABLE signing_keys;
DROP TABLE refresh_tokens;
DROP TABLE auth_codes;
DROP TABLE grants;
DROP TABLE interactions;
DROP TABLE sessions;
DROP TABLE users;
DROP TABLE clients;
