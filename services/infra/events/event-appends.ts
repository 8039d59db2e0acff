/**
 * The signal that events were stored, for the event log's long-polls (docs/events-api.md): the
 * persister sends, after each insert, the subjects (users and targets) of the events it stored on
 * the SQL port's channel `event_appended` (PostgreSQL NOTIFY, delivered on commit); the query role
 * listens once per process and wakes the waits of those subjects. A subject travels as a short
 * digest, so one notification names hundreds of them; a digest shared by two subjects only wakes
 * a wait for nothing (the wait reads its page again and goes on waiting).
 */
import { createHash } from 'node:crypto';
import type { EventSubject } from '../../domain/event-access.ts';
import type { Logger } from '../logger.ts';
import { MAX_NOTIFY_PAYLOAD_BYTES, type SqlDatabase } from '../sql/sql-database.ts';

/** The SQL port's channel of the signal. */
export const APPENDS_CHANNEL = 'event_appended';

/** The digest a subject travels as: 9 base64url characters (54 bits). */
export function subjectKey(subject: EventSubject): string {
  return createHash('sha256').update(`${subject.kind}\0${subject.id}`).digest('base64url').slice(0, 9);
}

/** The payloads naming the subjects of `events`: distinct keys, space-separated, each payload under the limit. */
export function appendPayloads(events: readonly { userId: string; target: string }[]): string[] {
  const keys = new Set<string>();
  for (const e of events) {
    keys.add(subjectKey({ kind: 'target', id: e.target }));
    if (e.userId !== '') keys.add(subjectKey({ kind: 'user', id: e.userId }));
  }
  const payloads: string[] = [];
  let current = '';
  for (const key of keys) {
    if (current.length + 1 + key.length > MAX_NOTIFY_PAYLOAD_BYTES) {
      payloads.push(current);
      current = '';
    }
    current = current === '' ? key : `${current} ${key}`;
  }
  if (current !== '') payloads.push(current);
  return payloads;
}

/** Signals that `events` were stored (one statement; nothing when there are none). */
export async function signalAppends(
  sql: Pick<SqlDatabase, 'notify'>,
  events: readonly { userId: string; target: string }[],
): Promise<void> {
  if (events.length > 0) await sql.notify(APPENDS_CHANNEL, appendPayloads(events));
}

/** A wait for appends to one subject, registered before its caller reads (so none is missed). */
export interface AppendSubscription {
  /**
   * Resolves `true` at the first append to the subject since the subscription or the previous
   * `next` (at once if one came meanwhile), or when signals may have been missed; `false` when
   * `signal` aborts first.
   */
  next(signal: AbortSignal): Promise<boolean>;
  close(): void;
}

export interface AppendWaits {
  subscribe(subject: EventSubject): AppendSubscription;
  /** How many subscriptions are open. */
  readonly size: number;
  /** Resolves once listening (or once the first attempt failed). */
  readonly listening: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Listens on the signal's channel and hands each append to the subscriptions of its subjects.
 * Returns at once and listens in the background (`listening` resolves once it does, or once the
 * first attempt failed: the SQL port keeps trying, and wakes every subscription when it resumes,
 * as signals may have been missed meanwhile).
 */
export function createAppendWaits(sql: Pick<SqlDatabase, 'listen'>, logger: Logger): AppendWaits {
  const byKey = new Map<string, Set<() => void>>();
  let size = 0;
  const wakeAll = () => {
    for (const set of byKey.values()) for (const wake of set) wake();
  };
  const unlisten = sql
    .listen(
      APPENDS_CHANNEL,
      (payload) => {
        for (const key of payload.split(' ')) for (const wake of byKey.get(key) ?? []) wake();
      },
      () => {
        logger.info('listening for stored events again: waking every long-poll');
        wakeAll();
      },
    )
    .catch((error: unknown) => {
      logger.warn('cannot listen for stored events: long-polls answer at the end of their wait', { error });
      return async () => {};
    });
  return {
    subscribe(subject) {
      const key = subjectKey(subject);
      let pending = false;
      let resolveNext: ((appended: boolean) => void) | undefined;
      const wake = () => {
        pending = true;
        resolveNext?.(true);
      };
      let set = byKey.get(key);
      if (!set) {
        set = new Set();
        byKey.set(key, set);
      }
      set.add(wake);
      size++;
      let closed = false;
      return {
        next(signal) {
          return new Promise<boolean>((resolve) => {
            const finish = (appended: boolean) => {
              resolveNext = undefined;
              signal.removeEventListener('abort', onAbort);
              if (appended) pending = false;
              resolve(appended);
            };
            const onAbort = () => finish(false);
            if (pending) return finish(true);
            if (signal.aborted) return finish(false);
            resolveNext = finish;
            signal.addEventListener('abort', onAbort, { once: true });
          });
        },
        close() {
          if (closed) return;
          closed = true;
          size--;
          const s = byKey.get(key);
          s?.delete(wake);
          if (s?.size === 0) byKey.delete(key);
          resolveNext?.(false);
        },
      };
    },
    get size() {
      return size;
    },
    listening: unlisten.then(() => {}),
    stop: async () => {
      wakeAll();
      await (await unlisten)();
    },
  };
}
