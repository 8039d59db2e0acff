/**
 * orders: food deliveries in a few cities. Orders arrive as a Poisson process (a seventh of the
 * event rate: seven events per order) from uniformly chosen customers at Zipf-popular stores
 * (s = 1.0), each store in one city (its `city` attribute, on every event), and each goes through
 *   order.created → order.assigned → order.preparing → order.picked_up → order.delivered
 * strictly in that order, with `user_id` = the customer (Tally's partition key keeps the order),
 * and two `order.location` updates of the courier between picked_up and delivered.
 * Time is compressed: one minute of an order's life takes one second, so a typical delivery
 * (~25 minutes) completes within a short run. picked_up carries the store's location, delivered
 * the customer's, the courier riding between them at ~18 km/h (the updates at a third and two
 * thirds of the way); created carries the order total.
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

/** The courier's location updates between picked_up and delivered. */
export const ORDER_LOCATION = 'order.location';
/** Location updates per order, evenly along the ride. */
const LOCATION_UPDATES = 2;
/** Every event of an order, in order. */
const ORDER_STEPS: readonly string[] = [
  ...ORDER_STAGES.slice(0, 4),
  ...Array<string>(LOCATION_UPDATES).fill(ORDER_LOCATION),
  'order.delivered',
];

/** The cities, each with its centre; store n is in CITIES[(n - 1) % CITIES.length]. */
export const CITIES = Object.freeze([
  { name: 'berlin', lat: 52.520008, lon: 13.404954 },
  { name: 'hamburg', lat: 53.551086, lon: 9.993682 },
  { name: 'munich', lat: 48.135125, lon: 11.581981 },
  { name: 'cologne', lat: 50.937531, lon: 6.960279 },
] as const);

/** The city of store `store` (1-based). */
export function cityOfStore(store: number): (typeof CITIES)[number] {
  return CITIES[(store - 1) % CITIES.length]!;
}

export const ORDERS = Object.freeze({
  storeZipfExponent: 1.0,
  /** Model time of one minute of an order's life. */
  minuteMs: 1000,
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
  /** Index in ORDER_STEPS of its next event. */
  step: number;
  /** The ride's model time, set at picked_up. */
  rideMs: number;
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
  const meanOrderGapMs = (1000 * ORDER_STEPS.length) / options.ratePerSecond;
  const queue = new TimeQueue<Order>();
  let orders = 0;
  let sequence = 0;
  let nextOrderAtMs = prng.exponential(meanOrderGapMs);

  const cosLat = (lat: number) => Math.cos((lat * Math.PI) / 180);
  const place = (
    centre: Place,
    saltLat: number,
    saltLon: number,
    index: number,
    spreadKm: number,
  ): Place => ({
    lat: centre.lat + (spreadKm * hash.normal(saltLat, index)) / KM_PER_DEGREE,
    lon: centre.lon + (spreadKm * hash.normal(saltLon, index)) / (KM_PER_DEGREE * cosLat(centre.lat)),
  });
  const storeAt = (store: number) =>
    place(cityOfStore(store), SALT_STORE_LAT, SALT_STORE_LON, store, o.storeSpreadKm);
  /** A customer lives near the store's city centre (they order in the city they are in). */
  const customerAt = (order: Order) =>
    place(cityOfStore(order.store), SALT_CUSTOMER_LAT, SALT_CUSTOMER_LON, order.customer, o.customerSpreadKm);
  /** A fix a few metres off `p`, as a phone's GPS reports it. */
  const gps = (p: Place): Record<string, string> => ({
    lat: (p.lat + (prng.normal() * 0.02) / KM_PER_DEGREE).toFixed(5),
    lon: (p.lon + (prng.normal() * 0.02) / (KM_PER_DEGREE * cosLat(p.lat))).toFixed(5),
  });
  /** The courier `fraction` of the way from the store to the customer. */
  const along = (order: Order, fraction: number): Place => {
    const from = storeAt(order.store);
    const to = customerAt(order);
    return { lat: from.lat + (to.lat - from.lat) * fraction, lon: from.lon + (to.lon - from.lon) * fraction };
  };

  /** Minutes from one stage to the next. */
  const delayMinutes = (order: Order): number => {
    switch (ORDER_STEPS[order.step]) {
      case 'order.created':
        return 0.3 + prng.exponential(1.2);
      case 'order.assigned':
        return 0.2 + prng.exponential(1);
      case 'order.preparing':
        return prng.logNormal(9, 0.35);
      default: {
        const from = storeAt(order.store);
        const to = customerAt(order);
        const km =
          1.3 *
          Math.hypot(
            (to.lat - from.lat) * KM_PER_DEGREE,
            (to.lon - from.lon) * KM_PER_DEGREE * cosLat(from.lat),
          );
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
          step: 0,
          rideMs: 0,
        };
      } else {
        const popped = queue.pop()!;
        atMs = popped.atMs;
        order = popped.item;
      }
      const type = ORDER_STEPS[order.step]!;
      const attributes: Record<string, string> = {
        order_id: `${options.idPrefix}-o${order.number}`,
        city: cityOfStore(order.store).name,
      };
      if (order.step >= 1) attributes.courier = `courier-${order.courier}`;
      if (type === 'order.picked_up') Object.assign(attributes, gps(storeAt(order.store)));
      if (type === ORDER_LOCATION) {
        const leg = order.step - ORDER_STEPS.indexOf(ORDER_LOCATION) + 1;
        Object.assign(attributes, gps(along(order, leg / (LOCATION_UPDATES + 1))));
      }
      if (type === 'order.delivered') Object.assign(attributes, gps(customerAt(order)));
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
      if (order.step < ORDER_STEPS.length - 1) {
        // The ride, drawn at picked_up, is split evenly between the location updates and delivered.
        if (type === 'order.picked_up') order.rideMs = delayMinutes(order) * o.minuteMs;
        const delayMs =
          type === 'order.picked_up' || type === ORDER_LOCATION
            ? order.rideMs / (LOCATION_UPDATES + 1)
            : delayMinutes(order) * o.minuteMs;
        order.step++;
        queue.push(atMs + delayMs, order);
      }
      return event;
    },
  };
}
