/**
 * The router's decisions (docs/delivery.md, The router): the enabled destinations indexed so that
 * an event meets only those that may want it, and a batch's events turned into each destination's
 * records — filtered, transformed, keyed by user, in the order they were read.
 *
 * Indexing: a destination whose filter names event types is found by the event's type; the others
 * (no type named) are tried for every event. However many destinations there are, an event pays
 * for those of its own type and the type-less ones only.
 */
import {
  applyTransform,
  type DeliveryEvent,
  type DestinationFilter,
  matchesFilter,
  type TransformSpec,
} from '../domain/destination-transform.ts';
import type { Destination } from '../infra/delivery/destination-store.ts';
import type { LogRecord } from '../infra/log/event-log.ts';
import { encodeDeliveryRecord, messageIdOf } from '../pipeline/delivery-record.ts';
import { type Event, timestampToMs } from '../pipeline/event-codec.ts';
import type { LoggedEvent } from '../pipeline/event-consumer.ts';

/** A destination as the router routes to it. */
export interface Route {
  destinationId: string;
  /** Its topic, `<prefix>deliveries.<id>`. */
  topic: string;
  filter: DestinationFilter;
  transform: TransformSpec;
}

export interface RoutingTable {
  /** How many destinations in all. */
  readonly size: number;
  /** The routes an event of `type` may take (its filter still to be checked). */
  candidates(type: string): readonly Route[];
}

/** Indexes `destinations` by the event types their filters name. */
export function routingTable(
  destinations: Iterable<Destination>,
  topicOf: (destinationId: string) => string,
): RoutingTable {
  const byType = new Map<string, Route[]>();
  const anyType: Route[] = [];
  let size = 0;
  for (const d of destinations) {
    const route: Route = {
      destinationId: d.id,
      topic: topicOf(d.id),
      filter: d.filter,
      transform: d.transform,
    };
    size++;
    if (d.filter.eventTypes.length === 0) {
      anyType.push(route);
      continue;
    }
    for (const type of new Set(d.filter.eventTypes)) {
      const list = byType.get(type);
      if (list) list.push(route);
      else byType.set(type, [route]);
    }
  }
  return {
    size,
    candidates(type) {
      const typed = byType.get(type);
      if (!typed) return anyType;
      return anyType.length === 0 ? typed : [...typed, ...anyType];
    },
  };
}

export const NO_ROUTES: RoutingTable = routingTable([], () => '');

/** An event a destination wanted but whose transform failed (its output too large). */
export interface TransformFailure {
  route: Route;
  event: LoggedEvent;
  reason: string;
}

/** A batch's writes: per destination, its records in the order the events were read. */
export interface RoutePlan {
  writes: Map<string, { route: Route; records: LogRecord[] }>;
  failures: TransformFailure[];
}

const utf8 = new TextEncoder();

/**
 * The records `events` become for each destination of `table` whose filter they pass. Each
 * record's source position is the event's position in the events topic (its partition and
 * offset there), which a forward the persister repeated keeps, so the senders recognise it too.
 */
export function planRoutes(table: RoutingTable, events: readonly LoggedEvent[]): RoutePlan {
  const writes: RoutePlan['writes'] = new Map();
  const failures: TransformFailure[] = [];
  if (table.size === 0) return { writes, failures };
  for (const logged of events) {
    const routes = table.candidates(logged.event.type);
    if (routes.length === 0) continue;
    const event = toDeliveryEvent(logged.event);
    for (const route of routes) {
      if (!matchesFilter(route.filter, event)) continue;
      const result = applyTransform(route.transform, event);
      if (!result.ok) {
        failures.push({ route, event: logged, reason: result.reason });
        continue;
      }
      const record = encodeDeliveryRecord({
        messageId: messageIdOf(route.destinationId, event.id),
        eventId: event.id,
        eventType: event.type,
        userId: event.userId,
        occurredAtMs: event.occurredAtMs ?? event.receivedAtMs,
        sourcePartition: logged.partition,
        sourceOffset: logged.position,
        body: utf8.encode(JSON.stringify(result.body)),
      });
      const write = writes.get(route.destinationId);
      if (write) write.records.push(record);
      else writes.set(route.destinationId, { route, records: [record] });
    }
  }
  return { writes, failures };
}

/** The event as filters and transforms see it. */
export function toDeliveryEvent(event: Event): DeliveryEvent {
  return {
    id: event.id,
    type: event.type,
    target: event.target,
    userId: event.userId,
    value: event.value,
    occurredAtMs: event.occurredAt ? timestampToMs(event.occurredAt) : undefined,
    receivedAtMs: event.receivedAt ? timestampToMs(event.receivedAt) : 0,
    attributes: event.attributes,
  };
}
