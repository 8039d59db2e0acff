/** The PEM bundle a TALLY_*_TLS_CA_FILE names, or a ConfigError naming that variable. */
import { readFileSync } from 'node:fs';
import { ConfigError } from './config.ts';

export function readCaFile(variable: string, file: string): string {
  let ca: string;
  try {
    ca = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(
      `invalid configuration:\n  ${variable}: cannot read ${file} (${(error as Error).message})`,
    );
  }
  if (!ca.includes('-----BEGIN CERTIFICATE-----'))
    throw new ConfigError(
      `invalid configuration:\n  ${variable}: ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );
  return ca;
}
