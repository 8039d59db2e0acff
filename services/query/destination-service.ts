/**
 * tally.v1.DestinationService, served by the query role beside AlertService: destination
 * administration, every method scope admin (checked by access control from the proto's
 * `required_scope`). Validation is the domain's (domain/destinations.ts), run by the store; its
 * field paths are relative to the destination, and the answers name them from the request
 * (`destination.webhook.url`). Signing secrets are answered in full only by create and rotation;
 * nothing about a destination's headers or secrets is logged.
 */

import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { FieldSource, JsonValue } from '../domain/destination-transform.ts';
import { type DestinationInput, secretHint } from '../domain/destinations.ts';
import {
  type Destination as DestinationMessage,
  type DestinationSchema,
  DestinationService,
} from '../gen/tally/v1/destinations_pb.js';
import { AppError, Code } from '../infra/app-error.ts';
import type { DeliveryLog } from '../infra/delivery/delivery-log.ts';
import type { DestinationAdmin } from '../infra/delivery/destination-admin.ts';
import type { Destination } from '../infra/delivery/destination-store.ts';
import type { GrpcRegistry } from '../infra/grpc/grpc-registry.ts';
import type { Logger } from '../infra/logger.ts';
import { deliveryAdmin } from './delivery-admin.ts';

export interface DestinationServiceDeps {
  /** The store with the topic lifecycle (infra/delivery/destination-admin.ts). */
  destinations: DestinationAdmin;
  /** The senders' delivery log: listings, attempts, redelivery and recovery. */
  deliveries: DeliveryLog;
  grpc: GrpcRegistry;
  logger: Logger;
}

/** Fields of a request itself, not of its destination: never prefixed. */
const REQUEST_FIELDS = /^(id|expected_revision|signing_secrets(\[\d+\])?|secret|grace_seconds)$/;

export function registerDestinationService(deps: DestinationServiceDeps): void {
  const logger = deps.logger.child({ component: 'destinations' });
  const { destinations } = deps;
  /** The store's errors with their field paths as the request names them. */
  const inRequest = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      if (error instanceof AppError && error.fieldViolations.length > 0 && error.field !== 'id')
        throw error.renameFields((field) => (REQUEST_FIELDS.test(field) ? field : `destination.${field}`), {
          reason: error.reason,
        });
      throw error;
    }
  };
  const requireId = (id: string) => {
    if (id === '') throw AppError.invalidField('id', 'is required');
  };
  const deliveries = deliveryAdmin({ log: deps.deliveries, destinations });

  deps.grpc.register(DestinationService, {
    async createDestination(request, context) {
      const input = destinationInput(request.destination);
      const made = await inRequest(() => destinations.create(input, request.signingSecrets));
      logger.info('destination created', {
        id: made.id,
        kind: made.endpoint.kind,
        by: context.principal?.id,
      });
      return { destination: toMessage(made), signingSecrets: made.signingSecrets.map((s) => s.secret) };
    },

    async listDestinations() {
      return { destinations: (await destinations.list()).map(toMessage) };
    },

    async getDestination(request) {
      requireId(request.id);
      const found = await destinations.get(request.id);
      if (!found) throw notFound(request.id);
      return { destination: toMessage(found) };
    },

    async updateDestination(request, context) {
      requireId(request.id);
      const input = destinationInput(request.destination);
      let expected: number | undefined;
      if (request.expectedRevision !== undefined) {
        expected = Number(request.expectedRevision);
        if (!Number.isSafeInteger(expected))
          throw AppError.invalidField('expected_revision', 'is not a revision this server made');
      }
      const updated = await inRequest(() => destinations.update(request.id, input, expected));
      logger.info('destination updated', {
        id: updated.id,
        revision: updated.revision,
        enabled: updated.enabled,
        by: context.principal?.id,
      });
      return { destination: toMessage(updated) };
    },

    async deleteDestination(request, context) {
      requireId(request.id);
      const gone = await destinations.delete(request.id);
      logger.info('destination deleted', { id: gone.id, by: context.principal?.id });
      return { destination: toMessage(gone) };
    },

    async rotateDestinationSecret(request, context) {
      requireId(request.id);
      const rotated = await inRequest(() =>
        destinations.rotateSecret(request.id, {
          ...(request.secret === '' ? {} : { secret: request.secret }),
          ...(request.graceSeconds === undefined ? {} : { graceSeconds: request.graceSeconds }),
        }),
      );
      logger.info('destination signing secret rotated', {
        id: rotated.id,
        secrets: rotated.signingSecrets.length,
        by: context.principal?.id,
      });
      return { destination: toMessage(rotated), signingSecret: rotated.signingSecrets[0]!.secret };
    },

    listDeliveries: (request) => deliveries.listDeliveries(request),
    listAttempts: (request) => deliveries.listAttempts(request),

    async redeliver(request, context) {
      const answer = await deliveries.redeliver(request);
      logger.info('delivery redelivered', { id: request.id, by: context.principal?.id });
      return answer;
    },

    async recover(request, context) {
      const answer = await deliveries.recover(request);
      logger.info('destination recovered', {
        id: request.id,
        recovered: answer.recovered,
        by: context.principal?.id,
      });
      return answer;
    },
  });
}

function notFound(id: string): AppError {
  return new AppError(Code.NOT_FOUND, `no destination with id ${JSON.stringify(id)}`, {
    fieldViolations: [{ field: 'id', description: 'no such destination' }],
  });
}

/** A request's destination as the domain validates it; `destination` absent is the request's fault. */
export function destinationInput(message: DestinationMessage | undefined): DestinationInput {
  if (!message) throw AppError.invalidField('destination', 'is required');
  const input: DestinationInput = {
    name: message.name,
    ordering: message.ordering,
    filter: message.filter && {
      eventTypes: message.filter.eventTypes,
      targetPrefixes: message.filter.targetPrefixes,
      attributes: message.filter.attributes,
    },
    transform: {
      fields: (message.transform?.fields ?? []).map((field, i) => ({
        to: field.to,
        source: sourceOf(field.source, i) as FieldSource,
      })),
    },
  };
  if (message.enabled !== undefined) input.enabled = message.enabled;
  if (message.disabledReason !== '') input.disabledReason = message.disabledReason;
  if (message.retry && message.retry.delaysSeconds.length > 0)
    input.retryDelaysSeconds = message.retry.delaysSeconds;
  if (message.rateLimitPerSecond !== undefined) input.rateLimitPerSecond = message.rateLimitPerSecond;
  if (message.concurrency !== undefined) input.concurrency = message.concurrency;
  const { endpoint } = message;
  if (endpoint.case === 'webhook')
    input.endpoint = {
      kind: 'webhook',
      url: endpoint.value.url,
      allowPlainHttp: endpoint.value.allowPlainHttp,
      headers: endpoint.value.headers,
      ...(endpoint.value.timeoutMs === undefined ? {} : { timeoutMs: endpoint.value.timeoutMs }),
    };
  else if (endpoint.case === 'kafka')
    input.endpoint = { kind: 'kafka', topic: endpoint.value.topic, brokers: endpoint.value.brokers };
  return input;
}

function sourceOf(
  source: NonNullable<DestinationMessage['transform']>['fields'][number]['source'],
  i: number,
): FieldSource | undefined {
  switch (source.case) {
    case 'from':
      return { kind: 'field', path: source.value };
    case 'template':
      return { kind: 'template', template: source.value };
    case 'constant':
      return { kind: 'constant', value: source.value };
    case 'json': {
      let value: JsonValue;
      try {
        value = JSON.parse(source.value) as JsonValue;
      } catch {
        throw AppError.invalidField(`destination.transform.fields[${i}].json`, 'is not valid JSON');
      }
      return { kind: 'constant', value };
    }
    default:
      return undefined;
  }
}

/** A stored destination as the API answers it, every default filled, its secrets as hints. */
export function toMessage(d: Destination): MessageInitShape<typeof DestinationSchema> {
  const e = d.endpoint;
  const endpoint: MessageInitShape<typeof DestinationSchema>['endpoint'] =
    e.kind === 'webhook'
      ? {
          case: 'webhook',
          value: { url: e.url, allowPlainHttp: e.allowPlainHttp, headers: e.headers, timeoutMs: e.timeoutMs },
        }
      : { case: 'kafka', value: { topic: e.topic, brokers: e.brokers } };
  return {
    id: d.id,
    name: d.name,
    enabled: d.enabled,
    disabledReason: d.disabledReason,
    endpoint,
    filter: { ...d.filter },
    transform: {
      fields: d.transform.fields.map(({ to, source }) => ({
        to,
        source:
          source.kind === 'field'
            ? { case: 'from', value: source.path }
            : source.kind === 'template'
              ? { case: 'template', value: source.template }
              : typeof source.value === 'string'
                ? { case: 'constant', value: source.value }
                : { case: 'json', value: JSON.stringify(source.value) },
      })),
    },
    ordering: d.ordering,
    retry: { delaysSeconds: d.retryDelaysSeconds },
    ...(d.rateLimitPerSecond === undefined ? {} : { rateLimitPerSecond: d.rateLimitPerSecond }),
    concurrency: d.concurrency,
    signingSecrets: d.signingSecrets.map((s) => ({
      hint: secretHint(s.secret),
      createdAt: timestampFromMs(s.createdAtMs),
      ...(s.expiresAtMs === undefined ? {} : { expiresAt: timestampFromMs(s.expiresAtMs) }),
    })),
    createdAt: timestampFromMs(d.createdAt.getTime()),
    updatedAt: timestampFromMs(d.updatedAt.getTime()),
    revision: BigInt(d.revision),
  };
}
