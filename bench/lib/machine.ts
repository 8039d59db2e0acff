/**
 * What the figures were measured on: the machine (from /proc) and the versions of everything
 * in the path.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import type pg from 'pg';

const run = promisify(execFile);

export interface Machine {
  cpuModel: string;
  cores: number;
  memGiB: number;
  kernel: string;
  /** 1-, 5- and 15-minute load averages when the run started. */
  loadAverage: number[];
}

export function machine(): Machine {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  const cores = cpuinfo.split('\n').filter((l) => /^processor\s*:/.test(l)).length || cpus().length;
  const memKb = Number(/^MemTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  return {
    cpuModel: model,
    cores,
    memGiB: memKb / 1024 / 1024,
    kernel: release(),
    loadAverage: loadavg(),
  };
}

export interface Versions {
  node: string;
  kafka: string;
  redis: string;
  postgres: string;
  k6: string;
  kafkajs: string;
  /** Absent in runs from before the Kafka client comparison. */
  platformaticKafka?: string;
  redisBenchmark: string;
}

function packageVersion(repo: string, name: string): string {
  try {
    const pkg = JSON.parse(readFileSync(join(repo, 'node_modules', name, 'package.json'), 'utf8')) as {
      version: string;
    };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

/** Kafka's version from the broker's jars (kafka_<scala>-<version>.jar on its class path). */
function kafkaVersion(brokerPid: number | undefined): string {
  const dirs = new Set<string>();
  if (brokerPid !== undefined) {
    try {
      const cmdline = readFileSync(`/proc/${brokerPid}/cmdline`, 'utf8').split('\0');
      const cp = cmdline[cmdline.indexOf('-cp') + 1] ?? '';
      for (const entry of cp.split(':')) dirs.add(entry.replace(/\/\*$/, ''));
    } catch {}
  }
  for (const dir of dirs) {
    if (!existsSync(dir)) continue;
    const jar = readdirSync(dir).find((f) => /^kafka_[\d.]+-[\d.]+\.jar$/.test(f));
    if (jar) return /-([\d.]+)\.jar$/.exec(jar)![1]!;
  }
  return process.env.TALLY_KAFKA_VERSION ?? '4.3.1 (assumed: the broker was not found)';
}

export async function versions(options: {
  repo: string;
  k6: string;
  redis: Redis;
  pg: pg.Pool;
  kafkaPid: number | undefined;
}): Promise<Versions> {
  const info = await options.redis.info('server').catch(() => '');
  const [pgRow] = (
    await options.pg
      .query<{ v: string }>('SHOW server_version')
      .catch(() => ({ rows: [] as { v: string }[] }))
  ).rows.map((r) => ({ v: Object.values(r)[0] as string }));
  const k6 = await run(options.k6, ['version']).then(
    (r) => r.stdout.trim().split('\n')[0] ?? 'unknown',
    () => 'not installed',
  );
  const rb = await run('redis-benchmark', ['--version']).then(
    (r) => r.stdout.trim(),
    () => 'not installed',
  );
  return {
    node: process.version,
    kafka: kafkaVersion(options.kafkaPid),
    redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown',
    postgres: pgRow?.v ?? 'unknown',
    k6,
    kafkajs: packageVersion(options.repo, 'kafkajs'),
    platformaticKafka: packageVersion(options.repo, '@platformatic/kafka'),
    redisBenchmark: rb,
  };
}
