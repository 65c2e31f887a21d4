-- Emergencies go first; a message Telegram refuses for good is recorded as dropped (with why), not
-- as sent; a split answer remembers how many of its pieces were delivered so that a retry never
-- repeats one.
ALTER TABLE outbox ADD COLUMN priority SMALLINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN dropped_at TIMESTAMPTZ;
ALTER TABLE outbox ADD COLUMN dropped_reason TEXT;
ALTER TABLE outbox ADD COLUMN pieces_sent INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outbox_due_by_priority ON outbox (priority DESC, id) WHERE sent_at IS NULL;
