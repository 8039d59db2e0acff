-- The orders scenario's projection (domain/projections.ts ORDER_PROJECTION), there from the first
-- start so that `tally simulate --scenario orders` has live orders at once. A migration runs
-- once: an administrator's later change or deletion of it stays.
INSERT INTO projection (kind, spec, created_at, updated_at, revision)
VALUES ('order', '{
  "kind": "order",
  "idAttribute": "order_id",
  "states": ["created", "assigned", "preparing", "picked_up", "delivered"],
  "events": [
    {"type": "order.created", "state": "created"},
    {"type": "order.assigned", "state": "assigned"},
    {"type": "order.preparing", "state": "preparing"},
    {"type": "order.picked_up", "state": "picked_up"},
    {"type": "order.location", "state": ""},
    {"type": "order.delivered", "state": "delivered"}
  ],
  "attributes": [
    {"name": "restaurant", "from": "target"},
    {"name": "customer", "from": "user_id"},
    {"name": "city", "from": "attributes.city"},
    {"name": "courier", "from": "attributes.courier"},
    {"name": "lat", "from": "attributes.lat"},
    {"name": "lon", "from": "attributes.lon"}
  ],
  "transitions": [
    {"from": "created", "to": "assigned"},
    {"from": "assigned", "to": "preparing"},
    {"from": "preparing", "to": "picked_up"},
    {"from": "picked_up", "to": "delivered"}
  ],
  "allowSkip": true,
  "terminalStates": ["delivered"],
  "countBy": ["city", "restaurant"]
}'::jsonb, now(), now(), 1)
ON CONFLICT (kind) DO NOTHING;
