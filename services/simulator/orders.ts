/**
 * orders: food deliveries around Berlin. Orders arrive as a Poisson process (a fifth of the
 * event rate: five events per order) from uniformly chosen customers at Zipf-popular stores
 * (s = 1.0), and each goes through
 *   order.created → order.assigned → order.preparing → order.picked_up → order.delivered
 * strictly in that order, with `user_id` = the customer (Tally's partition key keeps the order).
 * Time is compressed: one minute of an order's life takes one second, so a typical delivery
 * (~25 minutes) completes within a short run. picked_up carries the store's location, delivered
 * the customer's, the courier riding between them at ~18 km/h; created carries the order total.
 */
import { EntityHash, Prng } from './prng.ts';
import { type EventSource, type ScenarioOptions, type SimEvent, toCents } from './sim-event.ts';
import { TimeQueue } from './time-queue.ts';
import { ZipfSampler } from './zipf.ts';

/** The lifecycle, in order. */
export const ORDER_STAGES = [
  'order.created',
  'order.assigned',
  'order.preparing',
  'order.picked_up',
  'order.delivered',
] as const;
export type OrderStage = (typeof ORDER_STAGES)[number];

export const ORDERS = Object.freeze({
  storeZipfExponent: 1.0,
  /** Model time of one minute of an order's life. */
  minuteMs: 1000,
  centre: { lat: 52.520008, lon: 13.404954 },
  storeSpreadKm: 2,
  customerSpreadKm: 3,
  medianTotal: 24,
  totalSigma: 0.45,
});

const KM_PER_DEGREE = 111.32;
const SALT_STORE_LAT = 0x3243f6a8;
const SALT_STORE_LON = 0x0a308d31;
const SALT_CUSTOMER_LAT = 0x13198a2e;
const SALT_CUSTOMER_LON = 0x03707344;

interface Order {
  number: number;
  customer: number;
  store: number;
  courier: number;
  stage: number;
}

interface Place {
  lat: number;
  lon: number;
}

export function createOrders(options: ScenarioOptions): EventSource {
  const o = ORDERS;
  const prng = new Prng(options.seed, 4);
  const hash = new EntityHash(options.seed);
  const stores = new ZipfSampler(options.targets, o.storeZipfExponent);
  const couriers = Math.max(10, options.targets * 3);
  const meanOrderGapMs = (1000 * ORDER_STAGES.length) / options.ratePerSecond;
  const cosLat = Math.cos((o.centre.lat * Math.PI) / 180);
  const queue = new TimeQueue<Order>();
  let orders = 0;
  let sequence = 0;
  let nextOrderAtMs = prng.exponential(meanOrderGapMs);

  const place = (saltLat: number, saltLon: number, index: number, spreadKm: number): Place => ({
    lat: o.centre.lat + (spreadKm * hash.normal(saltLat, index)) / KM_PER_DEGREE,
    lon: o.centre.lon + (spreadKm * hash.normal(saltLon, index)) / (KM_PER_DEGREE * cosLat),
  });
  const storeAt = (store: number) => place(SALT_STORE_LAT, SALT_STORE_LON, store, o.storeSpreadKm);
  const customerAt = (customer: number) =>
    place(SALT_CUSTOMER_LAT, SALT_CUSTOMER_LON, customer, o.customerSpreadKm);
  /** A fix a few metres off `p`, as a phone's GPS reports it. */
  const gps = (p: Place): Record<string, string> => ({
    lat: (p.lat + (prng.normal() * 0.02) / KM_PER_DEGREE).toFixed(5),
    lon: (p.lon + (prng.normal() * 0.02) / (KM_PER_DEGREE * cosLat)).toFixed(5),
  });

  /** Minutes from one stage to the next. */
  const delayMinutes = (order: Order): number => {
    switch (ORDER_STAGES[order.stage]) {
      case 'order.created':
        return 0.3 + prng.exponential(1.2);
      case 'order.assigned':
        return 0.2 + prng.exponential(1);
      case 'order.preparing':
        return prng.logNormal(9, 0.35);
      default: {
        const from = storeAt(order.store);
        const to = customerAt(order.customer);
        const km =
          1.3 * Math.hypot((to.lat - from.lat) * KM_PER_DEGREE, (to.lon - from.lon) * KM_PER_DEGREE * cosLat);
        const kmPerHour = Math.min(30, Math.max(8, 18 + 3 * prng.normal()));
        return 1 + (60 * km) / kmPerHour;
      }
    }
  };

  return {
    next(): SimEvent {
      let atMs: number;
      let order: Order;
      if (nextOrderAtMs <= queue.peekTime()) {
        atMs = nextOrderAtMs;
        nextOrderAtMs += prng.exponential(meanOrderGapMs);
        order = {
          number: ++orders,
          customer: 1 + prng.int(options.users),
          store: stores.sample(prng),
          courier: 1 + prng.int(couriers),
          stage: 0,
        };
      } else {
        const popped = queue.pop()!;
        atMs = popped.atMs;
        order = popped.item;
      }
      const type = ORDER_STAGES[order.stage]!;
      const attributes: Record<string, string> = { order_id: `${options.idPrefix}-o${order.number}` };
      if (order.stage >= 1) attributes.courier = `courier-${order.courier}`;
      if (type === 'order.picked_up') Object.assign(attributes, gps(storeAt(order.store)));
      if (type === 'order.delivered') Object.assign(attributes, gps(customerAt(order.customer)));
      const event: SimEvent = {
        id: `${options.idPrefix}-${++sequence}`,
        type,
        target: `store/${order.store}`,
        userId: `customer-${order.customer}`,
        ip: '',
        value: type === 'order.created' ? toCents(prng.logNormal(o.medianTotal, o.totalSigma)) : undefined,
        attributes,
        modelTimeMs: atMs,
      };
      if (order.stage < ORDER_STAGES.length - 1) {
        const delayMs = delayMinutes(order) * o.minuteMs;
        order.stage++;
        queue.push(atMs + delayMs, order);
      }
      return event;
    },
  };
}
