/**
 * Test support: a Kafka broker of the test's own (single-node KRaft, from the
 * jars `scripts/install-deps.sh` fetched), on free loopback ports, that the test
 * may stop and start without disturbing the shared broker other tests use.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { waitFor } from './real-servers.ts';
import { selfSignedCertificate } from './self-signed.ts';
import { freePort } from './tally-process.ts';

const VERSION = process.env.TALLY_KAFKA_VERSION ?? '4.3.1';
const HOME =
  process.env.TALLY_KAFKA_HOME ??
  join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'tally', `kafka-${VERSION}`);
const LOG4J2 = join(import.meta.dirname, '..', '..', 'scripts', 'kafka', 'log4j2.yaml');

export interface PrivateKafka {
  /** `host:port` for TALLY_KAFKA_BROKERS. */
  readonly brokers: string;
  /** With `secure`: the listeners that ask for SASL and for TLS, the user and the CA. */
  readonly secure?: SecureListeners;
  start(): Promise<void>;
  /** SIGTERM, and waits for the broker to exit. */
  stop(): Promise<void>;
  /** Stops it if running and deletes its files. */
  cleanup(): Promise<void>;
}

export interface SecureListeners {
  /** SASL over plaintext: PLAIN and SCRAM-SHA-512 for `user`. */
  saslBrokers: string;
  /** TLS (a self-signed certificate for 127.0.0.1), no authentication. */
  tlsBrokers: string;
  user: { username: string; password: string };
  /** The PEM file of the certificate the TLS listener presents (its own CA). */
  caFile: string;
}

/**
 * `secure`: besides the plaintext listener, one that asks for SASL (PLAIN, SCRAM-SHA-512) and one
 * that speaks TLS with a certificate made for the occasion (openssl).
 */
export async function createPrivateKafka(options: { secure?: boolean } = {}): Promise<PrivateKafka> {
  const libs = join(HOME, 'libs');
  if (!existsSync(join(libs, '.tally-complete')))
    throw new Error(`Kafka jars missing in ${libs}: run scripts/install-deps.sh`);
  const dir = mkdtempSync(join(tmpdir(), 'tally-kafka-'));
  const [port, controllerPort] = [await freePort(), await freePort()];
  const properties = join(dir, 'server.properties');
  let listeners = `PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controllerPort}`;
  let secure: SecureListeners | undefined;
  const secureProperties: string[] = [];
  const formatArgs: string[] = [];
  if (options.secure) {
    const [saslPort, tlsPort] = [await freePort(), await freePort()];
    const user = { username: 'tally', password: `pw-${randomBytes(6).toString('hex')}` };
    const caFile = await selfSignedCertificate(dir);
    const keystore = join(dir, 'keystore.pem');
    // Kafka's PEM key store: the private key (PKCS#8, unencrypted) and the certificate chain.
    writeFileSync(keystore, readFileSync(join(dir, 'key.pem'), 'utf8') + readFileSync(caFile, 'utf8'));
    listeners += `,SASL_PLAINTEXT://127.0.0.1:${saslPort},SSL://127.0.0.1:${tlsPort}`;
    secureProperties.push(
      'sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512',
      `listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${user.username}="${user.password}";`,
      'listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
      'listener.name.ssl.ssl.keystore.type=PEM',
      `listener.name.ssl.ssl.keystore.location=${keystore}`,
      'listener.name.ssl.ssl.client.auth=none',
    );
    formatArgs.push('--add-scram', `SCRAM-SHA-512=[name=${user.username},password=${user.password}]`);
    secure = {
      saslBrokers: `127.0.0.1:${saslPort}`,
      tlsBrokers: `127.0.0.1:${tlsPort}`,
      user,
      caFile,
    };
  }
  writeFileSync(
    properties,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.bootstrap.servers=127.0.0.1:${controllerPort}`,
      `listeners=${listeners}`,
      `advertised.listeners=${listeners}`,
      'inter.broker.listener.name=PLAINTEXT',
      'controller.listener.names=CONTROLLER',
      'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL',
      ...secureProperties,
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
    java('kafka.tools.StorageTool', [
      'format',
      '--standalone',
      '-t',
      clusterId,
      '-c',
      properties,
      ...formatArgs,
    ]),
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
    ...(secure && { secure }),
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
