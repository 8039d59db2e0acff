/**
 * Test support: finds grpcurl (installed by scripts/install-grpcurl.sh, which `make test` and CI
 * run first) and runs it. Without it a test skips, saying why, except under CI, where its absence
 * is a failure.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

const INSTALLER = join(import.meta.dirname, '..', '..', 'scripts', 'install-grpcurl.sh');

/** grpcurl's path: $GRPCURL, else where the installer puts it, else grpcurl on PATH; undefined when absent. */
export function findGrpcurl(): string | undefined {
  const candidates = [
    process.env.GRPCURL,
    execFileSync(INSTALLER, ['--print-path'], { encoding: 'utf8' }).trim(),
    ...(process.env.PATH ?? '').split(':').map((dir) => join(dir, 'grpcurl')),
  ];
  return candidates.find((path): path is string => !!path && existsSync(path));
}

/**
 * grpcurl's path, or undefined after skipping `t` (not under CI: there a missing grpcurl fails
 * the test, since CI installs it).
 */
export function grpcurlOrSkip(t: TestContext): string | undefined {
  const found = findGrpcurl();
  if (found) return found;
  const reason = 'grpcurl is not installed: run scripts/install-grpcurl.sh (make test does)';
  if (process.env.CI === 'true' || process.env.CI === '1') throw new Error(`${reason}; CI must have it`);
  t.diagnostic(reason);
  t.skip(reason);
  return undefined;
}

/** Runs grpcurl with `args`; resolves with its exit code and output (never rejects on a non-zero exit). */
export function runGrpcurl(
  grpcurl: string,
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(grpcurl, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') reject(error);
      else resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
    });
  });
}
