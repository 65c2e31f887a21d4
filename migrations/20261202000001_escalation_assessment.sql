-- The clinical assessment behind an escalation (findings, differential, treatment options for the
-- doctor), encrypted under the patient's key like the draft. Older rows have none.
ALTER TABLE escalations
    ADD COLUMN assessment_nonce      BYTEA CHECK (assessment_nonce IS NULL OR length(assessment_nonce) = 12),
    ADD COLUMN assessment_ciphertext BYTEA,
    ADD CONSTRAINT escalations_assessment_pair
        CHECK ((assessment_nonce IS NULL) = (assessment_ciphertext IS NULL));
