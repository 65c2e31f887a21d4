-- Each outbox body is encrypted under the patient's key and bound (as associated data) to a random
-- record id chosen before the row exists, since the serial id is only known after the insert.
ALTER TABLE outbox ADD COLUMN record_id UUID NOT NULL DEFAULT gen_random_uuid();
