/**
 * Committed offsets of the embedded log's consumer groups: one JSON file per
 * group, replaced atomically (temporary file, fsync, rename, fsync of the
 * directory). Commits arriving while a write is in flight share the next write.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir, isTemporaryFile, writeFileAtomic } from './files.ts';

/** Per topic name: the topic's incarnation (a re-created topic has a new id) and partition → next offset. */
type Offsets = Map<string, { topicId: string; partitions: Map<number, bigint> }>;

interface RawGroupFile {
  version: 1;
  groupId: string;
  /** topic → its id and partition → next offset to read */
  offsets: Record<string, { topicId: string; partitions: Record<string, string> }>;
}

class GroupOffsets {
  readonly groupId: string;
  readonly path: string;
  /** Every commit so far, written or not. */
  latest: Offsets = new Map();
  /** What is on disk: what `committed` reports. */
  durable: Offsets = new Map();
  version = 0;
  writtenVersion = 0;
  writing: Promise<void> | undefined;

  constructor(groupId: string, path: string) {
    this.groupId = groupId;
    this.path = path;
  }
}

export class OffsetStore {
  readonly #dir: string;
  readonly #groups = new Map<string, GroupOffsets>();

  private constructor(dir: string) {
    this.#dir = dir;
  }

  static async open(dir: string): Promise<OffsetStore> {
    await mkdir(dir, { recursive: true });
    const store = new OffsetStore(dir);
    for (const name of await readdir(dir)) {
      const path = join(dir, name);
      if (isTemporaryFile(name)) {
        await unlink(path).catch(() => {});
        continue;
      }
      if (!name.endsWith('.json')) continue;
      const raw = JSON.parse(await readFile(path, 'utf8')) as RawGroupFile;
      const group = new GroupOffsets(raw.groupId, path);
      for (const [topic, { topicId, partitions }] of Object.entries(raw.offsets)) {
        const map = new Map<number, bigint>();
        for (const [partition, offset] of Object.entries(partitions))
          map.set(Number(partition), BigInt(offset));
        group.latest.set(topic, { topicId, partitions: map });
      }
      group.durable = copy(group.latest);
      store.#groups.set(raw.groupId, group);
    }
    return store;
  }

  /** The group's committed offsets of the topic incarnation `topicId` (a copy). */
  committed(groupId: string, topic: string, topicId: string): Map<number, bigint> {
    const entry = this.#groups.get(groupId)?.durable.get(topic);
    return new Map(entry?.topicId === topicId ? entry.partitions : []);
  }

  /**
   * Records `offset` as the group's next offset of the partition; resolves once
   * it is on disk. A commit for an older incarnation of the topic replaces nothing current.
   */
  async commit(
    groupId: string,
    topic: string,
    topicId: string,
    partition: number,
    offset: bigint,
  ): Promise<void> {
    const group = this.#group(groupId);
    let entry = group.latest.get(topic);
    if (entry?.topicId !== topicId) {
      entry = { topicId, partitions: new Map() };
      group.latest.set(topic, entry);
    }
    entry.partitions.set(partition, offset);
    await this.#persist(group, ++group.version);
  }

  /** Forgets every group's offsets of these topic incarnations (deleted topics). */
  async dropTopics(topics: ReadonlyMap<string, string>): Promise<void> {
    await Promise.all(
      [...this.#groups.values()].map(async (group) => {
        let changed = false;
        for (const [topic, topicId] of topics) {
          if (group.latest.get(topic)?.topicId !== topicId) continue;
          group.latest.delete(topic);
          changed = true;
        }
        if (changed) await this.#persist(group, ++group.version);
      }),
    );
  }

  /** Forgets offsets of topics that no longer exist (`current`: topic → id), e.g. deleted while the log was down. */
  async retainTopics(current: ReadonlyMap<string, string>): Promise<void> {
    await Promise.all(
      [...this.#groups.values()].map(async (group) => {
        const stale = [...group.latest].filter(([topic, { topicId }]) => current.get(topic) !== topicId);
        if (stale.length === 0) return;
        for (const [topic] of stale) group.latest.delete(topic);
        await this.#persist(group, ++group.version);
      }),
    );
  }

  /** Resolves once a write holding `version` (or a later one) is on disk. */
  async #persist(group: GroupOffsets, version: number): Promise<void> {
    while (group.writtenVersion < version) {
      if (group.writing) {
        await group.writing.catch(() => {}); // a failed write of others: try our own
        continue;
      }
      group.writing = this.#write(group).finally(() => {
        group.writing = undefined;
      });
      await group.writing;
    }
  }

  async #write(group: GroupOffsets): Promise<void> {
    const version = group.version;
    const snapshot = copy(group.latest);
    if (snapshot.size === 0) {
      await unlink(group.path).catch(() => {});
      await fsyncDir(this.#dir);
    } else {
      const raw: RawGroupFile = { version: 1, groupId: group.groupId, offsets: {} };
      for (const [topic, { topicId, partitions }] of snapshot)
        raw.offsets[topic] = {
          topicId,
          partitions: Object.fromEntries([...partitions].map(([p, o]) => [String(p), o.toString()])),
        };
      await writeFileAtomic(group.path, `${JSON.stringify(raw)}\n`);
    }
    group.durable = snapshot;
    group.writtenVersion = Math.max(group.writtenVersion, version);
  }

  #group(groupId: string): GroupOffsets {
    let group = this.#groups.get(groupId);
    if (!group) {
      // A hash: group ids are free text, file names are not.
      const name = `${createHash('sha256').update(groupId).digest('hex').slice(0, 32)}.json`;
      group = new GroupOffsets(groupId, join(this.#dir, name));
      this.#groups.set(groupId, group);
    }
    return group;
  }
}

function copy(offsets: Offsets): Offsets {
  return new Map(
    [...offsets].map(([topic, entry]) => [
      topic,
      { topicId: entry.topicId, partitions: new Map(entry.partitions) },
    ]),
  );
}
