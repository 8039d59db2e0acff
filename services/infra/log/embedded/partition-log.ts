/**
 * One partition of the embedded log: append-only segment files of framed
 * records (record-format.ts), named by their first offset. Appends are grouped
 * (every send waiting while a write is in flight goes out in the next write,
 * one write + one fdatasync); readers see only what is synced. In memory each
 * segment keeps a sparse index (an entry per ~4 KiB: offset → file position),
 * never the records; a closed segment's index is saved beside it.
 */
import { type FileHandle, mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { AppError, Code, unavailable } from '../../app-error.ts';
import type { Logger } from '../../logger.ts';
import type { ConsumedRecord } from '../event-log.ts';
import { errnoCode, fsyncDir, isTemporaryFile, writeFileAtomic } from './files.ts';
import { checkFrame, decodeFrame, type EncodedRecord, writeFrame } from './record-format.ts';

export interface PartitionLogOptions {
  /** A segment is closed and a new one started once it holds this many bytes. */
  segmentBytes: number;
  /** Oldest closed segments are deleted while the rest still hold at least this many bytes. */
  retentionBytes: number;
  /** Closed segments whose newest record is older than this are deleted. */
  retentionMs: number;
  /** Largest frame recovery accepts as plausible (a larger length is garbage). */
  maxFrameBytes: number;
  /** Bytes between sparse index entries. */
  indexIntervalBytes: number;
  logger: Logger;
}

/** What a read found. */
export type ReadResult =
  | { kind: 'records'; records: ConsumedRecord[] }
  /** The offset is below the oldest retained record or past the end. */
  | { kind: 'out-of-range'; logStartOffset: bigint; endOffset: bigint }
  /** The partition was closed (log closed or topic deleted). */
  | { kind: 'closed' };

const READ_CHUNK_BYTES = 1024 * 1024;
const INDEX_MAGIC = 0x54495831; // "TIX1"

/** Offset → file position, one entry per `indexIntervalBytes` or so. */
class SparseIndex {
  #entries = new Float64Array(64);
  #count = 0;

  get count(): number {
    return this.#count;
  }

  add(relativeOffset: number, position: number): void {
    if (this.#count * 2 === this.#entries.length) {
      const grown = new Float64Array(this.#entries.length * 2);
      grown.set(this.#entries);
      this.#entries = grown;
    }
    this.#entries[this.#count * 2] = relativeOffset;
    this.#entries[this.#count * 2 + 1] = position;
    this.#count++;
  }

  /** The file position of the last entry at or before `relativeOffset` (0 when none). */
  positionFor(relativeOffset: number): number {
    let low = 0;
    let high = this.#count - 1;
    let found = 0;
    while (low <= high) {
      const middle = (low + high) >> 1;
      if (this.#entries[middle * 2]! <= relativeOffset) {
        found = this.#entries[middle * 2 + 1]!;
        low = middle + 1;
      } else high = middle - 1;
    }
    return found;
  }

  entries(): Float64Array {
    return this.#entries.subarray(0, this.#count * 2);
  }

  static of(entries: Float64Array): SparseIndex {
    const index = new SparseIndex();
    for (let i = 0; i + 1 < entries.length; i += 2) index.add(entries[i]!, entries[i + 1]!);
    return index;
  }
}

class Segment {
  readonly baseOffset: bigint;
  readonly path: string;
  readonly handle: FileHandle;
  /** Bytes synced to disk: readers never look past this. */
  size: number;
  /** The offset after the segment's last record. */
  nextOffset: bigint;
  maxTimestampMs: number;
  index: SparseIndex;
  lastIndexedPosition = Number.NEGATIVE_INFINITY;
  deleted = false;

  constructor(baseOffset: bigint, path: string, handle: FileHandle) {
    this.baseOffset = baseOffset;
    this.path = path;
    this.handle = handle;
    this.size = 0;
    this.nextOffset = baseOffset;
    this.maxTimestampMs = Number.NEGATIVE_INFINITY;
    this.index = new SparseIndex();
  }

  get indexPath(): string {
    return this.path.replace(/\.log$/, '.index');
  }
}

interface AppendJob {
  records: readonly EncodedRecord[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class PartitionLog {
  readonly topic: string;
  readonly partition: number;
  readonly dir: string;
  readonly #options: PartitionLogOptions;
  readonly #log: Logger;
  readonly #segments: Segment[];
  #endOffset: bigint;
  #pending: AppendJob[] = [];
  #draining: Promise<void> | undefined;
  #closed = false;
  /** Set when a failed write could not be undone: appends fail until the log is reopened. */
  #broken: AppError | undefined;
  readonly #waiters = new Set<() => void>();

  private constructor(
    topic: string,
    partition: number,
    dir: string,
    segments: Segment[],
    options: PartitionLogOptions,
  ) {
    this.topic = topic;
    this.partition = partition;
    this.dir = dir;
    this.#options = options;
    this.#log = options.logger;
    this.#segments = segments;
    this.#endOffset = segments.at(-1)!.nextOffset;
  }

  /** Opens (or creates) the partition in `dir`: checks every segment and truncates a torn tail. */
  static async open(
    topic: string,
    partition: number,
    dir: string,
    options: PartitionLogOptions,
  ): Promise<PartitionLog> {
    await mkdir(dir, { recursive: true });
    const names = await readdir(dir);
    for (const name of names.filter(isTemporaryFile)) await unlink(join(dir, name)).catch(() => {});
    const bases = names
      .filter((n) => /^\d{20}\.log$/.test(n))
      .map((n) => BigInt(n.slice(0, 20)))
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const segments: Segment[] = [];
    try {
      if (bases.length === 0) {
        const path = segmentPath(dir, 0n);
        segments.push(new Segment(0n, path, await open(path, 'wx+')));
        await fsyncDir(dir);
      }
      for (const [i, base] of bases.entries()) {
        const path = segmentPath(dir, base);
        const segment = new Segment(base, path, await open(path, 'r+'));
        segments.push(segment);
        const previous = segments.at(-2);
        if (previous && previous.nextOffset !== base)
          throw dataLoss(
            `${path} starts at offset ${base} but the segment before it ends at ${previous.nextOffset}`,
          );
        const last = i === bases.length - 1;
        if (!last && (await loadIndex(segment))) continue;
        await recoverSegment(segment, last, options);
        if (!last) await saveIndex(segment).catch(() => {});
      }
    } catch (error) {
      await Promise.all(segments.map((s) => s.handle.close().catch(() => {})));
      throw error;
    }
    return new PartitionLog(topic, partition, dir, segments, options);
  }

  /** The offset the next record will get. */
  get endOffset(): bigint {
    return this.#endOffset;
  }

  /** The oldest retained offset. */
  get logStartOffset(): bigint {
    return this.#segments[0]!.baseOffset;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Appends the records after every earlier append; resolves once they are on disk (fdatasync). */
  append(records: readonly EncodedRecord[]): Promise<void> {
    if (this.#closed) return Promise.reject(closedError(this.topic));
    if (records.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#pending.push({ records, resolve, reject });
      this.#draining ??= this.#drain();
    });
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const jobs = this.#pending.splice(0);
        try {
          await this.#write(jobs.flatMap((j) => j.records));
          for (const job of jobs) job.resolve();
        } catch (error) {
          for (const job of jobs) job.reject(error);
        }
      }
    } finally {
      this.#draining = undefined;
    }
  }

  async #write(records: readonly EncodedRecord[]): Promise<void> {
    if (this.#broken) throw this.#broken;
    let segment = this.#segments.at(-1)!;
    let total = 0;
    for (const r of records) total += r.frameBytes;
    if (segment.size > 0 && segment.size + total > this.#options.segmentBytes) segment = await this.#roll();

    const buffer = Buffer.allocUnsafe(total);
    const timestampMs = Date.now();
    const indexed: [number, number][] = [];
    let lastIndexed = segment.lastIndexedPosition;
    let offset = this.#endOffset;
    let at = 0;
    for (const record of records) {
      const position = segment.size + at;
      if (position - lastIndexed >= this.#options.indexIntervalBytes) {
        indexed.push([Number(offset - segment.baseOffset), position]);
        lastIndexed = position;
      }
      at = writeFrame(buffer, at, record, offset, timestampMs);
      offset++;
    }

    try {
      await writeFully(segment.handle, buffer, segment.size);
      await segment.handle.datasync();
    } catch (error) {
      // Put the file back to what readers and recovery expect; if even that fails, stop appending.
      await segment.handle
        .truncate(segment.size)
        .then(() => segment.handle.datasync())
        .catch((undo: unknown) => {
          this.#broken = unavailable(`${segment.path} is in an unknown state after a failed write`, undo);
        });
      throw unavailable(`appending to ${segment.path} failed`, error);
    }

    for (const [relative, position] of indexed) segment.index.add(relative, position);
    segment.lastIndexedPosition = lastIndexed;
    segment.size += total;
    segment.nextOffset = offset;
    segment.maxTimestampMs = Math.max(segment.maxTimestampMs, timestampMs);
    this.#endOffset = offset;
    for (const wake of [...this.#waiters]) wake();
  }

  async #roll(): Promise<Segment> {
    const previous = this.#segments.at(-1)!;
    const path = segmentPath(this.dir, this.#endOffset);
    const segment = new Segment(this.#endOffset, path, await open(path, 'wx+'));
    await fsyncDir(this.dir);
    this.#segments.push(segment);
    saveIndex(previous).catch((error: unknown) =>
      this.#log.warn('could not save a segment index (it is rebuilt on open)', {
        path: previous.indexPath,
        error,
      }),
    );
    this.enforceRetention().catch((error: unknown) =>
      this.#log.warn('retention failed', { topic: this.topic, partition: this.partition, error }),
    );
    return segment;
  }

  /** Deletes the oldest closed segments beyond the size or age limit (the active segment always stays). */
  async enforceRetention(now = Date.now()): Promise<void> {
    if (this.#closed) return;
    let total = 0;
    for (const s of this.#segments) total += s.size;
    const doomed: Segment[] = [];
    while (this.#segments.length > 1) {
      const oldest = this.#segments[0]!;
      const overSize = total - oldest.size >= this.#options.retentionBytes;
      const overAge = oldest.maxTimestampMs < now - this.#options.retentionMs;
      if (!overSize && !overAge) break;
      this.#segments.shift();
      oldest.deleted = true;
      total -= oldest.size;
      doomed.push(oldest);
    }
    if (doomed.length === 0) return;
    this.#log.info('retention deleted segments', {
      topic: this.topic,
      partition: this.partition,
      segments: doomed.length,
      logStartOffset: this.logStartOffset.toString(),
    });
    for (const segment of doomed) {
      await segment.handle.close(); // waits for reads in flight
      await unlink(segment.indexPath).catch(() => {});
      await unlink(segment.path);
    }
    await fsyncDir(this.dir);
  }

  /**
   * Reads consecutive records from `from`: at most `maxRecords`, and about
   * `maxBytes` (at least one record, however large). An empty list means none yet.
   */
  async read(from: bigint, maxRecords: number, maxBytes: number): Promise<ReadResult> {
    if (this.#closed) return { kind: 'closed' };
    const end = this.#endOffset;
    if (from === end) return { kind: 'records', records: [] };
    const segment = this.#segmentOf(from);
    if (!segment || from > end)
      return { kind: 'out-of-range', logStartOffset: this.logStartOffset, endOffset: end };
    try {
      return { kind: 'records', records: await this.#readSegment(segment, from, maxRecords, maxBytes) };
    } catch (error) {
      if (this.#closed) return { kind: 'closed' };
      if (segment.deleted)
        return { kind: 'out-of-range', logStartOffset: this.logStartOffset, endOffset: this.#endOffset };
      throw error;
    }
  }

  async #readSegment(
    segment: Segment,
    from: bigint,
    maxRecords: number,
    maxBytes: number,
  ): Promise<ConsumedRecord[]> {
    const size = segment.size; // the synced part only
    const records: ConsumedRecord[] = [];
    let position = segment.index.positionFor(Number(from - segment.baseOffset));
    let chunk = await readAt(
      segment.handle,
      position,
      Math.min(size - position, maxBytes + this.#options.indexIntervalBytes),
    );
    let at = 0;
    let bytes = 0;
    while (position + at < size && records.length < maxRecords) {
      const frame = checkFrame(chunk, at, this.#options.maxFrameBytes);
      if (frame.kind === 'incomplete') {
        if (records.length > 0) break;
        position += at;
        at = 0;
        chunk = await readAt(
          segment.handle,
          position,
          Math.min(size - position, Math.max(frame.needBytes, maxBytes)),
        );
        if (chunk.length < frame.needBytes) throw dataLoss(`${segment.path} is shorter than its synced size`);
        continue;
      }
      if (frame.kind === 'invalid')
        throw dataLoss(`${segment.path} at byte ${position + at}: ${frame.reason} in a synced record`);
      if (frame.offset >= from) {
        if (records.length > 0 && bytes + frame.frameBytes > maxBytes) break;
        records.push(decodeFrame(chunk, at));
        bytes += frame.frameBytes;
      }
      at += frame.frameBytes;
    }
    return records;
  }

  #segmentOf(offset: bigint): Segment | undefined {
    let low = 0;
    let high = this.#segments.length - 1;
    let found: Segment | undefined;
    while (low <= high) {
      const middle = (low + high) >> 1;
      const segment = this.#segments[middle]!;
      if (segment.baseOffset <= offset) {
        found = segment;
        low = middle + 1;
      } else high = middle - 1;
    }
    return found && offset < found.nextOffset ? found : undefined;
  }

  /** Resolves once records past `position` exist, after `timeoutMs`, on abort, or when closed. */
  waitForRecords(position: bigint, timeoutMs: number, signal: AbortSignal): Promise<void> {
    if (this.#endOffset > position || this.#closed || signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', wake);
        this.#waiters.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, timeoutMs);
      signal.addEventListener('abort', wake, { once: true });
      this.#waiters.add(wake);
    });
  }

  /** Writes what is queued, then closes the files; later appends and reads fail. */
  async close(): Promise<void> {
    if (this.#closed) return;
    while (this.#draining) await this.#draining;
    this.#closed = true;
    for (const wake of [...this.#waiters]) wake();
    await Promise.all(this.#segments.map((s) => s.handle.close().catch(() => {})));
  }
}

/** Scans a segment, rebuilding its index; truncates a torn tail of the last segment, refuses damage elsewhere. */
async function recoverSegment(segment: Segment, last: boolean, options: PartitionLogOptions): Promise<void> {
  const fileSize = (await segment.handle.stat()).size;
  let position = 0;
  let need = 0;
  let damage: string | undefined;
  scan: while (position < fileSize) {
    const chunk = await readAt(
      segment.handle,
      position,
      Math.min(fileSize - position, Math.max(READ_CHUNK_BYTES, need)),
    );
    let at = 0;
    while (at < chunk.length) {
      const frame = checkFrame(chunk, at, options.maxFrameBytes);
      if (frame.kind === 'incomplete') {
        if (position + at + frame.needBytes > fileSize) {
          damage = 'an incomplete record';
          position += at;
          break scan;
        }
        need = frame.needBytes;
        break;
      }
      if (frame.kind === 'invalid' || frame.offset !== segment.nextOffset) {
        damage =
          frame.kind === 'invalid'
            ? frame.reason
            : `offset ${frame.offset} where ${segment.nextOffset} was expected`;
        position += at;
        break scan;
      }
      const recordPosition = position + at;
      if (recordPosition - segment.lastIndexedPosition >= options.indexIntervalBytes) {
        segment.index.add(Number(segment.nextOffset - segment.baseOffset), recordPosition);
        segment.lastIndexedPosition = recordPosition;
      }
      segment.nextOffset++;
      segment.maxTimestampMs = Math.max(segment.maxTimestampMs, frame.timestampMs);
      at += frame.frameBytes;
      need = 0;
    }
    position += at;
  }
  segment.size = position;
  if (damage === undefined) return;
  if (!last)
    throw dataLoss(`${segment.path} is damaged at byte ${position} (${damage}), before the last segment`);
  options.logger.warn('truncated a torn tail left by a crash', {
    path: segment.path,
    atByte: position,
    droppedBytes: fileSize - position,
    reason: damage,
    nextOffset: segment.nextOffset.toString(),
  });
  await segment.handle.truncate(position);
  await segment.handle.datasync();
}

/** Loads a closed segment's saved index if it matches the segment file; false when it must be rebuilt. */
async function loadIndex(segment: Segment): Promise<boolean> {
  let data: Buffer;
  try {
    data = await readFile(segment.indexPath);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false;
    throw error;
  }
  const headerBytes = 4 + 8 + 8 + 8 + 4;
  if (data.length < headerBytes + 4) return false;
  const payload = data.subarray(0, data.length - 4);
  if (crc32(payload) !== data.readUInt32BE(data.length - 4) || payload.readUInt32BE(0) !== INDEX_MAGIC)
    return false;
  const size = payload.readDoubleBE(4);
  const recordCount = payload.readDoubleBE(12);
  const maxTimestampMs = payload.readDoubleBE(20);
  const entryCount = payload.readUInt32BE(28);
  if (payload.length !== headerBytes + entryCount * 16) return false;
  if ((await segment.handle.stat()).size !== size) return false;
  const entries = new Float64Array(entryCount * 2);
  for (let i = 0; i < entries.length; i++) entries[i] = payload.readDoubleBE(headerBytes + i * 8);
  segment.index = SparseIndex.of(entries);
  segment.size = size;
  segment.nextOffset = segment.baseOffset + BigInt(recordCount);
  segment.maxTimestampMs = maxTimestampMs;
  return true;
}

async function saveIndex(segment: Segment): Promise<void> {
  const entries = segment.index.entries();
  const headerBytes = 4 + 8 + 8 + 8 + 4;
  const data = Buffer.alloc(headerBytes + entries.length * 8 + 4);
  data.writeUInt32BE(INDEX_MAGIC, 0);
  data.writeDoubleBE(segment.size, 4);
  data.writeDoubleBE(Number(segment.nextOffset - segment.baseOffset), 12);
  data.writeDoubleBE(segment.maxTimestampMs, 20);
  data.writeUInt32BE(entries.length / 2, 28);
  for (const [i, value] of entries.entries()) data.writeDoubleBE(value, headerBytes + i * 8);
  data.writeUInt32BE(crc32(data.subarray(0, data.length - 4)), data.length - 4);
  await writeFileAtomic(segment.indexPath, data);
}

function segmentPath(dir: string, baseOffset: bigint): string {
  return join(dir, `${baseOffset.toString().padStart(20, '0')}.log`);
}

async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(Math.max(0, length));
  let filled = 0;
  while (filled < buffer.length) {
    const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled === buffer.length ? buffer : buffer.subarray(0, filled);
}

async function writeFully(handle: FileHandle, buffer: Buffer, position: number): Promise<void> {
  let written = 0;
  while (written < buffer.length) {
    const { bytesWritten } = await handle.write(buffer, written, buffer.length - written, position + written);
    written += bytesWritten;
  }
}

function closedError(topic: string): AppError {
  return unavailable(`topic ${topic} was deleted or the event log is closed`);
}

function dataLoss(message: string): AppError {
  return new AppError(Code.DATA_LOSS, message);
}
