-- One user per login name whatever its case: `Alice` and `alice` are the same user. Sign-in
-- looks users up by LOWER(username), which this index serves.
CREATE UNIQUE INDEX users_username_lower ON users (LOWER(username));
