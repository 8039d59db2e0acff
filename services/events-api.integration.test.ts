/** The event log API's contract (events-api.contract.ts) on the real PostgreSQL. */
import { eventsApiContract } from './events-api.contract.ts';
import { migratedPostgresSchema } from './testing/migrated-sql.ts';
import { requireRealServers } from './testing/real-servers.ts';

await requireRealServers();

eventsApiContract('PostgreSQL', migratedPostgresSchema);
