import assert from 'node:assert/strict';
import { test } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import fc from 'fast-check';
import { type Event, EventSchema } from '../gen/tally/v1/event_pb.js';
import { decodeEvent, encodeEvent } from './event-codec.ts';
import { readEvent, WIRE_FIELDS, writeEvent } from './event-codec-wire.ts';

const text = fc.oneof(
  fc.constant(''),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  // Lone surrogates: written as U+FFFD, as TextEncoder writes them.
  fc.constantFrom('\ud800', 'a\udfffb', '\uFFFD', '\uFEFFbom', '__proto__', 'constructor'),
);

const timestamp = fc.record({
  seconds: fc.oneof(
    fc.constant(0n),
    fc.bigInt({ min: 0n, max: 253_402_300_799n }),
    fc.bigInt({ min: 0n, max: 2n ** 53n - 1n }),
  ),
  nanos: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 999_999_999 })),
});

/** Events of every shape the rules admit, and some they do not (the codec does not judge). */
const event = fc
  .record(
    {
      id: text,
      type: text,
      target: text,
      userId: text,
      ip: text,
      value: fc.oneof(fc.constant(undefined), fc.double(), fc.constantFrom(0, -0, Number.NaN, 1e308)),
      occurredAt: fc.option(timestamp, { nil: undefined }),
      receivedAt: fc.option(timestamp, { nil: undefined }),
      attributes: fc.dictionary(text, text, { maxKeys: 5 }),
    },
    { requiredKeys: ['id', 'type', 'target', 'userId', 'ip', 'attributes'] },
  )
  .map((init) => create(EventSchema, init as never));

/** The test's own reading of an outcome: the message, or the fact that it threw. */
function outcome(read: () => Event): Event | 'threw' {
  try {
    return read();
  } catch {
    return 'threw';
  }
}

test('the hand-written codec knows every field of the Event message, in order', () => {
  assert.deepEqual(
    EventSchema.fields.map((f) => [f.number, f.localName]),
    WIRE_FIELDS.map((name, i) => [i + 1, name]),
    'the Event message changed: teach services/pipeline/event-codec-wire.ts the new field',
  );
});

test('events are written byte for byte as protobuf-es writes them, without falling back', () => {
  fc.assert(
    fc.property(event, (e) => {
      const written = writeEvent(e);
      assert.ok(written, 'an event of known fields and non-negative times is written by hand');
      assert.deepEqual(new Uint8Array(written), toBinary(EventSchema, e));
    }),
    { numRuns: 2_000 },
  );
});

test('events are read as protobuf-es reads them, without falling back', () => {
  fc.assert(
    fc.property(event, (e) => {
      const bytes = toBinary(EventSchema, e);
      const read = readEvent(bytes);
      const expected = fromBinary(EventSchema, bytes);
      if (read === undefined) {
        // Only text holding U+FFFD (it might be bad UTF-8) and a __proto__ key are left to protobuf-es.
        const texts = [expected.id, expected.type, expected.target, expected.userId, expected.ip];
        texts.push(...Object.entries(expected.attributes).flat());
        const proto = Object.hasOwn(expected.attributes, '__proto__');
        assert.ok(proto || texts.join('').includes('\uFFFD'), 'fell back on a plain event');
        return;
      }
      assert.deepEqual(read, expected);
    }),
    { numRuns: 2_000 },
  );
});

test('any bytes decode to what protobuf-es gives, or fail as it fails', () => {
  const valid = event.map((e) => toBinary(EventSchema, e));
  const mutated = fc
    .tuple(valid, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.nat())
    .map(([bytes, at, byte, cut]) => {
      const copy = Uint8Array.from(bytes);
      if (copy.length > 0) copy[at % copy.length] = byte;
      return cut % 3 === 0 ? copy.subarray(0, cut % (copy.length + 1)) : copy;
    });
  const withUnknown = fc
    .tuple(valid, fc.uint8Array({ minLength: 1, maxLength: 6 }))
    .map(([bytes, tail]) => Uint8Array.from([...bytes, 0x50, ...tail.map((b) => b & 0x7f)])); // field 10, varint
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 40 }), mutated, withUnknown), (bytes) => {
      assert.deepEqual(
        outcome(() => decodeEvent(bytes)),
        outcome(() => fromBinary(EventSchema, bytes)),
      );
    }),
    { numRuns: 5_000 },
  );
});

test('what the hand-written code leaves alone goes through protobuf-es unchanged', () => {
  // A field of a later version survives a read and a write (protobuf-es keeps it).
  const later = Uint8Array.from([...toBinary(EventSchema, create(EventSchema, { id: 'a' })), 0x50, 0x07]);
  assert.equal(readEvent(later), undefined);
  const decoded = decodeEvent(later);
  assert.equal(decoded.id, 'a');
  assert.deepEqual(encodeEvent(decoded), later);

  // Bad UTF-8 is refused, as protobuf-es refuses it.
  const badText = Uint8Array.from([0x0a, 0x02, 0xc3, 0x28]);
  assert.throws(() => decodeEvent(badText), /invalid|utf-8/i);

  // A negative time (before 1970) is written by protobuf-es.
  const old = create(EventSchema, { occurredAt: { seconds: -5n, nanos: 1 } });
  assert.equal(writeEvent(old), undefined);
  assert.deepEqual(decodeEvent(encodeEvent(old)), old);

  // An attribute named __proto__ is an own property, not the object's prototype.
  const proto = create(EventSchema, { attributes: { ['__proto__']: 'x', a: 'b' } as never });
  Object.defineProperty(proto.attributes, '__proto__', { value: 'x', enumerable: true, writable: true });
  const round = decodeEvent(encodeEvent(proto));
  assert.equal(Object.getPrototypeOf(round.attributes), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(round.attributes, '__proto__')?.value, 'x');
});
