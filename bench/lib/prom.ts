/**
 * Reads Prometheus text metrics (a process's /metrics) and works out histogram quantiles from
 * the difference of two scrapes, as `histogram_quantile(rate(…))` would.
 */

/** One scrape: every sample, by metric name, with its labels. */
export type Scrape = Map<string, { labels: Record<string, string>; value: number }[]>;

/** Parses the text exposition format (comments skipped). */
export function parseMetrics(text: string): Scrape {
  const out: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[k!] = v!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const value = m[3] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[3]);
    const list = out.get(m[1]!);
    if (list) list.push({ labels, value });
    else out.set(m[1]!, [{ labels, value }]);
  }
  return out;
}

/** Scrapes `http://127.0.0.1:<port>/metrics`; an empty scrape when it does not answer. */
export async function scrape(port: number | undefined): Promise<Scrape> {
  if (port === undefined) return new Map();
  try {
    const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) });
    if (!response.ok) return new Map();
    return parseMetrics(await response.text());
  } catch {
    return new Map();
  }
}

const matches = (labels: Record<string, string>, filter: Record<string, string>) =>
  Object.entries(filter).every(([k, v]) => labels[k] === v);

/** Sum of the samples of `name` whose labels include `filter`. */
export function sumOf(s: Scrape, name: string, filter: Record<string, string> = {}): number {
  let total = 0;
  for (const sample of s.get(name) ?? []) if (matches(sample.labels, filter)) total += sample.value;
  return total;
}

/** Does the scrape hold metric `name` at all? */
export function has(s: Scrape, name: string): boolean {
  return (s.get(name)?.length ?? 0) > 0;
}

/** A histogram's cumulative buckets (upper bound → count), count and sum. */
export interface Histogram {
  buckets: [number, number][];
  count: number;
  sum: number;
}

/** Histogram `name` (base name, without `_bucket`) summed over the series matching `filter`. */
export function histogram(s: Scrape, name: string, filter: Record<string, string> = {}): Histogram {
  const byLe = new Map<number, number>();
  for (const sample of s.get(`${name}_bucket`) ?? []) {
    if (!matches(sample.labels, filter)) continue;
    const le = sample.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(sample.labels.le);
    byLe.set(le, (byLe.get(le) ?? 0) + sample.value);
  }
  return {
    buckets: [...byLe].sort((a, b) => a[0] - b[0]),
    count: sumOf(s, `${name}_count`, filter),
    sum: sumOf(s, `${name}_sum`, filter),
  };
}

/** What `after` observed since `before`. */
export function histogramDelta(after: Histogram, before: Histogram): Histogram {
  const earlier = new Map(before.buckets);
  return {
    buckets: after.buckets.map(([le, n]) => [le, n - (earlier.get(le) ?? 0)]),
    count: after.count - before.count,
    sum: after.sum - before.sum,
  };
}

/**
 * The `q` quantile (0..1) of a histogram, interpolated linearly inside its bucket as Prometheus'
 * histogram_quantile does; NaN when empty. Beyond the last finite bound it answers that bound.
 */
export function quantile(h: Histogram, q: number): number {
  const total = h.buckets.at(-1)?.[1] ?? 0;
  if (total <= 0) return Number.NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, count] of h.buckets) {
    if (count >= rank) {
      if (!Number.isFinite(le)) return prevLe;
      if (count === prevCount) return le;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / (count - prevCount);
    }
    prevLe = le;
    prevCount = count;
  }
  return prevLe;
}
