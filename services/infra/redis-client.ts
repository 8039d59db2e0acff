/**
 * An ioredis client for a standalone Redis or a Redis Cluster, with Tally's credentials and TLS:
 * the one way the Redis adapters (counter store, rate limiter) connect.
 */
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';

/** How the client authenticates and encrypts, from TALLY_REDIS_USERNAME, _PASSWORD and _TLS* (README). */
export interface RedisSecurity {
  /** AUTH as `username` (an ACL user; absent: `default`); wins over credentials in the URL. */
  auth?: { username?: string | undefined; password: string };
  /** TLS to every node; `ca`: PEM certificates trusted besides the system's CAs. */
  tls?: { ca?: string };
}

/** Where Redis is and how to reach it. */
export interface RedisConnectionOptions {
  /**
   * `redis://[user:password@]host:port` for a standalone server; `rediss://` for TLS.
   * `security` applies over what the URL says.
   */
  url?: string;
  /** `host:port` of some Cluster nodes; set instead of `url` for Redis Cluster. */
  clusterNodes?: readonly string[];
  /** Credentials and TLS for every connection (none when absent, but what a standalone URL carries). */
  security?: RedisSecurity;
}

/** A client, where it points, and why it last failed to connect. */
export interface RedisConnection {
  client: Redis | Cluster;
  /** Where, how and as whom, for logs: `redis://host:port/, TLS, AUTH as tally`. */
  where: string;
  /**
   * Why the client cannot connect (refused, TLS, AUTH), from its last `error` event until it is
   * ready again; undefined while connected.
   */
  connectionError(): Error | undefined;
}

/** Cluster's own way to fail the calls waiting for a connection (not in its type declarations). */
type QueueFlusher = { flushQueue?(error: Error): void };

/**
 * A client for `options`, connecting at once; `what` names the adapter in the error thrown when
 * neither a URL nor Cluster nodes are given. `overrides` replace the common connection options
 * (such as `commandTimeout`) on every node.
 */
export function connectRedis(
  options: RedisConnectionOptions,
  what: string,
  overrides: Partial<RedisOptions> = {},
): RedisConnection {
  // Auto-pipelining: the calls of one batch (a script per slot, the leaderboards' writes) go out
  // in one write per connection, which spares Redis a read and a reply per call.
  const common = {
    lazyConnect: false,
    maxRetriesPerRequest: 3,
    enableOfflineQueue: true,
    enableAutoPipelining: true,
    ...overrides,
  } as const;
  const { auth, tls } = options.security ?? {};
  let client: Redis | Cluster;
  let where: string;
  let user = auth && (auth.username ?? 'default');
  if (options.clusterNodes && options.clusterNodes.length > 0) {
    const redisOptions: ClusterOptions['redisOptions'] = {
      ...common,
      ...auth,
      ...(tls && { tls: { ...tls } }),
    };
    client = new Cluster(
      options.clusterNodes.map((n) => {
        const [host, port] = n.split(':');
        return { host: host ?? '127.0.0.1', port: Number(port ?? 6379) };
      }),
      {
        redisOptions,
        ...(tls && {
          // ioredis resolves the names given to addresses before connecting, and TLS would then
          // check the certificates against those addresses: keep the names. Nodes found later are
          // dialled at the addresses the cluster announces, which their certificates must name.
          dnsLookup: (address: string, callback: (error: null, address: string) => void) =>
            callback(null, address),
          // Each slots refresh opens a connection of its own (TLS handshake, then AUTH): more
          // than the default second on a busy node.
          slotsRefreshTimeout: 5_000,
        }),
      },
    );
    where = `cluster ${options.clusterNodes.join(',')}`;
  } else if (options.url) {
    // The URL's credentials, unless the explicit ones replace them; the URL then goes without any.
    const url = new URL(options.url);
    const fromUrl = {
      username: decodeURIComponent(url.username) || undefined,
      password: decodeURIComponent(url.password) || undefined,
    };
    url.username = '';
    url.password = '';
    const standalone: RedisOptions = {
      ...common,
      username: auth?.username ?? fromUrl.username,
      password: auth?.password ?? fromUrl.password,
      ...(tls && { tls: { ...tls } }),
    };
    if (standalone.password !== undefined) user ??= standalone.username ?? 'default';
    client = new Redis(url.href, standalone);
    where = url.href;
  } else {
    throw new Error(`${what} needs a url or cluster nodes`);
  }
  const secure = tls !== undefined || where.startsWith('rediss://');
  where += `, ${secure ? 'TLS' : 'plaintext'}${user ? `, AUTH as ${user}` : ''}`;
  // ioredis reconnects by itself and reports why it cannot connect (refused, TLS, AUTH) only as
  // 'error' events: the calls it fails meanwhile carry that reason. A Cluster would hold its
  // calls until it is up, however long: each failed attempt fails them instead.
  let connectionError: Error | undefined;
  client.on('ready', () => {
    connectionError = undefined;
  });
  client.on('error', (error: Error & { lastNodeError?: Error }) => {
    connectionError = error.lastNodeError ?? error; // ClusterAllFailedError: the last node's reason
    if (client instanceof Cluster) (client as unknown as QueueFlusher).flushQueue?.(connectionError);
  });
  return { client, where, connectionError: () => connectionError };
}
