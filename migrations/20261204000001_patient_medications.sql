-- The patient's medicines and allergies (/meds, or confirmed from a message). The whole entry (kind,
-- drug id, name) is encrypted under the patient's key: what someone takes is as private as what they
-- write. Erasing the patient deletes the rows with them.
CREATE TABLE patient_medications (
    id          UUID PRIMARY KEY,
    patient_id  UUID NOT NULL REFERENCES patients (id) ON DELETE CASCADE,
    nonce       BYTEA NOT NULL CHECK (length(nonce) = 12),
    ciphertext  BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX patient_medications_by_patient ON patient_medications (patient_id, created_at);
