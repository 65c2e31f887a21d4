-- The knowledge base: public medical documents (no patient data), split into passages with their
-- sentence embeddings. Ranking is done in the application (no pgvector on PostgreSQL 15 here).
CREATE TABLE kb_documents (
    id             UUID PRIMARY KEY,
    -- The document's path relative to the folder it was imported from: what a re-import matches on.
    path           TEXT NOT NULL UNIQUE,
    title          TEXT NOT NULL,
    source         TEXT,
    licence        TEXT,
    published      TEXT,
    content_sha256 BYTEA NOT NULL,
    imported_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at     TIMESTAMPTZ
);

CREATE TABLE kb_passages (
    id           BIGSERIAL PRIMARY KEY,
    document_id  UUID NOT NULL REFERENCES kb_documents (id) ON DELETE CASCADE,
    ordinal      INTEGER NOT NULL,
    heading      TEXT NOT NULL,
    text         TEXT NOT NULL,
    embedding    REAL[] NOT NULL,
    UNIQUE (document_id, ordinal)
);
