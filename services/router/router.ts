/**
 * The router role (group `group_routing`): each accepted event, to every enabled destination whose
 * filter it passes, as a record of that destination's topic (docs/delivery.md, The router).
 *
 * - Order: a batch's records are written per destination in the order the events were read, one
 *   send per topic (in slices the broker accepts, one after the other), all topics at once, and
 *   the batch commits once every send is acknowledged. A user's events are in one partition of
 *   the accepted topic, and keyed by user in one partition of each destination topic: they arrive
 *   there in source order.
 * - At least once: a batch redelivered after a crash is written again. Each record carries the
 *   event's position in the events topic, by which the senders deliver a record written twice
 *   once (pipeline/delivery-record.ts).
 * - A transform that fails (the output over its bound) is counted and logged, and that destination
 *   does not get the event; nothing goes to the dead-letter topic: the event is sound, every other
 *   sink and destination has it, and replaying it would fail the same way.
 * - A write that fails is retried with the whole batch (it throws), unless its destination is no
 *   longer routed to once the destinations are read again (deleted or disabled meanwhile): then
 *   its records are dropped, and the rest of the batch commits.
 */
import type { Stoppable } from '../infra/lifecycle.ts';
import { type LogRecord, recordSlices } from '../infra/log/event-log.ts';
import { routerMetrics } from '../infra/metrics.ts';
import { type SinkRoleConfig, type SinkRoleDeps, startSinkRole } from '../pipeline/sink-role.ts';
import type { DestinationSource } from './destination-source.ts';
import { planRoutes, type Route, type TransformFailure } from './routing-table.ts';

export type RouterConfig = SinkRoleConfig;

export interface RouterDeps extends SinkRoleDeps {
  /** The destinations routed to now, followed from the store's change feed. */
  destinations: Pick<DestinationSource, 'table' | 'routes' | 'refresh'>;
}

/** Event ids a log line names at most. */
const LOGGED_IDS = 5;

export function start(deps: RouterDeps, config: RouterConfig): Promise<Stoppable> {
  const metrics = routerMetrics(deps.metrics);
  const logger = deps.logger.child({ role: 'router' });
  const producer = deps.log.producer();

  /** Sends a destination's records in order; resolves once all are acknowledged. */
  const send = async (route: Route, records: readonly LogRecord[]): Promise<void> => {
    for (const slice of recordSlices(records)) await producer.send(route.topic, slice);
  };

  return startSinkRole(deps, config, {
    name: 'router',
    spanName: 'router write',
    apply: async (batches) => {
      const table = deps.destinations.table();
      if (table.size === 0) return;
      const plan = planRoutes(
        table,
        batches.flatMap((b) => b.events),
      );
      if (plan.failures.length > 0) reportFailures(plan.failures);
      const writes = [...plan.writes.values()];
      const results = await Promise.allSettled(writes.map((w) => send(w.route, w.records)));
      const failed: { route: Route; error: unknown }[] = [];
      results.forEach((result, i) => {
        const { route, records } = writes[i]!;
        if (result.status === 'fulfilled')
          metrics.routed.inc({ destination: route.destinationId }, records.length);
        else failed.push({ route, error: result.reason });
      });
      if (failed.length === 0) return;
      // A destination deleted meanwhile has no topic any more: read the destinations again, and
      // drop the writes of those no longer routed to rather than retry them for ever.
      await deps.destinations.refresh();
      const retried = failed.filter((f) => deps.destinations.routes(f.route.destinationId));
      const dropped = failed.filter((f) => !retried.includes(f));
      if (dropped.length > 0)
        logger.info('writes to destinations no longer routed to were dropped', {
          destinations: dropped.map((f) => f.route.destinationId),
        });
      if (retried.length > 0) throw retried[0]!.error;
    },
  });

  function reportFailures(failures: readonly TransformFailure[]): void {
    const byDestination = new Map<string, TransformFailure[]>();
    for (const f of failures) {
      const list = byDestination.get(f.route.destinationId);
      if (list) list.push(f);
      else byDestination.set(f.route.destinationId, [f]);
    }
    for (const [destination, list] of byDestination) {
      metrics.transformFailures.inc({ destination }, list.length);
      logger.warn('events not routed to a destination: its transform failed (they stay everywhere else)', {
        destination,
        count: list.length,
        reason: list[0]!.reason,
        eventIds: list.slice(0, LOGGED_IDS).map((f) => f.event.event.id),
      });
    }
  }
}
