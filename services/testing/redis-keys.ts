/** Test cleanup: deletes a test namespace's Redis keys, on the real standalone server or every Cluster master. */
import { Cluster, Redis } from 'ioredis';
import { realServers } from './real-servers.ts';

export async function deleteRedisKeys(
  prefix: string,
  on: 'standalone' | 'cluster' = 'standalone',
): Promise<void> {
  if (on === 'standalone') {
    const redis = new Redis(realServers.redisUrl);
    try {
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length > 0) await redis.del(...keys);
    } finally {
      await redis.quit();
    }
    return;
  }
  const cluster = new Cluster(
    realServers.redisClusterNodes.map((n) => ({ host: n.split(':')[0]!, port: Number(n.split(':')[1]) })),
  );
  try {
    // The masters are known once the client is ready (before, `nodes` lists none).
    if (cluster.status !== 'ready') await new Promise((resolve) => cluster.once('ready', resolve));
    // Keys of different targets sit in different slots: each master deletes its own.
    for (const node of cluster.nodes('master')) {
      const keys = await node.keys(`${prefix}:*`);
      for (const key of keys) await node.del(key);
    }
  } finally {
    await cluster.quit();
  }
}
