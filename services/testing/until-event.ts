/**
 * Test support: wait for a condition that changes when an emitter says so, instead of sleeping
 * and checking.
 */
import type { EventEmitter } from 'node:events';

/**
 * Resolves once `condition()` holds: checked now and at each `event` of `emitter`. Rejects naming
 * `what` when it does not hold within `timeoutMs`.
 */
export function untilEvent(
  emitter: EventEmitter,
  event: string,
  condition: () => boolean,
  what: () => string,
  timeoutMs: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!condition()) return;
      done();
      resolve();
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`not within ${timeoutMs / 1000} s: ${what()}`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      emitter.off(event, check);
    };
    emitter.on(event, check);
    check();
  });
}
