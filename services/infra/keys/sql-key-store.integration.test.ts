import { migratedPostgresSchema } from '../../testing/migrated-sql.ts';
import { requireRealServers } from '../../testing/real-servers.ts';
import { keyStoreContract } from './key-store.contract.ts';

await requireRealServers();

keyStoreContract('PostgreSQL', migratedPostgresSchema);
