/**
 * The test runner's reporter for `npm test`: Node's `spec` reporter, plus a list of every skipped
 * test with its reason, printed just before the closing totals, so that a suite skipped on a
 * machine that lacks something (helm, k6, chromium, a server) cannot go unnoticed in a long log.
 * Usage: node --test --test-reporter=./scripts/test-reporter.ts …
 */
import { relative } from 'node:path';
import { finished } from 'node:stream/promises';
import { spec } from 'node:test/reporters';

interface TestEvent {
  type: string;
  data: { name?: string; file?: string; nesting?: number; skip?: string | boolean; message?: string };
}

export default async function* reporter(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  const inner = new spec();
  const out: string[] = [];
  inner.on('data', (chunk: string | Buffer) => out.push(String(chunk)));
  const skipped: string[] = [];
  let listed = false;
  for await (const event of source) {
    const { data } = event;
    if (event.type === 'test:pass' && data.skip !== undefined && data.skip !== false) {
      const reason = typeof data.skip === 'string' ? data.skip : 'no reason given';
      skipped.push(`${data.file ? relative(process.cwd(), data.file) : '?'}: ${data.name}: ${reason}`);
    }
    // The totals are the run's last diagnostics, at the top level; the list goes right before them.
    if (
      !listed &&
      event.type === 'test:diagnostic' &&
      data.nesting === 0 &&
      /^tests \d+$/.test(data.message ?? '')
    ) {
      listed = true;
      yield* out.splice(0);
      if (skipped.length > 0)
        yield `\nskipped ${skipped.length} test(s):\n${skipped.map((s) => `  - ${s}`).join('\n')}\n\n`;
    }
    inner.write(event);
    yield* out.splice(0);
  }
  inner.end();
  await finished(inner);
  yield* out.splice(0);
}
