/**
 * `tally receiver`: runs the local webhook receiver (receiver.ts) until `signal` aborts (SIGINT or
 * SIGTERM in main.ts), printing a line per delivery — or one line a second while more than
 * `LINES_PER_SECOND` come in a second — and a summary when stopped. Exit status 0, 2 for a bad
 * command line.
 */

import { type DeliveryRecord, type ReceiverStats, startReceiver } from './receiver.ts';
import { parseReceiverArgs, RECEIVER_USAGE, ReceiverArgsError } from './receiver-args.ts';

export interface ReceiverCommandIo {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
  signal: AbortSignal;
}

/** Deliveries printed one by one in a second; past it, that second is summed up in one line. */
export const LINES_PER_SECOND = 20;

function clock(): string {
  return new Date().toISOString().slice(11, 23);
}

function line(d: DeliveryRecord): string {
  const parts = [clock(), String(d.status), d.webhookId ?? '-'];
  if (d.user !== undefined) parts.push(`user=${d.user}`);
  if (d.place !== undefined) parts.push(`place=${d.place}`);
  if (d.duplicate) parts.push('DUPLICATE');
  if (d.outOfOrderAfter !== undefined) parts.push(`OUT-OF-ORDER after ${d.outOfOrderAfter}`);
  if (d.reason) parts.push(`(${d.reason})`);
  return `${parts.join(' ')}\n`;
}

/** The summary's counts (per-user detail stays in GET /stats). */
export function summaryOf(stats: ReceiverStats) {
  const { users, recentViolations: _, ...counts } = stats;
  return { ...counts, users: Object.keys(users).length };
}

export async function receiverCommand(args: readonly string[], io: ReceiverCommandIo): Promise<number> {
  if (args[0] === '--help' || args[0] === '-h') {
    io.out.write(`${RECEIVER_USAGE}\n`);
    return 0;
  }
  let options: ReturnType<typeof parseReceiverArgs>;
  try {
    options = parseReceiverArgs(args);
  } catch (error) {
    if (!(error instanceof ReceiverArgsError)) throw error;
    io.err.write(`tally receiver: ${error.message}\n${RECEIVER_USAGE}\n`);
    return 2;
  }
  let printed = 0;
  const second = { deliveries: 0, ok: 0, failed: 0, refused: 0, duplicates: 0, outOfOrder: 0 };
  const receiver = await startReceiver({
    ...options,
    onDelivery(d) {
      second.deliveries++;
      if (d.status === 200) second.ok++;
      else if (d.status === options.failStatus) second.failed++;
      else second.refused++;
      if (d.duplicate) second.duplicates++;
      if (d.outOfOrderAfter !== undefined) second.outOfOrder++;
      if (!options.quiet && printed < LINES_PER_SECOND) {
        printed++;
        io.out.write(line(d));
      }
    },
  });
  io.out.write(
    `receiver listening on ${receiver.url} (${options.secrets.length > 0 ? `${options.secrets.length} secret(s)` : 'signatures not checked'}, fail rate ${options.failRate}, latency ${options.latencyMs} ms); GET ${receiver.url}/stats\n`,
  );
  const ticker = setInterval(() => {
    if (!options.quiet && second.deliveries > printed) {
      const total = receiver.stats();
      io.out.write(
        `${clock()} ${second.deliveries}/s: ${second.ok} ok, ${second.failed} failed, ${second.refused} refused, ${second.duplicates} duplicates, ${second.outOfOrder} out of order (received ${total.received}, unique ${total.unique})\n`,
      );
    }
    printed = 0;
    for (const k of Object.keys(second) as (keyof typeof second)[]) second[k] = 0;
  }, 1_000);
  try {
    if (!io.signal.aborted)
      await new Promise((resolve) => io.signal.addEventListener('abort', resolve, { once: true }));
  } finally {
    clearInterval(ticker);
    await receiver.close();
  }
  io.out.write(`summary ${JSON.stringify(summaryOf(receiver.stats()))}\n`);
  return 0;
}
