/**
 * `tally deliveries list|attempts|redeliver|recover`: the senders' deliveries on the configured
 * database, through the same methods as tally.v1.DestinationService's ListDeliveries,
 * ListAttempts, Redeliver and Recover (main.ts hands them in), so the command line gets the API's
 * validation, paging and errors. Exit status: 0 done, 1 refused (an unknown id, a delivery that
 * cannot be sent again), 2 a bad command line (the message names the flag).
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { type Timestamp, timestampDate, timestampFromMs } from '@bufbuild/protobuf/wkt';
import { formatColumns, minuteTime } from '../domain/text-table.ts';
import {
  type Delivery,
  type ListAttemptsRequest,
  ListAttemptsRequestSchema,
  ListAttemptsResponseSchema,
  type ListDeliveriesRequest,
  ListDeliveriesRequestSchema,
  ListDeliveriesResponseSchema,
  type RecoverRequest,
  RecoverRequestSchema,
  RecoverResponseSchema,
  type RedeliverRequest,
  RedeliverRequestSchema,
  RedeliverResponseSchema,
} from '../gen/tally/v1/destinations_pb.js';
import { AppError, Code } from '../infra/app-error.ts';
import { DELIVERIES_USAGE, DeliveriesArgsError, parseDeliveriesArgs } from './deliveries-args.ts';
import type { DestinationsCommandIo } from './destinations-command.ts';

/** The delivery methods of tally.v1.DestinationService (query/delivery-admin.ts). */
export interface DeliveryApi {
  listDeliveries(
    request: ListDeliveriesRequest,
  ): Promise<MessageInitShape<typeof ListDeliveriesResponseSchema>>;
  listAttempts(request: ListAttemptsRequest): Promise<MessageInitShape<typeof ListAttemptsResponseSchema>>;
  redeliver(request: RedeliverRequest): Promise<MessageInitShape<typeof RedeliverResponseSchema>>;
  recover(request: RecoverRequest): Promise<MessageInitShape<typeof RecoverResponseSchema>>;
}

/** The delivery API on the configured database, and how to close it. */
export type OpenDeliveries = () => Promise<{ deliveries: DeliveryApi; close(): Promise<void> }>;

/** The flag behind each field the API reports. */
const FLAG_OF_FIELD: Record<string, string> = {
  destination_id: '--destination',
  state: '--state',
  user_id: '--user',
  since: '--since',
  until: '--until',
  page_size: '--limit',
  page_token: '--page',
};

export async function deliveriesCommand(
  args: readonly string[],
  open: OpenDeliveries,
  io: DestinationsCommandIo,
  now: () => number = Date.now,
): Promise<number> {
  if (args[0] === '--help' || args[0] === '-h' || args[0] === 'help') {
    io.out.write(`${DELIVERIES_USAGE}\n`);
    return 0;
  }
  let action: ReturnType<typeof parseDeliveriesArgs>;
  try {
    action = parseDeliveriesArgs(args, now());
  } catch (error) {
    if (!(error instanceof DeliveriesArgsError)) throw error;
    io.err.write(`tally: ${error.message}\n${DELIVERIES_USAGE}\n`);
    return 2;
  }
  const time = (ms: number | undefined) => (ms === undefined ? undefined : timestampFromMs(ms));
  const { deliveries, close } = await open();
  try {
    switch (action.action) {
      case 'list': {
        const page = create(
          ListDeliveriesResponseSchema,
          await deliveries.listDeliveries(
            create(ListDeliveriesRequestSchema, {
              destinationId: action.destinationId ?? '',
              state: action.state ?? '',
              userId: action.userId ?? '',
              since: time(action.sinceMs),
              until: time(action.untilMs),
              pageSize: action.pageSize,
              pageToken: action.pageToken ?? '',
            }),
          ),
        );
        io.out.write(deliveryTable(page.deliveries));
        if (page.nextPageToken !== '') io.out.write(`next page: --page ${page.nextPageToken}\n`);
        return 0;
      }
      case 'attempts': {
        const { attempts } = create(
          ListAttemptsResponseSchema,
          await deliveries.listAttempts(create(ListAttemptsRequestSchema, { id: action.id })),
        );
        io.out.write(
          attempts.length === 0
            ? `delivery ${action.id}: not attempted yet\n`
            : formatColumns([
                ['ATTEMPT', 'AT', 'OUTCOME', 'STATUS', 'LATENCY', 'ERROR'],
                ...attempts.map((a) => [
                  String(a.attempt),
                  secondTime(a.attemptedAt),
                  a.outcome,
                  a.status === undefined ? '—' : String(a.status),
                  `${a.latencyMs} ms`,
                  a.error === '' ? '—' : a.error,
                ]),
              ]),
        );
        return 0;
      }
      case 'redeliver': {
        const { delivery } = create(
          RedeliverResponseSchema,
          await deliveries.redeliver(create(RedeliverRequestSchema, { id: action.id })),
        );
        io.out.write(
          `delivery ${action.id} is pending again: attempted${delivery?.nextAttemptAt ? ` from ${secondTime(delivery.nextAttemptAt)}` : ' soon'} under the same webhook-id\n`,
        );
        return 0;
      }
      case 'recover': {
        const { recovered } = create(
          RecoverResponseSchema,
          await deliveries.recover(
            create(RecoverRequestSchema, {
              id: action.destinationId,
              since: timestampFromMs(action.sinceMs),
            }),
          ),
        );
        io.out.write(
          `${recovered} dead letter${recovered === 1 ? '' : 's'} of ${action.destinationId} since ${secondTime(timestampFromMs(action.sinceMs))} pending again\n`,
        );
        return 0;
      }
    }
  } catch (error) {
    if (!(error instanceof AppError) || error.code === Code.INTERNAL || error.code === Code.UNAVAILABLE)
      throw error;
    if (error.code === Code.INVALID_ARGUMENT && error.fieldViolations.length > 0) {
      for (const v of error.fieldViolations) {
        const flag = FLAG_OF_FIELD[v.field];
        io.err.write(`tally: ${flag === undefined ? v.field : flag}: ${v.description}\n`);
      }
      return 2;
    }
    io.err.write(`tally: deliveries ${action.action}: ${error.message}\n`);
    return error.code === Code.INVALID_ARGUMENT ? 2 : 1;
  } finally {
    await close();
  }
}

/** `2026-12-06 21:39:05Z`. */
function secondTime(t: Timestamp | undefined): string {
  return t === undefined ? '—' : `${timestampDate(t).toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

function lastOf(d: Delivery): string {
  const parts = [
    ...(d.lastStatus === undefined ? [] : [String(d.lastStatus)]),
    ...(d.lastError === '' ? [] : [d.lastError]),
  ];
  return parts.length === 0 ? '—' : parts.join(' ');
}

/** The listing: one line per delivery, aligned columns. */
function deliveryTable(all: readonly Delivery[]): string {
  if (all.length === 0) return 'no deliveries\n';
  return formatColumns([
    ['ID', 'DESTINATION', 'STATE', 'USER', 'EVENT', 'ATTEMPTS', 'NEXT', 'LAST', 'CREATED'],
    ...all.map((d) => [
      d.id,
      d.destinationId,
      d.state,
      d.userId === '' ? '—' : d.userId,
      `${d.eventType} ${d.eventId}`,
      String(d.attempts),
      d.state === 'pending' ? secondTime(d.nextAttemptAt) : '—',
      lastOf(d),
      minuteTime(d.createdAt && timestampDate(d.createdAt)),
    ]),
  ]);
}
