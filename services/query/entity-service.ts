/**
 * tally.v1.EntityService, served by the query role: the projector's live entities and counts
 * (docs/entities.md), scope read. Pages are keyset pages in id order; their tokens are opaque
 * (base64url of a small JSON object: the last id and a digest of the filter, so a token is
 * refused for any other filter). Bad input gets INVALID_ARGUMENT naming the field.
 */
import { createHash } from 'node:crypto';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { Projection } from '../domain/projections.ts';
import { type EntitySchema, EntityService } from '../gen/tally/v1/entities_pb.js';
import { AppError, Code } from '../infra/app-error.ts';
import type { EntityStore, StoredEntity } from '../infra/entities/entity-store.ts';
import type { ProjectionStore } from '../infra/entities/projection-store.ts';
import type { GrpcRegistry } from '../infra/grpc/grpc-registry.ts';

export interface EntityServiceDeps {
  entities: EntityStore;
  projections: ProjectionStore;
  grpc: GrpcRegistry;
}

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1_000;
const MAX_TOKEN_CHARS = 1_024;

const required = (field: string, value: string) => {
  if (value === '') throw AppError.invalidField(field, 'is required');
};

export function registerEntityService(deps: EntityServiceDeps): void {
  /** The projection of `kind`: NOT_FOUND naming kind when there is none. */
  const projectionOf = async (kind: string): Promise<Projection> => {
    required('kind', kind);
    const found = await deps.projections.get(kind);
    if (!found)
      throw new AppError(Code.NOT_FOUND, `no projection of kind ${JSON.stringify(kind)}`, {
        fieldViolations: [{ field: 'kind', description: 'no such projection' }],
      });
    return found;
  };
  const checkStates = (projection: Projection, states: readonly string[], field: string) => {
    states.forEach((s, i) => {
      if (!projection.states.includes(s))
        throw AppError.invalidField(
          states.length > 1 || field !== 'state' ? `${field}[${i}]` : field,
          `is not a state of ${projection.kind}: ${JSON.stringify(s)} (one of ${projection.states.join(', ')})`,
        );
    });
  };

  deps.grpc.register(EntityService, {
    async getEntity(request) {
      required('kind', request.kind);
      required('id', request.id);
      const [entity, projection] = await Promise.all([
        deps.entities.get(request.kind, request.id),
        deps.projections.get(request.kind),
      ]);
      if (!entity)
        throw new AppError(Code.NOT_FOUND, `no ${request.kind} with id ${JSON.stringify(request.id)}`, {
          fieldViolations: [{ field: 'id', description: 'no such entity' }],
        });
      return { entity: toMessage(entity, projection) };
    },

    async listEntities(request) {
      const projection = await projectionOf(request.kind);
      if (request.state !== '') checkStates(projection, [request.state], 'state');
      const attributes: Record<string, string> = {};
      request.attribute.forEach((pair, i) => {
        const at = pair.indexOf(':');
        if (at <= 0)
          throw AppError.invalidField(`attribute[${i}]`, `must be name:value, not ${JSON.stringify(pair)}`);
        const name = pair.slice(0, at);
        if (!projection.attributes.some((a) => a.name === name))
          throw AppError.invalidField(
            `attribute[${i}]`,
            `${JSON.stringify(name)} is not an attribute of ${projection.kind} (one of ${projection.attributes.map((a) => a.name).join(', ')})`,
          );
        if (name in attributes) throw AppError.invalidField(`attribute[${i}]`, `names ${name} twice`);
        attributes[name] = pair.slice(at + 1);
      });
      if (request.pageSize > MAX_PAGE_SIZE)
        throw AppError.invalidField('page_size', `must be at most ${MAX_PAGE_SIZE}`);
      const limit = request.pageSize === 0 ? DEFAULT_PAGE_SIZE : request.pageSize;
      const digest = filterDigest(request.kind, request.state, attributes);
      const afterId = request.pageToken === '' ? undefined : readToken(request.pageToken, digest);
      const page = await deps.entities.list({
        kind: request.kind,
        ...(request.state === '' ? {} : { state: request.state }),
        attributes,
        ...(afterId === undefined ? {} : { afterId }),
        limit: limit + 1,
      });
      const more = page.length > limit;
      const entities = page.slice(0, limit);
      return {
        entities: entities.map((e) => toMessage(e, projection)),
        nextPageToken: more ? makeToken(entities.at(-1)!.id, digest) : '',
      };
    },

    async countEntities(request) {
      const projection = await projectionOf(request.kind);
      if (request.by !== '' && !projection.countBy.includes(request.by))
        throw AppError.invalidField(
          'by',
          `${JSON.stringify(request.by)} is not an attribute ${projection.kind} is counted by (${projection.countBy.join(', ') || 'none'})`,
        );
      checkStates(projection, request.state, 'state');
      const states =
        request.state.length > 0
          ? request.state
          : projection.states.filter((s) => !projection.terminalStates.includes(s));
      const counts = await deps.entities.counts(request.kind, request.by, states);
      const totals: Record<string, bigint> = {};
      for (const c of counts) totals[c.value] = (totals[c.value] ?? 0n) + BigInt(c.count);
      return {
        kind: request.kind,
        by: request.by,
        counts: counts.map((c) => ({ value: c.value, state: c.state, count: BigInt(c.count) })),
        totals,
      };
    },
  });
}

function filterDigest(kind: string, state: string, attributes: Record<string, string>): string {
  const canonical = JSON.stringify([kind, state, Object.entries(attributes).sort()]);
  return createHash('sha256').update(canonical).digest('base64url').slice(0, 12);
}

function makeToken(lastId: string, digest: string): string {
  return Buffer.from(JSON.stringify({ v: 1, f: digest, a: lastId })).toString('base64url');
}

function readToken(token: string, digest: string): string {
  const bad = (why: string) => AppError.invalidField('page_token', why);
  if (token.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]+$/.test(token)) throw bad('is not a page token');
  let raw: { v?: unknown; f?: unknown; a?: unknown };
  try {
    raw = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw bad('is not a page token');
  }
  if (raw?.v !== 1 || typeof raw.f !== 'string' || typeof raw.a !== 'string')
    throw bad('is not a page token');
  if (raw.f !== digest) throw bad('was made for another filter (kind, state, attribute)');
  return raw.a;
}

/** The path of an entity. */
export function entityPath(kind: string, id: string): string {
  return `/v1/entities/${encodeURIComponent(kind)}/${encodeURIComponent(id)}`;
}

export function toMessage(
  e: StoredEntity,
  projection: Projection | undefined,
): MessageInitShape<typeof EntitySchema> {
  // The entity's history: the stored events of its user (or its target), where its events are.
  const byUser = projection?.attributes.find((a) => a.from === 'user_id');
  const byTarget = projection?.attributes.find((a) => a.from === 'target');
  const user = byUser && e.attributes[byUser.name];
  const target = byTarget && e.attributes[byTarget.name];
  const history = user
    ? `/v1/events?user=${encodeURIComponent(user)}`
    : target
      ? `/v1/events?target=${encodeURIComponent(target)}`
      : undefined;
  return {
    kind: e.kind,
    id: e.id,
    state: e.state,
    attributes: e.attributes,
    version: BigInt(e.version),
    lastEventId: e.last.eventId,
    lastEventTime: timestampFromMs(e.last.timeMs),
    updatedAt: timestampFromMs(e.updatedAt.getTime()),
    links: {
      self: { href: entityPath(e.kind, e.id) },
      ...(history ? { events: { href: history } } : {}),
      counts: { href: `/v1/entities/${encodeURIComponent(e.kind)}/counts` },
    },
  };
}
