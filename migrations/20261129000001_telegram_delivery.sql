-- Telegram delivery: a reply may replace the message that showed the streamed draft, and a doctor's
-- reply to an escalation card is matched to its escalation by the card's message id.
ALTER TABLE outbox ADD COLUMN edit_message_id BIGINT;
CREATE INDEX escalations_card ON escalations (doctor_card_chat_id, doctor_card_message_id);
