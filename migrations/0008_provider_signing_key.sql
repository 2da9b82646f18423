-- Providers whose client secret is a JWT we sign (Apple: ES256 with the team's private key,
-- kept sealed as the client secret): the team id (the JWT's `iss`) and the key id (its
-- `kid`). NULL for every other provider.
ALTER TABLE oauth_providers ADD COLUMN team_id TEXT;
ALTER TABLE oauth_providers ADD COLUMN key_id TEXT;
