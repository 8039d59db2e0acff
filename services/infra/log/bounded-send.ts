/**
 * One producer send as both Kafka adapters make it: bounded by the caller's deadline, and with a
 * producer the client gave up on replaced before the next send.
 */
import { AppError, Code } from '../app-error.ts';
import { withTimeout } from '../lifecycle.ts';
import type { Logger } from '../logger.ts';

export interface BoundedSendOptions {
  timeoutMs: number;
  log: Logger;
  /** True while the producer that made `work` is still the one sends use. */
  isCurrent: () => boolean;
  /** Starts over with a new producer. */
  replace: () => Promise<void>;
}

/**
 * Awaits `work`. Not acknowledged within `timeoutMs`: UNAVAILABLE (the write may still land; the
 * sinks deduplicate a client's retry). Failed: the client retries what it can, so what reaches
 * here it gave up on, and a producer that failed once can stay failed for good (after a broker
 * restart kafkajs may call itself disconnected, or its idempotence sequence numbers no longer
 * match the broker's: OUT_OF_ORDER_SEQUENCE_NUMBER is not retriable); the next send goes through
 * a new producer, with a new producer id.
 */
export async function boundedSend(work: Promise<unknown>, options: BoundedSendOptions): Promise<void> {
  try {
    await withTimeout(
      work,
      options.timeoutMs,
      () => new AppError(Code.UNAVAILABLE, `Kafka did not acknowledge within ${options.timeoutMs} ms`),
    );
  } catch (error) {
    work.catch(() => {}); // a late failure of a timed-out send was already reported
    if (error instanceof AppError) throw error;
    if (options.isCurrent()) {
      options.log.warn('Kafka write failed; the next send uses a new producer', {
        error: error instanceof Error ? `${error.name}: ${error.message}` : String(error),
      });
      void options.replace();
    }
    throw new AppError(Code.UNAVAILABLE, 'Kafka write failed', { cause: error });
  }
}
