import { migratedPostgresSchema } from '../../testing/migrated-sql.ts';
import { requireRealServers } from '../../testing/real-servers.ts';
import { destinationStoreContract } from './destination-store.contract.ts';

await requireRealServers();

destinationStoreContract('PostgreSQL', migratedPostgresSchema);
