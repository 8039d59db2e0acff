/**
 * What a destination receives: its filter (which events) and its transform (the JSON body each
 * event becomes). Pure: no I/O, no clock. docs/delivery.md describes both languages.
 *
 * A transform is declarative and bounded — a list of output fields, each taken from an event
 * field, a `{{field}}` string template or a constant — never code: it cannot loop, call out or
 * read anything but the event, and its output has a size bound checked as it is built.
 */
import { defaultEventLimits, type FieldViolation, textProblem } from './event-rules.ts';

/** An event as the router hands it to a destination: the `events` topic's message, flattened. */
export interface DeliveryEvent {
  id: string;
  type: string;
  target: string;
  userId: string;
  /** Absent when the client sent none. */
  value: number | undefined;
  /** Client time in epoch milliseconds; absent when the client sent none. */
  occurredAtMs: number | undefined;
  /** Ingest's time, epoch milliseconds. */
  receivedAtMs: number;
  attributes: Readonly<Record<string, string>>;
}

/** Which events a destination gets. Each empty part matches every event; the parts are ANDed. */
export interface DestinationFilter {
  /** The event's type is one of these. */
  eventTypes: string[];
  /** The event's target starts with one of these. */
  targetPrefixes: string[];
  /** The event has each of these attributes with exactly this value. */
  attributes: Record<string, string>;
}

/** JSON as a transform's constants and output hold it. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Where an output field's value comes from. */
export type FieldSource =
  /** An event field by name (`type`, `attributes.plan`, `attributes`…), see {@link EVENT_FIELDS}. */
  | { kind: 'field'; path: string }
  /** A string with `{{field}}` placeholders, each replaced by a scalar event field ('' when absent). */
  | { kind: 'template'; template: string }
  /** The same JSON value for every event. */
  | { kind: 'constant'; value: JsonValue };

/** One field of the output: a dotted path (`data.user`) and its source. */
export interface FieldMapping {
  to: string;
  source: FieldSource;
}

/** The body each event becomes: no fields, the event as {@link defaultPayload} gives it. */
export interface TransformSpec {
  fields: FieldMapping[];
}

export const TRANSFORM_LIMITS = Object.freeze({
  maxFields: 64,
  /** Segments of an output path (`a.b.c` has 3). */
  maxPathDepth: 8,
  maxSegmentChars: 64,
  maxTemplateChars: 1024,
  maxPlaceholders: 32,
  /** A constant's JSON text. */
  maxConstantBytes: 4096,
  maxConstantDepth: 8,
  /** The JSON text of one transformed event: a larger output fails the event, not the router. */
  maxOutputBytes: 64 * 1024,
});

export const FILTER_LIMITS = Object.freeze({
  maxEventTypes: 100,
  maxTargetPrefixes: 100,
  maxAttributes: 32,
});

/** The event's scalar fields a source or a placeholder names; `attributes.<key>` names one attribute. */
export const EVENT_FIELDS = Object.freeze([
  'id',
  'type',
  'target',
  'user_id',
  'value',
  'occurred_at',
  'received_at',
] as const);

const TYPE_PATTERN = /^[A-Za-z][A-Za-z0-9_.:-]*$/; // as domain/event-rules.ts accepts
const ATTRIBUTE_KEY_PATTERN = /^[A-Za-z_][A-Za-z0-9_.:-]*$/;
const SEGMENT_PATTERN = /^[A-Za-z_][A-Za-z0-9_-]*$/;
/** Output keys that would reach an object's prototype in some readers: refused. */
const FORBIDDEN_SEGMENTS = new Set(['__proto__', 'constructor', 'prototype']);
const PLACEHOLDER = /\{\{\s*([^{}]*?)\s*\}\}/g;

type Bad = (field: string, description: string) => void;

/** Checks a filter (paths relative to it: `event_types[2]`); the filter as stored. */
export function validateFilter(
  input: Partial<DestinationFilter> | undefined,
  path: string,
  bad: Bad,
): DestinationFilter {
  const F = FILTER_LIMITS;
  const filter: DestinationFilter = {
    eventTypes: [...(input?.eventTypes ?? [])],
    targetPrefixes: [...(input?.targetPrefixes ?? [])],
    attributes: { ...(input?.attributes ?? {}) },
  };
  checkList(`${path}event_types`, filter.eventTypes, F.maxEventTypes, bad, (type) =>
    type === ''
      ? 'must not be empty'
      : type.length > defaultEventLimits.maxTypeChars
        ? `must be at most ${defaultEventLimits.maxTypeChars} characters`
        : TYPE_PATTERN.test(type)
          ? undefined
          : 'must start with a letter and contain only letters, digits and _ . : -',
  );
  checkList(`${path}target_prefixes`, filter.targetPrefixes, F.maxTargetPrefixes, bad, (prefix) =>
    prefix === '' ? 'must not be empty' : textProblem(prefix, defaultEventLimits.maxTargetChars),
  );
  const keys = Object.keys(filter.attributes);
  if (keys.length > F.maxAttributes) bad(`${path}attributes`, `must have at most ${F.maxAttributes} entries`);
  for (const key of keys) {
    const field = `${path}attributes[${JSON.stringify(key)}]`;
    if (!ATTRIBUTE_KEY_PATTERN.test(key) || key.length > defaultEventLimits.maxAttributeKeyChars)
      bad(
        field,
        `key must be at most ${defaultEventLimits.maxAttributeKeyChars} letters, digits and _ . : -, not starting with a digit`,
      );
    else {
      const problem = textProblem(filter.attributes[key]!, defaultEventLimits.maxAttributeValueChars);
      if (problem) bad(field, problem);
    }
  }
  return filter;
}

/** Whether `event` passes `filter`: every non-empty part matches (types and prefixes: any one of them). */
export function matchesFilter(filter: DestinationFilter, event: DeliveryEvent): boolean {
  if (filter.eventTypes.length > 0 && !filter.eventTypes.includes(event.type)) return false;
  if (filter.targetPrefixes.length > 0 && !filter.targetPrefixes.some((p) => event.target.startsWith(p)))
    return false;
  for (const [key, value] of Object.entries(filter.attributes))
    if (!Object.hasOwn(event.attributes, key) || event.attributes[key] !== value) return false;
  return true;
}

/** Why `path` names no event field, or undefined when it does (`scalar`: not the whole attribute map). */
function sourcePathProblem(path: string, scalar: boolean): string | undefined {
  if ((EVENT_FIELDS as readonly string[]).includes(path)) return undefined;
  if (path === 'attributes')
    return scalar ? 'a template takes one value: name one attribute (attributes.<key>)' : undefined;
  if (path.startsWith('attributes.')) {
    const key = path.slice('attributes.'.length);
    if (ATTRIBUTE_KEY_PATTERN.test(key) && key.length <= defaultEventLimits.maxAttributeKeyChars)
      return undefined;
    return 'names no valid attribute key';
  }
  return `must be one of ${EVENT_FIELDS.join(', ')}, ${scalar ? '' : 'attributes, '}or attributes.<key>`;
}

/** Checks a transform (paths relative to it: `fields[3].to`); the transform as stored. */
export function validateTransform(
  input: Partial<TransformSpec> | undefined,
  path: string,
  bad: Bad,
): TransformSpec {
  const L = TRANSFORM_LIMITS;
  const fields = (input?.fields ?? []).map((f) => ({ to: f.to, source: f.source }));
  if (fields.length > L.maxFields) bad(`${path}fields`, `must have at most ${L.maxFields} entries`);
  const taken = new Map<string, number>();
  fields.forEach((mapping, i) => {
    const at = `${path}fields[${i}]`;
    const segments = mapping.to.split('.');
    if (mapping.to === '') bad(`${at}.to`, 'is required: the output field, e.g. data.user');
    else if (segments.length > L.maxPathDepth)
      bad(`${at}.to`, `must have at most ${L.maxPathDepth} dot-separated parts`);
    else if (
      segments.some(
        (s) => !SEGMENT_PATTERN.test(s) || s.length > L.maxSegmentChars || FORBIDDEN_SEGMENTS.has(s),
      )
    )
      bad(
        `${at}.to`,
        `each dot-separated part must be 1 to ${L.maxSegmentChars} letters, digits, _ and -, not starting with a digit or -, and not __proto__, constructor or prototype`,
      );
    else {
      // No two fields at one place, and none inside another's value (`a` and `a.b`).
      const clash = [...taken.keys()].find(
        (other) =>
          other === mapping.to || other.startsWith(`${mapping.to}.`) || mapping.to.startsWith(`${other}.`),
      );
      if (clash !== undefined)
        bad(`${at}.to`, `overlaps fields[${taken.get(clash)}].to (${JSON.stringify(clash)})`);
      else taken.set(mapping.to, i);
    }
    const source = mapping.source;
    switch (source?.kind) {
      case 'field': {
        const problem = source.path === '' ? 'is required' : sourcePathProblem(source.path, false);
        if (problem) bad(`${at}.from`, problem);
        break;
      }
      case 'template': {
        const t = source.template;
        if (t.length > L.maxTemplateChars)
          bad(`${at}.template`, `must be at most ${L.maxTemplateChars} characters`);
        else {
          const names = [...t.matchAll(PLACEHOLDER)].map((m) => m[1]!);
          const rest = t.replace(PLACEHOLDER, '');
          if (rest.includes('{{') || rest.includes('}}'))
            bad(`${at}.template`, 'has an unclosed or malformed {{ }} placeholder');
          else if (names.length > L.maxPlaceholders)
            bad(`${at}.template`, `must have at most ${L.maxPlaceholders} placeholders`);
          else
            for (const name of names) {
              const problem = sourcePathProblem(name, true);
              if (problem) {
                bad(`${at}.template`, `{{${name}}}: ${problem}`);
                break;
              }
            }
        }
        break;
      }
      case 'constant': {
        const problem = constantProblem(source.value);
        if (problem) bad(`${at}.json`, problem);
        break;
      }
      default:
        bad(at, 'needs a source: from, template, constant or json');
    }
  });
  return { fields };
}

function constantProblem(value: JsonValue): string | undefined {
  const L = TRANSFORM_LIMITS;
  const depth = (v: JsonValue): number =>
    v !== null && typeof v === 'object' ? 1 + Math.max(0, ...Object.values(v).map(depth)) : 0;
  if (typeof value === 'number' && !Number.isFinite(value)) return 'must be a finite number';
  if (utf8Bytes(JSON.stringify(value)) > L.maxConstantBytes)
    return `must be at most ${L.maxConstantBytes} bytes of JSON`;
  if (depth(value) > L.maxConstantDepth) return `must nest at most ${L.maxConstantDepth} levels`;
  return undefined;
}

/** The JSON an event is sent as when a destination has no transform fields. */
export function defaultPayload(event: DeliveryEvent): { [key: string]: JsonValue } {
  const payload: { [key: string]: JsonValue } = {
    id: event.id,
    type: event.type,
    target: event.target,
    user_id: event.userId,
  };
  if (event.value !== undefined) payload.value = event.value;
  if (event.occurredAtMs !== undefined) payload.occurred_at = new Date(event.occurredAtMs).toISOString();
  payload.received_at = new Date(event.receivedAtMs).toISOString();
  payload.attributes = { ...event.attributes };
  return payload;
}

/** An event field's value; undefined when the event has none (no value, no such attribute). */
function fieldValue(event: DeliveryEvent, path: string): JsonValue | undefined {
  switch (path) {
    case 'id':
      return event.id;
    case 'type':
      return event.type;
    case 'target':
      return event.target;
    case 'user_id':
      return event.userId;
    case 'value':
      return event.value;
    case 'occurred_at':
      return event.occurredAtMs === undefined ? undefined : new Date(event.occurredAtMs).toISOString();
    case 'received_at':
      return new Date(event.receivedAtMs).toISOString();
    case 'attributes':
      return { ...event.attributes };
    default: {
      const key = path.slice('attributes.'.length);
      return Object.hasOwn(event.attributes, key) ? event.attributes[key] : undefined;
    }
  }
}

export type TransformResult =
  | { ok: true; body: { [key: string]: JsonValue }; bytes: number }
  | { ok: false; reason: string };

/**
 * The JSON object `event` becomes for a destination with transform `spec` (validated by
 * {@link validateTransform}). A field whose source is absent from the event is left out; a
 * template renders an absent field as ''. Fails — without throwing — when the output's JSON text
 * would exceed `maxOutputBytes` (default {@link TRANSFORM_LIMITS}.maxOutputBytes).
 */
export function applyTransform(
  spec: TransformSpec,
  event: DeliveryEvent,
  maxOutputBytes: number = TRANSFORM_LIMITS.maxOutputBytes,
): TransformResult {
  let body: { [key: string]: JsonValue };
  if (spec.fields.length === 0) body = defaultPayload(event);
  else {
    body = {};
    let bytes = 2;
    for (const { to, source } of spec.fields) {
      const value =
        source.kind === 'field'
          ? fieldValue(event, source.path)
          : source.kind === 'template'
            ? renderTemplate(source.template, event, maxOutputBytes)
            : source.value;
      if (value === undefined) continue;
      // Counted as it is built, so that no output much larger than the bound is ever made.
      bytes += utf8Bytes(JSON.stringify(value)) + to.length + 4;
      if (bytes > maxOutputBytes) return tooLarge(maxOutputBytes);
      setPath(body, to.split('.'), value);
    }
  }
  const bytes = utf8Bytes(JSON.stringify(body));
  if (bytes > maxOutputBytes) return tooLarge(maxOutputBytes);
  return { ok: true, body, bytes };
}

function tooLarge(max: number): TransformResult {
  return { ok: false, reason: `the transformed event exceeds ${max} bytes of JSON` };
}

function renderTemplate(template: string, event: DeliveryEvent, max: number): string {
  let out = '';
  let last = 0;
  for (const m of template.matchAll(PLACEHOLDER)) {
    const value = fieldValue(event, m[1]!);
    out += template.slice(last, m.index) + (value === undefined ? '' : String(value));
    last = m.index + m[0].length;
    // A template's size is at most its placeholders times the longest field: stop once past the bound.
    if (out.length > max) return out;
  }
  return out + template.slice(last);
}

function setPath(body: { [key: string]: JsonValue }, segments: readonly string[], value: JsonValue): void {
  let node = body;
  for (const segment of segments.slice(0, -1)) {
    const next = node[segment];
    // Validation keeps paths from overlapping, so a segment is either new or an object made here.
    if (next === undefined || next === null || typeof next !== 'object' || Array.isArray(next))
      node[segment] = {};
    node = node[segment] as { [key: string]: JsonValue };
  }
  node[segments.at(-1)!] = value;
}

/** Bytes of `text` in UTF-8. */
export function utf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/** Checks each item of a list and that none repeats (`field[i]` names the item at fault). */
export function checkList(
  field: string,
  items: readonly string[],
  max: number,
  bad: Bad,
  problem: (item: string) => string | undefined,
): void {
  if (items.length > max) bad(field, `must have at most ${max} entries`);
  const seen = new Set<string>();
  items.forEach((item, i) => {
    const why = problem(item);
    if (why) bad(`${field}[${i}]`, why);
    else if (seen.has(item)) bad(`${field}[${i}]`, `repeats ${JSON.stringify(item)}`);
    seen.add(item);
  });
}

export type { FieldViolation };
