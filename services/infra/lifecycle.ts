/**
 * What every role returns from `start`: something that drains and stops.
 */

export interface Stoppable {
  /** Role name, for logs. */
  readonly name: string;
  /** Stop accepting work, finish in-flight work (bounded by the drain timeout), release resources. */
  stop(): Promise<void>;
}

/** Resolves as `promise` does, or rejects with `onTimeout()` once `ms` have passed first. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
