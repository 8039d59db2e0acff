/**
 * The client → server messages of the WebSocket `/v1/stream` (docs/stream.md):
 * parsing and validation, with a precise reason naming the field at fault.
 */

export type Channel = 'dashboard' | 'counters' | 'notifications' | 'entities';

/** An entity subscription: its kind and id (docs/entities.md). */
export interface EntitySelection {
  kind: string;
  entity: string;
}

/** A notifications subscription: a recipient ('': none; "me": the socket's own) and a target ('': none). */
export interface NotificationsSelection {
  recipient: string;
  target: string;
}

/** A well-formed client message. `id`, when given, is echoed in the reply. */
export type ClientMessage =
  | { op: 'subscribe'; channel: 'dashboard'; id?: string | number }
  | { op: 'subscribe'; channel: 'counters'; targets: string[]; id?: string | number }
  | { op: 'unsubscribe'; channel: 'dashboard'; id?: string | number }
  /** Without `targets`: every counters subscription of the socket. */
  | { op: 'unsubscribe'; channel: 'counters'; targets?: string[]; id?: string | number }
  /** `afterSeq`: replay those kept after it first (the last seq the client saw). */
  | ({
      op: 'subscribe';
      channel: 'notifications';
      afterSeq?: string;
      id?: string | number;
    } & NotificationsSelection)
  /** Without a recipient or target: every notifications subscription of the socket. */
  | ({ op: 'unsubscribe'; channel: 'notifications'; id?: string | number } & Partial<NotificationsSelection>)
  | ({ op: 'subscribe'; channel: 'entities'; id?: string | number } & EntitySelection)
  /** Without kind and entity: every entities subscription of the socket. */
  | ({ op: 'unsubscribe'; channel: 'entities'; id?: string | number } & Partial<EntitySelection>);

/** Why a message was refused: `field` is the JSON path at fault, `message` starts with it. */
export interface ProtocolError {
  field: string;
  message: string;
  id?: string | number;
}

export interface ProtocolLimits {
  /** Most targets in one message (and per socket). */
  maxTargets: number;
  /** Longest target, characters. */
  maxTargetChars: number;
}

const OPS = ['subscribe', 'unsubscribe'];
const CHANNELS = ['dashboard', 'counters', 'notifications', 'entities'];
const FIELDS = ['op', 'channel', 'targets', 'recipient', 'target', 'afterSeq', 'kind', 'entity', 'id'];
const CHANNEL_NAMES = '"dashboard", "counters", "notifications" or "entities"';
/** Longest entity kind and entity id. */
const MAX_KIND_CHARS = 63;
const MAX_ENTITY_CHARS = 256;
/** Longest recipient (`user:` or `group:` and a name). */
const MAX_RECIPIENT_CHARS = 200;

/** Parses one text frame; a ProtocolError for anything but a well-formed message. */
export function parseClientMessage(text: string, limits: ProtocolLimits): ClientMessage | ProtocolError {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return fail('message', `is not valid JSON (${(error as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return fail('message', 'must be a JSON object such as {"op":"subscribe","channel":"dashboard"}');
  const body = value as Record<string, unknown>;

  let id: string | number | undefined;
  if (body.id !== undefined) {
    const ok =
      (typeof body.id === 'string' && body.id.length <= 64) ||
      (typeof body.id === 'number' && Number.isSafeInteger(body.id));
    if (!ok) return fail('id', 'must be a string of at most 64 characters or an integer');
    id = body.id as string | number;
  }
  const withId = <T extends object>(m: T): T => (id === undefined ? m : { ...m, id });
  const failWithId = (field: string, reason: string) => withId(fail(field, reason));

  const unknown = Object.keys(body).find((key) => !FIELDS.includes(key));
  if (unknown !== undefined)
    return failWithId(unknown, `is not a known field (expected ${FIELDS.join(', ')})`);

  const { op, channel } = body;
  if (op === undefined) return failWithId('op', 'is required ("subscribe" or "unsubscribe")');
  if (typeof op !== 'string' || !OPS.includes(op))
    return failWithId('op', `must be "subscribe" or "unsubscribe", not ${describe(op)}`);
  if (channel === undefined) return failWithId('channel', `is required (${CHANNEL_NAMES})`);
  if (typeof channel !== 'string' || !CHANNELS.includes(channel))
    return failWithId('channel', `must be ${CHANNEL_NAMES}, not ${describe(channel)}`);
  if (channel !== 'notifications')
    for (const field of ['recipient', 'target', 'afterSeq'])
      if (body[field] !== undefined) return failWithId(field, 'is only allowed with channel "notifications"');
  if (channel !== 'entities')
    for (const field of ['kind', 'entity'])
      if (body[field] !== undefined) return failWithId(field, 'is only allowed with channel "entities"');

  if (channel === 'entities') {
    if (body.targets !== undefined) return failWithId('targets', 'is only allowed with channel "counters"');
    const text = (field: string, max: number): string | ProtocolError | undefined => {
      const value = body[field];
      if (value === undefined) return undefined;
      if (typeof value !== 'string') return failWithId(field, `must be a string, not ${describe(value)}`);
      if (value === '') return failWithId(field, 'must not be empty');
      if (value.length > max) return failWithId(field, `must be at most ${max} characters`);
      return value;
    };
    const kind = text('kind', MAX_KIND_CHARS);
    if (typeof kind === 'object') return kind;
    const entity = text('entity', MAX_ENTITY_CHARS);
    if (typeof entity === 'object') return entity;
    if (op === 'unsubscribe')
      return withId({
        op,
        channel,
        ...(kind === undefined ? {} : { kind }),
        ...(entity === undefined ? {} : { entity }),
      });
    if (kind === undefined)
      return failWithId('kind', 'is required with channel "entities" (the entity kind, "order")');
    if (entity === undefined)
      return failWithId('entity', 'is required with channel "entities" (the entity id)');
    return withId({ op: 'subscribe', channel, kind, entity });
  }

  if (channel === 'dashboard') {
    if (body.targets !== undefined) return failWithId('targets', 'is only allowed with channel "counters"');
    return withId({ op: op as 'subscribe' | 'unsubscribe', channel });
  }
  if (channel === 'notifications') {
    if (body.targets !== undefined)
      return failWithId(
        'targets',
        'is only allowed with channel "counters" (a notifications subscription names one "target")',
      );
    const text = (field: string, max: number): string | ProtocolError => {
      const value = body[field];
      if (value === undefined) return '';
      if (typeof value !== 'string') return failWithId(field, `must be a string, not ${describe(value)}`);
      if (value.length > max) return failWithId(field, `must be at most ${max} characters`);
      return value;
    };
    const recipient = text('recipient', MAX_RECIPIENT_CHARS);
    if (typeof recipient !== 'string') return recipient;
    const target = text('target', limits.maxTargetChars);
    if (typeof target !== 'string') return target;
    if (op === 'unsubscribe') {
      if (body.afterSeq !== undefined) return failWithId('afterSeq', 'is only allowed with op "subscribe"');
      return withId({
        op,
        channel,
        ...(body.recipient === undefined ? {} : { recipient }),
        ...(body.target === undefined ? {} : { target }),
      });
    }
    let afterSeq: string | undefined;
    if (body.afterSeq !== undefined) {
      const value = body.afterSeq;
      const ok =
        (typeof value === 'string' && /^\d{1,19}$/.test(value)) ||
        (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0);
      if (!ok)
        return failWithId('afterSeq', 'must be a seq: a non-negative integer, or one as a string of digits');
      afterSeq = String(value);
    }
    return withId({
      op: 'subscribe',
      channel,
      recipient,
      target,
      ...(afterSeq === undefined ? {} : { afterSeq }),
    });
  }

  if (body.targets === undefined) {
    if (op === 'unsubscribe') return withId({ op, channel: 'counters' });
    return failWithId('targets', 'is required with channel "counters" (an array of target strings)');
  }
  if (!Array.isArray(body.targets)) return failWithId('targets', 'must be an array of target strings');
  if (body.targets.length === 0) return failWithId('targets', 'must not be empty');
  if (body.targets.length > limits.maxTargets)
    return failWithId(
      'targets',
      `must hold at most ${limits.maxTargets} targets (got ${body.targets.length}); split the subscription`,
    );
  const targets: string[] = [];
  for (const [i, target] of body.targets.entries()) {
    if (typeof target !== 'string')
      return failWithId(`targets[${i}]`, `must be a string, not ${describe(target)}`);
    if (target === '') return failWithId(`targets[${i}]`, 'must not be empty');
    if (target.length > limits.maxTargetChars)
      return failWithId(`targets[${i}]`, `must be at most ${limits.maxTargetChars} characters`);
    if (!targets.includes(target)) targets.push(target);
  }
  return withId(
    op === 'subscribe'
      ? { op: 'subscribe', channel: 'counters', targets }
      : { op: 'unsubscribe', channel: 'counters', targets },
  );
}

export function isProtocolError(value: ClientMessage | ProtocolError): value is ProtocolError {
  return 'message' in value;
}

function fail(field: string, reason: string): ProtocolError {
  return { field, message: `${field}: ${reason}` };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}
