-- Facts about the store itself: `created_at` (RFC 3339, UTC) is written when scimwatch
-- creates a new, empty store. A store created before this migration has no row.
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
