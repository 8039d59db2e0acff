/**
 * How the Kafka clients authenticate and encrypt: SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and
 * TLS (from TALLY_KAFKA_SASL_* and TALLY_KAFKA_TLS*, mapped by infra/config.ts). Both adapters take the same shape.
 */

export interface KafkaSecurity {
  sasl?: { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string };
  /** TLS to the brokers; `ca`: PEM certificates trusted besides the system's CAs. */
  tls?: { ca?: string };
}

/** What the logs say about the connection (never the password). */
export function describeSecurity(security: KafkaSecurity | undefined): string {
  const parts = [security?.tls ? 'TLS' : 'plaintext'];
  if (security?.sasl)
    parts.push(`SASL ${security.sasl.mechanism.toUpperCase()} as ${security.sasl.username}`);
  return parts.join(', ');
}
