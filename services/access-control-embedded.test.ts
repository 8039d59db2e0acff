/**
 * Access control in embedded mode (`tally all` with no servers): the same contract as on the real
 * servers (access-control.contract.ts), and the safe defaults — on loopback with nothing
 * configured Tally runs open and says how to turn access control on; on another address with no
 * credential configured and without TALLY_AUTH=off it refuses to start, saying why.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  jwtEnv,
  makeKeys,
  newSecretKey,
  rest,
  runAccessMatrix,
  startTestJwks,
} from './access-control.contract.ts';
import { freePort, startTally, type TallyProcess } from './testing/tally-process.ts';

const dirs: string[] = [];
const processes: TallyProcess[] = [];
after(async () => {
  await Promise.all(processes.map((p) => p.kill('SIGTERM')));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tally-auth-'));
  dirs.push(dir);
  return dir;
}

test('embedded mode passes the access-control contract', async () => {
  const jwks = await startTestJwks();
  try {
    const adminKey = newSecretKey();
    const tally = await startTally(['all'], {
      TALLY_DATA_DIR: dataDir(),
      TALLY_HTTP_PORT: String(await freePort()),
      TALLY_GRPC_PORT: String(await freePort()),
      TALLY_BIND_HOST: '127.0.0.1',
      TALLY_EVENTS_PARTITIONS: '2',
      TALLY_AUTH: 'on',
      TALLY_BOOTSTRAP_ADMIN_KEY: adminKey,
      ...jwtEnv(jwks),
    });
    processes.push(tally);
    const logEnd = async () => {
      const text = await (await fetch(`http://127.0.0.1:${tally.httpPort}/metrics`)).text();
      const counts = [...text.matchAll(/^tally_ingest_events_total\{[^}]*\} (\d+)/gm)].map((m) =>
        BigInt(m[1]!),
      );
      return counts.reduce((a, b) => a + b, 0n);
    };
    const target = { httpPort: tally.httpPort!, grpcPort: tally.grpcPort!, adminKey, jwks, logEnd };
    const keys = await makeKeys(target);
    await runAccessMatrix(target, keys);
    for (const secret of [adminKey, ...Object.values(keys)])
      assert.equal(
        tally.lines.find((l) => l.includes(secret)),
        undefined,
        'a key in the log',
      );
  } finally {
    await jwks.close();
  }
});

test('npm start: on loopback with nothing configured, Tally runs open and says how to turn access control on', async () => {
  const tally = await startTally(
    ['all'],
    {
      TALLY_DATA_DIR: dataDir(),
      TALLY_HTTP_PORT: String(await freePort()),
      TALLY_GRPC_PORT: String(await freePort()),
      TALLY_BIND_HOST: '127.0.0.1',
      TALLY_EVENTS_PARTITIONS: '2',
      TALLY_AUTH: '', // unset: the default decides
    },
    60_000,
    { untilServing: true },
  );
  processes.push(tally);
  const line = tally.lines.find((l) => l.includes('access control off'));
  assert.ok(line, 'the start-up log says access control is off');
  assert.match(line, /TALLY_AUTH=on/);
  assert.match(line, /TALLY_BOOTSTRAP_ADMIN_KEY/);
  const answer = await rest(tally.httpPort!, 'POST', '/v1/events', {
    body: { type: 'like', target: 'open/1' },
  });
  assert.equal(answer.status, 200);
});

test('on 0.0.0.0 with no credential configured and without TALLY_AUTH=off, Tally refuses to start', async () => {
  const child = spawn(join(import.meta.dirname, '..', 'bin', 'tally'), ['all'], {
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TALLY_'))),
      TALLY_DATA_DIR: dataDir(),
      TALLY_BIND_HOST: '0.0.0.0',
      TALLY_HTTP_PORT: '0',
      TALLY_GRPC_PORT: '0',
      TALLY_METRICS_PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => {
    output += d;
  });
  child.stderr.on('data', (d) => {
    output += d;
  });
  const [code] = await once(child, 'exit');
  assert.notEqual(code, 0);
  assert.match(output, /TALLY_AUTH/);
  assert.match(output, /without access control/);
  assert.doesNotMatch(output, /gateway listening/);
});
