import { migratedPostgresSchema } from '../../testing/migrated-sql.ts';
import { requireRealServers } from '../../testing/real-servers.ts';
import { notificationStoreContract } from './notification-store.contract.ts';

await requireRealServers();

notificationStoreContract('PostgreSQL', migratedPostgresSchema);
