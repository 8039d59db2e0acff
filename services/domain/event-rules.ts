/**
 * The rules every event must satisfy before it reaches the event log.
 * Pure: no I/O, no clock (the caller passes `nowMs`), no wire types.
 */

/** An event as the rules see it: the wire message, flattened. */
export interface EventInput {
  id: string;
  type: string;
  target: string;
  userId: string;
  ip: string;
  /** Absent when the client sent no value. */
  value: number | undefined;
  /** Client time in epoch milliseconds; absent when the client sent none. */
  occurredAtMs: number | undefined;
  attributes: Readonly<Record<string, string>>;
}

/** Limits applied to every event; see {@link defaultEventLimits}. */
export interface EventLimits {
  /** Oldest accepted event time, relative to now (default 7 days). */
  maxLatenessMs: number;
  /** Furthest accepted event time ahead of now (default 5 minutes). */
  maxFutureMs: number;
  maxIdChars: number;
  maxTypeChars: number;
  maxTargetChars: number;
  maxUserIdChars: number;
  maxAttributes: number;
  maxAttributeKeyChars: number;
  maxAttributeValueChars: number;
  /** Sum of key and value lengths over all attributes. */
  maxAttributesTotalChars: number;
  /** Largest accepted absolute value. */
  maxAbsValue: number;
}

export const defaultEventLimits: Readonly<EventLimits> = Object.freeze({
  maxLatenessMs: 7 * 24 * 3600_000,
  maxFutureMs: 5 * 60_000,
  maxIdChars: 64,
  maxTypeChars: 64,
  maxTargetChars: 2048,
  maxUserIdChars: 128,
  maxAttributes: 32,
  maxAttributeKeyChars: 64,
  maxAttributeValueChars: 1024,
  maxAttributesTotalChars: 8192,
  maxAbsValue: 1e15,
});

/** Which field broke which rule; `field` is a path such as `events[3].type`. */
export interface FieldViolation {
  field: string;
  description: string;
}

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;
const TYPE_PATTERN = /^[A-Za-z][A-Za-z0-9_.:-]*$/;
const ATTRIBUTE_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;
// C0/C1 control characters and lone surrogates (what invalid UTF-8 decodes to is U+FFFD, caught separately).
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what this rejects
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;
const REPLACEMENT_CHAR = '\ufffd';
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]+$/;

/**
 * Checks one event against the rules; returns the first violation, or undefined when valid.
 * `path` prefixes field names (e.g. `events[3].`).
 */
export function validateEvent(
  event: EventInput,
  limits: EventLimits,
  nowMs: number,
  path = '',
): FieldViolation | undefined {
  const at = (field: string, description: string): FieldViolation => ({ field: path + field, description });

  if (event.id !== '') {
    if (event.id.length > limits.maxIdChars)
      return at('id', `must be at most ${limits.maxIdChars} characters`);
    if (!ID_PATTERN.test(event.id))
      return at(
        'id',
        'must be letters, digits and . _ : - (a UUID or ULID), starting with a letter or digit',
      );
  }

  if (event.type === '') return at('type', 'is required');
  if (event.type.length > limits.maxTypeChars)
    return at('type', `must be at most ${limits.maxTypeChars} characters`);
  if (!TYPE_PATTERN.test(event.type))
    return at('type', 'must start with a letter and contain only letters, digits and _ . : -');

  if (event.target === '') return at('target', 'is required');
  const targetProblem = textProblem(event.target, limits.maxTargetChars);
  if (targetProblem) return at('target', targetProblem);

  const userProblem = textProblem(event.userId, limits.maxUserIdChars);
  if (userProblem) return at('user_id', userProblem);

  if (event.ip !== '' && !isIpAddress(event.ip)) return at('ip', 'must be an IPv4 or IPv6 address');

  if (event.value !== undefined) {
    if (!Number.isFinite(event.value)) return at('value', 'must be a finite number (not NaN or Infinity)');
    if (Math.abs(event.value) > limits.maxAbsValue)
      return at('value', `must be between -${limits.maxAbsValue} and ${limits.maxAbsValue}`);
  }

  if (event.occurredAtMs !== undefined) {
    if (!Number.isFinite(event.occurredAtMs)) return at('occurred_at', 'must be a valid timestamp');
    if (event.occurredAtMs > nowMs + limits.maxFutureMs)
      return at('occurred_at', `must be at most ${limits.maxFutureMs / 1000} s in the future`);
    if (event.occurredAtMs < nowMs - limits.maxLatenessMs)
      return at('occurred_at', `must be at most ${limits.maxLatenessMs / 1000} s in the past`);
  }

  const keys = Object.keys(event.attributes);
  if (keys.length > limits.maxAttributes)
    return at('attributes', `must have at most ${limits.maxAttributes} entries`);
  let total = 0;
  for (const key of keys) {
    if (key.length > limits.maxAttributeKeyChars)
      return at(
        `attributes[${JSON.stringify(key.slice(0, 32))}]`,
        `key must be at most ${limits.maxAttributeKeyChars} characters`,
      );
    if (!ATTRIBUTE_KEY_PATTERN.test(key))
      return at(
        `attributes[${JSON.stringify(key)}]`,
        'key must start with a letter or _ and contain only letters, digits and _ . : -',
      );
    const value = event.attributes[key] ?? '';
    const valueProblem = textProblem(value, limits.maxAttributeValueChars);
    if (valueProblem) return at(`attributes[${JSON.stringify(key)}]`, valueProblem);
    total += key.length + value.length;
  }
  if (total > limits.maxAttributesTotalChars)
    return at(
      'attributes',
      `keys and values must total at most ${limits.maxAttributesTotalChars} characters`,
    );

  return undefined;
}

/** Why `text` is not acceptable free text of at most `maxChars` characters (control characters, bad Unicode); undefined when it is. */
export function textProblem(text: string, maxChars: number): string | undefined {
  if (text.length > maxChars) return `must be at most ${maxChars} characters`;
  if (CONTROL_CHARS.test(text)) return 'must not contain control characters';
  if (text.includes(REPLACEMENT_CHAR)) return 'must be valid UTF-8';
  if (!text.isWellFormed()) return 'must be valid Unicode (no lone surrogates)';
  return undefined;
}

/** True for a textual IPv4 or IPv6 address (no zone, no port). */
export function isIpAddress(text: string): boolean {
  if (IPV4.test(text)) return true;
  if (!IPV6_CHARS.test(text) || !text.includes(':') || text.length > 45) return false;
  const [head, tail, ...rest] = text.split('::');
  if (rest.length > 0) return false;
  const groups = (part: string | undefined): string[] | undefined => (part ? part.split(':') : []);
  const left = groups(head);
  const right = tail === undefined ? undefined : groups(tail);
  const all = [...(left ?? []), ...(right ?? [])];
  let count = 0;
  for (let i = 0; i < all.length; i++) {
    const g = all[i] ?? '';
    if (i === all.length - 1 && g.includes('.')) {
      if (!IPV4.test(g)) return false;
      count += 2;
    } else if (/^[0-9A-Fa-f]{1,4}$/.test(g)) count += 1;
    else return false;
  }
  return right === undefined ? count === 8 : count < 8;
}
