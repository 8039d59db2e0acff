/**
 * `tally dlq-replay`: sends the records of the dead-letter topic back to the
 * events topic after a fix, once per source position (every consumer group
 * dead-letters its own copy of a poison record). Reads up to the dead-letter
 * topic's end as it was at the start (at least), through its own consumer group,
 * so a record is replayed once however often the command runs. Safe to repeat an
 * event: the sinks deduplicate by event id.
 */
import type { Stoppable } from '../infra/lifecycle.ts';
import type { EventLog, LogRecord } from '../infra/log/event-log.ts';
import type { Logger } from '../infra/logger.ts';

export interface ReplayOptions {
  log: EventLog;
  logger: Logger;
  dlqTopic: string;
  eventsTopic: string;
  /** The replay's consumer group (what it has replayed is committed there). */
  groupId: string;
  /** Only records dead-lettered by this consumer group (header `tally-group`); all when absent. */
  fromGroup?: string;
  maxWaitMs?: number;
}

export interface ReplaySummary {
  /** Dead-letter records read. */
  read: number;
  /** Records sent back to the events topic. */
  replayed: number;
  /** Copies of an already replayed source position, or of another group when filtered. */
  skipped: number;
  /** Why the records had been dead-lettered, with counts. */
  reasons: Record<string, number>;
}

/** Replays until the dead-letter topic's end offsets as of the call; resolves with what it did. */
export async function replayDeadLetters(options: ReplayOptions): Promise<ReplaySummary> {
  const summary: ReplaySummary = { read: 0, replayed: 0, skipped: 0, reasons: {} };
  const end = await options.log.endOffsets(options.dlqTopic);
  const committed = await options.log.committedOffsets(options.groupId, options.dlqTopic);
  const remaining = new Set(
    [...end].filter(([p, offset]) => offset > (committed.get(p) ?? 0n)).map(([p]) => p),
  );
  if (remaining.size === 0) return summary;

  const seen = new Set<string>();
  const producer = options.log.producer();
  const consumer = options.log.consumer({
    groupId: options.groupId,
    topics: [options.dlqTopic],
    fromBeginning: true,
    maxWaitMs: options.maxWaitMs ?? 200,
  });
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  let failure: unknown;

  await consumer
    .run(async (batch) => {
      const limit = end.get(batch.partition) ?? 0n;
      const out: LogRecord[] = [];
      // Every record of the batch is replayed (its commit covers them all); the end offsets as
      // of the start only tell when to stop.
      for (const record of batch.records) {
        summary.read++;
        const h = record.headers;
        const reason = (h['tally-error'] ?? 'unknown').split(':')[0] ?? 'unknown';
        summary.reasons[reason] = (summary.reasons[reason] ?? 0) + 1;
        const source = `${h['tally-source-topic']}/${h['tally-source-partition']}/${h['tally-source-offset']}`;
        if ((options.fromGroup && h['tally-group'] !== options.fromGroup) || seen.has(source)) {
          summary.skipped++;
          continue;
        }
        seen.add(source);
        const headers = Object.fromEntries(Object.entries(h).filter(([k]) => !k.startsWith('tally-')));
        out.push({
          key: record.key,
          value: record.value,
          headers: { ...headers, 'tally-replayed-from': source },
        });
      }
      await producer.send(options.eventsTopic, out);
      summary.replayed += out.length;
      const last = batch.records[batch.records.length - 1]!.offset;
      if (last + 1n >= limit) {
        remaining.delete(batch.partition);
        if (remaining.size === 0) finish();
      }
    })
    .catch((error: unknown) => {
      failure = error;
      finish();
    });
  const stopper: Stoppable = { name: 'dlq-replay', stop: () => consumer.stop() };
  await done;
  await stopper.stop();
  if (failure) throw failure;
  options.logger.info('dead letters replayed', { ...summary });
  return summary;
}
