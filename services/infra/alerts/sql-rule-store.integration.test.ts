import { migratedPostgresSchema } from '../../testing/migrated-sql.ts';
import { requireRealServers } from '../../testing/real-servers.ts';
import { ruleStoreContract } from './rule-store.contract.ts';

await requireRealServers();

ruleStoreContract('PostgreSQL', migratedPostgresSchema);
