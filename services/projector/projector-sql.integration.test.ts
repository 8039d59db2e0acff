import { migratedPostgresSchema } from '../testing/migrated-sql.ts';
import { requireRealServers } from '../testing/real-servers.ts';
import { projectorContract } from './projector.contract.ts';

await requireRealServers();

projectorContract('PostgreSQL', migratedPostgresSchema);
