/**
 * `tally receiver …` command line → the receiver's options. Every bad value or unknown flag is a
 * ReceiverArgsError whose message starts with the flag at fault.
 */
import { secretKey } from '../infra/delivery/webhook-signature.ts';

export const RECEIVER_USAGE = `usage: tally receiver [--port 8787] [--host 127.0.0.1] [--secret whsec_...]...
                      [--fail-rate 0.3] [--status 503] [--latency 200ms] [--seed 1]
                      [--tolerance 300s] [--quiet]
A local webhook receiver for trying and measuring deliveries. It verifies Standard Webhooks
signatures with each --secret given (401 when none matches; no --secret: not verified), answers
--status to a share --fail-rate of deliveries (chosen by a PRNG seeded by --seed), waits --latency
before answering, counts duplicates by webhook-id and checks per-user order. GET /stats answers
the counts as JSON. A line per delivery, or one per second above 20 deliveries a second; a summary
when stopped (SIGINT, SIGTERM). Durations: <n>ms or <n>s.`;

export class ReceiverArgsError extends Error {}

export interface ReceiverArgs {
  port: number;
  host: string;
  secrets: string[];
  failRate: number;
  failStatus: number;
  latencyMs: number;
  seed: number;
  toleranceSeconds: number;
  quiet: boolean;
}

function duration(flag: string, text: string): number {
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s)?$/.exec(text);
  if (!m) throw new ReceiverArgsError(`${flag}: ${JSON.stringify(text)} is not a duration (200ms, 2s)`);
  return Math.round(Number(m[1]) * (m[2] === 's' ? 1000 : 1));
}

function integer(flag: string, text: string, min: number, max: number): number {
  const n = /^[0-9]+$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min && n <= max))
    throw new ReceiverArgsError(`${flag}: ${JSON.stringify(text)} is not an integer from ${min} to ${max}`);
  return n;
}

export function parseReceiverArgs(args: readonly string[]): ReceiverArgs {
  const out: ReceiverArgs = {
    port: 8787,
    host: '127.0.0.1',
    secrets: [],
    failRate: 0,
    failStatus: 503,
    latencyMs: 0,
    seed: 1,
    toleranceSeconds: 300,
    quiet: false,
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i]!;
    if (flag === '--quiet') {
      out.quiet = true;
      continue;
    }
    const value = args[i + 1];
    if (value === undefined || !flag.startsWith('--'))
      throw new ReceiverArgsError(`${flag}: ${flag.startsWith('--') ? 'needs a value' : 'unknown argument'}`);
    i++;
    switch (flag) {
      case '--port':
        out.port = integer(flag, value, 0, 65_535);
        break;
      case '--host':
        out.host = value;
        break;
      case '--secret':
        try {
          secretKey(value);
        } catch (error) {
          throw new ReceiverArgsError(`--secret: ${(error as Error).message}`);
        }
        out.secrets.push(value);
        break;
      case '--fail-rate': {
        const rate = /^[0-9.]+$/.test(value) ? Number(value) : Number.NaN;
        if (!(rate >= 0 && rate <= 1))
          throw new ReceiverArgsError(`--fail-rate: ${JSON.stringify(value)} is not from 0 to 1`);
        out.failRate = rate;
        break;
      }
      case '--status':
        out.failStatus = integer(flag, value, 200, 599);
        break;
      case '--latency':
        out.latencyMs = duration(flag, value);
        break;
      case '--seed':
        out.seed = integer(flag, value, 0, 2 ** 32 - 1);
        break;
      case '--tolerance':
        out.toleranceSeconds = Math.ceil(duration(flag, value) / 1000);
        break;
      default:
        throw new ReceiverArgsError(`${flag}: unknown flag`);
    }
  }
  return out;
}
