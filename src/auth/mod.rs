//! Users, password hashes, the auth cache and login rate limits.
