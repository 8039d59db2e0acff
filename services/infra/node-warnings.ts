/**
 * Routes Node process warnings to the logger, minus one known-harmless one.
 */
import type { Logger } from './logger.ts';

/** Replaces Node's default warning printer; `logger` undefined keeps printing to stderr. */
export function handleProcessWarnings(logger?: Logger): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    // kafkajs 2.2.4 schedules timers with negative delays (kafkajs#1751); Node clamps them to 1 ms, as intended.
    if (warning.name === 'TimeoutNegativeWarning' && warning.stack?.includes('kafkajs')) return;
    if (logger) logger.warn('node warning', { name: warning.name, message: warning.message });
    else process.stderr.write(`${warning.stack ?? warning.message}\n`);
  });
}
