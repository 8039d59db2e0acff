/**
 * Test support: runs `tally <roles…>` as a child process, as a user would,
 * and learns its bound ports from its start-up log.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const TALLY = join(import.meta.dirname, '..', '..', 'bin', 'tally');

export interface TallyProcess {
  readonly child: ChildProcess;
  httpPort?: number;
  grpcPort?: number;
  /** Where /metrics is served (the gateway's port, or the metrics server's). */
  metricsPort?: number;
  /** Every log line so far (JSON lines parsed where possible). */
  readonly lines: string[];
  /** Sends `signal` and resolves with the exit code. */
  kill(signal: NodeJS.Signals): Promise<number | null>;
  /** Resolves with the exit code once the process exits. */
  exited: Promise<number | null>;
}

/**
 * Starts tally and resolves once it logged "consumers joined": its edge serves and each of its
 * consumer roles is a member of its group (with `untilServing`, once it logged "tally started":
 * the edge serves, consumers may still be joining). The metrics server takes any free port
 * (TALLY_METRICS_PORT=0) unless `env` says otherwise, so that several processes can run side by side.
 * Access control is off (TALLY_AUTH=off) unless `env` sets TALLY_AUTH: on the real servers a
 * process runs it by default, and the tests of other features call without credentials; the
 * access-control tests turn it on with their own keys (access-control.contract.ts).
 */
export async function startTally(
  roles: string[],
  env: Record<string, string>,
  startTimeoutMs = 60_000,
  options: { untilServing?: boolean } = {},
): Promise<TallyProcess> {
  const startedMessage = options.untilServing ? 'tally started' : 'consumers joined';
  // Only what the test passes: a TALLY_* variable of the test's own environment (say, the local
  // servers' addresses) must not switch a port the test wants embedded to a server.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TALLY_')));
  const child = spawn(TALLY, roles, {
    env: { ...inherited, TALLY_LOG_LEVEL: 'info', TALLY_METRICS_PORT: '0', TALLY_AUTH: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const proc: TallyProcess = {
    child,
    lines,
    exited,
    async kill(signal) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  const started = new Promise<void>((resolve, reject) => {
    const onLine = (line: string) => {
      lines.push(line);
      if (process.env.TALLY_TEST_VERBOSE) process.stderr.write(`[tally ${child.pid}] ${line}\n`);
      let entry: { msg?: string; port?: number } | undefined;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry?.msg === 'gateway listening') proc.httpPort = entry.port;
      if (entry?.msg === 'grpc listening') proc.grpcPort = entry.port;
      if (entry?.msg === 'metrics listening') proc.metricsPort = entry.port;
      if (entry?.msg === startedMessage) resolve();
    };
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', onLine);
    exited.then((code) =>
      reject(
        new Error(
          `tally ${roles.join(' ')} exited with ${code} before starting:\n${lines.slice(-20).join('\n')}`,
        ),
      ),
    );
    setTimeout(
      () =>
        reject(
          new Error(
            `tally ${roles.join(' ')} did not start in ${startTimeoutMs} ms:\n${lines.slice(-20).join('\n')}`,
          ),
        ),
      startTimeoutMs,
    ).unref();
  });
  try {
    await started;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return proc;
}

/**
 * Ports handed out are drawn below the kernel's ephemeral range, which outgoing connections
 * (a Kafka or Redis client's) take their local ports from: a port asked of the kernel with
 * listen(0) and closed again can be the local end of someone's connection a moment later, or be
 * handed out again by the next listen(0). Ports of the local servers (15432, 16379, 17001-17003
 * and their cluster bus ports 27001-27003, 19092-19093) lie outside the range drawn from.
 */
const PORT_RANGE = { low: 20_000, high: 26_999 };
const handedOut = new Set<number>();

/**
 * A TCP port free on 127.0.0.1 when this returned and not handed out before by this process
 * (for a process that must keep its port across restarts, or a server the test starts itself).
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = PORT_RANGE.low + Math.floor(Math.random() * (PORT_RANGE.high - PORT_RANGE.low + 1));
    if (handedOut.has(port)) continue;
    if (await bindable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`no free port found in ${PORT_RANGE.low}-${PORT_RANGE.high} after 200 tries`);
}

async function bindable(port: number): Promise<boolean> {
  const server = createServer();
  const ok = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (ok) await new Promise((resolve) => server.close(resolve));
  return ok;
}
