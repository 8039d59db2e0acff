/**
 * The `entities` channel of `/v1/stream`: the entities sockets watch (a kind and an id each),
 * read with EntityService.GetEntity every round while watched, and pushed when their version
 * changed (docs/entities.md, docs/stream.md). An entity not there yet is pushed once it is.
 */
import { toJson } from '@bufbuild/protobuf';
import { EntitySchema, type EntityService } from '../gen/tally/v1/entities_pb.js';
import { Code, toAppError } from '../infra/app-error.ts';
import type { ServiceClient } from '../infra/grpc/grpc-service.ts';
import type { Logger } from '../infra/logger.ts';
import type { SocketHub, StreamSocket } from './socket-hub.ts';
import type { ClientMessage } from './stream-protocol.ts';

/** Reads of one round in flight at once. */
const ENTITIES_CONCURRENCY = 8;

export interface EntitiesWatchOptions {
  entities: ServiceClient<(typeof EntityService)['method']>;
  hub: SocketHub;
  logger: Logger;
  /** Period of the reading rounds, ms. */
  roundMs: number;
  /** Most entities per socket. */
  maxEntities: number;
}

interface EntityWatch {
  kind: string;
  entity: string;
  subscribers: Set<StreamSocket>;
  /** The version last pushed ('' before any). */
  version: string;
  /** The last `entity` message pushed, for a socket that subscribes later. */
  lastMessage?: string;
}

type EntitiesMessage = Extract<ClientMessage, { channel: 'entities' }>;

const keyOf = (kind: string, entity: string) => JSON.stringify([kind, entity]);

export class EntitiesWatch {
  readonly #options: EntitiesWatchOptions;
  readonly #watches = new Map<string, EntityWatch>();
  readonly #bySocket = new Map<StreamSocket, Set<string>>();
  readonly #timer: NodeJS.Timeout;
  #busy = false;

  constructor(options: EntitiesWatchOptions) {
    this.#options = options;
    this.#timer = setInterval(() => void this.round(), options.roundMs);
    this.#timer.unref();
  }

  handle(socket: StreamSocket, message: EntitiesMessage): void {
    const { hub, maxEntities } = this.#options;
    const idPart = message.id === undefined ? {} : { id: message.id };
    const mine = this.#bySocket.get(socket) ?? new Set<string>();
    if (message.op === 'subscribe') {
      const key = keyOf(message.kind, message.entity);
      if (!mine.has(key) && mine.size >= maxEntities) {
        hub.replyError(socket, {
          field: 'entity',
          message: `entity: a socket watches at most ${maxEntities} entities; unsubscribe some first`,
          ...idPart,
        });
        return;
      }
      mine.add(key);
      this.#bySocket.set(socket, mine);
      let watch = this.#watches.get(key);
      if (!watch) {
        watch = { kind: message.kind, entity: message.entity, subscribers: new Set(), version: '' };
        this.#watches.set(key, watch);
      }
      watch.subscribers.add(socket);
      hub.reply(socket, {
        channel: 'subscribed',
        subscription: 'entities',
        entities: this.#list(mine),
        ...idPart,
      });
      if (watch.lastMessage) hub.send(socket, watch.lastMessage);
      void this.round();
      return;
    }
    for (const key of [...mine]) {
      const w = this.#watches.get(key)!;
      if (
        (message.kind === undefined || message.kind === w.kind) &&
        (message.entity === undefined || message.entity === w.entity)
      )
        this.#unwatch(socket, key);
    }
    hub.reply(socket, {
      channel: 'unsubscribed',
      subscription: 'entities',
      entities: this.#list(mine),
      ...idPart,
    });
  }

  /** Forgets a closed socket's subscriptions. */
  closed(socket: StreamSocket): void {
    for (const key of [...(this.#bySocket.get(socket) ?? [])]) this.#unwatch(socket, key);
    this.#bySocket.delete(socket);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #list(keys: ReadonlySet<string>): { kind: string; entity: string }[] {
    return [...keys].map((k) => {
      const w = this.#watches.get(k)!;
      return { kind: w.kind, entity: w.entity };
    });
  }

  #unwatch(socket: StreamSocket, key: string): void {
    this.#bySocket.get(socket)?.delete(key);
    const watch = this.#watches.get(key);
    if (!watch) return;
    watch.subscribers.delete(socket);
    if (watch.subscribers.size === 0) this.#watches.delete(key);
  }

  /** Reads every watched entity once, pushing those whose version changed. */
  async round(): Promise<void> {
    if (this.#busy || this.#watches.size === 0) return;
    this.#busy = true;
    try {
      const watches = [...this.#watches.values()];
      for (let i = 0; i < watches.length; i += ENTITIES_CONCURRENCY)
        await Promise.all(watches.slice(i, i + ENTITIES_CONCURRENCY).map((w) => this.#read(w)));
    } catch (error) {
      this.#options.logger.error('entities round failed', { error });
    } finally {
      this.#busy = false;
    }
  }

  async #read(watch: EntityWatch): Promise<void> {
    const { entities, hub, logger } = this.#options;
    let answer: Awaited<ReturnType<typeof entities.getEntity>>;
    try {
      answer = await entities.getEntity({ kind: watch.kind, id: watch.entity });
    } catch (error) {
      const e = toAppError(error);
      if (e.code === Code.NOT_FOUND) return; // not projected yet: pushed once it is
      if (
        e.code === Code.INVALID_ARGUMENT ||
        e.code === Code.PERMISSION_DENIED ||
        e.code === Code.UNAUTHENTICATED
      ) {
        for (const socket of [...watch.subscribers]) {
          hub.replyError(socket, { field: 'entity', message: e.message });
          this.#unwatch(socket, keyOf(watch.kind, watch.entity));
        }
        return;
      }
      logger.warn('entity read failed', { kind: watch.kind, error });
      return;
    }
    if (!answer.entity || this.#watches.get(keyOf(watch.kind, watch.entity)) !== watch) return;
    const version = answer.entity.version.toString();
    if (version === watch.version) return;
    watch.version = version;
    watch.lastMessage = JSON.stringify({
      channel: 'entity',
      entity: toJson(EntitySchema, answer.entity, { alwaysEmitImplicit: true }),
    });
    for (const socket of watch.subscribers) hub.send(socket, watch.lastMessage);
  }
}
