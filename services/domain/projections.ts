/**
 * Projections: which events change which entity's state (an order's lifecycle, say), the state
 * each sets, the attributes kept, the transitions allowed and the attributes live counts are kept
 * by; the validation every way in (gRPC, REST, `tally projections`) shares; and the fold of one
 * event into an entity, which the projector and the chaos check both run. Pure: no I/O, no clock.
 * docs/entities.md describes the model and its ordering rule.
 *
 * Field paths in violations are the proto's (`events[2].state`), relative to the projection: the
 * caller puts the request's path in front (`projection.`).
 */
import { type FieldViolation, textProblem } from './event-rules.ts';

export type { FieldViolation };

/** Where an attribute's value comes from: the event's target, user, value, or one of its attributes. */
export type AttributeSource = 'target' | 'user_id' | 'value' | `attributes.${string}`;

export interface ProjectedEvent {
  /** The event type. */
  type: string;
  /** The state it sets; '' keeps the entity's state (a location update, say). */
  state: string;
}

export interface ProjectedAttribute {
  /** Its name on the entity (`restaurant`). */
  name: string;
  /** Where it is read from (`target`, `attributes.city`). */
  from: AttributeSource;
}

export interface Transition {
  from: string;
  to: string;
}

/** A projection as stored and answered. */
export interface ProjectionSpec {
  /** The entity kind (`order`): lower-case letters, digits and `_`, 1 to 63, from a letter. */
  kind: string;
  /** The event attribute naming the entity (`order_id`). */
  idAttribute: string;
  /** The lifecycle's states, in order (the first is where an entity starts). */
  states: string[];
  /** The event types that change it, and the state each sets. */
  events: ProjectedEvent[];
  /** The attributes kept on the entity. */
  attributes: ProjectedAttribute[];
  /** Transitions allowed beside staying in a state (and, with {@link allowSkip}, moving forward). */
  transitions: Transition[];
  /**
   * When true, any move forward in the lifecycle's order is allowed (created → picked_up when
   * assigned and preparing arrive late) and an entity may start at any state; when false only
   * {@link transitions} and an entity starts at `states[0]`.
   */
  allowSkip: boolean;
  /** States an entity never leaves; they are not "live" in the counts. */
  terminalStates: string[];
  /** Attributes (of {@link attributes}) the live counts are kept by. */
  countBy: string[];
}

export interface Projection extends ProjectionSpec {
  createdAt: Date;
  updatedAt: Date;
  /** Grows with every write. */
  revision: number;
}

/** What a request gives: anything may be missing or wrong. */
export type ProjectionInput = Partial<ProjectionSpec>;

export const PROJECTION_LIMITS = Object.freeze({
  maxStates: 32,
  maxEvents: 64,
  maxAttributes: 32,
  maxTransitions: 256,
  maxCountBy: 8,
  maxNameChars: 63,
  maxTypeChars: 200,
});

const KIND = /^[a-z][a-z0-9_]{0,62}$/;
const NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,62}$/;

/** The orders scenario's projection (services/simulator/orders.ts), seeded by migration 0014. */
export const ORDER_PROJECTION: ProjectionSpec = Object.freeze<ProjectionSpec>({
  kind: 'order',
  idAttribute: 'order_id',
  states: ['created', 'assigned', 'preparing', 'picked_up', 'delivered'],
  events: [
    { type: 'order.created', state: 'created' },
    { type: 'order.assigned', state: 'assigned' },
    { type: 'order.preparing', state: 'preparing' },
    { type: 'order.picked_up', state: 'picked_up' },
    { type: 'order.location', state: '' },
    { type: 'order.delivered', state: 'delivered' },
  ],
  attributes: [
    { name: 'restaurant', from: 'target' },
    { name: 'customer', from: 'user_id' },
    { name: 'city', from: 'attributes.city' },
    { name: 'courier', from: 'attributes.courier' },
    { name: 'lat', from: 'attributes.lat' },
    { name: 'lon', from: 'attributes.lon' },
  ],
  transitions: [
    { from: 'created', to: 'assigned' },
    { from: 'assigned', to: 'preparing' },
    { from: 'preparing', to: 'picked_up' },
    { from: 'picked_up', to: 'delivered' },
  ],
  allowSkip: true,
  terminalStates: ['delivered'],
  countBy: ['city', 'restaurant'],
});

export type ValidationResult =
  | { ok: true; spec: ProjectionSpec }
  | { ok: false; violations: FieldViolation[] };

/** Checks a projection, naming every field at fault; `ok` with the spec, defaults filled. */
export function validateProjection(input: ProjectionInput): ValidationResult {
  const v: FieldViolation[] = [];
  const bad = (field: string, description: string) => v.push({ field, description });
  const L = PROJECTION_LIMITS;
  const kind = input.kind ?? '';
  if (kind === '') bad('kind', 'is required');
  else if (!KIND.test(kind))
    bad('kind', 'must be 1 to 63 lower-case letters, digits and _, starting with a letter');
  const idAttribute = input.idAttribute ?? '';
  if (idAttribute === '') bad('id_attribute', 'is required');
  else if (!NAME.test(idAttribute)) bad('id_attribute', 'must be 1 to 63 letters, digits, _, . and -');

  const states = input.states ?? [];
  if (states.length === 0) bad('states', 'is required: the lifecycle, in order');
  if (states.length > L.maxStates) bad('states', `must have at most ${L.maxStates} states`);
  const seenStates = new Set<string>();
  states.forEach((s, i) => {
    if (!NAME.test(s)) bad(`states[${i}]`, 'must be 1 to 63 letters, digits, _, . and -');
    else if (seenStates.has(s)) bad(`states[${i}]`, `repeats ${JSON.stringify(s)}`);
    seenStates.add(s);
  });
  const isState = (s: string) => seenStates.has(s);

  const events = input.events ?? [];
  if (events.length === 0) bad('events', 'is required: the event types that change the entity');
  if (events.length > L.maxEvents) bad('events', `must have at most ${L.maxEvents} event types`);
  const seenTypes = new Set<string>();
  events.forEach((e, i) => {
    const type = e.type ?? '';
    const problem = type === '' ? 'is required' : textProblem(type, L.maxTypeChars);
    if (problem) bad(`events[${i}].type`, problem);
    else if (seenTypes.has(type)) bad(`events[${i}].type`, `repeats ${JSON.stringify(type)}`);
    seenTypes.add(type);
    const state = e.state ?? '';
    if (state !== '' && !isState(state))
      bad(`events[${i}].state`, `is not one of states: ${JSON.stringify(state)}`);
  });
  if (events.length > 0 && events.every((e) => (e.state ?? '') === ''))
    bad('events', 'at least one event type must set a state');

  const attributes = input.attributes ?? [];
  if (attributes.length > L.maxAttributes) bad('attributes', `must have at most ${L.maxAttributes}`);
  const seenAttributes = new Set<string>();
  attributes.forEach((a, i) => {
    const name = a.name ?? '';
    if (!NAME.test(name)) bad(`attributes[${i}].name`, 'must be 1 to 63 letters, digits, _, . and -');
    else if (seenAttributes.has(name)) bad(`attributes[${i}].name`, `repeats ${JSON.stringify(name)}`);
    seenAttributes.add(name);
    const from = (a.from ?? '') as string;
    const ok =
      from === 'target' ||
      from === 'user_id' ||
      from === 'value' ||
      (from.startsWith('attributes.') && NAME.test(from.slice('attributes.'.length)));
    if (!ok) bad(`attributes[${i}].from`, 'must be target, user_id, value or attributes.<name>');
  });

  const transitions = input.transitions ?? [];
  if (transitions.length > L.maxTransitions) bad('transitions', `must have at most ${L.maxTransitions}`);
  transitions.forEach((t, i) => {
    if (!isState(t.from ?? ''))
      bad(`transitions[${i}].from`, `is not one of states: ${JSON.stringify(t.from ?? '')}`);
    if (!isState(t.to ?? ''))
      bad(`transitions[${i}].to`, `is not one of states: ${JSON.stringify(t.to ?? '')}`);
  });

  const terminalStates = input.terminalStates ?? [];
  terminalStates.forEach((s, i) => {
    if (!isState(s)) bad(`terminal_states[${i}]`, `is not one of states: ${JSON.stringify(s)}`);
  });

  const countBy = input.countBy ?? [];
  if (countBy.length > L.maxCountBy) bad('count_by', `must have at most ${L.maxCountBy} attributes`);
  countBy.forEach((c, i) => {
    if (!seenAttributes.has(c)) bad(`count_by[${i}]`, `is not one of attributes: ${JSON.stringify(c)}`);
    else if (countBy.indexOf(c) !== i) bad(`count_by[${i}]`, `repeats ${JSON.stringify(c)}`);
  });

  if (v.length > 0) return { ok: false, violations: v };
  return {
    ok: true,
    spec: {
      kind,
      idAttribute,
      states: [...states],
      events: events.map((e) => ({ type: e.type, state: e.state ?? '' })),
      attributes: attributes.map((a) => ({ name: a.name, from: a.from })),
      transitions: transitions.map((t) => ({ from: t.from, to: t.to })),
      allowSkip: input.allowSkip ?? false,
      terminalStates: [...terminalStates],
      countBy: [...countBy],
    },
  };
}

/** An event as the fold reads it. */
export interface FoldEvent {
  id: string;
  type: string;
  target: string;
  userId: string;
  value: number | undefined;
  /** Event time (occurred_at, else received_at), epoch ms. */
  timeMs: number;
  attributes: Readonly<Record<string, string>>;
  /** The events topic's partition it was read from and its offset there, when known. */
  partition?: number;
  position?: number;
}

/**
 * The version an event gives what it sets: its event time; at the same millisecond, its offset
 * when both events are of one partition (the order they were sent in: a user's events keep it),
 * else its id (code-unit order).
 */
export interface Stamp {
  timeMs: number;
  eventId: string;
  partition?: number;
  position?: number;
}

/** An entity's current state, as stored. */
export interface EntityState {
  kind: string;
  id: string;
  state: string;
  attributes: Record<string, string>;
  /** Per attribute, the stamp of the event that set it (the newest carrying it wins). */
  attributeStamps: Record<string, Stamp>;
  /** Changes applied. */
  version: number;
  /** The stamp of the event that set the state: the newest accepted of those that set one. */
  last: Stamp;
}

/**
 * True when `a` is newer than `b`: a later event time; at the same millisecond, the later offset
 * of one partition, else the greater event id. The same event is never newer than itself.
 */
export function newer(a: Stamp, b: Stamp): boolean {
  if (a.timeMs !== b.timeMs) return a.timeMs > b.timeMs;
  if (a.eventId === b.eventId) return false;
  if (
    a.partition !== undefined &&
    a.partition === b.partition &&
    a.position !== undefined &&
    b.position !== undefined
  )
    return a.position > b.position;
  return a.eventId > b.eventId;
}

/** What one event does to an entity. */
export type FoldOutcome =
  /** Not this projection's (type not projected): nothing. */
  | { kind: 'skip' }
  /** The entity changed (state, attributes or both). */
  | { kind: 'applied'; entity: EntityState; stale: boolean }
  /** Nothing changed: a duplicate (seen before), or a stale event whose attributes are all older. */
  | { kind: 'unchanged'; stale: boolean; duplicate: boolean }
  /** Refused (an illegal transition, no entity id): dead-lettered with the reason. */
  | { kind: 'refused'; reason: string };

/** The entity id an event names under `projection`, or undefined. */
export function entityIdOf(
  projection: ProjectionSpec,
  event: Pick<FoldEvent, 'attributes'>,
): string | undefined {
  const id = event.attributes[projection.idAttribute];
  return id === undefined || id === '' ? undefined : id;
}

function attributeValue(from: AttributeSource, event: FoldEvent): string | undefined {
  if (from === 'target') return event.target === '' ? undefined : event.target;
  if (from === 'user_id') return event.userId === '' ? undefined : event.userId;
  if (from === 'value') return event.value === undefined ? undefined : String(event.value);
  return event.attributes[from.slice('attributes.'.length)];
}

/** Why `from` → `to` is refused under `projection`, or undefined when allowed. */
export function transitionProblem(projection: ProjectionSpec, from: string, to: string): string | undefined {
  if (from === to) return undefined;
  if (projection.transitions.some((t) => t.from === from && t.to === to)) return undefined;
  if (projection.terminalStates.includes(from))
    return `${projection.kind} is ${from} (terminal): ${from} → ${to} is not allowed`;
  if (projection.allowSkip && projection.states.indexOf(to) > projection.states.indexOf(from))
    return undefined;
  return `${from} → ${to} is not an allowed transition of ${projection.kind}`;
}

/**
 * Folds one event into `current` (undefined: no entity yet). The ordering rule (docs/entities.md):
 * the state is that of the newest accepted event that sets one (event time, then event id); an
 * event older than that is stale and sets no state, yet sets each attribute whose own stamp it beats;
 * a newer event's move is judged against the current state ({@link transitionProblem}), and a
 * refused one changes nothing. A duplicate changes nothing: every write needs a strictly newer stamp.
 */
export function foldEvent(
  projection: ProjectionSpec,
  current: EntityState | undefined,
  event: FoldEvent,
): FoldOutcome {
  const mapping = projection.events.find((e) => e.type === event.type);
  if (!mapping) return { kind: 'skip' };
  const id = entityIdOf(projection, event);
  if (id === undefined)
    return { kind: 'refused', reason: `${event.type} event without ${projection.idAttribute}` };
  const stamp: Stamp = {
    timeMs: event.timeMs,
    eventId: event.id,
    ...(event.partition === undefined || event.position === undefined
      ? {}
      : { partition: event.partition, position: event.position }),
  };
  if (!Number.isFinite(stamp.timeMs))
    return { kind: 'refused', reason: `${event.type} event without a time` };

  let state: string;
  let stale = false;
  const keepsState = mapping.state === '';
  if (!current) {
    if (keepsState)
      return {
        kind: 'refused',
        reason: `${event.type} for ${projection.kind} ${id}, which has no state yet`,
      };
    if (!projection.allowSkip && mapping.state !== projection.states[0])
      return {
        kind: 'refused',
        reason: `${projection.kind} ${id} must start as ${projection.states[0]}, not ${mapping.state}`,
      };
    state = mapping.state;
  } else if (newer(stamp, current.last)) {
    if (keepsState && projection.terminalStates.includes(current.state))
      return {
        kind: 'refused',
        reason: `${projection.kind} ${id} is ${current.state} (terminal): ${event.type} is not allowed`,
      };
    state = keepsState ? current.state : mapping.state;
    const problem = transitionProblem(projection, current.state, state);
    if (problem) return { kind: 'refused', reason: `${projection.kind} ${id}: ${problem}` };
  } else {
    stale = true;
    state = current.state;
  }

  const attributes = { ...(current?.attributes ?? {}) };
  const attributeStamps = { ...(current?.attributeStamps ?? {}) };
  let attributesChanged = false;
  for (const a of projection.attributes) {
    const value = attributeValue(a.from, event);
    if (value === undefined) continue;
    const was = attributeStamps[a.name];
    if (was && !newer(stamp, was)) continue;
    attributeStamps[a.name] = stamp;
    attributes[a.name] = value;
    attributesChanged = true;
  }
  // What sets no state moves no state stamp: only its attributes, each newer than its own.
  const setsState = !stale && !keepsState;
  if (!setsState && !attributesChanged) {
    const seen = (s: Stamp | undefined) =>
      s !== undefined && s.timeMs === stamp.timeMs && s.eventId === stamp.eventId;
    const duplicate = seen(current?.last) || Object.values(attributeStamps).some(seen);
    return { kind: 'unchanged', stale: stale && !duplicate, duplicate };
  }
  return {
    kind: 'applied',
    stale,
    entity: {
      kind: projection.kind,
      id,
      state,
      attributes,
      attributeStamps,
      version: (current?.version ?? 0) + 1,
      last: setsState ? stamp : current!.last,
    },
  };
}

/** One live count's key: the state, and the attribute and value it is kept by ('' and '': by state alone). */
export interface CountKey {
  state: string;
  attribute: string;
  value: string;
}

/** The count keys an entity adds one to: by state alone, and by each count_by attribute it has. */
export function countKeys(
  projection: ProjectionSpec,
  entity: Pick<EntityState, 'state' | 'attributes'>,
): CountKey[] {
  const keys: CountKey[] = [{ state: entity.state, attribute: '', value: '' }];
  for (const attribute of projection.countBy) {
    const value = entity.attributes[attribute];
    if (value !== undefined) keys.push({ state: entity.state, attribute, value });
  }
  return keys;
}

/**
 * The count changes of an entity counted under `before` (none: new) and now under `after`. The
 * keys an entity was counted under are stored with it, so a change of count_by never removes what
 * was not added.
 */
export function countDeltas(
  before: readonly CountKey[],
  after: readonly CountKey[],
): Map<string, { key: CountKey; delta: number }> {
  const deltas = new Map<string, { key: CountKey; delta: number }>();
  const add = (key: CountKey, delta: number) => {
    const k = JSON.stringify([key.state, key.attribute, key.value]);
    const d = deltas.get(k) ?? { key, delta: 0 };
    d.delta += delta;
    if (d.delta === 0) deltas.delete(k);
    else deltas.set(k, d);
  };
  for (const key of before) add(key, -1);
  for (const key of after) add(key, 1);
  return deltas;
}
