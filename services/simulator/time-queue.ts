/**
 * A min-heap of future happenings keyed by model time; equal times come out in insertion
 * order, so a scenario stays deterministic.
 */
interface Entry<T> {
  atMs: number;
  order: number;
  item: T;
}

export class TimeQueue<T> {
  readonly #heap: Entry<T>[] = [];
  #order = 0;

  get size(): number {
    return this.#heap.length;
  }

  /** The earliest time in the queue, or Infinity when empty. */
  peekTime(): number {
    return this.#heap[0]?.atMs ?? Number.POSITIVE_INFINITY;
  }

  push(atMs: number, item: T): void {
    const heap = this.#heap;
    const entry: Entry<T> = { atMs, order: this.#order++, item };
    let i = heap.length;
    heap.push(entry);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!before(entry, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = entry;
  }

  /** The earliest entry (its time and item), or undefined when empty. */
  pop(): { atMs: number; item: T } | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined) return undefined;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= heap.length) break;
        const right = left + 1;
        const child = right < heap.length && before(heap[right]!, heap[left]!) ? right : left;
        if (!before(heap[child]!, last)) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = last;
    }
    return { atMs: top.atMs, item: top.item };
  }
}

function before<T>(a: Entry<T>, b: Entry<T>): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.order < b.order);
}
