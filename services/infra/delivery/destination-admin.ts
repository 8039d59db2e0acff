/**
 * Destination administration as every way in (tally.v1.DestinationService, `tally destinations`)
 * runs it: the store's writes, and each destination's topic made and deleted with it.
 *
 * - create: the destination is stored, then its topic made; if the topic cannot be made, the
 *   destination is deleted again and the call fails UNAVAILABLE (retry it): no destination stays
 *   without its topic.
 * - delete: the topic is deleted first, then the destination: if the store then fails, the
 *   destination still exists and deleting it again finishes the job (a missing topic is no error).
 */
import { AppError, Code, unavailable } from '../app-error.ts';
import type { Destination, DestinationStore } from './destination-store.ts';
import type { DestinationTopics } from './destination-topics.ts';

export interface DestinationAdminDeps {
  store: DestinationStore;
  /** Absent (a process without the event log): create and delete answer FAILED_PRECONDITION. */
  topics: DestinationTopics | undefined;
}

/** The store with the topic lifecycle: everything but create and delete goes to the store as it is. */
export type DestinationAdmin = DestinationStore;

export function createDestinationAdmin(deps: DestinationAdminDeps): DestinationAdmin {
  const { store } = deps;
  const topicsOrFail = (): DestinationTopics => {
    if (deps.topics) return deps.topics;
    throw new AppError(
      Code.FAILED_PRECONDITION,
      'destinations need the event log to make their topics: run this with TALLY_KAFKA_BROKERS, or in the process that holds the embedded log (tally all)',
    );
  };
  return {
    ...store,
    description: store.description,
    get: (id) => store.get(id),
    list: () => store.list(),
    update: (id, input, expected) => store.update(id, input, expected),
    rotateSecret: (id, options) => store.rotateSecret(id, options),
    revision: () => store.revision(),
    loadEnabled: () => store.loadEnabled(),
    changesSince: (revision) => store.changesSince(revision),

    async create(input, secrets) {
      const topics = topicsOrFail();
      const made = await store.create(input, secrets);
      try {
        await topics.create(made.id);
      } catch (error) {
        await store.delete(made.id).catch(() => {});
        throw unavailable(
          `the topic of the new destination could not be made (nothing was kept): retry`,
          error,
        );
      }
      return made;
    },

    async delete(id): Promise<Destination> {
      const topics = topicsOrFail();
      const found = await store.get(id);
      if (!found) return store.delete(id); // NOT_FOUND, as the store words it
      try {
        await topics.delete(id);
      } catch (error) {
        throw unavailable(
          `the topic of destination ${id} could not be deleted (the destination stays): retry`,
          error,
        );
      }
      return store.delete(id);
    },
  };
}
