/**
 * `tally projections list|get|put|delete`: projection administration on the configured database
 * (main.ts opens it and applies the migrations), the same store and validation as
 * tally.v1.ProjectionService. `put <kind> --file <spec.json>` (`-`: standard input) takes the
 * projection as the REST API's JSON (docs/entities.md). Exit status: 0 done, 1 refused (an
 * unknown kind), 2 a bad command line or an invalid projection (each field named).
 */
import { readFile } from 'node:fs/promises';
import type { Projection, ProjectionInput } from '../domain/projections.ts';
import { formatColumns } from '../domain/text-table.ts';
import { AppError, Code } from '../infra/app-error.ts';
import type { ProjectionStore } from '../infra/entities/projection-store.ts';

export const PROJECTIONS_USAGE = `usage: tally projections <action>
  list                              every projection
  get <kind>                        one projection, as JSON
  put <kind> --file <spec.json|->   create or replace a projection (the REST API's JSON)
  delete <kind>                     delete a projection (its entities stay)`;

export interface ProjectionsCommandIo {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
  /** Standard input, for `--file -`. */
  readStdin?: () => Promise<string>;
}

export type OpenProjectionStore = () => Promise<{ store: ProjectionStore; close(): Promise<void> }>;

type Action =
  | { action: 'list' }
  | { action: 'get' | 'delete'; kind: string }
  | { action: 'put'; kind: string; file: string };

class ArgsError extends Error {}

export function parseProjectionsArgs(args: readonly string[]): Action {
  const [action, ...rest] = args;
  switch (action) {
    case 'list':
      if (rest.length > 0) throw new ArgsError(`list takes nothing more: ${rest.join(' ')}`);
      return { action };
    case 'get':
    case 'delete':
      if (rest.length !== 1 || rest[0]!.startsWith('-')) throw new ArgsError(`${action} takes a kind`);
      return { action, kind: rest[0]! };
    case 'put': {
      const [kind, flag, file, ...more] = rest;
      if (!kind || kind.startsWith('-')) throw new ArgsError('put takes a kind');
      if (flag !== '--file' || file === undefined || more.length > 0)
        throw new ArgsError('put takes --file <spec.json> (or - for standard input)');
      return { action, kind, file };
    }
    default:
      throw new ArgsError(action === undefined ? 'no action given' : `unknown action: ${action}`);
  }
}

/** A projection as the API answers it (JSON), for `get` and `put`. */
export function projectionJson(p: Projection): string {
  const { createdAt, updatedAt, ...spec } = p;
  return `${JSON.stringify({ ...spec, createdAt: createdAt.toISOString(), updatedAt: updatedAt.toISOString() }, null, 2)}\n`;
}

/** The spec file's JSON as the store takes it (camelCase or snake_case keys, as the API). */
export function projectionInput(kind: string, json: unknown): ProjectionInput {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw AppError.invalidField('file', 'must hold a JSON object');
  const o = json as Record<string, unknown>;
  const pick = (camel: string, snake: string) => o[camel] ?? o[snake];
  return {
    kind,
    idAttribute: pick('idAttribute', 'id_attribute') as string,
    states: pick('states', 'states') as string[],
    events: pick('events', 'events') as ProjectionInput['events'],
    attributes: pick('attributes', 'attributes') as ProjectionInput['attributes'],
    transitions: pick('transitions', 'transitions') as ProjectionInput['transitions'],
    allowSkip: pick('allowSkip', 'allow_skip') as boolean,
    terminalStates: pick('terminalStates', 'terminal_states') as string[],
    countBy: pick('countBy', 'count_by') as string[],
  };
}

export async function projectionsCommand(
  args: readonly string[],
  openStore: OpenProjectionStore,
  io: ProjectionsCommandIo,
): Promise<number> {
  if (args[0] === '--help' || args[0] === '-h' || args[0] === 'help') {
    io.out.write(`${PROJECTIONS_USAGE}\n`);
    return 0;
  }
  let action: Action;
  try {
    action = parseProjectionsArgs(args);
  } catch (error) {
    if (!(error instanceof ArgsError)) throw error;
    io.err.write(`tally: ${error.message}\n${PROJECTIONS_USAGE}\n`);
    return 2;
  }
  let input: ProjectionInput | undefined;
  if (action.action === 'put') {
    try {
      const text =
        action.file === '-'
          ? await (io.readStdin ?? (() => Promise.resolve('')))()
          : await readFile(action.file, 'utf8');
      input = projectionInput(action.kind, JSON.parse(text));
    } catch (error) {
      io.err.write(`tally: --file: ${error instanceof Error ? error.message : String(error)}\n`);
      return 2;
    }
  }
  const { store, close } = await openStore();
  try {
    switch (action.action) {
      case 'list': {
        const all = await store.list();
        if (all.length === 0) io.out.write('no projections\n');
        else
          io.out.write(
            formatColumns([
              ['KIND', 'ID ATTRIBUTE', 'STATES', 'EVENT TYPES', 'COUNT BY', 'REVISION'],
              ...all.map((p) => [
                p.kind,
                p.idAttribute,
                p.states.join(','),
                String(p.events.length),
                p.countBy.join(',') || '-',
                String(p.revision),
              ]),
            ]),
          );
        return 0;
      }
      case 'get': {
        const found = await store.get(action.kind);
        if (!found)
          throw new AppError(Code.NOT_FOUND, `no projection of kind ${JSON.stringify(action.kind)}`);
        io.out.write(projectionJson(found));
        return 0;
      }
      case 'put': {
        const { projection, created } = await store.put(input!);
        io.err.write(
          `${created ? 'created' : 'replaced'} projection ${projection.kind} (revision ${projection.revision})\n`,
        );
        io.out.write(projectionJson(projection));
        return 0;
      }
      case 'delete': {
        const deleted = await store.delete(action.kind);
        io.out.write(`deleted projection ${deleted.kind}\n`);
        return 0;
      }
    }
  } catch (error) {
    if (!(error instanceof AppError) || error.code === Code.INTERNAL || error.code === Code.UNAVAILABLE)
      throw error;
    if (error.code === Code.INVALID_ARGUMENT && error.fieldViolations.length > 0) {
      for (const v of error.fieldViolations) io.err.write(`tally: ${v.field}: ${v.description}\n`);
      return 2;
    }
    io.err.write(`tally: ${error.message}\n`);
    return 1;
  } finally {
    await close();
  }
}
