/**
 * tally.v1.ProjectionService, served by the query role (the gRPC role that holds the SQL port):
 * projection administration, every method scope admin (checked by access control from the
 * proto's `required_scope`). Validation is the domain's (domain/projections.ts), run by the store;
 * the answers name fields from the request (`projection.events[2].state`).
 */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import type { AttributeSource, Projection, ProjectionInput } from '../domain/projections.ts';
import {
  type Projection as ProjectionMessage,
  type ProjectionSchema,
  ProjectionService,
} from '../gen/tally/v1/entities_pb.js';
import { AppError } from '../infra/app-error.ts';
import type { ProjectionStore } from '../infra/entities/projection-store.ts';
import { notFound } from '../infra/entities/sql-projection-store.ts';
import type { GrpcRegistry } from '../infra/grpc/grpc-registry.ts';
import type { Logger } from '../infra/logger.ts';

export interface ProjectionServiceDeps {
  projections: ProjectionStore;
  grpc: GrpcRegistry;
  logger: Logger;
}

const requireKind = (kind: string) => {
  if (kind === '') throw AppError.invalidField('kind', 'is required');
};

export function registerProjectionService(deps: ProjectionServiceDeps): void {
  const logger = deps.logger.child({ component: 'projections' });
  deps.grpc.register(ProjectionService, {
    async listProjections() {
      return { projections: (await deps.projections.list()).map(toMessage) };
    },

    async getProjection(request) {
      requireKind(request.kind);
      const found = await deps.projections.get(request.kind);
      if (!found) throw notFound(request.kind);
      return { projection: toMessage(found) };
    },

    async putProjection(request, context) {
      requireKind(request.kind);
      if (!request.projection) throw AppError.invalidField('projection', 'is required');
      if (request.projection.kind !== '' && request.projection.kind !== request.kind)
        throw AppError.invalidField(
          'projection.kind',
          `must be the path's kind ${JSON.stringify(request.kind)} or empty`,
        );
      let expected: number | undefined;
      if (request.expectedRevision !== undefined) {
        expected = Number(request.expectedRevision);
        if (!Number.isSafeInteger(expected))
          throw AppError.invalidField('expected_revision', 'is not a revision this server made');
      }
      const input = projectionInput(request.kind, request.projection);
      let result: Awaited<ReturnType<ProjectionStore['put']>>;
      try {
        result = await deps.projections.put(input, expected);
      } catch (error) {
        if (
          error instanceof AppError &&
          error.fieldViolations.length > 0 &&
          error.field !== 'expected_revision'
        )
          throw error.renameFields((f) => `projection.${f}`);
        throw error;
      }
      logger.info(result.created ? 'projection created' : 'projection replaced', {
        kind: request.kind,
        revision: result.projection.revision,
        by: context.principal?.id,
      });
      return { projection: toMessage(result.projection), created: result.created };
    },

    async deleteProjection(request, context) {
      requireKind(request.kind);
      const deleted = await deps.projections.delete(request.kind);
      logger.info('projection deleted', { kind: request.kind, by: context.principal?.id });
      return { projection: toMessage(deleted) };
    },
  });
}

function projectionInput(kind: string, p: ProjectionMessage): ProjectionInput {
  return {
    kind,
    idAttribute: p.idAttribute,
    states: p.states,
    events: p.events.map((e) => ({ type: e.type, state: e.state })),
    attributes: p.attributes.map((a) => ({ name: a.name, from: a.from as AttributeSource })),
    transitions: p.transitions.map((t) => ({ from: t.from, to: t.to })),
    allowSkip: p.allowSkip,
    terminalStates: p.terminalStates,
    countBy: p.countBy,
  };
}

export function toMessage(p: Projection): MessageInitShape<typeof ProjectionSchema> {
  return {
    kind: p.kind,
    idAttribute: p.idAttribute,
    states: p.states,
    events: p.events,
    attributes: p.attributes,
    transitions: p.transitions,
    allowSkip: p.allowSkip,
    terminalStates: p.terminalStates,
    countBy: p.countBy,
    createdAt: timestampFromMs(p.createdAt.getTime()),
    updatedAt: timestampFromMs(p.updatedAt.getTime()),
    revision: BigInt(p.revision),
  };
}
