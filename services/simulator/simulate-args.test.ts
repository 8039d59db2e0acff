import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, test } from 'node:test';
import { SCENARIO_DEFAULTS } from './scenarios.ts';
import {
  parseSimulateArgs,
  SIMULATE_USAGE,
  SimulateArgsError,
  type SimulateOptions,
  simulateCommandLine,
} from './simulate-args.ts';
import { simulateCommand } from './simulate-command.ts';

/** Asserts `argv` is refused with a SimulateArgsError whose message starts with `flag` and matches `detail`. */
function rejects(argv: string[], flag: string, detail?: RegExp): void {
  assert.throws(
    () => parseSimulateArgs(argv),
    (error: unknown) => {
      assert.ok(error instanceof SimulateArgsError, String(error));
      assert.equal(error.helpRequested, false);
      assert.ok(error.message.startsWith(`${flag}: `), `"${error.message}" should start with "${flag}: "`);
      if (detail) assert.match(error.message, detail);
      return true;
    },
  );
}

describe('parseSimulateArgs', () => {
  test('defaults', () => {
    const options = parseSimulateArgs([]);
    const { seed, runId, ...rest } = options;
    assert.deepEqual(rest, {
      scenario: 'clickstream',
      ratePerSecond: 200,
      durationMs: 60_000,
      total: undefined,
      target: { protocol: 'rest', url: 'http://127.0.0.1:8080' },
      batchSize: 50,
      concurrency: 8,
      targets: SCENARIO_DEFAULTS.clickstream.targets,
      users: SCENARIO_DEFAULTS.clickstream.users,
      requestTimeoutMs: 30_000,
      retryForMs: 0,
      ledgerPath: undefined,
      spikes: [],
      demoRules: false,
    } satisfies Omit<SimulateOptions, 'seed' | 'runId'>);
    assert.ok(Number.isSafeInteger(seed) && seed >= 0 && seed < 2 ** 32);
    assert.match(runId, /^[a-z0-9]{8}$/);
    assert.notEqual(parseSimulateArgs([]).runId, runId, 'a new run id each run');
  });

  test('every flag, in both --flag value and --flag=value forms', () => {
    const options = parseSimulateArgs([
      '--scenario',
      'orders',
      '--rate=1500.5',
      '--duration',
      '5m',
      '--target',
      'grpc://localhost:50051',
      '--seed=12345678901',
      '--batch',
      '200',
      '--concurrency=16',
      '--targets',
      '42',
      '--users=7',
      '--run-id',
      'Replay1',
      '--timeout',
      '1500ms',
      '--retry-for=2m',
      '--ledger',
      '/tmp/acked.ndjson',
      '--spike',
      'post/3:at=10s:x=5:for=20s',
    ]);
    assert.deepEqual(options, {
      scenario: 'orders',
      ratePerSecond: 1500.5,
      durationMs: 300_000,
      total: undefined,
      target: { protocol: 'grpc', address: 'localhost:50051' },
      seed: 12345678901,
      batchSize: 200,
      concurrency: 16,
      targets: 42,
      users: 7,
      runId: 'Replay1',
      requestTimeoutMs: 1500,
      retryForMs: 120_000,
      ledgerPath: '/tmp/acked.ndjson',
      spikes: [{ target: 'post/3', atMs: 10_000, factor: 5, forMs: 20_000 }],
      demoRules: false,
    });
  });

  test('per-scenario population defaults', () => {
    for (const scenario of ['social', 'transactions', 'orders'] as const) {
      const options = parseSimulateArgs(['--scenario', scenario]);
      assert.equal(options.targets, SCENARIO_DEFAULTS[scenario].targets);
      assert.equal(options.users, SCENARIO_DEFAULTS[scenario].users);
    }
  });

  test('durations: 30s, 5m, 1h, 1500ms, 1.5m and plain seconds', () => {
    const ms = (d: string) => parseSimulateArgs(['--duration', d]).durationMs;
    assert.equal(ms('30s'), 30_000);
    assert.equal(ms('5m'), 300_000);
    assert.equal(ms('1h'), 3_600_000);
    assert.equal(ms('1500ms'), 1500);
    assert.equal(ms('1.5m'), 90_000);
    assert.equal(ms('45'), 45_000);
  });

  test('--batch defaults to 1 up to 50 events/s, to 50 above', () => {
    assert.equal(parseSimulateArgs(['--rate', '50']).batchSize, 1);
    assert.equal(parseSimulateArgs(['--rate', '0.5']).batchSize, 1);
    assert.equal(parseSimulateArgs(['--rate', '51']).batchSize, 50);
    assert.equal(parseSimulateArgs(['--rate', '10', '--batch', '5']).batchSize, 5);
  });

  test('--total replaces the duration', () => {
    const options = parseSimulateArgs(['--total', '1000']);
    assert.equal(options.total, 1000);
    assert.equal(options.durationMs, undefined);
  });

  test('targets: http, https and grpc origins', () => {
    assert.deepEqual(parseSimulateArgs(['--target', 'http://tally.internal:9000/']).target, {
      protocol: 'rest',
      url: 'http://tally.internal:9000',
    });
    assert.deepEqual(parseSimulateArgs(['--target', 'https://tally.example']).target, {
      protocol: 'rest',
      url: 'https://tally.example',
    });
    assert.deepEqual(parseSimulateArgs(['--target', 'grpc://[::1]:50051']).target, {
      protocol: 'grpc',
      address: '[::1]:50051',
    });
    assert.deepEqual(parseSimulateArgs(['--target', 'grpc+stream://127.0.0.1:50051']).target, {
      protocol: 'grpc-stream',
      address: '127.0.0.1:50051',
    });
    const repeated = simulateCommandLine(parseSimulateArgs(['--target=grpc+stream://h:1', '--seed=1']));
    assert.match(repeated, / --target grpc\+stream:\/\/h:1 /);
  });

  test('--help and -h ask for the usage', () => {
    for (const argv of [['--help'], ['--rate', '5', '-h']]) {
      assert.throws(
        () => parseSimulateArgs(argv),
        (error: unknown) => error instanceof SimulateArgsError && error.helpRequested,
      );
    }
    for (const flag of ['--scenario', '--rate', '--duration', '--total', '--target', '--seed', '--batch'])
      assert.ok(SIMULATE_USAGE.includes(flag), flag);
    for (const flag of ['--concurrency', '--targets', '--users', '--run-id', '--timeout'])
      assert.ok(SIMULATE_USAGE.includes(flag), flag);
  });

  test('each bad value is refused with a message naming its flag', () => {
    rejects(['--scenario', 'chess'], '--scenario', /clickstream, social, transactions, orders; got "chess"/);
    for (const rate of ['0', '-5', 'abc', '1e3', 'NaN', 'Infinity', '2000000', ''])
      rejects(['--rate', rate], '--rate', /greater than 0/);
    for (const duration of ['0', '0s', '-1s', '5d', '1h30m', 'soon', '31d', ''])
      rejects(['--duration', duration], '--duration', /30s, 5m, 1h/);
    for (const target of [
      'localhost:8080',
      'ftp://host:1',
      'http://host:8080/v1',
      'http://u:p@host:1',
      'grpc://host',
      'grpc+stream://host',
      'grpcs://host:1',
      'http://host:8080?x=1',
    ])
      rejects(['--target', target], '--target', /http:\/\/host:port .* grpc:\/\/host:port/);
    for (const seed of ['-1', '1.5', 'x', '9007199254740993']) rejects(['--seed', seed], '--seed', /integer/);
    for (const batch of ['0', '1001', '2.5', 'many'])
      rejects(['--batch', batch], '--batch', /from 1 to 1,000/);
    for (const concurrency of ['0', '-1', '1025']) rejects(['--concurrency', concurrency], '--concurrency');
    for (const targets of ['0', 'ten', '100000001']) rejects(['--targets', targets], '--targets');
    for (const users of ['0', '3.3']) rejects(['--users', users], '--users');
    for (const total of ['0', '-10', '1.5']) rejects(['--total', total], '--total');
    for (const runId of ['', 'has-dash', 'x'.repeat(17), 'é']) rejects([`--run-id=${runId}`], '--run-id');
    rejects(['--timeout', '0'], '--timeout');
    rejects(['--retry-for', 'soon'], '--retry-for');
    rejects(['--retry-for', '-5s'], '--retry-for');
    rejects(['--ledger='], '--ledger');
  });

  test('structural mistakes name the flag too', () => {
    rejects(['--rate'], '--rate', /needs a value/);
    rejects(['--rate', '--batch', '5'], '--rate', /needs a value/);
    rejects(['--rate', '5', '--rate', '6'], '--rate', /more than once/);
    rejects(['--speed', '5'], '--speed', /unknown flag/);
    rejects(['--total', '10', '--duration', '5s'], '--total', /cannot be combined with --duration/);
    assert.throws(() => parseSimulateArgs(['clickstream']), /unexpected argument "clickstream"/);
    assert.throws(() => parseSimulateArgs(['-r', '5']), /unexpected argument "-r"/);
  });

  test('the repeat command line parses back to the same options (with a new run id)', () => {
    for (const argv of [
      ['--scenario', 'social', '--rate', '12.5', '--duration', '90s', '--seed', '99'],
      ['--scenario', 'orders', '--total', '500', '--target', 'grpc://127.0.0.1:50051', '--batch', '7'],
      ['--duration', '1500ms', '--concurrency', '3', '--users', '9', '--targets', '11', '--seed', '0'],
      ['--timeout', '2.5s', '--rate', '1'],
      ['--retry-for', '90s', '--total', '10'],
    ]) {
      const options = parseSimulateArgs(argv);
      const again = parseSimulateArgs(simulateCommandLine(options).split(' ').slice(2));
      assert.deepEqual({ ...again, runId: options.runId }, options);
      const replay = parseSimulateArgs(simulateCommandLine(options, true).split(' ').slice(2));
      assert.deepEqual(replay, options);
    }
  });
});

describe('simulateCommand', () => {
  const capture = () => {
    let text = '';
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        text += chunk.toString();
        callback();
      },
    });
    return { stream, text: () => text };
  };

  test('--help prints the usage and exits 0; a bad flag exits 2 naming it', async () => {
    const out = capture();
    const err = capture();
    assert.equal(await simulateCommand(['--help'], { out: out.stream, err: err.stream }), 0);
    assert.equal(out.text(), SIMULATE_USAGE);
    assert.equal(await simulateCommand(['--rate', 'fast'], { out: out.stream, err: err.stream }), 2);
    assert.match(err.text(), /^tally simulate: --rate: must be a number/);
    assert.ok(err.text().endsWith(SIMULATE_USAGE));
  });
});

test('--spike: a target, when, how many times, how long; repeatable; errors name the flag', () => {
  const options = parseSimulateArgs([
    '--scenario',
    'social',
    '--spike',
    'post/7:at=60s:x=20:for=30s',
    '--spike=https://a.example/x:y:at=0:x=2:for=1m',
  ]);
  assert.deepEqual(options.spikes, [
    { target: 'post/7', atMs: 60_000, factor: 20, forMs: 30_000 },
    { target: 'https://a.example/x:y', atMs: 0, factor: 2, forMs: 60_000 },
  ]);
  assert.match(
    simulateCommandLine(options),
    /--spike post\/7:at=1m:x=20:for=30s --spike https:\/\/a\.example\/x:y:at=0s:x=2:for=1m/,
  );
  for (const [spec, why] of [
    ['post/7:at=60s:x=20', /must be <target>:at=/],
    ['post/7:at=60s:x=1:for=30s', /x must be a whole factor/],
    ['post/7:at=soon:x=2:for=30s', /at: must be a positive duration/],
    ['post/7:at=1s:y=2:for=30s', /"y" is not a spike setting/],
    [':at=1s:x=2:for=30s', /names no target/],
  ] as const)
    assert.throws(
      () => parseSimulateArgs(['--spike', spec]),
      (e: Error) => e.message.startsWith('--spike: ') && why.test(e.message),
      spec,
    );
});

test('--demo-rules takes no value and needs a REST target', () => {
  assert.equal(parseSimulateArgs(['--demo-rules', '--scenario', 'social']).demoRules, true);
  assert.throws(
    () => parseSimulateArgs(['--demo-rules=yes']),
    /^SimulateArgsError: --demo-rules: takes no value/,
  );
  assert.throws(
    () => parseSimulateArgs(['--demo-rules', '--target', 'grpc://127.0.0.1:50051']),
    /--demo-rules: .* needs an http:\/\/ --target/,
  );
  assert.match(simulateCommandLine(parseSimulateArgs(['--demo-rules'])), / --demo-rules/);
});
