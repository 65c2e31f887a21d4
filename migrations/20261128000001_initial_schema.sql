-- medbot initial schema.
-- Message text, drafts, Telegram ids and anything else a patient wrote is stored only as AES-256-GCM
-- ciphertext under that patient's data key; this file never holds a plaintext column for them.

-- Every master key that has ever wrapped patient keys. key_id is an HMAC fingerprint of the key, so the
-- process can tell a wrong key at start-up without storing anything that helps an attacker.
CREATE TABLE master_keys (
    version     INTEGER PRIMARY KEY,
    key_id      BYTEA NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    retired_at  TIMESTAMPTZ
);
-- At most one active master key.
CREATE UNIQUE INDEX master_keys_one_active ON master_keys ((retired_at IS NULL)) WHERE retired_at IS NULL;

CREATE TABLE patients (
    id                  UUID PRIMARY KEY,
    -- HMAC-SHA256 of the Telegram user id under a key derived from the master key: an equality lookup
    -- that needs no plaintext scan and reveals nothing without the key.
    telegram_lookup     BYTEA NOT NULL UNIQUE,
    language            TEXT,
    consented_at        TIMESTAMPTZ,
    topic_started_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One random data key per patient, wrapped (encrypted) by the master key of `key_version`.
-- Deleting this row is what makes a patient's data unreadable (crypto-shredding).
CREATE TABLE patient_keys (
    patient_id   UUID PRIMARY KEY REFERENCES patients (id) ON DELETE CASCADE,
    key_version  INTEGER NOT NULL REFERENCES master_keys (version),
    nonce        BYTEA NOT NULL CHECK (length(nonce) = 12),
    wrapped_key  BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX patient_keys_version ON patient_keys (key_version);

-- The Telegram user and chat ids of a patient, encrypted: the bot needs them to reply.
CREATE TABLE patient_contacts (
    patient_id   UUID PRIMARY KEY REFERENCES patients (id) ON DELETE CASCADE,
    nonce        BYTEA NOT NULL CHECK (length(nonce) = 12),
    ciphertext   BYTEA NOT NULL
);

CREATE TABLE messages (
    id           UUID PRIMARY KEY,
    patient_id   UUID NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('patient', 'assistant', 'doctor', 'system')),
    nonce        BYTEA NOT NULL CHECK (length(nonce) = 12),
    ciphertext   BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX messages_patient_time ON messages (patient_id, created_at);

CREATE TABLE escalations (
    id                   UUID PRIMARY KEY,
    patient_id           UUID NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    question_message_id  UUID REFERENCES messages (id) ON DELETE CASCADE,
    triage_level         TEXT NOT NULL CHECK (triage_level IN ('emergency', 'urgent', 'routine', 'self_care')),
    -- Reasons are rule codes ("names_medicine", "low_confidence"), never patient text.
    reasons              JSONB NOT NULL DEFAULT '[]',
    draft_nonce          BYTEA NOT NULL CHECK (length(draft_nonce) = 12),
    draft_ciphertext     BYTEA NOT NULL,
    status               TEXT NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'approved', 'edited', 'rejected', 'expired')),
    -- The doctor's replacement text or note, encrypted with the patient's key.
    final_nonce          BYTEA CHECK (final_nonce IS NULL OR length(final_nonce) = 12),
    final_ciphertext     BYTEA,
    decided_by           BIGINT,
    decided_at           TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at           TIMESTAMPTZ NOT NULL,
    doctor_card_chat_id  BIGINT,
    doctor_card_message_id BIGINT,
    CHECK ((status = 'pending') = (decided_at IS NULL))
);
CREATE INDEX escalations_pending ON escalations (expires_at) WHERE status = 'pending';
CREATE INDEX escalations_patient ON escalations (patient_id);

-- Each Telegram update, recorded before it is handled, so a re-delivered update is handled once.
CREATE TABLE inbox (
    update_id    BIGINT PRIMARY KEY,
    patient_id   UUID REFERENCES patients (id) ON DELETE CASCADE,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    handled_at   TIMESTAMPTZ,
    attempts     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX inbox_unhandled ON inbox (received_at) WHERE handled_at IS NULL;

-- Replies waiting to be sent. Bodies are encrypted with the patient's key; doctor-channel messages
-- (patient_id NULL) carry no patient text in clear either: the sender renders them from escalations.
CREATE TABLE outbox (
    id               BIGSERIAL PRIMARY KEY,
    patient_id       UUID REFERENCES patients (id) ON DELETE CASCADE,
    destination      TEXT NOT NULL CHECK (destination IN ('patient', 'doctors')),
    kind             TEXT NOT NULL,
    escalation_id    UUID REFERENCES escalations (id) ON DELETE CASCADE,
    body_nonce       BYTEA CHECK (body_nonce IS NULL OR length(body_nonce) = 12),
    body_ciphertext  BYTEA,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    not_before       TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    sent_at          TIMESTAMPTZ,
    telegram_message_id BIGINT
);
CREATE INDEX outbox_due ON outbox (not_before, id) WHERE sent_at IS NULL;

-- Append-only, hash-chained record of every read, export, erase, key rotation and doctor decision.
-- hash = SHA-256(prev_hash || canonical row); the application appends under an advisory lock and
-- `medbot audit verify` recomputes the chain.
CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    patient_id  UUID,
    details     JSONB NOT NULL DEFAULT '{}',
    prev_hash   BYTEA NOT NULL,
    hash        BYTEA NOT NULL UNIQUE
);

CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();
