/**
 * The delivery phase's reckoning and its receivers (bench/phases/delivery.ts, delivery.report.ts,
 * bench/lib/webhook-sink.ts): acknowledged → first arrival by event id, the isolation verdicts
 * against all-healthy, and a receiver that keeps each id's first arrival and answers after its
 * latency. No server needed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CpuUse } from '../bench/lib/proc.ts';
import type { IsolationRun, Results } from '../bench/lib/results.ts';
import type { SummaryRow } from '../bench/lib/summary.ts';
import { startWebhookSinks } from '../bench/lib/webhook-sink.ts';
import { deliveryRows } from '../bench/phases/delivery.report.ts';
import { arrivalLatency } from '../bench/phases/delivery.ts';

test('latency is first arrival less acknowledgement, by id; events never arrived are counted apart', () => {
  const acked = new Map([
    ['a', 1_000],
    ['b', 1_000],
    ['c', 2_000],
    ['d', 2_000],
  ]);
  const q = arrivalLatency(acked, [
    ['a', 1_050],
    ['b', 1_300],
    ['c', 1_990], // the receiver's clock read before the harness's acknowledgement came back: 0
    ['x', 5_000], // not one of the run's events
  ]);
  assert.deepEqual(q, { n: 3, p50: 50, p99: 300, max: 300, unseen: 1 });
});

const cpu: CpuUse = { byGroup: {}, machineBusyPct: 50, cores: 2, otherPct: 0, waitByGroup: {}, seconds: 30 };
const run = (deliveredPerSecond: number, p99: number): IsolationRun => ({
  others: '',
  acknowledged: 15_000,
  deliveredPerSecond,
  ms: { n: 15_000, p50: p99 / 2, p99, max: p99, unseen: 0 },
  slowRequests: 0,
  cpu,
});

function isolationRows(allHealthy: IsolationRun, withFaults: IsolationRun): SummaryRow[] {
  const rows: SummaryRow[] = [];
  deliveryRows(
    {
      delivery: {
        receiverLatencyMs: 5,
        slowLatencyMs: 2000,
        concurrency: 100,
        throughput: { steps: [], stepSeconds: 20 },
        isolation: { rate: 500, seconds: 30, allHealthy, withFaults },
      },
    } as unknown as Results,
    rows,
  );
  return rows.filter((r) => r.label.startsWith('Healthy destination'));
}

test('isolation: the healthy destination against all healthy — ≥ 90 % of the throughput, p99 within 20 %', () => {
  const [tput, p99] = isolationRows(run(500, 100), run(460, 119));
  assert.equal(tput!.ratio, '92 %');
  assert.equal(tput!.ratioOk, true);
  assert.equal(p99!.ratio, '1.19×');
  assert.equal(p99!.ratioOk, true);
  const [tput2, p992] = isolationRows(run(500, 100), run(440, 130));
  assert.equal(tput2!.ratioOk, false);
  assert.equal(p992!.ratioOk, false);
});

test('a receiver keeps each event id’s first arrival and answers after its latency', async (t) => {
  const { server, port } = await startWebhookSinks();
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const control = `http://127.0.0.1:${port}`;
  const made = (await (await fetch(`${control}/sinks?latencyMs=50&record=1`, { method: 'POST' })).json()) as {
    id: string;
    port: number;
  };
  const post = (body: string) => fetch(`http://127.0.0.1:${made.port}/hook`, { method: 'POST', body });
  const started = Date.now();
  const first = await post(JSON.stringify({ id: 'e1', type: 't' }));
  assert.equal(first.status, 200);
  assert.ok(Date.now() - started >= 45, 'answered after its latency');
  await post(JSON.stringify({ id: 'e1' })); // a second attempt: the first arrival stays
  await post('not json');
  const stats = (await (await fetch(`${control}/sinks/${made.id}?arrivals=1`)).json()) as {
    requests: number;
    answered: number;
    recorded: number;
    arrivals: [string, number][];
  };
  assert.equal(stats.requests, 3);
  assert.equal(stats.answered, 3);
  assert.equal(stats.recorded, 1);
  assert.equal(stats.arrivals[0]![0], 'e1');
  assert.ok(
    Math.abs(stats.arrivals[0]![1] - started) < 45,
    'the arrival is when the request came, not when it was answered',
  );
  assert.equal((await fetch(`${control}/sinks/${made.id}`, { method: 'DELETE' })).status, 200);
  assert.equal((await fetch(`${control}/sinks/${made.id}`)).status, 404, 'closed and forgotten');
});
