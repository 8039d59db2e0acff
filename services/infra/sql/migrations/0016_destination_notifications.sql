-- A notification may also tell of a destination the senders disabled (docs/delivery.md: the
-- receiver answered 410 Gone, or its circuit breaker stayed open for the auto-disable time).
ALTER TABLE notification DROP CONSTRAINT IF EXISTS notification_kind_check;
ALTER TABLE notification
  ADD CONSTRAINT notification_kind_check CHECK (kind IN ('milestone', 'threshold', 'spike', 'destination'));
