/**
 * Test support: a Kafka broker of the test's own (single-node KRaft, from the
 * jars `scripts/install-deps.sh` fetched), on free loopback ports, that the test
 * may stop and start without disturbing the shared broker other tests use.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { waitFor } from './real-servers.ts';
import { freePort } from './tally-process.ts';

const VERSION = process.env.TALLY_KAFKA_VERSION ?? '4.3.1';
const HOME =
  process.env.TALLY_KAFKA_HOME ??
  join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'tally', `kafka-${VERSION}`);
const LOG4J2 = join(import.meta.dirname, '..', '..', 'scripts', 'kafka', 'log4j2.yaml');

export interface PrivateKafka {
  /** `host:port` for TALLY_KAFKA_BROKERS. */
  readonly brokers: string;
  start(): Promise<void>;
  /** SIGTERM, and waits for the broker to exit. */
  stop(): Promise<void>;
  /** Stops it if running and deletes its files. */
  cleanup(): Promise<void>;
}

export async function createPrivateKafka(): Promise<PrivateKafka> {
  const libs = join(HOME, 'libs');
  if (!existsSync(join(libs, '.tally-complete')))
    throw new Error(`Kafka jars missing in ${libs}: run scripts/install-deps.sh`);
  const dir = mkdtempSync(join(tmpdir(), 'tally-kafka-'));
  const [port, controllerPort] = [await freePort(), await freePort()];
  const properties = join(dir, 'server.properties');
  writeFileSync(
    properties,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.bootstrap.servers=127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`,
      'inter.broker.listener.name=PLAINTEXT',
      'controller.listener.names=CONTROLLER',
      'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
      `log.dirs=${join(dir, 'data')}`,
      'num.network.threads=2',
      'num.io.threads=2',
      'auto.create.topics.enable=false',
      'group.initial.rebalance.delay.ms=0',
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=3',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'transaction.state.log.num.partitions=3',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
    ].join('\n'),
  );
  const java = (main: string, args: string[]) => [
    '-Xms128m',
    '-Xmx384m',
    `-Dkafka.logs.dir=${join(dir, 'logs')}`,
    `-Dlog4j2.configurationFile=${LOG4J2}`,
    '-cp',
    `${libs}/*`,
    main,
    ...args,
  ];
  // A cluster id starting with '-' reads as an option to StorageTool: draw again, as Kafka's own generator does.
  let clusterId = randomBytes(16).toString('base64url');
  while (clusterId.startsWith('-')) clusterId = randomBytes(16).toString('base64url');
  await promisify(execFile)(
    'java',
    java('kafka.tools.StorageTool', ['format', '--standalone', '-t', clusterId, '-c', properties]),
  );

  let child: ChildProcess | undefined;
  const brokers = `127.0.0.1:${port}`;
  const answers = async () => {
    const admin = new Kafka({
      brokers: [brokers],
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
      connectionTimeout: 1_000,
    }).admin();
    try {
      await admin.connect();
      await admin.listTopics();
      return true;
    } catch {
      return false;
    } finally {
      await admin.disconnect().catch(() => {});
    }
  };
  const kafka: PrivateKafka = {
    brokers,
    async start() {
      child = spawn('java', java('kafka.Kafka', [properties]), { stdio: 'ignore' });
      await waitFor(
        answers,
        () => `the private Kafka at ${brokers} does not answer (logs in ${dir}/logs)`,
        120_000,
        500,
      );
    },
    async stop() {
      if (!child || child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const force = setTimeout(() => child?.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(force);
    },
    async cleanup() {
      await kafka.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return kafka;
}
